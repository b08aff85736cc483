//! Target 3, differential XML root: `scan_xml_root` against roxmltree on documents whose
//! prolog hides fake roots in comments, PIs, DOCTYPEs and attribute values, in UTF-8 (with
//! and without BOM) and UTF-16 (LE/BE, with and without BOM): both read the same root; a
//! public request is never read where a conforming parser fails before the root start tag
//! ends; DOCTYPEs before the root are refused; scanning growing prefixes (as the gate
//! does, once the body's kind is known) never finds something else than the whole.

use twitcher::ows::body::{BodyKind, classify};
use twitcher::ows::request::{OwsRequest, RequestError, RootScan, scan_xml_root};

use super::kvp::service_name;
use super::reference::{self, View};

mod input;

pub use input::{Enc, XmlInput, XmlRequest};

/// A concrete document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlCase {
    /// Its encoding.
    pub enc: Enc,
    /// Its text.
    pub text: String,
    /// Chunk cuts of its bytes.
    pub cuts: Vec<u16>,
    /// Where a byte (UTF-8: 0xFF) or code unit (UTF-16: a lone high surrogate) that does not
    /// decode is inserted (modulo the length, after any BOM).
    pub corrupt: Option<u16>,
}

impl XmlCase {
    /// A document in UTF-8 without chunk cuts.
    pub fn utf8(text: &str) -> XmlCase {
        XmlCase {
            enc: Enc::Utf8,
            text: text.into(),
            cuts: Vec::new(),
            corrupt: None,
        }
    }

    /// The whole document as bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = self.enc.encode(&self.text);
        if let Some(at) = self.corrupt {
            let (bom, unit, bad): (usize, usize, &[u8]) = match self.enc {
                Enc::Utf8 => (0, 1, b"\xFF"),
                Enc::Utf8Bom => (3, 1, b"\xFF"),
                Enc::Utf16Le => (0, 2, b"\x00\xD8"),
                Enc::Utf16LeBom => (2, 2, b"\x00\xD8"),
                Enc::Utf16Be => (0, 2, b"\xD8\x00"),
                Enc::Utf16BeBom => (2, 2, b"\xD8\x00"),
            };
            let units = (bytes.len() - bom) / unit;
            let at = bom + usize::from(at) % (units + 1) * unit;
            bytes.splice(at..at, bad.iter().copied());
        }
        bytes
    }
}

/// The scan result of a complete body.
pub fn scan_complete(bytes: &[u8]) -> Result<OwsRequest, RequestError> {
    match scan_xml_root(bytes, true) {
        RootScan::Found(result) => result,
        RootScan::NeedMore => panic!("scan_xml_root(complete) asked for more: {bytes:?}"),
    }
}

/// Whether an error is about what the root says (the document itself was read).
pub fn is_semantic(e: &RequestError) -> bool {
    matches!(
        e,
        RequestError::Missing(_)
            | RequestError::InvalidXmlService(_)
            | RequestError::InvalidXmlRequest(_)
            | RequestError::InvalidXmlVersion(_)
    )
}

/// Whether a scan result agrees with a reference view of the root.
pub fn agrees(request: &OwsRequest, view: &View) -> bool {
    reference::decide(view).is_some_and(|(service, name, version)| {
        service == service_name(request.service)
            && name == request.request
            && version == request.version
    })
}

/// The property for one document.
pub fn check(case: &XmlCase) {
    let bytes = case.bytes();
    let scanned = scan_complete(&bytes);
    let fail = |why: &str, detail: &dyn std::fmt::Debug| -> ! {
        panic!(
            "{why}\n  document ({:?}, bytes that do not decode at {:?}): {:?}\n  \
             scan_xml_root: {scanned:?}\n  reference: {detail:?}",
            case.enc, case.corrupt, case.text
        )
    };
    if starts_with_doctype(&case.text) && scanned.is_ok() {
        fail(
            "a DOCTYPE after only comments, PIs and spaces was not refused",
            &"",
        );
    }
    // Up to the first bytes that do not decode: a head read before them stands.
    let (text, complete) = reference::decode_prefix(&bytes);
    match reference::xml_head(&text) {
        Some(head) if reference::has_doctype(&head) => {
            if scanned.is_ok() {
                fail("a DOCTYPE before the root was not refused", &head);
            }
        }
        Some(head) => {
            let view = reference::xml_view(&head).expect("a head without DTD parses");
            match &scanned {
                Ok(request) if !agrees(request, &view) => fail(
                    "scan_xml_root and roxmltree read the root differently",
                    &view,
                ),
                Err(e) if is_semantic(e) && reference::decide(&view).is_some() => fail(
                    "scan_xml_root refuses a root that roxmltree reads as a valid request",
                    &view,
                ),
                _ => {}
            }
        }
        None => {
            if scanned.as_ref().is_ok_and(OwsRequest::is_public)
                && known_finding(&text, complete).is_none()
            {
                let error = match complete {
                    true => reference::xml_view(&text).err(),
                    false => Some(format!("bytes that do not decode after {text:?}")),
                };
                fail(
                    "a public request in a document a conforming parser rejects before the end \
                     of the root start tag",
                    &error,
                );
            }
        }
    }
    if known_finding(&text, complete).is_none() {
        check_prefixes(case, &bytes, &scanned);
    }
}

/// The known finding (not fixed in `src/` yet) a document that a conforming parser
/// rejects may show, so that the targets keep looking for others; each gets an ignored
/// regression test in `tests/fuzz_gate.rs`. None is open: every finding so far is fixed
/// and its test runs.
pub fn known_finding(_text: &str, _complete: bool) -> Option<&'static str> {
    None
}

/// Whether the first markup after the declaration, comments, PIs and spaces is a
/// DOCTYPE (the first `?>` ends a PI, the first `-->` a comment).
pub fn starts_with_doctype(text: &str) -> bool {
    let mut rest = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    loop {
        rest = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        let end = if rest.starts_with("<?") {
            rest.find("?>").map(|e| e + 2)
        } else if let Some(comment) = rest.strip_prefix("<!--") {
            comment.find("-->").map(|e| e + 7)
        } else {
            return rest.starts_with("<!DOCTYPE");
        };
        match end {
            Some(end) => rest = &rest[end..],
            None => return false,
        }
    }
}

/// Growing prefixes (as chunks arrive): a root found early is the root of the whole.
fn check_prefixes(case: &XmlCase, bytes: &[u8], whole: &Result<OwsRequest, RequestError>) {
    let mut prefix = Vec::new();
    for chunk in super::chunks(bytes, &case.cuts) {
        prefix.extend_from_slice(&chunk);
        // As the gate does: the body is looked at as XML only once its kind is known.
        if !matches!(classify(&prefix, false, false), BodyKind::Xml(_)) {
            continue;
        }
        if let RootScan::Found(found) = scan_xml_root(&prefix, false) {
            assert!(
                &found == whole,
                "a prefix finds another result than the whole document\n  document ({:?}): \
                 {:?}\n  prefix: {prefix:?}\n  prefix result: {found:?}\n  whole result: \
                 {whole:?}",
                case.enc,
                case.text
            );
            return;
        }
    }
}
