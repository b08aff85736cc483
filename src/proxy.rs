//! The OWS proxy: `{protected_path}/proxy/{name}[/{extra}]`. One request goes through
//! named phases, each a function of its own: find the target service, parse the OWS
//! request, authorize, build the upstream request, send it, filter the response.
//! Bodies stream in both directions; only the first bytes of an XML POST are held (to
//! read its root element) and at most [`response::ERROR_BODY_PEEK`] bytes of a backend
//! error.

mod response;
mod upstream;

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};

use crate::app::App;
use crate::error::OwsError;
use crate::ows::request::{self, OwsRequest, RequestError, RootScan};
use crate::security::{self, Grant, Peer};
use crate::store::Service;

/// The handler behind every proxy route.
pub async fn handle(State(app): State<App>, request: Request) -> Response {
    match proxy(&app, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn proxy(app: &App, request: Request) -> Result<Response, OwsError> {
    let peer = peer_of(app, &request);
    let (parts, body) = request.into_parts();
    let (service, extra) = target(app, "proxy", parts.uri.path()).await?;
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(OwsError::MethodNotAllowed);
    }
    let query = parts.uri.query().unwrap_or("");
    let ows = read_ows_request(app, &parts.method, query, &parts.headers, body).await?;
    let credentials = security::credentials(
        query,
        &parts.headers,
        ows.form_token.as_deref(),
        &extra,
        peer,
    );
    let grant = match &ows.request {
        Some(r) => {
            let now = crate::clock::now();
            security::authorize(
                app.store.as_ref(),
                &app.tokens,
                &service,
                Some(r),
                &credentials,
                now,
            )
            .await?
        }
        None => Grant::Public,
    };

    let public_url = response::public_url(app, &service, &parts.headers, peer);
    let upstream = upstream::upstream_request(
        app,
        &service,
        &extra,
        &parts.method,
        query,
        &parts.headers,
        grant,
        ows.body,
    );
    let answer = upstream.send().await.map_err(upstream::upstream_error)?;
    if service.is_wps() {
        response::wps_response(&service, answer, public_url).await
    } else {
        Ok(response::passthrough_response(answer))
    }
}

/// The TCP peer and the configured trusted proxies.
pub(crate) fn peer_of<'a>(app: &'a App, request: &Request) -> Peer<'a> {
    Peer {
        addr: request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        trusted: app.config.trusted_proxies.as_deref(),
    }
}

/// Phase 1: the service named in the path after `{protected_path}/{route}/`, and the raw
/// extra path after it (`/a/b` or "").
pub(crate) async fn target(
    app: &App,
    route: &str,
    path: &str,
) -> Result<(Service, String), OwsError> {
    let prefix = format!("{}/{route}/", app.config.protected_path);
    let rest = path
        .strip_prefix(&prefix)
        .ok_or(OwsError::ServiceNotFound)?;
    let (raw_name, extra) = match rest.find('/') {
        Some(pos) => (&rest[..pos], &rest[pos..]),
        None => (rest, ""),
    };
    let name = percent_encoding::percent_decode_str(raw_name)
        .decode_utf8()
        .map_err(|_| OwsError::ServiceNotFound)?;
    if name.is_empty() {
        return Err(OwsError::ServiceNotFound);
    }
    if extra.split('/').any(is_dot_segment) {
        return Err(OwsError::InvalidPath);
    }
    let service = app
        .store
        .service_by_name(&name)
        .await
        .map_err(|e| OwsError::internal("service lookup failed", e))?
        .ok_or(OwsError::ServiceNotFound)?;
    Ok((service, extra.to_string()))
}

/// What phase 2 learned from the request, and the body to forward.
pub(crate) struct OwsBody {
    /// The OWS request (None when `twitcher.ows_security` is off).
    pub request: Option<OwsRequest>,
    /// The `access_token` field of a form-encoded body.
    pub form_token: Option<String>,
    /// The body for the backend (None for GET).
    pub body: Option<reqwest::Body>,
}

/// Phase 2: parse the OWS request. GET: the query. POST: the XML body, read only until its
/// root element start tag and then streamed on; or, for a form-encoded body that is not
/// XML, its key-value pairs (read whole, bounded by `twitcher.max_body_size`).
pub(crate) async fn read_ows_request(
    app: &App,
    method: &Method,
    query: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<OwsBody, OwsError> {
    let secure = app.config.ows_security;
    if *method != Method::POST {
        let request = if secure {
            Some(request::parse_kvp(query)?)
        } else {
            None
        };
        return Ok(OwsBody {
            request,
            form_token: None,
            body: None,
        });
    }
    if !secure {
        let body = Some(reqwest::Body::wrap_stream(body.into_data_stream()));
        return Ok(OwsBody {
            request: None,
            form_token: None,
            body,
        });
    }
    let limit = app.config.max_body_size;
    let mut stream = body.into_data_stream();
    let mut prefix = Vec::new();
    let mut complete = false;
    let read_failed = |e: axum::Error| {
        tracing::debug!(error = %e, "client request body failed");
        OwsError::Request(RequestError::Malformed(
            "The request body could not be read.".into(),
        ))
    };
    let form = crate::form::is_form_urlencoded(headers);
    let parsed = loop {
        if !complete {
            match stream.next().await {
                Some(chunk) => prefix.extend_from_slice(&chunk.map_err(read_failed)?),
                None => complete = true,
            }
        }
        // A form body is key-value pairs unless it is XML sent with the wrong content type
        // (seen from real clients, and the original treated such bodies as XML).
        let first = prefix.iter().find(|b| !b.is_ascii_whitespace());
        if form && (first.is_some_and(|b| *b != b'<') || (complete && first.is_none())) {
            while !complete {
                match stream.next().await {
                    Some(chunk) => prefix.extend_from_slice(&chunk.map_err(read_failed)?),
                    None => complete = true,
                }
                if prefix.len() > limit {
                    return Err(OwsError::BodyTooLarge);
                }
            }
            return form_request(app, &prefix);
        }
        match request::scan_xml_root(&prefix, complete) {
            RootScan::Found(result) => break result?,
            RootScan::NeedMore if prefix.len() > limit => return Err(OwsError::BodyTooLarge),
            RootScan::NeedMore => {}
        }
    };
    let head = stream::once(async move { Ok::<Bytes, axum::Error>(Bytes::from(prefix)) });
    let body = Some(reqwest::Body::wrap_stream(head.chain(stream)));
    Ok(OwsBody {
        request: Some(parsed),
        form_token: None,
        body,
    })
}

/// A whole form body: the OWS request from its pairs, its `access_token` field, and the
/// body to forward (without the token unless credentials are forwarded).
fn form_request(app: &App, body: &[u8]) -> Result<OwsBody, OwsError> {
    let text = String::from_utf8_lossy(body);
    let request = request::parse_kvp(&text)?;
    let form_token = url::form_urlencoded::parse(body)
        .filter(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
        .last()
        .filter(|v| !v.is_empty());
    let forwarded = if app.config.forward_credentials {
        text.into_owned()
    } else {
        upstream::strip_token_params(&text)
    };
    Ok(OwsBody {
        request: Some(request),
        form_token,
        body: Some(reqwest::Body::from(forwarded)),
    })
}

/// `.` and `..` (also percent-encoded) would let the upstream URL leave the service's path.
fn is_dot_segment(segment: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
    decoded == "." || decoded == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_refused() {
        for s in ["..", ".", "%2e%2E", "%2E"] {
            assert!(is_dot_segment(s), "{s}");
        }
        for s in ["...", "a..", "", "x"] {
            assert!(!is_dot_segment(s), "{s}");
        }
    }
}
