//! The answers of the layers themselves (no handler ran), each in the endpoint's
//! language. 413 and 503 come from each protocol's error type; 429 (too many failed
//! logins) has no handler counterpart and is written here.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::endpoint::Language;
use crate::error::{OwsError, Unavailable};
use crate::json::{JsonError, PyJson, to_python_json};
use crate::oauth::OAuthError;
use crate::ows::exception::{self, ExceptionCode};
use crate::rpc::RpcFault;

/// Why a layer answered instead of a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The body is larger than `twitcher.max_body_size` (413).
    BodyTooLarge,
    /// The server is at `twitcher.max_concurrent_requests` (503).
    Overloaded,
    /// The request took longer than `twitcher.request_timeout` (503).
    TimedOut,
    /// Too many failed logins from the client's address; retry after this long (429).
    TooManyFailures(Duration),
    /// A layer failed unexpectedly (500; logged where it happened).
    Internal,
}

/// Text of the 429 answer.
const TOO_MANY: &str =
    "Too many failed authentication attempts from this address. Try again later.";

impl Refusal {
    /// The answer in `language`.
    pub fn response(self, language: Language) -> Response {
        if let Refusal::TooManyFailures(wait) = self {
            return too_many_failures(language, wait);
        }
        let busy = Unavailable::Overloaded;
        match (language, self) {
            (Language::Ows, Refusal::BodyTooLarge) => OwsError::BodyTooLarge.into_response(),
            (Language::Ows, Refusal::Overloaded | Refusal::TimedOut) => {
                OwsError::Unavailable(busy).into_response()
            }
            (Language::Ows, _) => OwsError::Internal.into_response(),
            (Language::XmlRpc, Refusal::BodyTooLarge) => RpcFault::TooLarge.into_response(),
            (Language::XmlRpc, Refusal::Overloaded | Refusal::TimedOut) => {
                RpcFault::unavailable(busy).into_response()
            }
            (Language::XmlRpc, _) => RpcFault::Internal.into_response(),
            (Language::OAuth, Refusal::BodyTooLarge) => {
                OAuthError::payload_too_large().into_response()
            }
            (Language::OAuth, Refusal::Overloaded | Refusal::TimedOut) => {
                OAuthError::temporarily_unavailable(busy).into_response()
            }
            (Language::OAuth, _) => OAuthError::Internal.into_response(),
            (Language::Json, Refusal::BodyTooLarge) => {
                JsonError::payload_too_large().into_response()
            }
            (Language::Json, Refusal::Overloaded | Refusal::TimedOut) => {
                JsonError::unavailable(busy).into_response()
            }
            (Language::Json, _) => JsonError::Internal.into_response(),
        }
    }
}

/// 429 with `Retry-After`, in the shape of the endpoint's other errors.
fn too_many_failures(language: Language, wait: Duration) -> Response {
    let status = StatusCode::TOO_MANY_REQUESTS;
    let (content_type, body) = match language {
        Language::Ows => (
            exception::CONTENT_TYPE,
            exception::render(
                ExceptionCode::NoApplicableCode,
                "NoApplicableCode",
                TOO_MANY,
            ),
        ),
        Language::XmlRpc => (
            "text/xml; charset=UTF-8",
            crate::rpc::xml::fault_response(-32500, TOO_MANY),
        ),
        Language::OAuth => (
            "application/json",
            to_python_json(&json!({"error": "slow_down", "error_description": TOO_MANY})),
        ),
        Language::Json => {
            let mut response = PyJson(
                status,
                json!({"message": TOO_MANY, "code": "429 Too Many Requests", "title": "Too Many Requests"}),
            )
            .into_response();
            retry_after(&mut response, wait);
            return response;
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if language == Language::OAuth {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    retry_after(&mut response, wait);
    response
}

fn retry_after(response: &mut Response, wait: Duration) {
    let seconds = wait.as_secs().max(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layer refusal in every language, with status and headers.
    #[tokio::test]
    async fn every_refusal() {
        let mut out = String::new();
        for language in [
            Language::Ows,
            Language::XmlRpc,
            Language::OAuth,
            Language::Json,
        ] {
            for refusal in [
                Refusal::BodyTooLarge,
                Refusal::Overloaded,
                Refusal::TimedOut,
                Refusal::TooManyFailures(Duration::from_secs(42)),
                Refusal::Internal,
            ] {
                out.push_str(&format!("# {language:?} {refusal:?}\n"));
                out.push_str(&crate::error::tests::render(refusal.response(language)).await);
            }
        }
        insta::assert_snapshot!(out);
    }
}
