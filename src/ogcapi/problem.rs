//! Refusals of `ogcapi` services in the endpoint's own language: RFC 7807
//! `application/problem+json` documents (what OGC API clients parse), not OWS reports.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::gate::Denied;

/// The media type of every problem document.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// A refusal of a request to an `ogcapi` service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The path could step out of the service's path (dot segments, encoded slashes).
    #[error("The request path is not valid.")]
    InvalidPath,
    /// A method-override header or parameter.
    #[error("Method override headers and parameters are not allowed.")]
    MethodOverride,
    /// A method the proxy does not forward.
    #[error("The method is not allowed.")]
    MethodNotAllowed,
    /// No valid token.
    #[error("Access token is required to access this service.")]
    TokenRequired,
    /// An expired token.
    #[error("Access token is expired.")]
    TokenExpired,
    /// No verified client certificate for an `auth = cert` service.
    #[error("A valid X.509 client certificate is needed.")]
    CertificateRequired,
    /// The backend answered in a way the proxy cannot pass on safely.
    #[error("The service's response could not be read.")]
    BadResponse,
    /// The backend could not be reached.
    #[error("Request failed: the service is not reachable.")]
    BackendUnreachable,
    /// The backend did not answer in time.
    #[error("Request failed: the service did not answer in time.")]
    BackendTimeout,
    /// Something failed inside twitcher; the cause was logged.
    #[error("An internal error occurred.")]
    Internal,
}

impl Problem {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Problem::InvalidPath | Problem::MethodOverride => StatusCode::BAD_REQUEST,
            Problem::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Problem::TokenRequired | Problem::TokenExpired => StatusCode::UNAUTHORIZED,
            Problem::CertificateRequired => StatusCode::FORBIDDEN,
            Problem::BadResponse | Problem::BackendUnreachable => StatusCode::BAD_GATEWAY,
            Problem::BackendTimeout => StatusCode::GATEWAY_TIMEOUT,
            Problem::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `WWW-Authenticate` challenge of a 401 (RFC 6750 §3).
    fn challenge(self) -> Option<&'static str> {
        match self {
            Problem::TokenRequired => Some(r#"Bearer realm="twitcher""#),
            Problem::TokenExpired => Some(
                r#"Bearer realm="twitcher", error="invalid_token", error_description="The access token expired""#,
            ),
            _ => None,
        }
    }
}

impl From<Denied> for Problem {
    fn from(denied: Denied) -> Problem {
        match denied {
            Denied::Path(_) => Problem::InvalidPath,
            Denied::MethodOverride => Problem::MethodOverride,
            Denied::Method => Problem::MethodNotAllowed,
            Denied::TokenRequired => Problem::TokenRequired,
            Denied::TokenExpired => Problem::TokenExpired,
            Denied::CertificateRequired => Problem::CertificateRequired,
            Denied::ServiceUrl(e) => {
                tracing::warn!(error = %e, "registered service URL unusable");
                Problem::BackendUnreachable
            }
            Denied::Store(e) => {
                tracing::error!(error = %e, "store lookup failed");
                Problem::Internal
            }
            // The gate reads no OWS request and no body of an `ogcapi` request; a lookup
            // that found no service never gets here (the report is the OWS one).
            Denied::NoService
            | Denied::Request(_)
            | Denied::ContentEncoding
            | Denied::BodyTooLarge
            | Denied::BodyUnreadable => {
                tracing::error!(reason = %denied, "unexpected refusal of an ogcapi request");
                Problem::Internal
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or_default(),
            "status": status.as_u16(),
            "detail": self.to_string(),
        });
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(challenge) = self.challenge() {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every problem document, with status and headers.
    #[tokio::test]
    async fn every_problem_document() {
        let all = [
            Problem::InvalidPath,
            Problem::MethodOverride,
            Problem::MethodNotAllowed,
            Problem::TokenRequired,
            Problem::TokenExpired,
            Problem::CertificateRequired,
            Problem::BadResponse,
            Problem::BackendUnreachable,
            Problem::BackendTimeout,
            Problem::Internal,
        ];
        let mut out = String::new();
        for problem in all {
            out.push_str(&crate::error::tests::render(problem.into_response()).await);
        }
        insta::assert_snapshot!(out);
    }
}
