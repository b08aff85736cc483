//! The JSON error of the management interfaces (REST `/services` and `/oauth/client`), in
//! the shapes the original's Pyramid views used: colander's validation list for a refused
//! registration, Pyramid's `{"message", "code", "title"}` for everything else.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::PyJson;
use crate::basic_auth;
use crate::error::{Unavailable, store_failure};
use crate::store::StoreError;

/// An error of the management interfaces, answered as JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Validation failed: `(field, description)` pairs, as the original listed them (400).
    #[error("invalid request")]
    Invalid(Vec<(&'static str, String)>),
    /// Management credentials missing or wrong (401 with a basic-auth challenge).
    #[error("unauthorized")]
    Unauthorized,
    /// The request body is larger than the endpoint reads (413).
    #[error("request body too large")]
    PayloadTooLarge,
    /// The database or the server cannot take the request now (503).
    #[error("temporarily unavailable")]
    Unavailable(Unavailable),
    /// Something failed inside twitcher; the cause was logged (500).
    #[error("internal error")]
    Internal,
}

impl JsonError {
    /// 413: the body is too large.
    pub fn payload_too_large() -> JsonError {
        JsonError::PayloadTooLarge
    }

    /// 503 for `why`.
    pub fn unavailable(why: Unavailable) -> JsonError {
        JsonError::Unavailable(why)
    }

    /// The status, and the body for all but validation errors.
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            JsonError::Invalid(_) => (StatusCode::BAD_REQUEST, ""),
            JsonError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "This server could not verify that you are authorized to access the resource. Give the management user's credentials.",
            ),
            JsonError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large.",
            ),
            JsonError::Unavailable(why) => (StatusCode::SERVICE_UNAVAILABLE, why.text()),
            JsonError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "An internal error occurred.",
            ),
        }
    }
}

impl From<StoreError> for JsonError {
    fn from(e: StoreError) -> JsonError {
        store_failure("registry operation failed", &e)
            .map_or(JsonError::Internal, JsonError::Unavailable)
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> Response {
        let (status, message) = self.parts();
        let body = match self {
            JsonError::Invalid(errors) => {
                let errors: Vec<Value> = errors
                    .into_iter()
                    .map(|(name, description)| {
                        json!({"location": "body", "name": name, "description": description})
                    })
                    .collect();
                json!({"status": "error", "errors": errors})
            }
            _ => json!({
                "message": message,
                "code": format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("")),
                "title": status.canonical_reason().unwrap_or(""),
            }),
        };
        let mut response = PyJson(status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, basic_auth::challenge());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every management JSON error with its status and headers.
    #[tokio::test]
    async fn every_json_error() {
        let all = [
            JsonError::Invalid(vec![
                ("name", "Required".into()),
                ("verify", "verify is not a boolean".into()),
            ]),
            JsonError::Unauthorized,
            JsonError::payload_too_large(),
            JsonError::unavailable(Unavailable::Storage),
            JsonError::unavailable(Unavailable::Overloaded),
            JsonError::Internal,
        ];
        let mut out = String::new();
        for err in all {
            out.push_str(&crate::error::tests::render(err.into_response()).await);
        }
        insta::assert_snapshot!(out);
    }
}
