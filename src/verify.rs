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
use crate::json::PyJson;
use crate::proxy;
use crate::security::{self, Grant};

/// The handler of the verify routes (any method).
pub async fn handle(State(app): State<App>, request: Request) -> Response {
    match decide(&app, request).await {
        Ok(_) => PyJson(
            StatusCode::OK,
            json!({"description": "Access to service is allowed.", "access": true}),
        )
        .into_response(),
        Err(OwsError::Internal) => OwsError::Internal.into_response(),
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

async fn decide(app: &App, request: Request) -> Result<Grant, OwsError> {
    let peer = proxy::peer_of(app, &request);
    let (parts, body) = request.into_parts();
    let (service, extra) = proxy::target(app, "verify", parts.uri.path()).await?;
    if !app.config.ows_security {
        return Ok(Grant::Public);
    }
    let query = parts.uri.query().unwrap_or("");
    let (ows_request, form_token) =
        match proxy::read_ows_request(app, &parts.method, query, &parts.headers, body).await {
            Ok(ows) => (ows.request, ows.form_token),
            Err(OwsError::Internal) => return Err(OwsError::Internal),
            // nginx sends the subrequest without the body: the query may still name the
            // operation (`POST ?service=WPS&request=GetCapabilities`).
            Err(_) => (crate::ows::request::parse_kvp(query).ok(), None),
        };
    let credentials =
        security::credentials(query, &parts.headers, form_token.as_deref(), &extra, peer);
    let now = crate::clock::now();
    security::authorize(
        app.store.as_ref(),
        &app.tokens,
        &service,
        ows_request.as_ref(),
        &credentials,
        now,
    )
    .await
}
