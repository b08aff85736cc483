//! `{protected_path}/verify/{name}[/{extra}]` (the 0.8 series): the proxy's access
//! decision without forwarding, as JSON, for an nginx `auth_request` in front of the
//! services. nginx sends no body with the subrequest, so a request whose operation cannot
//! be read counts as a protected operation.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;
use crate::error::OwsError;
use crate::gate::{Denied, Route};
use crate::json::PyJson;
use crate::proxy;

/// The handler of the verify routes (any method).
pub async fn handle(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let decision = proxy::gate(&app)
        .admit(
            Route::Verify,
            proxy::incoming(&parts),
            proxy::body_stream(body),
        )
        .await;
    match decision {
        Ok(_) => PyJson(
            StatusCode::OK,
            json!({"description": "Access to service is allowed.", "access": true}),
        )
        .into_response(),
        Err(e @ Denied::Store(_)) => OwsError::from(e).into_response(),
        Err(e) => {
            tracing::debug!(reason = %e, "verify: access refused");
            PyJson(
                StatusCode::FORBIDDEN,
                json!({"description": "Access to service is forbidden.", "access": false}),
            )
            .into_response()
        }
    }
}
