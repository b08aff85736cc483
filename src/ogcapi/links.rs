//! Links that lead back through the proxy: in the answers of an `ogcapi` service, every
//! URL below the backend's service URL becomes the same URL below the proxy's public URL
//! (rest of the path and query kept), so a client following links (next pages, process
//! descriptions, job status and results) never leaves the gate.
//!
//! JSON bodies up to a size limit are rewritten string by string: the document is checked
//! with serde_json, then each string *value* (keys stay) that starts with the service URL
//! is replaced by its rewritten form; every other byte passes unchanged. `Location` and
//! `Content-Location` headers are rewritten the same way, also when they are absolute
//! paths.

use axum::http::HeaderValue;
use serde::de::IgnoredAny;

/// The two URLs of one service.
#[derive(Debug, Clone)]
pub struct Links {
    /// The service URL without query, fragment and trailing `/`.
    service: String,
    /// Its path without trailing `/` (`""` for a service at the root).
    service_path: String,
    /// The URL clients use instead, without trailing `/`.
    public: String,
}

impl Links {
    /// Links from the registered service URL to the public (proxy) URL.
    pub fn new(service_url: &str, public_url: &str) -> Links {
        let base = service_url
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .trim_end_matches('/');
        let service_path = url::Url::parse(base)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        Links {
            service: base.to_string(),
            service_path,
            public: public_url.trim_end_matches('/').to_string(),
        }
    }

    /// The public form of an absolute URL below the service URL, `None` for any other.
    pub fn rewrite_url(&self, url: &str) -> Option<String> {
        below(url, &self.service).map(|rest| format!("{}{rest}", self.public))
    }

    /// The public form of a `Location`-like header: an absolute URL or an absolute path
    /// below the service URL; `None` when it points elsewhere.
    pub fn rewrite_location(&self, value: &HeaderValue) -> Option<HeaderValue> {
        let text = value.to_str().ok()?;
        let rewritten = match self.rewrite_url(text) {
            Some(url) => url,
            None if text.starts_with('/') && !text.starts_with("//") => {
                let rest = below(text, &self.service_path)?;
                format!("{}{rest}", self.public)
            }
            None => return None,
        };
        HeaderValue::from_str(&rewritten).ok()
    }

    /// The JSON document with every string value below the service URL rewritten; `None`
    /// when nothing changes or the body is not JSON (it then passes as it is).
    pub fn rewrite_json(&self, body: &[u8]) -> Option<Vec<u8>> {
        if memchr::memmem::find(body, b"\"").is_none()
            || serde_json::from_slice::<IgnoredAny>(body).is_err()
        {
            return None;
        }
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut i = 0;
        while let Some(offset) = memchr::memchr(b'"', &body[i..]) {
            let start = i + offset;
            let end = string_end(body, start);
            i = end;
            let is_key = body[end..]
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b':');
            if is_key {
                continue;
            }
            let Ok(value) = serde_json::from_slice::<String>(&body[start..end]) else {
                continue;
            };
            let Some(rewritten) = self.rewrite_url(&value) else {
                continue;
            };
            let out = out.get_or_insert_with(|| Vec::with_capacity(body.len() + 256));
            out.extend_from_slice(&body[copied..start]);
            // A `String` always serializes.
            out.extend_from_slice(&serde_json::to_vec(&rewritten).unwrap_or_default());
            copied = end;
        }
        let mut out = out?;
        out.extend_from_slice(&body[copied..]);
        Some(out)
    }
}

/// The rest of `url` after `base` when `url` is `base` itself or below it (the next
/// character ends the path, starts a segment, the query or the fragment).
fn below<'u>(url: &'u str, base: &str) -> Option<&'u str> {
    let rest = url.strip_prefix(base)?;
    matches!(rest.chars().next(), None | Some('/' | '?' | '#')).then_some(rest)
}

/// The index just after the closing quote of the JSON string opening at `start` (the
/// document has been checked, so the string is complete).
fn string_end(body: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < body.len() {
        match body[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links::new("http://backend:5000/", "http://proxy/ows/proxy/api")
    }

    #[test]
    fn urls_below_the_service_url() {
        let l = links();
        let cases = [
            ("http://backend:5000", Some("http://proxy/ows/proxy/api")),
            ("http://backend:5000/", Some("http://proxy/ows/proxy/api/")),
            (
                "http://backend:5000/processes?f=json",
                Some("http://proxy/ows/proxy/api/processes?f=json"),
            ),
            (
                "http://backend:5000#x",
                Some("http://proxy/ows/proxy/api#x"),
            ),
            ("http://backend:50000/x", None),
            ("https://backend:5000/x", None),
            ("http://example.org/licence", None),
            ("/processes", None),
        ];
        for (url, expected) in cases {
            assert_eq!(l.rewrite_url(url).as_deref(), expected, "{url}");
        }
    }

    #[test]
    fn locations_absolute_or_absolute_paths() {
        let l = Links::new("http://b/pygeoapi", "https://p/ows/proxy/api");
        let loc = |s: &'static str| {
            l.rewrite_location(&HeaderValue::from_static(s))
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            loc("http://b/pygeoapi/jobs/1").as_deref(),
            Some("https://p/ows/proxy/api/jobs/1")
        );
        assert_eq!(
            loc("/pygeoapi/jobs/1?f=json").as_deref(),
            Some("https://p/ows/proxy/api/jobs/1?f=json")
        );
        assert_eq!(loc("/pygeoapix/jobs/1"), None);
        assert_eq!(loc("//b/pygeoapi/jobs/1"), None);
        assert_eq!(loc("http://elsewhere/jobs/1"), None);
        let root = links();
        assert_eq!(
            root.rewrite_location(&HeaderValue::from_static("/jobs/1"))
                .unwrap(),
            "http://proxy/ows/proxy/api/jobs/1"
        );
    }

    #[test]
    fn json_values_rewritten_keys_and_other_bytes_kept() {
        let body = br#"{ "links" : [ {"href": "http://backend:5000/jobs/1?f=json", "rel":"self"},
 {"href":"http:\/\/backend:5000\/jobs","title":"http://backend:5000 is \"here\""} ],
 "http://backend:5000/key": "http://example.org", "n": [1, 2.5e3, null, true] }"#;
        let out = links().rewrite_json(body).unwrap();
        let expected =
            br#"{ "links" : [ {"href": "http://proxy/ows/proxy/api/jobs/1?f=json", "rel":"self"},
 {"href":"http://proxy/ows/proxy/api/jobs","title":"http://backend:5000 is \"here\""} ],
 "http://backend:5000/key": "http://example.org", "n": [1, 2.5e3, null, true] }"#;
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(expected)
        );
    }

    #[test]
    fn json_without_backend_urls_or_invalid_is_left_alone() {
        let l = links();
        assert_eq!(l.rewrite_json(br#"{"href":"http://example.org"}"#), None);
        assert_eq!(l.rewrite_json(br#"{"href":"http://backend:5000/x""#), None);
        assert_eq!(l.rewrite_json(b"http://backend:5000/x"), None);
        assert_eq!(l.rewrite_json(b""), None);
        assert_eq!(
            l.rewrite_json(br#""http://backend:5000/x""#).unwrap(),
            br#""http://proxy/ows/proxy/api/x""#
        );
    }
}
