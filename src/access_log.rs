//! The access log: one structured line per request at INFO, target `twitcher::access`
//! (`twitcher.access_log = false` or `RUST_LOG=…,twitcher::access=off` turn it off).
//!
//! A line names the method, the route, the service, the OWS operation, the status, the
//! response bytes, the duration and the kind of credential (with the OAuth client id, or
//! the subject DN of a client certificate twitcher verified itself):
//! never a token, a query, a path below the service name, or a header value. What only
//! the proxy knows (service, operation, credential) it hands over in a [`Served`]
//! response extension; nothing is parsed a second time here.

use std::time::Duration;

use axum::http::{Method, StatusCode};

use crate::endpoint::Endpoint;
use crate::gate::{Admitted, Grant};
use crate::tokens::TokenKind;

/// The log target of the access log.
pub const TARGET: &str = "twitcher::access";

/// What a handler learnt about a request: set as a response extension by the proxy,
/// read by the observing layer.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The registered service.
    pub service: Option<String>,
    /// The OWS operation (lower case; `other` for one outside the known set).
    pub operation: Option<&'static str>,
    /// The credential that let the request through.
    pub credential: Credential,
    /// The backend failed (the answer is twitcher's 502 or 504).
    pub upstream_error: Option<UpstreamError>,
}

/// How a request proved it may pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Credential {
    /// None was needed (public service or operation), or none was checked.
    #[default]
    None,
    /// A verified client certificate: with its user's subject DN when twitcher's HTTPS
    /// listener verified it, None when a front end's `X-Ssl-Client-Verify` vouched for it.
    Certificate(Option<String>),
    /// A token of this kind.
    Token(TokenKind),
}

impl Credential {
    /// `none`, `cert`, `token` (XML-RPC), `oauth` or `jwt`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Credential::None => "none",
            Credential::Certificate(_) => "cert",
            Credential::Token(kind) => kind.as_str(),
        }
    }

    /// The OAuth2 client of an OAuth token or a JWT.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Credential::Token(kind) => kind.client_id(),
            _ => None,
        }
    }

    /// The subject DN of a certificate twitcher verified itself (the user's, not a proxy's).
    pub fn subject(&self) -> Option<&str> {
        match self {
            Credential::Certificate(subject) => subject.as_deref(),
            _ => None,
        }
    }
}

/// Why a backend exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Connection refused, reset, or not possible.
    Unreachable,
    /// No answer within the read timeout.
    Timeout,
}

impl UpstreamError {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamError::Unreachable => "unreachable",
            UpstreamError::Timeout => "timeout",
        }
    }
}

/// The OWS operations whose names are logged and counted; others are `other`, so a
/// label never carries client text.
const OPERATIONS: [&str; 7] = [
    "getcapabilities",
    "describeprocess",
    "execute",
    "getmap",
    "getfeatureinfo",
    "getlegendgraphic",
    "getmetadata",
];

impl Served {
    /// What the gate admitted.
    pub fn admitted(admitted: &Admitted) -> Served {
        let operation = admitted.request.as_ref().map(|r| {
            OPERATIONS
                .iter()
                .find(|known| **known == r.request)
                .copied()
                .unwrap_or("other")
        });
        let credential = match (admitted.grant, &admitted.token) {
            (Grant::Certificate, _) => {
                Credential::Certificate(admitted.certificate.as_ref().map(|c| c.subject.clone()))
            }
            (Grant::Token(_), Some(kind)) => Credential::Token(kind.clone()),
            _ => Credential::None,
        };
        Served {
            service: Some(admitted.service.name.clone()),
            operation,
            credential,
            upstream_error: None,
        }
    }
}

/// One finished request.
#[derive(Debug)]
pub struct Record<'a> {
    /// Request method.
    pub method: &'a Method,
    /// The interface the path belongs to.
    pub endpoint: Endpoint,
    /// What the handler reported.
    pub served: Option<&'a Served>,
    /// Response status.
    pub status: StatusCode,
    /// Response body bytes sent (as far as the client took them).
    pub bytes: u64,
    /// From the request's arrival to the end of its response body.
    pub duration: Duration,
}

/// Writes the access log line of a finished request.
pub fn write(record: &Record<'_>) {
    let served = record.served;
    let credential = served.map_or(&Credential::None, |s| &s.credential);
    tracing::info!(
        target: TARGET,
        method = %record.method,
        route = record.endpoint.as_str(),
        service = served.and_then(|s| s.service.as_deref()).unwrap_or("-"),
        operation = served.and_then(|s| s.operation).unwrap_or("-"),
        status = record.status.as_u16(),
        bytes = record.bytes,
        duration_ms = record.duration.as_secs_f64() * 1000.0,
        credential = credential.as_str(),
        client_id = credential.client_id().unwrap_or("-"),
        subject = credential.subject().unwrap_or("-"),
        "request"
    );
}
