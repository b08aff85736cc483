//! Phase 4 of the proxy: the request sent to the backend (URL, headers, body), and the
//! mapping of failed exchanges to OWS errors.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::app::App;
use crate::error::OwsError;
use crate::security::{self, Grant, TokenSource};
use crate::store::Service;

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

/// Phase 4: the request to the backend: same method, extra path, query and headers, minus
/// `Host`, hop-by-hop headers and (unless configured otherwise) twitcher's credentials.
#[allow(clippy::too_many_arguments)]
pub(super) fn upstream_request(
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
    let path_extra = if !forward_credentials && grant == Grant::Token(TokenSource::LastPathElement)
    {
        // The last element was the token: it addressed twitcher, not the backend.
        without_last_element(extra)
    } else {
        extra.to_string()
    };
    let mut url = service.url.clone();
    if !path_extra.is_empty() {
        url.truncate(url.trim_end_matches('/').len());
        url.push_str(&path_extra);
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
        if let (None, Some(len)) = (body.as_bytes(), headers.get(header::CONTENT_LENGTH)) {
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

pub(super) fn is_hop_by_hop(name: &HeaderName, all: &HeaderMap) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
        || all
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|listed| listed.trim().eq_ignore_ascii_case(name.as_str()))
}

/// The extra path minus its last non-empty element (`/a/tok` → `/a`, `/tok/` → `/`).
fn without_last_element(extra: &str) -> String {
    let trimmed = extra.trim_end_matches('/');
    let kept = &trimmed[..trimmed.rfind('/').unwrap_or(0)];
    if trimmed.len() < extra.len() {
        format!("{kept}/")
    } else {
        kept.to_string()
    }
}

/// The query without `token`/`access_token` pairs; other pairs keep their exact bytes.
pub(super) fn strip_token_params(query: &str) -> String {
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
    fn a_path_token_is_cut_from_the_upstream_path() {
        assert_eq!(without_last_element("/tok"), "");
        assert_eq!(without_last_element("/a/tok"), "/a");
        assert_eq!(without_last_element("/tok/"), "/");
        assert_eq!(without_last_element("/a/tok//"), "/a/");
    }
}
