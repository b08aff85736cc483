//! The OWS proxy: `{protected_path}/proxy/{name}[/{extra}]`. One request goes through
//! named phases, each a function of its own: the [`gate`](crate::gate) admits it (or
//! refuses it with a report), the upstream request is built from what the gate admitted,
//! sent, and its response filtered. Bodies stream in both directions; only the first
//! bytes of an XML POST are held (to read its root element) and at most
//! [`response::ERROR_BODY_PEEK`] bytes of a backend error.

pub mod caps_cache;
mod response;
mod upstream;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use crate::access_log::{Served, UpstreamError};
use crate::app::App;
use crate::error::OwsError;
use crate::gate::{Admitted, Gate, Incoming, Route};
use crate::ows::capabilities::ByteStream;
use crate::store::ServiceKind;
use crate::tls::ClientIdentity;
use caps_cache::{CapsCache, Key, Lookup};

/// The handler behind every proxy route. What the gate admitted goes with the response
/// to the access log and the metrics ([`Served`]); a refusal carries nothing (it is the
/// hot path of an attack).
pub async fn handle(State(app): State<App>, request: Request) -> Response {
    let mut served = None;
    let result = proxy(&app, request, &mut served).await;
    let Some(mut served) = served else {
        return result.unwrap_or_else(IntoResponse::into_response);
    };
    let mut response = match result {
        Ok(response) => response,
        Err(err) => {
            served.upstream_error = match err {
                OwsError::BackendUnreachable => Some(UpstreamError::Unreachable),
                OwsError::BackendTimeout => Some(UpstreamError::Timeout),
                _ => None,
            };
            err.into_response()
        }
    };
    response.extensions_mut().insert(served);
    response
}

async fn proxy(
    app: &App,
    request: Request,
    served: &mut Option<Served>,
) -> Result<Response, OwsError> {
    let (parts, body) = request.into_parts();
    let admitted = gate(app)
        .admit(Route::Proxy, incoming(&parts), body_stream(body))
        .await?;
    *served = Some(Served::admitted(&admitted));
    let rewrite = match admitted.service.kind() {
        ServiceKind::Wps => true,
        ServiceKind::Wms => app.config.rewrite_wms,
        ServiceKind::Other => false,
    };
    let service = admitted.service.clone();
    let public_url = response::public_url(app, &service, &parts.headers, incoming(&parts).peer);
    let cache = cache_key(app, &admitted, &parts.method, &public_url);
    let mut conditions = None;
    if let Some((cache, key)) = &cache {
        match cache.lookup(key) {
            Lookup::Fresh(response) => return Ok(response),
            Lookup::Revalidate { conditions: c } => conditions = Some(c),
            Lookup::Miss => {}
        }
    }
    let mut upstream =
        upstream::upstream_request(app, admitted, &parts.method, &parts.headers, rewrite);
    if let Some(conditions) = conditions {
        upstream = upstream.headers(conditions);
    }
    let answer = upstream.send().await.map_err(upstream::upstream_error)?;
    let policy = caps_cache::Policy::of(answer.headers());
    if let Some((cache, key)) = &cache
        && answer.status() == StatusCode::NOT_MODIFIED
        && let Some(kept) = cache.renew(key, &policy)
    {
        return Ok(kept);
    }
    let response = match service.kind() {
        ServiceKind::Wps => response::wps_response(&service, answer, public_url).await?,
        ServiceKind::Wms if rewrite => {
            response::rewritten_passthrough(&service, answer, public_url).await?
        }
        ServiceKind::Wms | ServiceKind::Other => response::passthrough_response(answer),
    };
    Ok(match cache {
        Some((cache, key)) => cache.keep(key, policy, response),
        None => response,
    })
}

/// The cache and key for a request whose answer may be kept: a GET GetCapabilities,
/// anonymous unless the service is public.
fn cache_key<'a>(
    app: &'a App,
    admitted: &Admitted,
    method: &Method,
    public_url: &str,
) -> Option<(&'a Arc<CapsCache>, Key)> {
    let cache = app.capabilities.as_ref()?;
    let is_caps = admitted
        .request
        .as_ref()
        .is_some_and(|r| r.request == "getcapabilities");
    let anyone = admitted.anonymous || admitted.service.is_public();
    (*method == Method::GET && is_caps && anyone).then(|| {
        let query = admitted.upstream.query().unwrap_or("");
        (cache, Key::new(&admitted.service, public_url, query))
    })
}

/// The gate over this app's store, tokens and settings.
pub(crate) fn gate(app: &App) -> Gate<'_> {
    Gate {
        store: app.store.as_ref(),
        tokens: &app.tokens,
        config: &app.config,
    }
}

/// The parts of a request the gate reads.
pub(crate) fn incoming(parts: &Parts) -> Incoming<'_> {
    Incoming {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        peer: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        certificate: parts.extensions.get::<ClientIdentity>(),
    }
}

/// A client body as the gate reads it.
pub(crate) fn body_stream(body: axum::body::Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}
