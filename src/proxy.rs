//! The OWS proxy: `{protected_path}/proxy/{name}[/{extra}]`. One request goes through
//! named phases, each a function of its own: the [`gate`](crate::gate) admits it (or
//! refuses it with a report), the upstream request is built from what the gate admitted,
//! sent, and its response filtered. Bodies stream in both directions; only the first
//! bytes of an XML POST are held (to read its root element) and at most
//! [`response::ERROR_BODY_PEEK`] bytes of a backend error.

mod response;
mod upstream;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use crate::app::App;
use crate::error::OwsError;
use crate::gate::{Gate, Incoming, Route};
use crate::ows::capabilities::ByteStream;
use crate::store::ServiceKind;

/// The handler behind every proxy route.
pub async fn handle(State(app): State<App>, request: Request) -> Response {
    match proxy(&app, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn proxy(app: &App, request: Request) -> Result<Response, OwsError> {
    let (parts, body) = request.into_parts();
    let admitted = gate(app)
        .admit(Route::Proxy, incoming(&parts), body_stream(body))
        .await?;
    let rewrite = match admitted.service.kind() {
        ServiceKind::Wps => true,
        ServiceKind::Wms => app.config.rewrite_wms,
        ServiceKind::Other => false,
    };
    let service = admitted.service.clone();
    let public_url = response::public_url(app, &service, &parts.headers, incoming(&parts).peer);
    let upstream =
        upstream::upstream_request(app, admitted, &parts.method, &parts.headers, rewrite);
    let answer = upstream.send().await.map_err(upstream::upstream_error)?;
    match service.kind() {
        ServiceKind::Wps => response::wps_response(&service, answer, public_url).await,
        ServiceKind::Wms if rewrite => {
            response::rewritten_passthrough(&service, answer, public_url).await
        }
        ServiceKind::Wms | ServiceKind::Other => Ok(response::passthrough_response(answer)),
    }
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
    }
}

/// A client body as the gate reads it.
pub(crate) fn body_stream(body: axum::body::Body) -> ByteStream {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}
