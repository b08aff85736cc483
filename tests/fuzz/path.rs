//! Target 1, the extra path: `ExtraPath::parse` refuses, or the upstream URL made from
//! it (and from it without its last element) stays below the service path, with no dot
//! segment at any depth of percent-decoding and no encoded slash or backslash.

use bolero::TypeGenerator;
use twitcher::gate::path::{self, ExtraPath};

/// Service URLs the extra path is joined to.
pub const SERVICE_URLS: [&str; 5] = [
    "http://127.0.0.1:1/wps",
    "http://127.0.0.1:1/wps/",
    "http://b/ows/wms?map=/x.map",
    "http://b",
    "http://b/a/b/wps?",
];

/// One piece of a raw path, biased towards what steps out of a path.
#[derive(Debug, Clone, Copy, TypeGenerator)]
pub enum Piece {
    Slash,
    Slash2,
    Dot,
    Dot2,
    Percent,
    Hex2e,
    Hex2E,
    Hex2f,
    Hex2F,
    Hex5c,
    Hex5C,
    Hex25,
    Pct2e,
    Pct2f,
    Pct5c,
    Pct25,
    Backslash,
    Semicolon,
    Letter,
    Word,
    Tilde,
    Space,
    Unicode,
    Question,
    Hash,
    Token,
}

impl Piece {
    /// The text of the piece.
    pub fn text(self) -> &'static str {
        use Piece::*;
        match self {
            Slash => "/",
            Slash2 => "/",
            Dot => ".",
            Dot2 => "..",
            Percent => "%",
            Hex2e => "2e",
            Hex2E => "2E",
            Hex2f => "2f",
            Hex2F => "2F",
            Hex5c => "5c",
            Hex5C => "5C",
            Hex25 => "25",
            Pct2e => "%2e",
            Pct2f => "%2F",
            Pct5c => "%5c",
            Pct25 => "%25",
            Backslash => "\\",
            Semicolon => ";",
            Letter => "a",
            Word => "wps",
            Tilde => "~",
            Space => " ",
            Unicode => "é",
            Question => "?",
            Hash => "#",
            Token => "good",
        }
    }

    /// Whether the piece can stand in the path of an HTTP request target.
    pub fn in_request_target(self) -> bool {
        !matches!(
            self,
            Piece::Question | Piece::Hash | Piece::Space | Piece::Unicode
        )
    }
}

/// A generated extra path: empty or starting with `/`, as every extra path after a
/// service name is (`split_target`).
#[derive(Debug, Clone, TypeGenerator)]
pub struct PathInput {
    /// The pieces.
    #[generator(bolero::produce_with::<Vec<Piece>>().len(0usize..=16))]
    pub pieces: Vec<Piece>,
}

impl PathInput {
    /// The raw extra path.
    pub fn render(&self) -> String {
        let body: String = self.pieces.iter().map(|p| p.text()).collect();
        if !body.is_empty() && !body.starts_with('/') {
            format!("/{body}")
        } else {
            body
        }
    }
}

/// Percent-decodes once (invalid escapes kept).
fn decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Why one segment of an upstream path could step out of the service path, at any depth
/// of percent-decoding (until decoding changes nothing).
pub fn segment_escape(segment: &str) -> Option<String> {
    let mut current = segment.as_bytes().to_vec();
    for depth in 0.. {
        let name = current.split(|b| *b == b';').next().unwrap_or_default();
        if name == b"." || name == b".." {
            return Some(format!("dot segment after {depth} decodings"));
        }
        if current.contains(&b'\\') {
            return Some(format!("backslash after {depth} decodings"));
        }
        if depth > 0 && current.contains(&b'/') {
            return Some(format!("slash after {depth} decodings"));
        }
        let next = decode(&current);
        if next == current {
            return None;
        }
        current = next;
    }
    unreachable!()
}

/// Checks the upstream URL for one service URL and extra path.
fn check_upstream(raw: &str, service_url: &str, extra: &ExtraPath, what: &str) {
    let url = match path::upstream_url(service_url, extra, "") {
        Ok(url) => url,
        Err(e) => panic!(
            "{what}: upstream_url refused an accepted extra path (documented as impossible)\n  \
             raw extra path: {raw:?}\n  extra: {:?}\n  service: {service_url:?}\n  error: {e}",
            extra.as_str()
        ),
    };
    let service = url::Url::parse(service_url).expect("service url");
    let base = service.path().trim_end_matches('/');
    let fail = |why: &str| -> ! {
        panic!(
            "{what}: {why}\n  raw extra path: {raw:?}\n  extra: {:?}\n  service: {service_url:?}\n  \
             upstream: {url}",
            extra.as_str()
        )
    };
    if url.host_str() != service.host_str() || url.port() != service.port() {
        fail("the upstream URL names another host");
    }
    let Some(tail) = url.path().strip_prefix(base) else {
        fail("the upstream path does not start with the service path");
    };
    if !tail.is_empty() && !tail.starts_with('/') {
        fail("the upstream path continues the service path's last segment");
    }
    for segment in tail.split('/').skip(1) {
        if let Some(why) = segment_escape(segment) {
            fail(&format!("segment {segment:?}: {why}"));
        }
    }
}

/// The property for one raw extra path.
pub fn check(raw: &str) {
    let Ok(extra) = ExtraPath::parse(raw) else {
        return;
    };
    let shorter = extra.without_last_element();
    for service in SERVICE_URLS {
        check_upstream(raw, service, &extra, "extra path");
        check_upstream(
            raw,
            service,
            &shorter,
            "extra path without its last element",
        );
    }
}
