//! Parsing of OWS requests as the original understood them: key-value pairs of a GET
//! query, or the root element of an XML POST body. Only `service`, `request` and
//! `version` matter for access decisions.
//!
//! Where a backend could read a request differently, the request is refused instead of
//! guessed at: a decision key given twice (servers disagree on which one wins), a DOCTYPE
//! (it can hide markup a naive reader takes for the root), an encoding declaration that
//! disagrees with the bytes.

use std::collections::HashSet;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::body::{Encoding, is_xml_space};

pub use super::operations::{ORIGINAL_SERVICES, OwsService};

/// A parsed OWS request: what the security check needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwsRequest {
    /// The `service` parameter.
    pub service: OwsService,
    /// The request type, lower-cased (`getcapabilities`, `execute`, …).
    pub request: String,
    /// The `version`, lower-cased, when given.
    pub version: Option<String>,
}

impl OwsRequest {
    /// True for requests that never need a credential (GetCapabilities, DescribeProcess).
    pub fn is_public(&self) -> bool {
        self.service
            .public_requests()
            .contains(&self.request.as_str())
    }

    /// True for requests that write (WFS `Transaction`, locks, stored queries): they need
    /// a credential even on a public service.
    pub fn is_write(&self) -> bool {
        self.service
            .write_requests()
            .contains(&self.request.as_str())
    }
}

/// Why a request is not a supported OWS request; each maps to one exception report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// `service`, `request` or `version` absent.
    #[error("Parameter \"{0}\" is missing")]
    Missing(&'static str),
    /// A GET parameter with an unsupported value (message style of the KVP parser).
    #[error("{param} {value} is not supported")]
    InvalidKvp {
        /// `service`, `request` or `version`.
        param: &'static str,
        /// The lower-cased value.
        value: String,
    },
    /// An XML request with an unsupported service attribute.
    #[error("Service {0} is not supported")]
    InvalidXmlService(String),
    /// An XML request whose root element is not a request of the service.
    #[error("Request type {0} is not supported")]
    InvalidXmlRequest(String),
    /// An XML request with an unsupported version attribute.
    #[error("Version {0} is not supported")]
    InvalidXmlVersion(String),
    /// The body is not well-formed XML (a short, client-safe description).
    #[error("{0}")]
    Malformed(String),
    /// A key that drives the access decision appears more than once.
    #[error("Parameter \"{0}\" is given more than once")]
    Ambiguous(&'static str),
    /// The XML body has a document type declaration (no OWS request needs one).
    #[error("A DOCTYPE is not allowed in an OWS request")]
    Doctype,
    /// The XML body is in an encoding the proxy does not read, or its declaration
    /// disagrees with its bytes.
    #[error("The encoding of the request body is not supported")]
    Encoding,
}

impl RequestError {
    /// The parameter the report's `locator` names, when there is one.
    pub fn locator(&self) -> Option<&'static str> {
        match self {
            RequestError::Missing(p) => Some(p),
            RequestError::InvalidKvp { param, .. } => Some(param),
            RequestError::InvalidXmlService(_) => Some("service"),
            RequestError::InvalidXmlRequest(_) => Some("request"),
            RequestError::InvalidXmlVersion(_) => Some("version"),
            RequestError::Ambiguous(p) => Some(p),
            RequestError::Malformed(_) | RequestError::Doctype | RequestError::Encoding => None,
        }
    }
}

/// Keys whose value decides what the backend does; each may appear once.
pub const DECISION_KEYS: [&str; 4] = ["service", "request", "version", "identifier"];

/// Parses the key-value pairs of a GET query string (or a form body) for the services the
/// original knew ([`ORIGINAL_SERVICES`]). See [`parse_kvp_for`].
pub fn parse_kvp(query: &str) -> Result<OwsRequest, RequestError> {
    parse_kvp_for(query, ORIGINAL_SERVICES)
}

/// Parses the key-value pairs of a GET query string (or a form body). Names are
/// case-insensitive (as Python's `str.lower` folds them), values are lower-cased; a
/// decision key given twice is refused, and so is a `service` not in `services` (the
/// types the registered service answers for).
pub fn parse_kvp_for(query: &str, services: &[OwsService]) -> Result<OwsRequest, RequestError> {
    let (mut service, mut request, mut version) = (None, None, None);
    let mut seen = [false; DECISION_KEYS.len()];
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let key = key.to_lowercase();
        let Some(index) = DECISION_KEYS.iter().position(|k| *k == key) else {
            continue;
        };
        if std::mem::replace(&mut seen[index], true) {
            return Err(RequestError::Ambiguous(DECISION_KEYS[index]));
        }
        let slot = match index {
            0 => &mut service,
            1 => &mut request,
            2 => &mut version,
            _ => continue,
        };
        *slot = Some(value.to_lowercase());
    }
    let present = |v: Option<String>| v.filter(|v| !v.is_empty());
    let service_name = present(service).ok_or(RequestError::Missing("service"))?;
    let service = OwsService::from_lower(&service_name)
        .filter(|s| services.contains(s))
        .ok_or(RequestError::InvalidKvp {
            param: "service",
            value: service_name,
        })?;
    let request = present(request).ok_or(RequestError::Missing("request"))?;
    if !service.requests().contains(&request.as_str()) {
        return Err(RequestError::InvalidKvp {
            param: "request",
            value: request,
        });
    }
    let version = check_version(service, &request, present(version)).map_err(|e| match e {
        VersionError::Missing => RequestError::Missing("version"),
        VersionError::Unsupported(value) => RequestError::InvalidKvp {
            param: "version",
            value,
        },
    })?;
    Ok(OwsRequest {
        service,
        request,
        version,
    })
}

enum VersionError {
    Missing,
    Unsupported(String),
}

/// `version` may only be omitted for GetCapabilities, and must be supported when given.
fn check_version(
    service: OwsService,
    request: &str,
    version: Option<String>,
) -> Result<Option<String>, VersionError> {
    match version {
        None if request == "getcapabilities" => Ok(None),
        None => Err(VersionError::Missing),
        Some(v) if service.versions().contains(&v.as_str()) => Ok(Some(v)),
        Some(v) => Err(VersionError::Unsupported(v)),
    }
}

/// Outcome of looking for the root element in the first bytes of an XML body.
#[derive(Debug, PartialEq, Eq)]
pub enum RootScan {
    /// The root start tag was found: the parsed request (or why it is refused).
    Found(Result<OwsRequest, RequestError>),
    /// The bytes end before the root start tag does: read more and scan again.
    NeedMore,
}

/// Scans `prefix` (the first bytes of a POST body, or all of it when `complete`) for the
/// root element as a conforming XML parser finds it: its local name is the request,
/// attributes `service` and `version`. Before the root only an XML declaration (first,
/// agreeing with the detected encoding), comments, processing instructions and whitespace
/// may stand; a DOCTYPE is refused. Entities are never expanded. Linear in the prefix.
/// Reads the services the original knew ([`ORIGINAL_SERVICES`]); see [`scan_xml_root_for`].
pub fn scan_xml_root(prefix: &[u8], complete: bool) -> RootScan {
    scan_xml_root_for(prefix, complete, ORIGINAL_SERVICES)
}

/// [`scan_xml_root`] for a service answering the OWS types `services`.
pub fn scan_xml_root_for(prefix: &[u8], complete: bool, services: &[OwsService]) -> RootScan {
    if prefix.len() < 4 && !complete {
        // Too short to tell a byte-order mark from the start of a document.
        return RootScan::NeedMore;
    }
    let encoding = Encoding::detect(prefix);
    if encoding == Encoding::Unsupported {
        return RootScan::Found(Err(RequestError::Encoding));
    }
    let text = encoding.to_utf8(prefix);
    // quick-xml skips a byte-order mark at its start; after ours, a second one is text.
    if text.starts_with(b"\xEF\xBB\xBF") {
        return RootScan::Found(Err(RequestError::Malformed(
            "Start tag expected, '<' not found".into(),
        )));
    }
    let mut declared: Option<String> = None;
    let mut reader = NsReader::from_reader(text.as_ref());
    let config = reader.config_mut();
    config.trim_text(false);
    // XML forbids `--` inside comments; a lenient reader would end the comment elsewhere.
    config.check_comments = true;
    loop {
        let position = reader.buffer_position();
        let (resolved, event) = match reader.read_resolved_event() {
            Ok(pair) => pair,
            Err(_) if !complete => return RootScan::NeedMore,
            Err(e) => return RootScan::Found(Err(malformed(&e.to_string()))),
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                if let ResolveResult::Unknown(p) = resolved {
                    let prefix_name = String::from_utf8_lossy(&p).into_owned();
                    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    return RootScan::Found(Err(RequestError::Malformed(format!(
                        "Namespace prefix {prefix_name} on {local} is not defined"
                    ))));
                }
                let end = reader.buffer_position() as usize;
                let head = &text[..end.min(text.len())];
                if let Some(c) = head.iter().find(|b| is_forbidden(**b)) {
                    return RootScan::Found(Err(malformed(&format!(
                        "character U+{c:04X} is not allowed in XML"
                    ))));
                }
                let ascii = declared.as_deref().is_some_and(|d| {
                    matches!(d.trim().to_ascii_lowercase().as_str(), "us-ascii" | "ascii")
                });
                if ascii && !head.is_ascii() {
                    return RootScan::Found(Err(malformed("the text is not ASCII as declared")));
                }
                if encoding.is_utf8(declared.as_deref()) {
                    if std::str::from_utf8(head).is_err() {
                        return RootScan::Found(Err(malformed("the text is not valid UTF-8")));
                    }
                    // U+FFFE and U+FFFF are no XML characters.
                    let has = |n: &[u8]| memchr::memmem::find(head, n).is_some();
                    if has(b"\xEF\xBF\xBE") || has(b"\xEF\xBF\xBF") {
                        return RootScan::Found(Err(malformed(
                            "characters U+FFFE and U+FFFF are not allowed in XML",
                        )));
                    }
                }
                if e.name().prefix().is_some_and(|p| p.as_ref() == b"xmlns") {
                    return RootScan::Found(Err(malformed(
                        "the prefix xmlns must not be used on an element",
                    )));
                }
                return RootScan::Found(root_request(&reader, e, services));
            }
            Event::Decl(ref decl) => {
                if !is_well_formed_declaration(decl) {
                    return RootScan::Found(Err(malformed("the XML declaration is malformed")));
                }
                if position != 0 {
                    return RootScan::Found(Err(malformed(
                        "the XML declaration is allowed only at the start of the document",
                    )));
                }
                match decl.encoding() {
                    Some(Ok(name)) => {
                        let name = String::from_utf8_lossy(&name).into_owned();
                        if !encoding.accepts_declared(&name) {
                            return RootScan::Found(Err(RequestError::Encoding));
                        }
                        declared = Some(name);
                    }
                    Some(Err(e)) => return RootScan::Found(Err(malformed(&e.to_string()))),
                    None => {}
                }
            }
            Event::DocType(_) => return RootScan::Found(Err(RequestError::Doctype)),
            Event::PI(ref pi) if pi.target().eq_ignore_ascii_case(b"xml") => {
                return RootScan::Found(Err(malformed("the target name xml is reserved")));
            }
            Event::PI(ref pi) if !starts_a_name(pi.target()) => {
                return RootScan::Found(Err(malformed(
                    "a processing instruction needs a target name",
                )));
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Text(ref t) if t.iter().copied().all(is_xml_space) => {}
            Event::Eof if !complete => return RootScan::NeedMore,
            Event::Eof => {
                return RootScan::Found(Err(RequestError::Malformed("Document is empty".into())));
            }
            // Text, references, CDATA or an end tag before the root can never become
            // well-formed, whatever follows.
            Event::Text(_) | Event::GeneralRef(_) => {
                return RootScan::Found(Err(RequestError::Malformed(
                    "Start tag expected, '<' not found".into(),
                )));
            }
            Event::CData(_) | Event::End(_) => {
                return RootScan::Found(Err(malformed("content before the root element")));
            }
        }
    }
}

fn malformed(detail: &str) -> RequestError {
    // quick-xml's messages name positions and expectations only, never request data
    // beyond a tag name, so they are safe to show; keep them to one line.
    let detail: String = detail
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    RequestError::Malformed(format!("The XML request is not well-formed: {detail}"))
}

/// `xml` S `version` Eq 1.x [S `encoding` Eq name] [S `standalone` Eq yes|no] S? — in that
/// order, each once (XML 1.0 §2.8, §4.3.3); quick-xml reads declarations leniently.
fn is_well_formed_declaration(decl: &quick_xml::events::BytesDecl<'_>) -> bool {
    let content: &[u8] = decl;
    let Some(mut rest) = content.strip_prefix(b"xml") else {
        return false;
    };
    let mut expected: &[&[u8]] = &[b"version", b"encoding", b"standalone"];
    let mut first = true;
    loop {
        let trimmed = rest.trim_ascii_start();
        let spaced = trimmed.len() < rest.len();
        rest = trimmed;
        if rest.is_empty() {
            return !first;
        }
        if !spaced {
            return false;
        }
        let name_end = rest.iter().position(|b| *b == b'=' || is_xml_space(*b));
        let Some(name_end) = name_end else {
            return false;
        };
        let name = &rest[..name_end];
        let Some(at) = expected.iter().position(|e| *e == name) else {
            return false;
        };
        if first && at != 0 {
            return false;
        }
        expected = &expected[at + 1..];
        let after = rest[name_end..].trim_ascii_start();
        let Some(after) = after.strip_prefix(b"=") else {
            return false;
        };
        let after = after.trim_ascii_start();
        let Some(&quote) = after.first().filter(|q| matches!(q, b'"' | b'\'')) else {
            return false;
        };
        let Some(len) = after[1..].iter().position(|b| *b == quote) else {
            return false;
        };
        let value = &after[1..1 + len];
        let valid = match name {
            b"version" => value
                .strip_prefix(b"1.")
                .is_some_and(|d| !d.is_empty() && d.iter().all(u8::is_ascii_digit)),
            b"encoding" => {
                value.first().is_some_and(u8::is_ascii_alphabetic)
                    && value
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            }
            _ => value == b"yes" || value == b"no",
        };
        if !valid {
            return false;
        }
        rest = &after[len + 2..];
        first = false;
    }
}

/// C0 controls other than tab, LF and CR: never allowed in an XML document.
fn is_forbidden(b: u8) -> bool {
    b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')
}

/// Whether a PI target begins like an XML name (quick-xml accepts `<? x?>` with an
/// empty target).
fn starts_a_name(target: &[u8]) -> bool {
    target
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b':') || *b >= 0x80)
}

fn root_request<R>(
    reader: &NsReader<R>,
    root: &quick_xml::events::BytesStart<'_>,
    services: &[OwsService],
) -> Result<OwsRequest, RequestError> {
    let request = String::from_utf8_lossy(root.local_name().as_ref()).to_lowercase();
    let (mut service, mut version) = (None, None);
    // quick-xml's own duplicate check compares each attribute with all before it
    // (quadratic in a start tag of 100 000 attributes); a set keeps it linear.
    let mut names = HashSet::new();
    for attr in root.attributes().with_checks(false) {
        let attr = attr.map_err(|e| malformed(&e.to_string()))?;
        if !names.insert(attr.key.into_inner()) {
            return Err(malformed(&format!(
                "attribute {} is given more than once",
                String::from_utf8_lossy(attr.key.as_ref())
            )));
        }
        if let ResolveResult::Unknown(p) = reader.resolve_attribute(attr.key).0 {
            return Err(RequestError::Malformed(format!(
                "Namespace prefix {} for {} on {} is not defined",
                String::from_utf8_lossy(&p),
                String::from_utf8_lossy(attr.key.local_name().as_ref()),
                String::from_utf8_lossy(root.local_name().as_ref()),
            )));
        }
        if attr.value.contains(&b'<') {
            return Err(malformed("'<' is not allowed in attribute values"));
        }
        // Every value, not only the two read: an undefined entity is a fatal error.
        let value = attr
            .unescape_value()
            .map_err(|e| malformed(&e.to_string()))?;
        let slot = match attr.key.as_ref() {
            b"service" => &mut service,
            b"version" => &mut version,
            _ => continue,
        };
        *slot = Some(value.to_lowercase()).filter(|v| !v.is_empty());
    }
    let service_name = service.ok_or(RequestError::Missing("service"))?;
    let service = OwsService::from_lower(&service_name)
        .filter(|s| services.contains(s))
        .ok_or(RequestError::InvalidXmlService(service_name))?;
    if !service.requests().contains(&request.as_str()) {
        return Err(RequestError::InvalidXmlRequest(request));
    }
    let version = check_version(service, &request, version).map_err(|e| match e {
        VersionError::Missing => RequestError::Missing("version"),
        VersionError::Unsupported(v) => RequestError::InvalidXmlVersion(v),
    })?;
    Ok(OwsRequest {
        service,
        request,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(
        service: OwsService,
        request: &str,
        version: Option<&str>,
    ) -> Result<OwsRequest, RequestError> {
        Ok(OwsRequest {
            service,
            request: request.into(),
            version: version.map(Into::into),
        })
    }

    #[test]
    fn kvp_table() {
        use OwsService::*;
        let cases: &[(&str, Result<OwsRequest, RequestError>)] = &[
            (
                "service=WPS&request=GetCapabilities",
                ok(Wps, "getcapabilities", None),
            ),
            (
                "SERVICE=WPS&REQUEST=GetCapabilities",
                ok(Wps, "getcapabilities", None),
            ),
            (
                "service=wps&request=getcapabilities&version=1.0.0",
                ok(Wps, "getcapabilities", Some("1.0.0")),
            ),
            (
                "service=WPS&request=Execute&version=1.0.0&identifier=hello",
                ok(Wps, "execute", Some("1.0.0")),
            ),
            (
                "service=WMS&request=GetMap&version=1.3.0",
                ok(Wms, "getmap", Some("1.3.0")),
            ),
            (
                "request=GetCapabilities",
                Err(RequestError::Missing("service")),
            ),
            ("", Err(RequestError::Missing("service"))),
            (
                "service=&request=GetCapabilities",
                Err(RequestError::Missing("service")),
            ),
            ("service=WPS", Err(RequestError::Missing("request"))),
            (
                "service=WFS&request=x",
                Err(RequestError::InvalidKvp {
                    param: "service",
                    value: "wfs".into(),
                }),
            ),
            (
                "service=WPS&service=foo&request=GetCapabilities",
                Err(RequestError::Ambiguous("service")),
            ),
            (
                "service=WPS&request=Execute&REQUEST=GetCapabilities&version=1.0.0",
                Err(RequestError::Ambiguous("request")),
            ),
            (
                "service=WPS&request=Execute&version=1.0.0&identifier=a&Identifier=b",
                Err(RequestError::Ambiguous("identifier")),
            ),
            (
                "service=WPS&request=GetCapabilities&version=&version=1.0.0",
                Err(RequestError::Ambiguous("version")),
            ),
            (
                "service=WPS&request=Foo",
                Err(RequestError::InvalidKvp {
                    param: "request",
                    value: "foo".into(),
                }),
            ),
            (
                "service=WPS&request=DescribeProcess&identifier=hello",
                Err(RequestError::Missing("version")),
            ),
            (
                "service=WPS&request=Execute&version=2.0.0",
                Err(RequestError::InvalidKvp {
                    param: "version",
                    value: "2.0.0".into(),
                }),
            ),
            (
                "service=WPS&request=GetCapabilities&version=3.0.0",
                Err(RequestError::InvalidKvp {
                    param: "version",
                    value: "3.0.0".into(),
                }),
            ),
            (
                "service=WMS&request=GetMap",
                Err(RequestError::Missing("version")),
            ),
            (
                "service=%57PS&request=GetCapabilities",
                ok(Wps, "getcapabilities", None),
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(&parse_kvp(query), expected, "query {query:?}");
        }
    }

    #[test]
    fn messages_match_the_original() {
        assert_eq!(
            RequestError::Missing("version").to_string(),
            "Parameter \"version\" is missing"
        );
        assert_eq!(
            RequestError::InvalidKvp {
                param: "service",
                value: "wfs".into()
            }
            .to_string(),
            "service wfs is not supported"
        );
        assert_eq!(
            RequestError::InvalidXmlRequest("foo".into()).to_string(),
            "Request type foo is not supported"
        );
    }

    fn scan(xml: &str) -> Result<OwsRequest, RequestError> {
        match scan_xml_root(xml.as_bytes(), true) {
            RootScan::Found(r) => r,
            RootScan::NeedMore => panic!("complete input needs more"),
        }
    }

    const EXECUTE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1"><ows:Identifier>hello</ows:Identifier></wps:Execute>"#;

    #[test]
    fn xml_table() {
        use OwsService::*;
        assert_eq!(scan(EXECUTE), ok(Wps, "execute", Some("1.0.0")));
        assert_eq!(
            scan(
                r#"<wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0"/>"#
            ),
            ok(Wps, "getcapabilities", None)
        );
        assert_eq!(
            scan(r#"<Foo service="WPS" version="1.0.0"/>"#),
            Err(RequestError::InvalidXmlRequest("foo".into()))
        );
        assert_eq!(
            scan(r#"<Execute service="WMS" version="1.0.0"/>"#),
            Err(RequestError::InvalidXmlRequest("execute".into()))
        );
        assert_eq!(
            scan(r#"<Execute service="foo"/>"#),
            Err(RequestError::InvalidXmlService("foo".into()))
        );
        assert_eq!(
            scan(r#"<Execute service="WPS" version="9.9.9"/>"#),
            Err(RequestError::InvalidXmlVersion("9.9.9".into()))
        );
        assert_eq!(
            scan(r#"<Execute version="1.0.0"/>"#),
            Err(RequestError::Missing("service"))
        );
        assert_eq!(
            scan(r#"<Execute service="WPS"/>"#),
            Err(RequestError::Missing("version"))
        );
    }

    #[test]
    fn malformed_bodies_get_short_safe_messages() {
        assert_eq!(
            scan(""),
            Err(RequestError::Malformed("Document is empty".into()))
        );
        assert_eq!(
            scan("  \n"),
            Err(RequestError::Malformed("Document is empty".into()))
        );
        assert_eq!(
            scan("service=WPS&request=Execute"),
            Err(RequestError::Malformed(
                "Start tag expected, '<' not found".into()
            ))
        );
        assert_eq!(
            scan(r#"<wps:Execute service="WPS" version="1.0.0">"#),
            Err(RequestError::Malformed(
                "Namespace prefix wps on Execute is not defined".into()
            ))
        );
        assert!(matches!(scan("<a b='1'"), Err(RequestError::Malformed(_))));
        assert!(matches!(
            scan("<!-- never closed"),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn entities_are_never_expanded() {
        let bomb = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><Execute service="&b;" version="1.0.0"/>"#;
        assert_eq!(scan(bomb), Err(RequestError::Doctype));
    }

    const EXEC: &str = r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"/>"#;
    const CAPS: &str =
        r#"<wps:GetCapabilities service="WPS" xmlns:wps="http://www.opengis.net/wps/1.0.0"/>"#;

    #[test]
    fn markup_hidden_before_the_root_is_not_the_root() {
        use OwsService::*;
        let execute = ok(Wps, "execute", Some("1.0.0"));
        for hidden in [
            format!("<!-- {CAPS} -->{EXEC}"),
            format!("<?pi {CAPS} ?>{EXEC}"),
            format!("<?xml version='1.0'?>\n<!--x-->\n<?a b?>\n{EXEC}\n{CAPS}"),
        ] {
            assert_eq!(scan(&hidden), execute, "{hidden}");
        }
        for doctype in [
            format!("<!DOCTYPE x [<!ENTITY e \"{CAPS}\">]>{EXEC}"),
            format!("<!DOCTYPE x [<!-- > {CAPS} -->]>{EXEC}"),
            format!("<!DOCTYPE x SYSTEM \"a>b\">{EXEC}"),
            format!("<?xml version='1.0'?><!DOCTYPE x>{CAPS}"),
        ] {
            assert_eq!(scan(&doctype), Err(RequestError::Doctype), "{doctype}");
        }
    }

    #[test]
    fn what_a_conforming_parser_refuses_is_refused() {
        for bad in [
            format!("<!-- a -- b -->{EXEC}"),
            format!(" <?xml version='1.0'?>{EXEC}"),
            format!("<!--x--><?xml version='1.0'?>{EXEC}"),
            format!("<?XML version='1.0'?>{EXEC}"),
            format!("&amp;{EXEC}"),
            format!("<![CDATA[x]]>{EXEC}"),
            format!("</x>{EXEC}"),
            r#"<Execute service="WPS" service="WMS" version="1.0.0"/>"#.to_string(),
        ] {
            assert!(
                matches!(scan(&bad), Err(RequestError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn encodings_are_read_as_a_parser_reads_them() {
        use OwsService::*;
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(EXEC.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert!(matches!(
            scan_xml_root(&utf16, true),
            RootScan::Found(Ok(OwsRequest { service: Wps, .. }))
        ));
        let declared = format!("<?xml version='1.0' encoding='UTF-16'?>{EXEC}");
        assert_eq!(scan(&declared), Err(RequestError::Encoding));
        let latin = format!("<?xml version='1.0' encoding='ISO-8859-1'?>{EXEC}");
        assert_eq!(scan(&latin), ok(Wps, "execute", Some("1.0.0")));
        assert_eq!(
            scan_xml_root(b"\x4C\x6F\xA7\x94\x93", true),
            RootScan::Found(Err(RequestError::Encoding))
        );
    }

    #[test]
    fn a_huge_start_tag_is_scanned_in_linear_time() {
        let mut tag = String::from(r#"<Execute service="WPS" version="1.0.0""#);
        for i in 0..100_000 {
            tag.push_str(&format!(" a{i}=\"x\""));
        }
        tag.push_str("/>");
        assert!(tag.len() > 1_000_000);
        // Correctness only; the cost is measured by the parser benchmark.
        assert_eq!(scan(&tag), ok(OwsService::Wps, "execute", Some("1.0.0")));
    }

    #[test]
    fn partial_prefixes_ask_for_more() {
        for cut in 0..EXECUTE.find("><ows:").unwrap() {
            assert_eq!(
                scan_xml_root(&EXECUTE.as_bytes()[..cut], false),
                RootScan::NeedMore,
                "cut {cut}"
            );
        }
        let cut = EXECUTE.find("><ows:").unwrap() + 1;
        assert!(matches!(
            scan_xml_root(&EXECUTE.as_bytes()[..cut], false),
            RootScan::Found(Ok(_))
        ));
    }
}
