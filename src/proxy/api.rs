//! Phase 6 of the proxy for `ogcapi` services: the backend's status, headers and body,
//! with every link to the backend turned into a link through the proxy
//! ([`Links`]): `Location`, `Content-Location` and `Link` headers, and the string values
//! of JSON bodies up to `twitcher.ows_proxy_max_json_rewrite` bytes. Larger JSON bodies
//! and other text formats (HTML pages, XML) stream with the service URL replaced
//! byte-wise; binary media types pass unchanged.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::response::{essence, passthrough_headers, peek};
use crate::ogcapi::links::Links;
use crate::ogcapi::problem::Problem;
use crate::ows::capabilities::{ByteStream, Rewrite, replace_urls};
use crate::store::Service;

/// The answer of an `ogcapi` backend, its links leading back through the proxy.
pub(super) async fn api_response(
    service: &Service,
    response: reqwest::Response,
    public_url: &str,
    limit: usize,
) -> Result<Response, Problem> {
    let links = Links::new(&service.url, public_url);
    let status = response.status();
    let mut headers = passthrough_headers(response.headers());
    rewrite_headers(&links, &mut headers);
    let json = headers.get(header::CONTENT_TYPE).is_some_and(|ct| {
        let essence = essence(ct);
        essence == "application/json" || essence.ends_with("+json")
    });
    let body: ByteStream = Box::pin(response.bytes_stream().map_err(std::io::Error::other));
    let replaced = |body: ByteStream, headers: &mut HeaderMap| {
        // The length changes with the URLs.
        headers.remove(header::CONTENT_LENGTH);
        let rewrite = Rewrite {
            service_url: service.url.trim_end_matches('/').to_string(),
            public_url: public_url.trim_end_matches('/').to_string(),
            max_prolog: 0,
            ogc_services: false,
        };
        Response::new(Body::from_stream(replace_urls(body, &rewrite)))
    };
    let compressed = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let mut out = if !json {
        if is_text(&headers) && !compressed {
            replaced(body, &mut headers)
        } else {
            Response::new(Body::from_stream(body))
        }
    } else {
        if compressed {
            // Asked for identity; compressed JSON cannot be rewritten and must not leak.
            tracing::warn!(service = %service.name, "ogcapi backend compressed a JSON answer");
            return Err(Problem::BadResponse);
        }
        let (head, rest) = peek(body, limit.saturating_add(1)).await.map_err(|e| {
            tracing::warn!(error = %e, "reading the backend response failed");
            Problem::BackendUnreachable
        })?;
        if head.len() > limit {
            tracing::debug!(
                service = %service.name,
                limit,
                "JSON answer larger than twitcher.ows_proxy_max_json_rewrite: URLs replaced as text"
            );
            let head = stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) });
            replaced(Box::pin(head.chain(rest)), &mut headers)
        } else {
            match links.rewrite_json(&head) {
                Some(rewritten) => {
                    headers.insert(header::CONTENT_LENGTH, rewritten.len().into());
                    Response::new(Body::from(rewritten))
                }
                None => Response::new(Body::from(head)),
            }
        }
    };
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// Whether the body is text whose backend URLs a client could follow (HTML pages, XML,
/// plain text); binary formats are never touched.
fn is_text(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|ct| {
        let essence = essence(ct);
        essence.starts_with("text/") || essence == "application/xml" || essence.ends_with("+xml")
    })
}

/// `Location` and `Content-Location` below the service URL lead through the proxy, and so
/// do the targets of `Link` headers (RFC 8288).
fn rewrite_headers(links: &Links, headers: &mut HeaderMap) {
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        if let Some(new) = headers.get(&name).and_then(|v| links.rewrite_location(v)) {
            headers.insert(name, new);
        }
    }
    let old: Vec<HeaderValue> = headers.get_all(header::LINK).iter().cloned().collect();
    if old.is_empty() {
        return;
    }
    headers.remove(header::LINK);
    for value in old {
        let new = value
            .to_str()
            .ok()
            .and_then(|text| rewrite_link_header(links, text))
            .and_then(|text| HeaderValue::from_str(&text).ok())
            .unwrap_or(value);
        headers.append(header::LINK, new);
    }
}

/// A `Link` header value with each `<target>` below the service URL rewritten; `None`
/// when nothing changes.
fn rewrite_link_header(links: &Links, text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let target = &rest[open + 1..open + close];
        out.push_str(&rest[..=open]);
        match links.rewrite_url(target) {
            Some(new) => {
                out.push_str(&new);
                changed = true;
            }
            None => out.push_str(target),
        }
        out.push('>');
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_lead_through_the_proxy() {
        let links = Links::new("http://b:5000", "http://p/ows/proxy/api");
        assert_eq!(
            rewrite_link_header(
                &links,
                r#"<http://b:5000/jobs?offset=10>; rel="next", <http://example.org/x>; rel="license""#
            )
            .as_deref(),
            Some(
                r#"<http://p/ows/proxy/api/jobs?offset=10>; rel="next", <http://example.org/x>; rel="license""#
            )
        );
        assert_eq!(rewrite_link_header(&links, "<http://o/x>; rel=a"), None);
        assert_eq!(rewrite_link_header(&links, "<http://b:5000/x"), None);
    }
}
