//! The OWS proxy: `{protected_path}/proxy/{name}[/{extra}]`. One request goes through
//! named phases, each a function of its own: find the target service, parse the OWS
//! request, authorize, build the upstream request, send it, filter the response.
//! Bodies stream in both directions; only the first bytes of an XML POST are held (to
//! read its root element) and at most [`ERROR_BODY_PEEK`] bytes of a backend error.

use std::io;
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::app::App;
use crate::error::OwsError;
use crate::ows::capabilities::{self, ByteStream, Rewrite, RewriteError};
use crate::ows::request::{self, OwsRequest, RootScan};
use crate::security::{self, Grant, Peer, TokenSource};
use crate::store::Service;

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

/// Hop-by-hop headers, never forwarded in either direction (RFC 9110 §7.6.1 plus the
/// original's list).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "public",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// The handler behind every proxy route.
pub async fn handle(State(app): State<App>, request: Request) -> Response {
    match proxy(&app, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn proxy(app: &App, request: Request) -> Result<Response, OwsError> {
    let peer_addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = request.into_parts();
    let (service, extra) = target(app, parts.uri.path()).await?;
    if parts.method != Method::GET && parts.method != Method::POST {
        return Err(OwsError::MethodNotAllowed);
    }
    let query = parts.uri.query().unwrap_or("");
    let peer = Peer {
        addr: peer_addr,
        trusted: app.config.trusted_proxies.as_deref(),
    };
    let credentials = security::credentials(query, &parts.headers, &extra, peer);

    let (ows_request, body) = read_ows_request(app, &parts.method, query, body).await?;
    let grant = match &ows_request {
        Some(r) => {
            security::authorize(app.store.as_ref(), &service, r, &credentials, now()).await?
        }
        None => Grant::Public,
    };

    let public_url = public_url(app, &service, &parts.headers, peer);
    let upstream = upstream_request(
        app,
        &service,
        &extra,
        &parts.method,
        query,
        &parts.headers,
        grant,
        body,
    );
    let response = upstream.send().await.map_err(upstream_error)?;
    if service.is_wps() {
        wps_response(&service, response, public_url).await
    } else {
        Ok(passthrough_response(response))
    }
}

/// Phase 1: the service named in the path, and the raw extra path after it (`/a/b` or "").
async fn target(app: &App, path: &str) -> Result<(Service, String), OwsError> {
    let proxy_prefix = format!("{}/proxy/", app.config.protected_path);
    let rest = path
        .strip_prefix(&proxy_prefix)
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

/// `.` and `..` (also percent-encoded) would let the upstream URL leave the service's path.
fn is_dot_segment(segment: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
    decoded == "." || decoded == ".."
}

/// Phase 2: the OWS request (None when `twitcher.ows_security` is off), and the body to
/// forward. A POST body is read until its root element start tag, then streamed on.
async fn read_ows_request(
    app: &App,
    method: &Method,
    query: &str,
    body: Body,
) -> Result<(Option<OwsRequest>, Option<reqwest::Body>), OwsError> {
    let secure = app.config.ows_security;
    if *method == Method::GET {
        let parsed = if secure {
            Some(request::parse_kvp(query)?)
        } else {
            None
        };
        return Ok((parsed, None));
    }
    if !secure {
        return Ok((
            None,
            Some(reqwest::Body::wrap_stream(body.into_data_stream())),
        ));
    }
    let limit = app.config.max_body_size;
    let mut stream = body.into_data_stream();
    let mut prefix = Vec::new();
    let mut complete = false;
    let parsed = loop {
        if !complete {
            match stream.next().await {
                Some(Ok(chunk)) => prefix.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "client request body failed");
                    return Err(OwsError::Request(request::RequestError::Malformed(
                        "The request body could not be read.".into(),
                    )));
                }
                None => complete = true,
            }
        }
        match request::scan_xml_root(&prefix, complete) {
            RootScan::Found(result) => break result?,
            RootScan::NeedMore if prefix.len() > limit => return Err(OwsError::BodyTooLarge),
            RootScan::NeedMore => {}
        }
    };
    let head = stream::once(async move { Ok::<Bytes, axum::Error>(Bytes::from(prefix)) });
    Ok((
        Some(parsed),
        Some(reqwest::Body::wrap_stream(head.chain(stream))),
    ))
}

/// Phase 4: the request to the backend: same method, extra path, query and headers, minus
/// `Host`, hop-by-hop headers and (unless configured otherwise) twitcher's credentials.
#[allow(clippy::too_many_arguments)]
fn upstream_request(
    app: &App,
    service: &Service,
    extra: &str,
    method: &Method,
    query: &str,
    headers: &HeaderMap,
    grant: Grant,
    body: Option<reqwest::Body>,
) -> reqwest::RequestBuilder {
    let forward_credentials = app.config.forward_credentials;
    let mut path_extra = extra;
    if !forward_credentials && grant == Grant::Token(TokenSource::LastPathElement) {
        // The last element was the token: it addressed twitcher, not the backend.
        path_extra = &extra[..extra.rfind('/').unwrap_or(0)];
    }
    let mut url = service.url.clone();
    if !path_extra.is_empty() {
        url.truncate(url.trim_end_matches('/').len());
        url.push_str(path_extra);
    }
    let query = if forward_credentials {
        query.to_string()
    } else {
        strip_token_params(query)
    };
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }

    let mut forwarded = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if skip_request_header(name, value, headers, forward_credentials) {
            continue;
        }
        forwarded.append(name.clone(), value.clone());
    }
    if service.is_wps() {
        // Capabilities are rewritten as they stream, so they must arrive uncompressed.
        forwarded.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    let verify = service.verify && app.config.ssl_verify;
    let mut builder = app
        .upstream
        .client(verify)
        .request(method.clone(), url)
        .headers(forwarded);
    if let Some(body) = body {
        if let Some(len) = headers.get(header::CONTENT_LENGTH) {
            // Keep the client's framing: some WSGI backends cannot read chunked bodies.
            builder = builder.header(header::CONTENT_LENGTH, len.clone());
        }
        builder = builder.body(body);
    }
    builder
}

fn skip_request_header(
    name: &HeaderName,
    value: &HeaderValue,
    all: &HeaderMap,
    forward_credentials: bool,
) -> bool {
    let n = name.as_str();
    if n == "host" || n == "content-length" || is_hop_by_hop(name, all) {
        return true;
    }
    if forward_credentials {
        return false;
    }
    n == security::ACCESS_TOKEN_HEADER
        || n.starts_with("x-ssl-")
        || (n == "authorization"
            && value
                .to_str()
                .is_ok_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ")))
}

fn is_hop_by_hop(name: &HeaderName, all: &HeaderMap) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
        || all
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|listed| listed.trim().eq_ignore_ascii_case(name.as_str()))
}

/// The query without `token`/`access_token` pairs; other pairs keep their exact bytes.
fn strip_token_params(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| {
            let key = pair.split('=').next().unwrap_or_default();
            let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
            !pair.is_empty()
                && !security::TOKEN_PARAMS
                    .iter()
                    .any(|t| key.eq_ignore_ascii_case(t))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The URL clients should use for this service: its `purl`, else the proxy URL as the
/// client addressed it.
fn public_url(app: &App, service: &Service, headers: &HeaderMap, peer: Peer<'_>) -> String {
    if service.purl.contains("://") {
        return service.purl.clone();
    }
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let scheme = match forwarded {
        Some(p @ ("http" | "https")) if peer.may_forward_scheme() => p,
        _ => "http",
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| app.config.url.authority());
    let name =
        percent_encoding::utf8_percent_encode(&service.name, percent_encoding::NON_ALPHANUMERIC);
    format!(
        "{scheme}://{host}{}/proxy/{name}",
        app.config.protected_path
    )
}

/// Maps a failed backend exchange: unreachable → 502, too slow → 504.
fn upstream_error(err: reqwest::Error) -> OwsError {
    // reqwest's Display stops at "error sending request"; the cause is in the sources.
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::warn!(error = %detail, "backend request failed");
    if err.is_timeout() {
        OwsError::BackendTimeout
    } else {
        OwsError::BackendUnreachable
    }
}

fn body_stream(response: reqwest::Response) -> ByteStream {
    Box::pin(response.bytes_stream().map_err(io::Error::other))
}

/// Phase 6 for WPS-type services: status mapping, content-type filter, URL rewriting.
/// Only `Content-Type` (and `Location` of redirects) is passed on, like the original.
async fn wps_response(
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
        let (peeked, rest) = peek(body, ERROR_BODY_PEEK).await.map_err(|e| {
            tracing::warn!(error = %e, "reading the backend error response failed");
            OwsError::BackendUnreachable
        })?;
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
            let rewrite = Rewrite {
                service_url: service.url.clone(),
                public_url,
                max_prolog: MAX_PROLOG,
            };
            body = match capabilities::rewrite_xml(body, rewrite).await {
                Ok((_, rewritten)) => rewritten,
                Err(RewriteError::NotXml) => return Err(OwsError::CouldNotDecode),
                Err(RewriteError::Upstream(e)) => {
                    tracing::warn!(error = %e, "reading the backend response failed");
                    return Err(OwsError::BackendUnreachable);
                }
            };
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
async fn peek(mut body: ByteStream, limit: usize) -> io::Result<(Vec<u8>, ByteStream)> {
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
fn essence(content_type: &HeaderValue) -> String {
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
fn passthrough_response(response: reqwest::Response) -> Response {
    let status = response.status();
    let mut headers = HeaderMap::with_capacity(response.headers().len());
    for (name, value) in response.headers() {
        if !is_hop_by_hop(name, response.headers()) {
            headers.append(name.clone(), value.clone());
        }
    }
    let mut out = Response::new(Body::from_stream(body_stream(response)));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_params_are_stripped_byte_exactly() {
        assert_eq!(
            strip_token_params("service=WPS&access_token=x&a=%20b&a=c"),
            "service=WPS&a=%20b&a=c"
        );
        assert_eq!(
            strip_token_params("token=1&TOKEN=2&access%5Ftoken=3&tokens=4"),
            "tokens=4"
        );
        assert_eq!(strip_token_params(""), "");
        assert_eq!(strip_token_params("a&&b="), "a&b=");
    }

    #[test]
    fn content_type_essence_and_xml_kinds() {
        let ct = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(essence(&ct("Text/XML ; charset=utf-8")), "text/xml");
        assert_eq!(essence(&ct("image/png;mode=32bit")), "image/png");
        assert!(is_xml("application/vnd.ogc.wms_xml") && is_xml("application/vnd.ogc.se+xml"));
        assert!(!is_xml("application/json") && !is_xml("image/png"));
    }

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
