//! The error answers of the token endpoint: RFC 6749 §5.2 JSON (`error`,
//! `error_description`, the request's `state` echoed), never cached, one variant per kind.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oauth2::StandardErrorResponse;
use oauth2::basic::BasicErrorResponseType;
use serde_json::{Value, json};

use super::token_endpoint_response;
use crate::basic_auth;
use crate::error::{Unavailable, store_failure};
use crate::json::to_python_json;
use crate::store::StoreError;

/// An error of `/oauth/token`, answered with the RFC 6749 error JSON.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// `invalid_request` (400) with a description.
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// `invalid_client` (401); `basic`: the client tried HTTP basic authentication, so
    /// the answer carries a challenge (RFC 6749 §5.2).
    #[error("invalid_client")]
    InvalidClient {
        /// Credentials came by HTTP basic authentication.
        basic: bool,
    },
    /// `invalid_scope` (400): a scope the client may not have.
    #[error("invalid_scope")]
    InvalidScope,
    /// `unsupported_grant_type` (400), with a description when there is more to say.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType(Option<&'static str>),
    /// A method the endpoint does not take (405 `invalid_request`, with `Allow`; HEAD
    /// included: it would issue a token nobody sees).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The form body is larger than the endpoint reads (413 `invalid_request`).
    #[error("request body too large")]
    PayloadTooLarge,
    /// The database or the server cannot take the request now (503
    /// `temporarily_unavailable`).
    #[error("temporarily unavailable")]
    Unavailable(Unavailable),
    /// Something failed inside twitcher; the cause was logged (500 `server_error`).
    #[error("server error")]
    Internal,
}

impl OAuthError {
    /// 503 `temporarily_unavailable` for `why`.
    pub fn temporarily_unavailable(why: Unavailable) -> OAuthError {
        OAuthError::Unavailable(why)
    }

    /// 413: the body is too large.
    pub fn payload_too_large() -> OAuthError {
        OAuthError::PayloadTooLarge
    }

    /// Status, RFC 6749 error code and description.
    fn parts(&self) -> (StatusCode, BasicErrorResponseType, Option<&'static str>) {
        use BasicErrorResponseType as E;
        match self {
            OAuthError::InvalidRequest(text) => {
                (StatusCode::BAD_REQUEST, E::InvalidRequest, Some(text))
            }
            OAuthError::InvalidClient { .. } => (StatusCode::UNAUTHORIZED, E::InvalidClient, None),
            OAuthError::InvalidScope => (StatusCode::BAD_REQUEST, E::InvalidScope, None),
            OAuthError::UnsupportedGrantType(text) => {
                (StatusCode::BAD_REQUEST, E::UnsupportedGrantType, *text)
            }
            OAuthError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                E::InvalidRequest,
                Some("The token endpoint accepts GET and POST requests."),
            ),
            OAuthError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                E::InvalidRequest,
                Some("The request body is too large."),
            ),
            OAuthError::Unavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                E::Extension("temporarily_unavailable".into()),
                Some(why.text()),
            ),
            OAuthError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                E::Extension("server_error".into()),
                Some("An internal error occurred."),
            ),
        }
    }

    /// The answer, echoing the request's `state` as the original did.
    pub fn into_response_with_state(self, state: Option<String>) -> Response {
        let (status, kind, description) = self.parts();
        let body = StandardErrorResponse::new(kind, description.map(str::to_string), None);
        let mut value =
            serde_json::to_value(&body).unwrap_or_else(|_| json!({"error": "server_error"}));
        if let (Some(state), Value::Object(map)) = (state, &mut value) {
            map.insert("state".into(), Value::String(state));
        }
        let mut response = token_endpoint_response(status, to_python_json(&value));
        let headers = response.headers_mut();
        match self {
            OAuthError::InvalidClient { basic: true } => {
                headers.insert(header::WWW_AUTHENTICATE, basic_auth::challenge());
            }
            OAuthError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> OAuthError {
        store_failure("token endpoint: store operation failed", &e)
            .map_or(OAuthError::Internal, OAuthError::Unavailable)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        self.into_response_with_state(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token endpoint error with its status and headers.
    #[tokio::test]
    async fn every_oauth_error() {
        let all = [
            OAuthError::InvalidRequest("Request is missing grant type."),
            OAuthError::InvalidClient { basic: false },
            OAuthError::InvalidClient { basic: true },
            OAuthError::InvalidScope,
            OAuthError::UnsupportedGrantType(None),
            OAuthError::UnsupportedGrantType(Some("Tokens are issued by Keycloak.")),
            OAuthError::MethodNotAllowed,
            OAuthError::payload_too_large(),
            OAuthError::temporarily_unavailable(Unavailable::Storage),
            OAuthError::temporarily_unavailable(Unavailable::Overloaded),
            OAuthError::Internal,
        ];
        let mut out = String::new();
        for err in all {
            out.push_str(&crate::error::tests::render(err.into_response()).await);
        }
        let with_state =
            OAuthError::InvalidClient { basic: false }.into_response_with_state(Some("xyz".into()));
        out.push_str(&crate::error::tests::render(with_state).await);
        insta::assert_snapshot!(out);
    }
}
