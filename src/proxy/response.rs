//! Phase 6 of the proxy: what the client gets back. WPS-type services get the original's
//! filtering (status mapping, content-type allow-list, URL rewriting while streaming);
//! WMS services the backend's answer with their XML rewritten (so every URL in their
//! capabilities leads back through the proxy); others the backend's answer unchanged;
//! all minus hop-by-hop headers.

use std::io;
use std::net::IpAddr;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::upstream;
use crate::app::App;
use crate::error::OwsError;
use crate::ows::capabilities::{self, ByteStream, Rewrite, RewriteError};
use crate::security::Peer;
use crate::store::{Service, ServiceKind};

/// Bytes of a backend error response searched for an `ExceptionReport`.
pub const ERROR_BODY_PEEK: usize = 1024 * 1024;
/// Bytes read from a backend XML response before its root element must have appeared.
const MAX_PROLOG: usize = 1024 * 1024;

/// Content types a WPS-type service may answer with (compared on the part before `;`).
const ALLOWED_CONTENT_TYPES: &[&str] = &[
    "application/xml",
    "text/xml",
    "application/vnd.ogc.se_xml",
    "application/vnd.ogc.se+xml",
    "application/vnd.ogc.wms_xml",
    "application/vnd.google-earth.kml+xml",
    "application/vnd.google-earth.kmz",
    "image/png",
    "image/gif",
    "image/jpeg",
    "application/json",
];

/// Characters escaped in a service name put into a URL path (RFC 3986 unreserved stay).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URL clients should use for this service: its `purl`, else the proxy URL as the
/// client addressed it (`https` when it came over twitcher's own HTTPS listener, or a
/// trusted proxy says so).
pub(super) fn public_url(
    app: &App,
    service: &Service,
    headers: &HeaderMap,
    peer_addr: Option<IpAddr>,
    over_tls: bool,
) -> String {
    let peer = Peer {
        addr: peer_addr,
        trusted: app.config.trusted_proxies.as_deref(),
    };
    if service.purl.contains("://") {
        return service.purl.clone();
    }
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let scheme = match forwarded {
        Some(p @ ("http" | "https")) if peer.may_forward_scheme() => p,
        _ if over_tls => "https",
        _ => "http",
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| app.config.url.authority());
    let name = percent_encoding::utf8_percent_encode(&service.name, PATH_SEGMENT);
    format!(
        "{scheme}://{host}{}/proxy/{name}",
        app.config.protected_path
    )
}

fn body_stream(response: reqwest::Response) -> ByteStream {
    Box::pin(response.bytes_stream().map_err(io::Error::other))
}

/// Phase 6 for WPS-type services: status mapping, content-type filter, URL rewriting.
/// Only `Content-Type` (and `Location` of redirects) is passed on, like the original.
pub(super) async fn wps_response(
    service: &Service,
    response: reqwest::Response,
    public_url: String,
) -> Result<Response, OwsError> {
    let status = response.status();
    let reason = reason_phrase(&response);
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let location = response.headers().get(header::LOCATION).cloned();
    let length = response.headers().get(header::CONTENT_LENGTH).cloned();
    let mut body = body_stream(response);

    if status.is_redirection() {
        let mut out = Response::new(Body::from_stream(body));
        *out.status_mut() = status;
        out.headers_mut()
            .extend(content_type.map(|v| (header::CONTENT_TYPE, v)));
        out.headers_mut()
            .extend(location.map(|v| (header::LOCATION, v)));
        return Ok(out);
    }
    let mut untouched_length = length;
    if status.as_u16() >= 400 {
        let (peeked, rest) = peek(body, ERROR_BODY_PEEK)
            .await
            .map_err(|e| body_error("reading the backend error response failed", &e))?;
        if memchr::memmem::find(&peeked, b"ExceptionReport").is_none() {
            return Err(OwsError::ResponseNotOk(reason));
        }
        body = Box::pin(stream::once(async move { Ok(Bytes::from(peeked)) }).chain(rest));
    }
    if let Some(ct) = &content_type {
        let essence = essence(ct);
        if !ALLOWED_CONTENT_TYPES.contains(&essence.as_str()) {
            return Err(OwsError::ContentTypeNotAllowed(
                String::from_utf8_lossy(ct.as_bytes()).into_owned(),
            ));
        }
        if is_xml(&essence) {
            body = rewrite(service, body, public_url).await?;
            untouched_length = None;
        }
    }
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    out.headers_mut()
        .extend(content_type.map(|v| (header::CONTENT_TYPE, v)));
    out.headers_mut()
        .extend(untouched_length.map(|v| (header::CONTENT_LENGTH, v)));
    Ok(out)
}

/// The body with backend URLs replaced by the public URL, as it streams.
async fn rewrite(
    service: &Service,
    body: ByteStream,
    public_url: String,
) -> Result<ByteStream, OwsError> {
    let rewrite = Rewrite {
        service_url: service.url.clone(),
        public_url,
        max_prolog: MAX_PROLOG,
        ogc_services: matches!(
            service.kind(),
            ServiceKind::Wfs | ServiceKind::Wcs | ServiceKind::Wmts
        ),
    };
    match capabilities::rewrite_xml(body, rewrite).await {
        Ok((_, rewritten)) => Ok(rewritten),
        Err(RewriteError::NotXml) => Err(OwsError::CouldNotDecode),
        Err(RewriteError::Upstream(e)) => {
            Err(body_error("reading the backend response failed", &e))
        }
    }
}

/// Maps a backend body that failed before anything was sent to the client, like
/// [`upstream::upstream_error`] maps a failed exchange: too slow → 504, else 502.
fn body_error(context: &str, e: &io::Error) -> OwsError {
    tracing::warn!(error = %e, "{context}");
    let timed_out = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
        .is_some_and(reqwest::Error::is_timeout);
    if timed_out {
        OwsError::BackendTimeout
    } else {
        OwsError::BackendUnreachable
    }
}

/// Phase 6 for WMS services: the backend's status and headers (minus hop-by-hop), with
/// XML bodies rewritten so that their URLs lead back through the proxy.
pub(super) async fn rewritten_passthrough(
    service: &Service,
    response: reqwest::Response,
    public_url: String,
) -> Result<Response, OwsError> {
    let xml = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| is_xml(&essence(ct)));
    if !xml {
        return Ok(passthrough_response(response));
    }
    if response
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        // Asked for identity; compressed XML cannot be rewritten and must not leak.
        return Err(OwsError::CouldNotDecode);
    }
    let status = response.status();
    let headers = passthrough_headers(response.headers());
    let body = rewrite(service, body_stream(response), public_url).await?;
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out.headers_mut().remove(header::CONTENT_LENGTH);
    Ok(out)
}

/// The backend's own reason phrase when it sent a non-standard one (Werkzeug's upper-case
/// `INTERNAL SERVER ERROR`), else the standard phrase.
fn reason_phrase(response: &reqwest::Response) -> String {
    response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| response.status().canonical_reason().map(str::to_string))
        .unwrap_or_else(|| response.status().as_str().to_string())
}

/// Reads up to `limit` bytes, returning them and the unread rest of the stream.
pub(super) async fn peek(mut body: ByteStream, limit: usize) -> io::Result<(Vec<u8>, ByteStream)> {
    let mut peeked = Vec::new();
    while peeked.len() < limit {
        match body.next().await {
            Some(chunk) => peeked.extend_from_slice(&chunk?),
            None => break,
        }
    }
    Ok((peeked, body))
}

/// The media type without parameters, lower-cased (`Text/XML; charset=x` → `text/xml`).
pub(super) fn essence(content_type: &HeaderValue) -> String {
    let s = String::from_utf8_lossy(content_type.as_bytes());
    s.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_xml(essence: &str) -> bool {
    essence == "text/xml"
        || essence == "application/xml"
        || essence.ends_with("+xml")
        || essence.ends_with("_xml")
}

/// Phase 6 for other services: status, headers (minus hop-by-hop) and body unchanged.
pub(super) fn passthrough_response(response: reqwest::Response) -> Response {
    let status = response.status();
    let headers = passthrough_headers(response.headers());
    let mut out = Response::new(Body::from_stream(body_stream(response)));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

/// A backend's response headers minus hop-by-hop ones.
pub(super) fn passthrough_headers(from: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(from.len());
    for (name, value) in from {
        if !upstream::is_hop_by_hop(name, from) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_essence_and_xml_kinds() {
        let ct = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(essence(&ct("Text/XML ; charset=utf-8")), "text/xml");
        assert_eq!(essence(&ct("image/png;mode=32bit")), "image/png");
        assert!(is_xml("application/vnd.ogc.wms_xml") && is_xml("application/vnd.ogc.se+xml"));
        assert!(!is_xml("application/json") && !is_xml("image/png"));
    }
}
