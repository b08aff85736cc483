//! Every error a client of the OWS side can see, and the one place where each becomes a
//! response: an OWS `ExceptionReport` with the original's code, locator, text and status.
//! Internal details never reach the client; they are logged where the error is made.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ows::exception::{self, ExceptionCode};
use crate::ows::request::RequestError;

/// An error answered with an OWS exception report.
#[derive(Debug, thiserror::Error)]
pub enum OwsError {
    /// No service of that name is registered.
    #[error("Service not found")]
    ServiceNotFound,
    /// The request is not a supported OWS request.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// No valid token was presented.
    #[error("Access token is required to access this service.")]
    TokenRequired,
    /// The token presented has expired.
    #[error("Access token is expired.")]
    TokenExpired,
    /// The service needs a verified X.509 client certificate.
    #[error("A valid X.509 client certificate is needed.")]
    CertificateRequired,
    /// The backend answered with a content type the proxy does not pass on.
    #[error("Content type is not allowed: {0}.")]
    ContentTypeNotAllowed(String),
    /// The backend answered with an error status and no exception report.
    #[error("Response is not ok: {0}")]
    ResponseNotOk(String),
    /// The backend's XML could not be parsed for rewriting.
    #[error("Could not decode content.")]
    CouldNotDecode,
    /// The backend could not be reached.
    #[error("Request failed: the service is not reachable.")]
    BackendUnreachable,
    /// The backend did not answer in time.
    #[error("Request failed: the service did not answer in time.")]
    BackendTimeout,
    /// The proxy only forwards GET and POST.
    #[error(
        "The server could not comply with the request since it is either malformed or otherwise incorrect."
    )]
    MethodNotAllowed,
    /// The request body is larger than `twitcher.max_body_size` allows.
    #[error("The request body is too large.")]
    BodyTooLarge,
    /// The request body is compressed (`Content-Encoding`); the proxy does not decode it.
    #[error("A compressed request body is not supported.")]
    UnsupportedContentEncoding,
    /// The extra path tries to leave the service's URL (`..` segments).
    #[error("The request path is not valid.")]
    InvalidPath,
    /// No route matches the path (the path is echoed, escaped, like the original).
    #[error("{0}")]
    NotFound(String),
    /// Something failed inside twitcher; the cause was logged.
    #[error("An internal error occurred.")]
    Internal,
}

impl OwsError {
    /// Logs an internal failure and returns the generic error shown to the client.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> OwsError {
        tracing::error!(%err, "{context}");
        OwsError::Internal
    }

    /// The report's `exceptionCode`, `locator` and HTTP status.
    pub fn parts(&self) -> (ExceptionCode, &'static str, StatusCode) {
        use ExceptionCode::*;
        match self {
            OwsError::ServiceNotFound => (InvalidParameterValue, "service", StatusCode::NOT_FOUND),
            OwsError::Request(e @ RequestError::Missing(_)) => (
                MissingParameterValue,
                e.locator().unwrap_or_default(),
                StatusCode::BAD_REQUEST,
            ),
            OwsError::Request(RequestError::Malformed(_) | RequestError::Doctype) => (
                NoApplicableCode,
                "NoApplicableCode",
                StatusCode::BAD_REQUEST,
            ),
            OwsError::Request(RequestError::Encoding) | OwsError::UnsupportedContentEncoding => (
                NoApplicableCode,
                "NoApplicableCode",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            OwsError::Request(e) => (
                InvalidParameterValue,
                e.locator().unwrap_or_default(),
                StatusCode::BAD_REQUEST,
            ),
            OwsError::TokenRequired
            | OwsError::TokenExpired
            | OwsError::CertificateRequired
            | OwsError::ContentTypeNotAllowed(_) => (
                NoApplicableCode,
                "AccessForbidden",
                StatusCode::UNAUTHORIZED,
            ),
            OwsError::ResponseNotOk(_) | OwsError::CouldNotDecode => {
                (NoApplicableCode, "NotAcceptable", StatusCode::BAD_REQUEST)
            }
            OwsError::BackendUnreachable => {
                (NoApplicableCode, "NotAcceptable", StatusCode::BAD_GATEWAY)
            }
            OwsError::BackendTimeout => (
                NoApplicableCode,
                "NotAcceptable",
                StatusCode::GATEWAY_TIMEOUT,
            ),
            OwsError::MethodNotAllowed => (
                NoApplicableCode,
                "NoApplicableCode",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            OwsError::BodyTooLarge => (
                NoApplicableCode,
                "NoApplicableCode",
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            OwsError::InvalidPath => (
                NoApplicableCode,
                "NoApplicableCode",
                StatusCode::BAD_REQUEST,
            ),
            OwsError::NotFound(_) => (NoApplicableCode, "NoApplicableCode", StatusCode::NOT_FOUND),
            OwsError::Internal => (
                NoApplicableCode,
                "NoApplicableCode",
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        }
    }
}

impl OwsError {
    /// The slot of a report whose bytes never vary (see [`PREPARED`]).
    fn prepared_slot(&self) -> Option<usize> {
        Some(match self {
            OwsError::ServiceNotFound => 0,
            OwsError::TokenRequired => 1,
            OwsError::TokenExpired => 2,
            OwsError::CertificateRequired => 3,
            OwsError::CouldNotDecode => 4,
            OwsError::BackendUnreachable => 5,
            OwsError::BackendTimeout => 6,
            OwsError::MethodNotAllowed => 7,
            OwsError::BodyTooLarge => 8,
            OwsError::UnsupportedContentEncoding => 9,
            OwsError::InvalidPath => 10,
            OwsError::Internal => 11,
            _ => return None,
        })
    }

    /// The report's bytes: rendered once for the fixed reports (refusals are the hot
    /// path of an attack), each time for those that name request data.
    fn body(&self) -> Bytes {
        let render = || {
            let (code, locator, _) = self.parts();
            Bytes::from(exception::render(code, locator, &self.to_string()))
        };
        match self.prepared_slot() {
            Some(slot) => PREPARED[slot].get_or_init(render).clone(),
            None => render(),
        }
    }
}

/// Reports without variable text, rendered on first use.
static PREPARED: [OnceLock<Bytes>; 12] = [const { OnceLock::new() }; 12];

impl IntoResponse for OwsError {
    fn into_response(self) -> Response {
        let (_, _, status) = self.parts();
        let mut response = (status, self.body()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(exception::CONTENT_TYPE),
        );
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of report the OWS side can produce, with status and headers.
    #[tokio::test]
    async fn every_exception_report() {
        let all = [
            OwsError::ServiceNotFound,
            OwsError::Request(RequestError::Missing("version")),
            OwsError::Request(RequestError::InvalidKvp {
                param: "service",
                value: "wfs".into(),
            }),
            OwsError::Request(RequestError::InvalidXmlService("foo".into())),
            OwsError::Request(RequestError::InvalidXmlRequest("foo".into())),
            OwsError::Request(RequestError::InvalidXmlVersion("9.9.9".into())),
            OwsError::Request(RequestError::Malformed("Document is empty".into())),
            OwsError::Request(RequestError::Ambiguous("request")),
            OwsError::Request(RequestError::Doctype),
            OwsError::Request(RequestError::Encoding),
            OwsError::UnsupportedContentEncoding,
            OwsError::TokenRequired,
            OwsError::TokenExpired,
            OwsError::CertificateRequired,
            OwsError::ContentTypeNotAllowed("text/html; charset=utf-8".into()),
            OwsError::ResponseNotOk("Internal Server Error".into()),
            OwsError::CouldNotDecode,
            OwsError::BackendUnreachable,
            OwsError::BackendTimeout,
            OwsError::MethodNotAllowed,
            OwsError::BodyTooLarge,
            OwsError::InvalidPath,
            OwsError::NotFound("/no such<x>&'".into()),
            OwsError::Internal,
        ];
        let mut out = String::new();
        for err in all {
            let response = err.into_response();
            out.push_str(&format!("== {}\n", response.status()));
            let mut headers: Vec<_> = response
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap()))
                .collect();
            headers.sort();
            for h in headers {
                out.push_str(&h);
                out.push('\n');
            }
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            out.push_str(std::str::from_utf8(&body).unwrap());
            out.push_str("\n\n");
        }
        insta::assert_snapshot!(out);
    }
}
