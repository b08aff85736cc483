//! The body limit of the management routes: `twitcher.max_body_size` for XML-RPC calls,
//! [`FORM_LIMIT`] for the OAuth forms and registry JSON (a registration is a few hundred
//! bytes); the handlers read what this layer lets through. A declared
//! `Content-Length` over the limit is refused before the handler runs; a body that grows
//! past it while streaming fails the handler's read, and the layer answers the 413 itself,
//! whatever the handler made of the failed read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::refusal::Refusal;
use crate::endpoint::Endpoint;

/// Largest body of an OAuth form or a registry write.
pub const FORM_LIMIT: usize = 64 * 1024;

/// The limit and what the layer needs to answer in the endpoint's language.
#[derive(Clone)]
pub(super) struct Limit {
    /// `twitcher.max_body_size`.
    pub bytes: usize,
    /// `twitcher.ows_proxy_protected_path`.
    pub protected: Arc<str>,
}

/// The layer's function.
pub(super) async fn limit(State(limit): State<Limit>, request: Request, next: Next) -> Response {
    let endpoint = Endpoint::of(request.uri().path(), &limit.protected);
    let language = endpoint.language();
    let bytes = match endpoint {
        Endpoint::OAuth | Endpoint::OAuthClient | Endpoint::Registry => FORM_LIMIT.min(limit.bytes),
        _ => limit.bytes,
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > bytes as u64) {
        return Refusal::BodyTooLarge.response(language);
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let flag = exceeded.clone();
    let request = request.map(|body| {
        Body::new(Limited::new(body, bytes).map_err(move |e| {
            if e.is::<LengthLimitError>() {
                flag.store(true, Ordering::Relaxed);
            }
            axum::Error::new(e)
        }))
    });
    let response = next.run(request).await;
    if exceeded.load(Ordering::Relaxed) {
        return Refusal::BodyTooLarge.response(language);
    }
    response
}
