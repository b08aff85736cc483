//! `{protected_path}/verify/{name}[/{extra}]` (the 0.8 series): the proxy's access
//! decision without forwarding, as JSON, for an nginx `auth_request` in front of the
//! services. nginx sends no body with the subrequest, so a request whose operation cannot
//! be read counts as a protected operation.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;
use crate::error::{Unavailable, store_failure};
use crate::gate::{Denied, Route};
use crate::json::PyJson;
use crate::proxy;

/// Why the verify endpoint does not answer "allowed": JSON in the endpoint's own shape
/// (`description`, `access: false`), one variant per status.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The gate refuses the request (403).
    #[error("access forbidden")]
    Forbidden,
    /// The request body is larger than the gate reads (413).
    #[error("request body too large")]
    PayloadTooLarge,
    /// The database or the server cannot decide now (503).
    #[error("temporarily unavailable")]
    Unavailable(Unavailable),
    /// Something failed inside twitcher; the cause was logged (500).
    #[error("internal error")]
    Internal,
}

impl VerifyError {
    /// 413: the body is too large.
    pub fn payload_too_large() -> VerifyError {
        VerifyError::PayloadTooLarge
    }

    /// 503 for `why`.
    pub fn unavailable(why: Unavailable) -> VerifyError {
        VerifyError::Unavailable(why)
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            VerifyError::Forbidden => (StatusCode::FORBIDDEN, "Access to service is forbidden."),
            VerifyError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
            ),
            VerifyError::Unavailable(why) => (StatusCode::SERVICE_UNAVAILABLE, why.text()),
            VerifyError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "An internal error occurred.",
            ),
        }
    }
}

impl From<Denied> for VerifyError {
    fn from(denied: Denied) -> VerifyError {
        match denied {
            Denied::Store(e) => store_failure("verify: store lookup failed", &e)
                .map_or(VerifyError::Internal, VerifyError::Unavailable),
            Denied::BodyTooLarge => VerifyError::PayloadTooLarge,
            e => {
                tracing::debug!(reason = %e, "verify: access refused");
                VerifyError::Forbidden
            }
        }
    }
}

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        let (status, description) = self.parts();
        PyJson(status, json!({"description": description, "access": false})).into_response()
    }
}

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
        Err(denied) => VerifyError::from(denied).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every verify refusal with its status and headers.
    #[tokio::test]
    async fn every_verify_error() {
        let all = [
            VerifyError::Forbidden,
            VerifyError::payload_too_large(),
            VerifyError::unavailable(Unavailable::Storage),
            VerifyError::unavailable(Unavailable::Overloaded),
            VerifyError::Internal,
        ];
        let mut out = String::new();
        for err in all {
            out.push_str(&crate::error::tests::render(err.into_response()).await);
        }
        insta::assert_snapshot!(out);
    }
}
