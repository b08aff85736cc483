//! Reference readings of an OWS request, written independently of `src/`: how a backend
//! would read the same bytes. KVP as pywps reads it (werkzeug's `MultiDict`: split on `&`,
//! `+` is a space, `%XX` decoded with invalid UTF-8 replaced, keys lower-cased, the FIRST
//! value of a key wins), and XML as a conforming parser reads it (roxmltree, which also
//! refuses DTDs), after byte-order-mark / UTF-16 decoding.

/// What a backend would take the request to be (all lower-cased; empty values are absent).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// The `service` value.
    pub service: Option<String>,
    /// The request: the `request` value, or the XML root's local name.
    pub request: Option<String>,
    /// The `version` value.
    pub version: Option<String>,
}

impl View {
    /// GetCapabilities / DescribeProcess of a WPS, GetCapabilities of a WMS.
    pub fn is_public(&self) -> bool {
        matches!(
            (self.service.as_deref(), self.request.as_deref()),
            (Some("wps"), Some("getcapabilities" | "describeprocess"))
                | (Some("wms"), Some("getcapabilities"))
        )
    }
}

/// Which of several values of one key a reader keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The first (pywps, werkzeug's `MultiDict.get`).
    First,
    /// The last (readers that fill a plain dict).
    Last,
}

/// `%XX` decoding (`+` first becomes a space), as Python's `unquote_plus`.
pub fn unquote_plus(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded `(key, value)` pairs of a query string or form body, in order.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unquote_plus(k), unquote_plus(v))
        })
        .collect()
}

/// The value of a key (lower-cased name) as a reader picking `pick` sees it.
pub fn kvp_value(query: &str, key: &str, pick: Pick) -> Option<String> {
    let mut values = pairs(query)
        .into_iter()
        .filter(|(k, _)| k.to_lowercase() == key)
        .map(|(_, v)| v);
    match pick {
        Pick::First => values.next(),
        Pick::Last => values.next_back(),
    }
}

/// A query string read as a backend picking `pick` reads it.
pub fn kvp_view(query: &str, pick: Pick) -> View {
    let get = |key| {
        kvp_value(query, key, pick)
            .map(|v| v.to_lowercase())
            .filter(|v| !v.is_empty())
    };
    View {
        service: get("service"),
        request: get("request"),
        version: get("version"),
    }
}

/// A body as text the way an XML parser decodes it (XML 1.0 appendix F): UTF-16 by its
/// BOM, or without one when it starts with `<?`; else UTF-8 (BOM dropped), or a
/// single-byte encoding its XML declaration names. None for bytes that are not text in
/// that encoding.
pub fn decode_body(bytes: &[u8]) -> Option<String> {
    let (text, complete) = decode_prefix(bytes);
    complete.then_some(text)
}

/// As [`decode_body`], but the text up to the first bytes that do not decode, and whether
/// all of them did.
pub fn decode_prefix(bytes: &[u8]) -> (String, bool) {
    let utf16 = |rest: &[u8], little: bool| {
        let units = rest.chunks_exact(2).map(|c| {
            if little {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        let mut text = String::new();
        for c in char::decode_utf16(units) {
            match c {
                Ok(c) => text.push(c),
                Err(_) => return (text, false),
            }
        }
        (text, rest.len().is_multiple_of(2))
    };
    let utf8 = |rest: &[u8]| match std::str::from_utf8(rest) {
        Ok(text) => (text.to_string(), true),
        Err(e) => {
            let valid = &rest[..e.valid_up_to()];
            (String::from_utf8_lossy(valid).into_owned(), false)
        }
    };
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [b'<', 0, b'?', 0, ..] => utf16(bytes, true),
        [0, b'<', 0, b'?', ..] => utf16(bytes, false),
        _ if declares_single_byte(bytes) => (bytes.iter().map(|b| char::from(*b)).collect(), true),
        _ => utf8(bytes),
    }
}

/// Whether the XML declaration names a single-byte encoding (ISO-8859-x, windows-125x):
/// every byte is a character (read here as Latin-1; only markup matters).
fn declares_single_byte(bytes: &[u8]) -> bool {
    let Some(decl) = bytes
        .strip_prefix(b"<?xml")
        .and_then(|rest| rest.split(|b| *b == b'>').next())
    else {
        return false;
    };
    let decl = String::from_utf8_lossy(decl).to_ascii_lowercase();
    let Some((_, after)) = decl.split_once("encoding") else {
        return false;
    };
    let name: String = after
        .trim_start_matches([' ', '=', '"', '\''])
        .chars()
        .take_while(|c| !matches!(c, '"' | '\''))
        .collect();
    ["iso-8859-", "iso8859-", "latin", "windows-125", "cp125"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Whether a body is an XML document attempt: its first non-space character is `<`.
pub fn looks_like_xml(text: &str) -> bool {
    text.trim_start_matches([' ', '\t', '\r', '\n'])
        .starts_with('<')
}

/// roxmltree skips a leading U+FEFF as a byte-order mark; in decoded text (BOM already
/// consumed by [`decode_body`]) it is a character before the root, which XML forbids.
fn refuse_second_bom(text: &str) -> Result<&str, String> {
    if text.starts_with('\u{FEFF}') {
        Err("U+FEFF before the root (a second byte-order mark)".into())
    } else {
        Ok(text)
    }
}

/// The root element of an XML document (decoded text) as roxmltree reads it (DTDs
/// refused).
pub fn xml_view(text: &str) -> Result<View, String> {
    let text = refuse_second_bom(text)?;
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    // Not `root.attribute(name)`: it also matches `prefix:name` in any namespace.
    let attr = |name| {
        root.attributes()
            .find(|a| a.namespace().is_none() && a.name() == name)
            .map(|a| a.value().to_lowercase())
            .filter(|v| !v.is_empty())
    };
    Ok(View {
        service: attr("service"),
        request: Some(root.tag_name().name().to_lowercase()),
        version: attr("version"),
    })
}

/// The head of a document as a conforming parser reads it: everything up to the end of
/// the root start tag, closed as an empty element. Found as the shortest cut after a `>`
/// that roxmltree (DTDs allowed) accepts once closed; None when no cut is accepted, that
/// is, when the document is malformed before the root start tag ends.
pub fn xml_head(text: &str) -> Option<String> {
    let text = refuse_second_bom(text).ok()?;
    text.match_indices('>').find_map(|(at, _)| {
        let cut = &text[..at];
        let head = if cut.ends_with('/') {
            format!("{cut}>")
        } else {
            format!("{cut}/>")
        };
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        let accepted = roxmltree::Document::parse_with_options(&head, options).is_ok();
        accepted.then_some(head)
    })
}

/// Whether a document head (see [`xml_head`]) has a DOCTYPE.
pub fn has_doctype(head: &str) -> bool {
    matches!(
        roxmltree::Document::parse(head),
        Err(roxmltree::Error::DtdDetected)
    )
}

/// The request the gate should admit for a view, by the rules the original states:
/// known service, a request of that service, `version` supported (optional for
/// GetCapabilities). Returns (service, request, version) or None when refused.
pub fn decide(view: &View) -> Option<(String, String, Option<String>)> {
    let service = view.service.clone()?;
    let (requests, versions): (&[&str], &[&str]) = match service.as_str() {
        "wps" => (
            &["getcapabilities", "describeprocess", "execute"],
            &["1.0.0"],
        ),
        "wms" => (
            &[
                "getcapabilities",
                "getmap",
                "getfeatureinfo",
                "getlegendgraphic",
                "getmetadata",
            ],
            &["1.1.1", "1.3.0"],
        ),
        _ => return None,
    };
    let request = view.request.clone()?;
    if !requests.contains(&request.as_str()) {
        return None;
    }
    match &view.version {
        None if request == "getcapabilities" => {}
        Some(v) if versions.contains(&v.as_str()) => {}
        _ => return None,
    }
    Some((service, request, view.version.clone()))
}
