//! The extra path after the service name, and the upstream URL made from it. The upstream
//! path is the service's path followed by the extra path's segments, byte for byte and
//! never re-resolved; any segment a URL parser or a backend could read as a step out of
//! the service's path is refused instead.

use percent_encoding::percent_decode;
use url::Url;

/// Deepest percent-encoding looked through (`%25252e` is three levels); deeper is refused.
const MAX_ENCODING_DEPTH: usize = 4;

/// Why an extra path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `.` or `..` segment, at some depth of percent-encoding (also `..;x`).
    #[error("dot segment")]
    DotSegment,
    /// A backslash, raw or encoded.
    #[error("backslash")]
    Backslash,
    /// An encoded `/` inside a segment.
    #[error("encoded slash")]
    EncodedSlash,
    /// More levels of percent-encoding than any client needs.
    #[error("too deeply encoded")]
    TooDeep,
}

/// A checked extra path: raw segments (as the client sent them) after the service name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtraPath {
    raw: String,
}

impl ExtraPath {
    /// Checks the raw path after the service name (`""`, `"/"` or `"/a/b"`). A lone `/`
    /// addresses the service itself, as in the original.
    pub fn parse(raw: &str) -> Result<ExtraPath, PathError> {
        if raw == "/" {
            return Ok(ExtraPath::default());
        }
        for segment in raw.split('/') {
            check_segment(segment)?;
        }
        Ok(ExtraPath {
            raw: raw.to_string(),
        })
    }

    /// The raw path (`""` or starting with `/`).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The percent-decoded last non-empty segment: the token of last resort.
    pub fn last_element(&self) -> Option<String> {
        // The original took the last non-empty element: `/tok/` still names `tok`.
        let last = self
            .raw
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())?;
        Some(
            percent_decode(last.as_bytes())
                .decode_utf8_lossy()
                .into_owned(),
        )
    }

    /// The path without its last non-empty element (`/a/tok` → `/a`, `/tok/` → `/`): the
    /// element was a token addressed to twitcher, not part of the backend's path.
    pub fn without_last_element(&self) -> ExtraPath {
        let trimmed = self.raw.trim_end_matches('/');
        let kept = &trimmed[..trimmed.rfind('/').unwrap_or(0)];
        let raw = if trimmed.len() < self.raw.len() && !kept.is_empty() {
            format!("{kept}/")
        } else {
            kept.to_string()
        };
        ExtraPath { raw }
    }
}

/// One segment: refused when any decoding of it is a dot segment or holds a separator.
fn check_segment(segment: &str) -> Result<(), PathError> {
    let mut current = segment.as_bytes().to_vec();
    for _ in 0..=MAX_ENCODING_DEPTH {
        if current.contains(&b'\\') {
            return Err(PathError::Backslash);
        }
        // Servlet containers drop `;params` before resolving dot segments (`..;x` is `..`).
        let name = current.split(|b| *b == b';').next().unwrap_or_default();
        if name == b"." || name == b".." {
            return Err(PathError::DotSegment);
        }
        if !current.contains(&b'%') {
            return Ok(());
        }
        let decoded: Vec<u8> = percent_decode(&current).collect();
        if decoded == current {
            return Ok(());
        }
        if decoded.contains(&b'/') {
            return Err(PathError::EncodedSlash);
        }
        current = decoded;
    }
    Err(PathError::TooDeep)
}

/// Why no upstream URL could be made for a service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamUrlError {
    /// The registered service URL does not parse (a broken registry entry).
    #[error("the service URL does not parse: {0}")]
    ServiceUrl(url::ParseError),
    /// The joined path left the service's path (cannot happen for a checked extra path;
    /// kept as a last line of defence).
    #[error("the upstream path leaves the service path")]
    Escaped,
}

/// The backend URL: the service URL's path plus the extra path, and the service URL's
/// query (if any) followed by the client's (already stripped of credentials).
pub fn upstream_url(
    service_url: &str,
    extra: &ExtraPath,
    query: &str,
) -> Result<Url, UpstreamUrlError> {
    let mut url = Url::parse(service_url).map_err(UpstreamUrlError::ServiceUrl)?;
    if !extra.raw.is_empty() {
        let base = url.path().trim_end_matches('/').to_string();
        let path = format!("{base}{}", extra.raw);
        url.set_path(&path);
        let tail = url
            .path()
            .strip_prefix(&base)
            .ok_or(UpstreamUrlError::Escaped)?;
        if !tail.starts_with('/') || tail.split('/').any(|s| check_segment(s).is_err()) {
            return Err(UpstreamUrlError::Escaped);
        }
    }
    let joined = match (url.query(), query) {
        (_, "") => None,
        (Some(own), _) if !own.is_empty() => Some(format!("{own}&{query}")),
        _ => Some(query.to_string()),
    };
    if let Some(q) = joined {
        url.set_query(Some(&q));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_out_of_the_service_path_are_refused() {
        use PathError::*;
        let cases: &[(&str, PathError)] = &[
            ("/..", DotSegment),
            ("/.", DotSegment),
            ("/a/../b", DotSegment),
            ("/%2e%2E", DotSegment),
            ("/%2e", DotSegment),
            ("/.%2e", DotSegment),
            ("/%252e%252e", DotSegment),
            ("/%25252e%25252e", DotSegment),
            ("/..;x", DotSegment),
            ("/%2e%2e;x/y", DotSegment),
            ("/a\\..\\b", Backslash),
            ("/a%5cb", Backslash),
            ("/a%255Cb", Backslash),
            ("/..%2fwps", EncodedSlash),
            ("/a%2Fb", EncodedSlash),
            ("/a%252fb", EncodedSlash),
            ("/%2525252525252e", TooDeep),
        ];
        for (raw, expected) in cases {
            assert_eq!(ExtraPath::parse(raw), Err(*expected), "{raw}");
        }
    }

    #[test]
    fn ordinary_paths_pass_byte_for_byte() {
        for raw in [
            "",
            "/a",
            "/a/b/",
            "/a//b",
            "/...",
            "/a..",
            "/.a",
            "/file%2Etxt",
            "/%41",
            "/a;b",
            "/%25",
        ] {
            assert_eq!(
                ExtraPath::parse(raw).map(|p| p.raw),
                Ok(raw.to_string()),
                "{raw}"
            );
        }
        assert_eq!(ExtraPath::parse("/"), Ok(ExtraPath::default()));
    }

    #[test]
    fn upstream_urls_stay_below_the_service_path() {
        let url = |service: &str, extra: &str, query: &str| {
            upstream_url(service, &ExtraPath::parse(extra).unwrap(), query)
                .unwrap()
                .to_string()
        };
        assert_eq!(url("http://b/wps", "", ""), "http://b/wps");
        assert_eq!(url("http://b/wps", "/", "a=1"), "http://b/wps?a=1");
        assert_eq!(url("http://b/wps/", "/x/y", ""), "http://b/wps/x/y");
        assert_eq!(
            url("http://b/wps", "/a%20b/%3F", "q=%20"),
            "http://b/wps/a%20b/%3F?q=%20"
        );
        assert_eq!(
            url("http://b/wms?map=x", "/t", "service=WMS"),
            "http://b/wms/t?map=x&service=WMS"
        );
        assert_eq!(url("http://b/wms?map=x", "", ""), "http://b/wms?map=x");
        assert_eq!(url("http://b", "/a", ""), "http://b/a");
    }

    #[test]
    fn path_tokens_are_cut_off() {
        let cut = |raw: &str| ExtraPath::parse(raw).unwrap().without_last_element().raw;
        assert_eq!(cut("/tok"), "");
        assert_eq!(cut("/a/tok"), "/a");
        assert_eq!(cut("/tok/"), "");
        assert_eq!(cut("/a/tok/"), "/a/");
        assert_eq!(cut("/a/tok//"), "/a/");
        let last = |raw: &str| ExtraPath::parse(raw).unwrap().last_element();
        assert_eq!(last("/a/p%20q"), Some("p q".into()));
        assert_eq!(last("/a/"), Some("a".into()));
        assert_eq!(last("//"), None);
        assert_eq!(last(""), None);
    }
}
