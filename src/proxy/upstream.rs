//! Phase 4 of the proxy: the request sent to the backend (URL, headers, body), and the
//! mapping of failed exchanges to OWS errors.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::app::App;
use crate::error::OwsError;
use crate::gate::{Admitted, ForwardBody};
use crate::security;

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

/// Phase 4: the request to the backend: the gate's upstream URL, same method, the
/// client's headers minus `Host`, `Expect`, hop-by-hop headers and (unless configured
/// otherwise) twitcher's credentials, and the body the gate passed on.
pub(super) fn upstream_request(
    app: &App,
    admitted: Admitted,
    method: &Method,
    headers: &HeaderMap,
    rewrite: bool,
) -> reqwest::RequestBuilder {
    let forward_credentials = app.config.forward_credentials;
    let client_dn = app.config.forward_client_dn.as_ref();
    let mut forwarded = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        // The client DN header is twitcher's to set, never the client's.
        if skip_request_header(name, headers, forward_credentials) || Some(name) == client_dn {
            continue;
        }
        forwarded.append(name.clone(), value.clone());
    }
    if let (Some(name), Some(certificate)) = (client_dn, &admitted.certificate)
        && let Ok(subject) = HeaderValue::from_str(&certificate.subject)
    {
        forwarded.insert(name.clone(), subject);
    }
    if rewrite {
        // Capabilities are rewritten as they stream, so they must arrive uncompressed.
        forwarded.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    let verify = admitted.service.verify && app.config.ssl_verify;
    let mut builder = app
        .upstream
        .client(verify)
        .request(method.clone(), admitted.upstream)
        .headers(forwarded);
    match admitted.body {
        ForwardBody::None => {}
        ForwardBody::Whole(bytes) => builder = builder.body(bytes),
        ForwardBody::Stream(stream) => {
            if let Some(len) = headers.get(header::CONTENT_LENGTH) {
                // Keep the client's framing: some WSGI backends cannot read chunked bodies.
                builder = builder.header(header::CONTENT_LENGTH, len.clone());
            }
            builder = builder.body(reqwest::Body::wrap_stream(stream));
        }
    }
    builder
}

fn skip_request_header(name: &HeaderName, all: &HeaderMap, forward_credentials: bool) -> bool {
    let n = name.as_str();
    // `Expect` asked twitcher, not the backend, for a 100 Continue.
    if n == "host" || n == "content-length" || n == "expect" || is_hop_by_hop(name, all) {
        return true;
    }
    !forward_credentials && security::is_credential_header(n)
}

pub(super) fn is_hop_by_hop(name: &HeaderName, all: &HeaderMap) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
        || all
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|listed| listed.trim().eq_ignore_ascii_case(name.as_str()))
}

/// Maps a failed backend exchange: unreachable → 502, too slow → 504.
pub(super) fn upstream_error(err: reqwest::Error) -> OwsError {
    // The URL's query may carry credentials (when they are forwarded): log scheme, host
    // and path only. reqwest's Display stops at "error sending request"; the cause is in
    // the sources.
    let backend = err
        .url()
        .map(|u| format!("{}://{}{}", u.scheme(), u.authority(), u.path()));
    let timeout = err.is_timeout();
    let err = err.without_url();
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::warn!(backend = backend.as_deref().unwrap_or("?"), error = %detail, "backend request failed");
    if timeout {
        OwsError::BackendTimeout
    } else {
        OwsError::BackendUnreachable
    }
}
