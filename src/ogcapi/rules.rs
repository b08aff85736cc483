//! The access rules of an `ogcapi` service: the operation a request is, read from its
//! method and the path after the service path, and whether it needs a credential.
//!
//! Only exact shapes are public; anything else (a trailing slash, an empty segment, a
//! segment in another case, a `;param`, an unknown resource) is an unknown operation and
//! protected: where our reading and the backend's could differ, the difference can only
//! cost the client a token, never open a protected resource.

use axum::http::{HeaderMap, Method};
use percent_encoding::percent_decode_str;

use crate::gate::path::ExtraPath;

/// Methods forwarded to an `ogcapi` service; others are refused with 405.
pub const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// Headers (and one query key) with which frameworks let a client pretend another method;
/// a backend honouring one would act on a method the gate did not decide on.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];
const METHOD_OVERRIDE_PARAM: &str = "_method";

/// What a request to an `ogcapi` service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET /`: the landing page.
    LandingPage,
    /// `GET /conformance`.
    Conformance,
    /// `GET /api` or `GET /openapi`: the API definition.
    ApiDocument,
    /// `GET /processes`.
    Processes,
    /// `GET /processes/{id}`: a process description.
    Process,
    /// `POST /processes/{id}/execution`.
    Execute,
    /// `GET /jobs` and everything below it (status, results).
    Jobs,
    /// `GET /collections`.
    Collections,
    /// `GET /collections/{id}`: a collection's metadata.
    Collection,
    /// `GET /collections/{id}/items` and `…/items/{featureId}`: the data.
    Items,
    /// Any other method on any path (creating, replacing, changing, deleting, dismissing
    /// a job, OPTIONS).
    Write,
    /// A read of a path none of the above is exactly.
    Unknown,
}

/// How much an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// A credential, unless the service is registered `public`.
    Protected,
    /// A credential, even on a public service.
    Write,
}

/// Why a request to an `ogcapi` service is refused before any rule is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A method-override header or `_method` parameter.
    #[error("method override")]
    MethodOverride,
}

impl Operation {
    /// Reads the operation from the method and the (checked) path after the service path.
    pub fn of(method: &Method, path: &ExtraPath) -> Operation {
        let raw = path.as_str();
        // `ExtraPath` keeps a leading `/`; `/a/b/` splits into `a`, `b`, `` (unknown).
        let segments: Vec<String> = match raw.strip_prefix('/') {
            None => Vec::new(),
            Some(rest) => rest
                .split('/')
                .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
                .collect(),
        };
        if segments.iter().any(|s| s.is_empty() || s.contains(';')) {
            return if is_read(method) {
                Operation::Unknown
            } else {
                Operation::Write
            };
        }
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        if *method == Method::POST {
            return match s.as_slice() {
                ["processes", _, "execution"] => Operation::Execute,
                _ => Operation::Write,
            };
        }
        if !is_read(method) {
            return Operation::Write;
        }
        match s.as_slice() {
            [] => Operation::LandingPage,
            ["conformance"] => Operation::Conformance,
            ["api" | "openapi"] => Operation::ApiDocument,
            ["processes"] => Operation::Processes,
            ["processes", _] => Operation::Process,
            ["jobs", ..] => Operation::Jobs,
            ["collections"] => Operation::Collections,
            ["collections", _] => Operation::Collection,
            ["collections", _, "items"] | ["collections", _, "items", _] => Operation::Items,
            _ => Operation::Unknown,
        }
    }

    /// What the operation needs, on a service registered `public` or not.
    pub fn access(self, service_public: bool) -> Access {
        use Operation::*;
        match self {
            LandingPage | Conformance | ApiDocument | Processes | Process | Collections
            | Collection => Access::Public,
            // A public service runs processes for anyone, as a public WPS does.
            Execute | Jobs | Items | Unknown if service_public => Access::Public,
            Execute | Jobs | Items | Unknown => Access::Protected,
            Write => Access::Write,
        }
    }
}

fn is_read(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}

/// Refuses a request that names a method other than its own.
pub fn check_method_override(headers: &HeaderMap, query: &str) -> Result<(), RuleError> {
    let header = METHOD_OVERRIDES.iter().any(|h| headers.contains_key(*h));
    let param = url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, _)| k.eq_ignore_ascii_case(METHOD_OVERRIDE_PARAM));
    if header || param {
        Err(RuleError::MethodOverride)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
