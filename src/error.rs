//! Every error a client of the OWS side can see, and the one place where each becomes a
//! response: an OWS `ExceptionReport` with the original's code, locator, text and status.
//! Internal details never reach the client; they are logged where the error is made.
//!
//! The other protocols have their own error types, each rendered in one place:
//! [`RpcFault`](crate::rpc::RpcFault) (XML-RPC), [`OAuthError`](crate::oauth::OAuthError)
//! (RFC 6749 JSON), [`JsonError`](crate::json::JsonError) (the management JSON of
//! `/services` and `/oauth/client`), [`VerifyError`](crate::verify::VerifyError)
//! (`/ows/verify`). [`Unavailable`] says why any of them answers 503.

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ows::exception::{self, ExceptionCode};
use crate::ows::request::RequestError;
use crate::store::StoreError;

/// Why a request is answered "temporarily unavailable" (503, or the XML-RPC fault of that
/// name): the same request may succeed later. Each protocol's error type carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The database is locked by another process past the wait, read-only, full or
    /// unreachable ([`StoreError::Unavailable`]).
    Storage,
    /// The server is at its limit of requests in progress.
    Overloaded,
}

impl Unavailable {
    /// The text shown to clients (the cause's details are only logged).
    pub fn text(self) -> &'static str {
        match self {
            Unavailable::Storage => {
                "The database is temporarily unavailable (locked or read-only). Try again later."
            }
            Unavailable::Overloaded => "The server is busy. Try again later.",
        }
    }
}

/// How a failed store call is answered: `Some` when the client is told "temporarily
/// unavailable", `None` for an internal error. Logs the cause either way.
pub fn store_failure(context: &str, e: &StoreError) -> Option<Unavailable> {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "{context}");
        Some(Unavailable::Storage)
    } else {
        tracing::error!(error = %e, "{context}");
        None
    }
}

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
    /// The database or the server cannot take the request now.
    #[error("{}", .0.text())]
    Unavailable(Unavailable),
    /// Something failed inside twitcher; the cause was logged.
    #[error("An internal error occurred.")]
    Internal,
}

impl From<StoreError> for OwsError {
    fn from(e: StoreError) -> OwsError {
        store_failure("store lookup failed", &e).map_or(OwsError::Internal, OwsError::Unavailable)
    }
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
            OwsError::Unavailable(_) => (
                NoApplicableCode,
                "NoApplicableCode",
                StatusCode::SERVICE_UNAVAILABLE,
            ),
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
            OwsError::Unavailable(Unavailable::Storage) => 12,
            OwsError::Unavailable(Unavailable::Overloaded) => 13,
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
static PREPARED: [OnceLock<Bytes>; 14] = [const { OnceLock::new() }; 14];

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
pub(crate) mod tests {
    use super::*;

    /// A response as text for snapshots: status, sorted headers, body.
    pub(crate) async fn render(response: Response) -> String {
        let mut out = format!("== {}\n", response.status());
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
        out
    }

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
            OwsError::Unavailable(Unavailable::Storage),
            OwsError::Unavailable(Unavailable::Overloaded),
            OwsError::Internal,
        ];
        let mut out = String::new();
        for err in all {
            out.push_str(&render(err.into_response()).await);
        }
        insta::assert_snapshot!(out);
    }
}
