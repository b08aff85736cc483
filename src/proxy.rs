//! The OWS proxy: `{protected_path}/proxy/{name}[/{extra}]`. One request goes through
//! named phases, each a function of its own: the [`gate`](crate::gate) admits it (or
//! refuses it with a report), the upstream request is built from what the gate admitted,
//! sent, and its response filtered. Bodies stream in both directions; only the first
//! bytes of an XML POST are held (to read its root element) and at most
//! [`response::ERROR_BODY_PEEK`] bytes of a backend error.

mod api;
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
use crate::ogcapi::problem::Problem;
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
                Refusal::Ows(OwsError::BackendUnreachable)
                | Refusal::Api(Problem::BackendUnreachable) => Some(UpstreamError::Unreachable),
                Refusal::Ows(OwsError::BackendTimeout) | Refusal::Api(Problem::BackendTimeout) => {
                    Some(UpstreamError::Timeout)
                }
                _ => None,
            };
            err.into_response()
        }
    };
    response.extensions_mut().insert(served);
    response
}

/// A refusal in the language of the endpoint: OWS exception reports, or problem documents
/// for `ogcapi` services.
#[derive(Debug)]
enum Refusal {
    /// An OWS exception report.
    Ows(OwsError),
    /// An RFC 7807 problem document.
    Api(Problem),
}

impl From<OwsError> for Refusal {
    fn from(err: OwsError) -> Refusal {
        Refusal::Ows(err)
    }
}

impl From<Problem> for Refusal {
    fn from(problem: Problem) -> Refusal {
        Refusal::Api(problem)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Ows(err) => err.into_response(),
            Refusal::Api(problem) => problem.into_response(),
        }
    }
}

async fn proxy(
    app: &App,
    request: Request,
    served: &mut Option<Served>,
) -> Result<Response, Refusal> {
    let (parts, body) = request.into_parts();
    let (kind, decision) = gate(app)
        .decide(Route::Proxy, incoming(&parts), body_stream(body))
        .await;
    let admitted = match decision {
        Ok(admitted) => admitted,
        Err(denied) if kind == Some(ServiceKind::OgcApi) => {
            return Err(Problem::from(denied).into());
        }
        Err(denied) => return Err(OwsError::from(denied).into()),
    };
    *served = Some(Served::admitted(&admitted));
    let rewrite = match admitted.service.kind() {
        ServiceKind::Wps => true,
        ServiceKind::Wms => app.config.rewrite_wms,
        // No original to stay compatible with: links always lead back through the proxy.
        ServiceKind::Wfs | ServiceKind::Wcs | ServiceKind::Wmts | ServiceKind::OgcApi => true,
        ServiceKind::Other => false,
    };
    let service = admitted.service.clone();
    let over_tls = parts.extensions.get::<crate::tls::OverTls>().is_some();
    let public_url = response::public_url(
        app,
        &service,
        &parts.headers,
        incoming(&parts).peer,
        over_tls,
    );
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
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(e) if service.kind() == ServiceKind::OgcApi => {
            return Err(match upstream::upstream_error(e) {
                OwsError::BackendTimeout => Problem::BackendTimeout,
                _ => Problem::BackendUnreachable,
            }
            .into());
        }
        Err(e) => return Err(upstream::upstream_error(e).into()),
    };
    let policy = caps_cache::Policy::of(answer.headers());
    if let Some((cache, key)) = &cache
        && answer.status() == StatusCode::NOT_MODIFIED
        && let Some(kept) = cache.renew(key, &policy)
    {
        return Ok(kept);
    }
    let response = match service.kind() {
        ServiceKind::Wps => response::wps_response(&service, answer, public_url).await?,
        ServiceKind::Wms | ServiceKind::Wfs | ServiceKind::Wcs | ServiceKind::Wmts if rewrite => {
            response::rewritten_passthrough(&service, answer, public_url).await?
        }
        ServiceKind::OgcApi => {
            let limit = app.config.max_json_rewrite;
            api::api_response(&service, answer, &public_url, limit).await?
        }
        ServiceKind::Wms
        | ServiceKind::Wfs
        | ServiceKind::Wcs
        | ServiceKind::Wmts
        | ServiceKind::Other => response::passthrough_response(answer),
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
        // Path and query: an extra path (RESTful WMTS capabilities) is another document.
        let target = &admitted.upstream[url::Position::BeforePath..];
        (cache, Key::new(&admitted.service, public_url, target))
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
