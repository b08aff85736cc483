//! Rewriting inside capabilities documents: the `Walker` follows the element structure
//! event by event and replaces the `xlink:href` values of the start tags that need it,
//! directly in the bytes the [`TeeReader`] recorded.

use std::io;
use std::ops::Range;

use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, QName, ResolveResult};

use super::tee::TeeReader;
use super::{DocumentKind, Rewrite, invalid, is_xml_space};

/// Deepest element nesting accepted in a capabilities document (libxml2, which the
/// original used, stops at 256 by default; this is generous but keeps memory bounded).
pub(super) const MAX_DEPTH: usize = 4096;

/// The XLink namespace: only its `href` attribute is rewritten.
const XLINK_NS: &[u8] = b"http://www.w3.org/1999/xlink";
/// OWS namespaces whose `OperationsMetadata` holds the WPS URLs to rewrite.
const OWS_NS: [&[u8]; 3] = [
    b"http://www.opengis.net/ows/1.1",
    b"http://www.opengis.net/ows",
    b"http://www.opengis.net/ows/2.0",
];

/// Tracks where the parser is in the document and rewrites the tags that need it.
pub(super) struct Walker {
    /// Which rewriting applies.
    kind: DocumentKind,
    /// The public URL escaped for a `"`-quoted and a `'`-quoted attribute.
    public_dq: Vec<u8>,
    /// See `public_dq`.
    public_sq: Vec<u8>,
    /// The service URL without trailing `/`, escaped as `public_dq` / `public_sq`.
    service_dq: Vec<u8>,
    /// See `service_dq`.
    service_sq: Vec<u8>,
    /// Raw tag length of each open element, to bound what the parser keeps per level.
    open: Vec<usize>,
    /// Sum of `open`.
    open_bytes: usize,
    /// Largest `open_bytes` allowed (the per-event limit).
    max_open_bytes: usize,
    /// Depth (index in `open`) of the outermost open `ows:OperationsMetadata`.
    ops_start: Option<usize>,
    /// Depth of the outermost open `DCPType` (WFS/WCS 1.0 operation URLs).
    dcp_start: Option<usize>,
    /// The root element has been closed: only whitespace, comments and PIs may follow.
    root_closed: bool,
}

impl Walker {
    /// A walker for a document of `kind` (not `Other`), before the root start tag.
    pub(super) fn new(kind: DocumentKind, rewrite: &Rewrite, max_event: usize) -> Self {
        let public = rewrite.public_url.as_bytes();
        let service = rewrite.service_url.trim_end_matches('/').as_bytes();
        Self {
            kind,
            public_dq: escape_attr(public, b'"'),
            public_sq: escape_attr(public, b'\''),
            service_dq: escape_attr(service, b'"'),
            service_sq: escape_attr(service, b'\''),
            open: Vec::new(),
            open_bytes: 0,
            max_open_bytes: max_event,
            ops_start: None,
            dcp_start: None,
            root_closed: false,
        }
    }

    /// Handles one event after the root start tag; returns whether the document ended.
    pub(super) fn handle(
        &mut self,
        reader: &mut NsReader<TeeReader>,
        event: Event<'_>,
    ) -> io::Result<bool> {
        match event {
            Event::Start(e) => self.element(reader, &e, false)?,
            Event::Empty(e) => self.element(reader, &e, true)?,
            Event::End(_) => {
                // quick-xml has checked that the name matches the open element.
                let len = self
                    .open
                    .pop()
                    .ok_or_else(|| invalid("end tag without start tag"))?;
                self.open_bytes -= len;
                if self.ops_start == Some(self.open.len()) {
                    self.ops_start = None;
                }
                if self.dcp_start == Some(self.open.len()) {
                    self.dcp_start = None;
                }
                self.root_closed = self.open.is_empty();
            }
            Event::Text(text) => {
                if self.root_closed && !text.iter().copied().all(is_xml_space) {
                    return Err(invalid("text after the root element"));
                }
            }
            Event::CData(_) | Event::GeneralRef(_) => {
                if self.root_closed {
                    return Err(invalid("content after the root element"));
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Decl(_) => return Err(invalid("misplaced XML declaration")),
            Event::DocType(_) => return Err(invalid("misplaced DOCTYPE")),
            Event::Eof => {
                if !self.root_closed {
                    return Err(invalid("document ends inside the root element"));
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A start tag (`empty` for `<x/>`): rewrite it if a rule applies, track nesting.
    pub(super) fn element(
        &mut self,
        reader: &mut NsReader<TeeReader>,
        e: &BytesStart<'_>,
        empty: bool,
    ) -> io::Result<()> {
        if self.root_closed {
            return Err(invalid("second root element"));
        }
        let (ns, local) = reader.resolve_element(e.name());
        let local = local.as_ref();
        let applies = match self.kind {
            DocumentKind::WpsCapabilities => self.ops_start.is_some(),
            DocumentKind::WmsCapabilities => local == b"OnlineResource",
            // Any tag may hold a URL below the service URL; only tags with attributes
            // are looked at.
            DocumentKind::OgcCapabilities => e.len() > e.name().as_ref().len(),
            DocumentKind::Other => false,
        };
        let is_ops = local == b"OperationsMetadata"
            && matches!(ns, ResolveResult::Bound(Namespace(uri)) if OWS_NS.contains(&uri));
        let is_dcp = local == b"DCPType";
        if applies {
            let operations = self.ops_start.is_some() || self.dcp_start.is_some();
            let resource_url = local == b"ResourceURL";
            self.rewrite_tag(reader, e, empty, operations, resource_url)?;
        }
        if !empty {
            if self.open.len() >= MAX_DEPTH {
                return Err(invalid(format!("elements nested deeper than {MAX_DEPTH}")));
            }
            self.open_bytes += e.len();
            if self.open_bytes > self.max_open_bytes {
                return Err(invalid("open start tags too large"));
            }
            if is_ops && self.ops_start.is_none() {
                self.ops_start = Some(self.open.len());
            }
            if is_dcp && self.dcp_start.is_none() {
                self.dcp_start = Some(self.open.len());
            }
            self.open.push(e.len());
        } else if self.open.is_empty() {
            // An empty root element: the document body is complete.
            self.root_closed = true;
        }
        Ok(())
    }

    /// Replaces the values of the tag's URL attributes in the recorded bytes: `xlink:href`
    /// (and, in OGC capabilities, WFS 1.0's `onlineResource` and WMTS `template`).
    /// `operations`: the tag lies in an operations section (`OperationsMetadata`,
    /// `DCPType`); `resource_url`: it is a WMTS `ResourceURL`.
    fn rewrite_tag(
        &self,
        reader: &mut NsReader<TeeReader>,
        e: &BytesStart<'_>,
        empty: bool,
        operations: bool,
        resource_url: bool,
    ) -> io::Result<()> {
        // Same checks as lxml would make (quoting, duplicates) before touching anything.
        for attr in e.attributes() {
            attr.map_err(|err| invalid(format!("malformed attribute: {err}")))?;
        }
        let content: &[u8] = e;
        let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
        for span in scan_attributes(content, e.name().as_ref().len())? {
            let (ns, local) = reader.resolve_attribute(QName(&content[span.key.clone()]));
            let local = local.as_ref();
            let is_xlink_href = local == b"href"
                && matches!(ns, ResolveResult::Bound(Namespace(uri)) if uri == XLINK_NS);
            let unqualified = matches!(ns, ResolveResult::Unbound);
            let old = &content[span.value.clone()];
            let value = match self.kind {
                DocumentKind::WpsCapabilities if is_xlink_href => self.public(span.quote).to_vec(),
                DocumentKind::WmsCapabilities if is_xlink_href => self.wms_href(old, span.quote),
                DocumentKind::OgcCapabilities => {
                    let operation_url = operations
                        && (is_xlink_href || (unqualified && local == b"onlineResource"));
                    let below = self.below_service(old, span.quote);
                    if operation_url || (is_xlink_href && below.is_some()) {
                        self.wms_href(old, span.quote)
                    } else if resource_url
                        && unqualified
                        && local == b"template"
                        && let Some(rest) = below
                    {
                        // A URL template (`{TileMatrix}`…): its rest is kept as it is.
                        let mut value = self.public(span.quote).to_vec();
                        value.extend_from_slice(rest);
                        value
                    } else {
                        continue;
                    }
                }
                _ => continue,
            };
            edits.push((span.value, value));
        }
        if edits.is_empty() {
            return Ok(());
        }

        // The tag is the tail of the record: its content, then `>` or `/>`.
        let record = &mut reader.get_mut().record;
        let tail = if empty { 2 } else { 1 };
        let start = record
            .len()
            .checked_sub(content.len() + tail)
            .filter(|&start| record[start..start + content.len()] == *content)
            .ok_or_else(|| invalid("tag bytes not found in the input record"))?;
        let tag = record.split_off(start);
        let mut pos = 0;
        for (range, value) in edits {
            record.extend_from_slice(&tag[pos..range.start]);
            record.extend_from_slice(&value);
            pos = range.end;
        }
        record.extend_from_slice(&tag[pos..]);
        Ok(())
    }
}

impl Walker {
    /// The public URL escaped for `quote`.
    fn public(&self, quote: u8) -> &[u8] {
        if quote == b'"' {
            &self.public_dq
        } else {
            &self.public_sq
        }
    }

    /// The rest of a raw attribute value after the (escaped) service URL, when the value
    /// is the service URL or below it.
    fn below_service<'v>(&self, old: &'v [u8], quote: u8) -> Option<&'v [u8]> {
        let service = if quote == b'"' {
            &self.service_dq
        } else {
            &self.service_sq
        };
        let rest = old.strip_prefix(service.as_slice())?;
        matches!(rest.first(), None | Some(b'/' | b'?' | b'#')).then_some(rest)
    }

    /// A WMS-style rewritten URL: the public URL, the rest of the path when the old value
    /// lay below the service URL (a legend under its path), and the old query. Copied raw:
    /// it was valid inside this very quote.
    fn wms_href(&self, old: &[u8], quote: u8) -> Vec<u8> {
        let mut value = self.public(quote).to_vec();
        if let Some(rest) = self.below_service(old, quote)
            && rest.first() == Some(&b'/')
        {
            let end = rest
                .iter()
                .position(|b| matches!(b, b'?' | b'#'))
                .unwrap_or(rest.len());
            value.extend_from_slice(&rest[..end]);
        }
        if let Some(query) = raw_query(old) {
            value.push(b'?');
            value.extend_from_slice(query);
        }
        value
    }
}

/// Byte ranges of one attribute within a tag's content.
struct AttrSpan {
    /// The qualified name.
    key: Range<usize>,
    /// The value without its quotes.
    value: Range<usize>,
    /// `"` or `'`.
    quote: u8,
}

/// Finds the attributes in `content` (a tag without `<`, `>` and the `/` of `/>`),
/// starting after the element name. The tag has been validated by quick-xml already.
fn scan_attributes(content: &[u8], name_len: usize) -> io::Result<Vec<AttrSpan>> {
    let malformed = || invalid("malformed attribute");
    let skip_space = |mut i: usize| {
        while i < content.len() && is_xml_space(content[i]) {
            i += 1;
        }
        i
    };
    let mut spans = Vec::new();
    let mut i = name_len;
    loop {
        i = skip_space(i);
        if i >= content.len() {
            return Ok(spans);
        }
        let key_start = i;
        while i < content.len() && !is_xml_space(content[i]) && content[i] != b'=' {
            i += 1;
        }
        let key = key_start..i;
        i = skip_space(i);
        if content.get(i) != Some(&b'=') {
            return Err(malformed());
        }
        i = skip_space(i + 1);
        let quote = match content.get(i) {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => return Err(malformed()),
        };
        let value_start = i + 1;
        let len = memchr::memchr(quote, &content[value_start..]).ok_or_else(malformed)?;
        spans.push(AttrSpan {
            key,
            value: value_start..value_start + len,
            quote,
        });
        i = value_start + len + 1;
    }
}

/// The query of a raw (still escaped) URL, as Python's `urlparse(url).query` would see
/// it: after the first `?`, before any `#` fragment; `None` when absent or empty.
fn raw_query(url: &[u8]) -> Option<&[u8]> {
    // A `#` right after `&` starts a character reference (`&#38;`), not a fragment.
    let end = (0..url.len())
        .find(|&i| url[i] == b'#' && (i == 0 || url[i - 1] != b'&'))
        .unwrap_or(url.len());
    let url = &url[..end];
    let query = &url[memchr::memchr(b'?', url)? + 1..];
    (!query.is_empty()).then_some(query)
}

/// Escapes `value` for an attribute quoted with `quote`.
fn escape_attr(value: &[u8], quote: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'"' if quote == b'"' => out.extend_from_slice(b"&quot;"),
            b'\'' if quote == b'\'' => out.extend_from_slice(b"&apos;"),
            // Parsers normalize raw whitespace in attributes; references survive.
            b'\t' => out.extend_from_slice(b"&#9;"),
            b'\n' => out.extend_from_slice(b"&#10;"),
            b'\r' => out.extend_from_slice(b"&#13;"),
            _ => out.push(b),
        }
    }
    out
}
