//! The XML-RPC management interface of the 0.5 series at `/RPC2`: token and registry
//! methods for Python `xmlrpc.client` scripts and the old `twitcherctl`.
//!
//! Calls are parsed with `dxr` (no entity expansion; body size and nesting depth are
//! bounded here first). Responses are written by [`xml`] rather than by `dxr_server`,
//! because Python clients see struct members in document order and the original's order
//! (`url, name, type, …`) must be kept, and because every error must be a fault with the
//! codes of SPEC §6 (dxr_server answers unknown methods with code 404 and refuses bodies
//! without Content-Length).

mod methods;
pub mod xml;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use quick_xml::events::Event;

use crate::app::App;
use crate::basic_auth;
use crate::error::{Unavailable, store_failure};
use crate::registry::Viewer;
use crate::store::StoreError;

/// Deepest element nesting accepted in a call (a service struct inside an array needs 8).
const MAX_DEPTH: usize = 64;

/// An error answered with an XML-RPC fault: HTTP 200 for faults of a call, so
/// `xmlrpc.client` raises `Fault`; the HTTP status says it for requests that are no call.
#[derive(Debug, thiserror::Error)]
pub enum RpcFault {
    /// The body is not an XML-RPC call (-32700).
    #[error("parse error: {0}")]
    Parse(String),
    /// No such method (-32601).
    #[error("method not found: {0}")]
    MethodNotFound(String),
    /// Wrong number or type of arguments (-32602).
    #[error("{0}")]
    InvalidParams(String),
    /// The method refused the request (-32500), e.g. a too short service name.
    #[error("{0}")]
    Application(String),
    /// The management user's basic credentials are missing or wrong (-32500, HTTP 401
    /// with a challenge).
    #[error("authentication required")]
    Unauthorized,
    /// A method other than POST (-32700, HTTP 405 with `Allow: POST`).
    #[error("parse error: XML-RPC calls are sent with POST")]
    MethodNotAllowed,
    /// The body is larger than `twitcher.max_body_size` (-32700, HTTP 413).
    #[error("parse error: request body too large")]
    TooLarge,
    /// The database or the server cannot take the call now (-32400, "system error" of
    /// the XML-RPC fault code conventions: the call may succeed later).
    #[error("{}", match .0 {
        Unavailable::Storage => "temporarily unavailable: the database is locked or read-only, try again later",
        Unavailable::Overloaded => "temporarily unavailable: the server is busy, try again later",
    })]
    Unavailable(Unavailable),
    /// Something failed inside twitcher; the cause was logged (-32500).
    #[error("internal error")]
    Internal,
}

impl RpcFault {
    /// The fault code of SPEC §6.
    pub fn code(&self) -> i32 {
        match self {
            RpcFault::Parse(_) | RpcFault::MethodNotAllowed | RpcFault::TooLarge => -32700,
            RpcFault::MethodNotFound(_) => -32601,
            RpcFault::InvalidParams(_) => -32602,
            RpcFault::Unavailable(_) => -32400,
            RpcFault::Application(_) | RpcFault::Unauthorized | RpcFault::Internal => -32500,
        }
    }

    /// The HTTP status the fault is sent with.
    pub fn status(&self) -> StatusCode {
        match self {
            RpcFault::Unauthorized => StatusCode::UNAUTHORIZED,
            RpcFault::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RpcFault::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::OK,
        }
    }

    /// 503's fault for `why`.
    pub fn unavailable(why: Unavailable) -> RpcFault {
        RpcFault::Unavailable(why)
    }

    /// Logs an internal failure and returns the generic fault.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> RpcFault {
        tracing::error!(%err, "{context}");
        RpcFault::Internal
    }
}

impl From<StoreError> for RpcFault {
    fn from(e: StoreError) -> RpcFault {
        store_failure("store operation failed", &e)
            .map_or(RpcFault::Internal, RpcFault::Unavailable)
    }
}

impl IntoResponse for RpcFault {
    fn into_response(self) -> Response {
        let mut response = xml_response(
            self.status(),
            xml::fault_response(self.code(), &self.to_string()),
        );
        let headers = response.headers_mut();
        match self {
            RpcFault::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, basic_auth::challenge());
            }
            RpcFault::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            _ => {}
        }
        response
    }
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=UTF-8"),
    );
    response
}

/// The `/RPC2` handler.
pub async fn handle(State(app): State<App>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !basic_auth::management_allowed(&app.config, &parts.headers) {
        return RpcFault::Unauthorized.into_response();
    }
    if parts.method != Method::POST {
        return RpcFault::MethodNotAllowed.into_response();
    }
    // Bounded by the body limit layer (`middleware`), which also answers its 413.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(_) => return RpcFault::TooLarge.into_response(),
    };
    // With `twitcher.username` set, only the manager gets this far; without one, nobody
    // proved to be the manager and service URLs are shown without passwords.
    let viewer = if basic_auth::is_manager(&app.config, &parts.headers) {
        Viewer::Manager
    } else {
        Viewer::Anonymous
    };
    match call(&app, &body, viewer).await {
        Ok(value) => xml_response(StatusCode::OK, xml::method_response(&value)),
        Err(fault) => fault.into_response(),
    }
}

async fn call(app: &App, body: &[u8], viewer: Viewer) -> Result<xml::RpcValue, RpcFault> {
    let text =
        std::str::from_utf8(body).map_err(|_| RpcFault::Parse("the body is not UTF-8".into()))?;
    check_depth(text)?;
    let call = dxr::MethodCall::from_xml(text)
        .map_err(|_| RpcFault::Parse("not a well-formed XML-RPC methodCall".into()))?;
    methods::dispatch(app, &call.name, call.params, viewer).await
}

/// Refuses deeply nested documents before the recursive deserializer sees them.
fn check_depth(text: &str) -> Result<(), RpcFault> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut depth = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(RpcFault::Parse(format!(
                        "nesting deeper than {MAX_DEPTH} elements"
                    )));
                }
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::DocType(_)) => return Err(RpcFault::Parse("DOCTYPE is not allowed".into())),
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(_) => return Err(RpcFault::Parse("not well-formed XML".into())),
        }
    }
}
