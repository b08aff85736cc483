//! Streaming rewriting of backend XML responses.
//!
//! When the proxy forwards a request to a WPS/WMS backend and the backend answers with
//! XML, URLs that point at the backend are replaced by the proxy's public URL. The
//! Python Twitcher parsed the whole body with lxml and re-serialized it; this module
//! instead streams: memory stays bounded for arbitrarily large bodies, the first bytes
//! go out before the last ones arrive, and every byte outside a rewritten attribute
//! value is passed through exactly as the backend sent it (declaration, comments,
//! whitespace, quoting, entity references, CDATA, DOCTYPE, non-UTF-8 text).
//!
//! How it works: the body is read through `TeeReader`, an [`AsyncBufRead`] that keeps
//! every byte the XML parser (quick-xml) consumes. After each parser event those recorded bytes
//! *are* the raw text of the event, so they are emitted verbatim; only for a start tag
//! that carries an attribute to rewrite is the value's byte range in the record
//! replaced. The parser's own (normalized) view of the event is used only to decide.
//!
//! Which rewriting applies is decided from the root element ([`DocumentKind`]):
//! - WPS capabilities: `xlink:href` below `ows:OperationsMetadata` becomes the public URL;
//! - WMS capabilities: `xlink:href` on `OnlineResource` becomes the public URL, keeping
//!   the old query string;
//! - anything else: plain byte replacement of the service URL by the public URL, with no
//!   XML parsing after the root start tag.
//!
//! Limits, compared with the original: only the prolog and root start tag of `Other`
//! documents are checked (lxml checked the whole body); capabilities documents are
//! checked as they stream, so a defect after the root start tag ends the output with an
//! error instead of turning into an error response; a prefix left undefined below the
//! root is not an error (it simply matches nothing); UTF-16/32 bodies are `NotXml`.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use memchr::memmem;
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, QName, ResolveResult};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

/// A response body: a stream of byte chunks that may fail with an I/O error.
pub type ByteStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>>;

/// URLs used for rewriting one response.
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// The backend URL as stored for the service, e.g. "http://127.0.0.1:15056/wps".
    pub service_url: String,
    /// The URL clients should use instead, e.g. "http://localhost:8000/ows/proxy/emu".
    pub public_url: String,
    /// Most bytes read before the root element start tag is found (prolog limit); e.g. 1 MiB.
    pub max_prolog: usize,
}

/// Why a body could not be rewritten (before any byte was produced).
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// The body is not XML (syntax error, empty, no root element within max_prolog bytes, undefined namespace prefix on the root).
    #[error("could not decode content")]
    NotXml,
    /// Reading from the backend failed before the root element was seen.
    #[error("reading the backend response failed: {0}")]
    Upstream(std::io::Error),
}

/// Which rewriting applies, decided from the root element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A root whose local name contains `Capabilities` (other than the WMS ones):
    /// `xlink:href` below `ows:OperationsMetadata` is rewritten.
    WpsCapabilities,
    /// `WMT_MS_Capabilities` (WMS 1.1.1) or `WMS_Capabilities` (WMS 1.3.0):
    /// `xlink:href` on `OnlineResource` is rewritten, keeping its query.
    WmsCapabilities,
    /// Any other document: the service URL is replaced byte-wise everywhere.
    Other,
}

/// Largest single XML construct (tag, text node, comment, ...) buffered while
/// rewriting a capabilities document; a larger one ends the stream with an error.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// Deepest element nesting accepted in a capabilities document (libxml2, which the
/// original used, stops at 256 by default; this is generous but keeps memory bounded).
const MAX_DEPTH: usize = 4096;

/// Output is handed on once this many bytes are pending, even if more input is buffered.
const FLUSH_BYTES: usize = 16 * 1024;

const XLINK_NS: &[u8] = b"http://www.w3.org/1999/xlink";
const OWS_NS: [&[u8]; 3] = [
    b"http://www.opengis.net/ows/1.1",
    b"http://www.opengis.net/ows",
    b"http://www.opengis.net/ows/2.0",
];

/// Reads the body up to and including the root element's start tag, decides the kind, and
/// returns the kind plus a stream producing the rewritten body (prefix included).
pub async fn rewrite_xml(
    body: ByteStream,
    rewrite: Rewrite,
) -> Result<(DocumentKind, ByteStream), RewriteError> {
    rewrite_xml_with_limit(body, rewrite, MAX_EVENT_BYTES).await
}

/// [`rewrite_xml`] with a configurable per-event limit (tests use a small one).
async fn rewrite_xml_with_limit(
    body: ByteStream,
    rewrite: Rewrite,
    max_event: usize,
) -> Result<(DocumentKind, ByteStream), RewriteError> {
    let mut reader = NsReader::from_reader(TeeReader::new(body, rewrite.max_prolog));
    // lxml rejects `--` inside comments; the other defaults keep quick-xml strict
    // (end tag names checked, no dangling `&`, nothing trimmed).
    reader.config_mut().check_comments = true;
    let mut buf = Vec::new();

    let bom_len = reader.get_mut().start().await?;
    let mut seen_doctype = false;
    let (kind, walker) = loop {
        reader.get_mut().prolog_gap(&mut seen_doctype).await?;
        let event_start = reader.get_mut().record.len();
        buf.clear();
        let event = match reader.read_event_into_async(&mut buf).await {
            Ok(event) => event,
            Err(_) => return Err(reader.get_mut().prolog_error()),
        };
        let (root, empty) = match event {
            // The declaration must open the document; quick-xml does not check it
            // further, lxml requires a version.
            Event::Decl(decl) if event_start == bom_len && decl.version().is_ok() => (None, false),
            Event::Comment(_) | Event::PI(_) => (None, false),
            Event::Text(text) if text.iter().copied().all(is_xml_space) => (None, false),
            Event::Start(root) => (Some(root), false),
            Event::Empty(root) => (Some(root), true),
            // Text, references or CDATA before the root, a late declaration, a DOCTYPE
            // that `prolog_gap` did not accept, a stray end tag, or the end of input.
            _ => return Err(RewriteError::NotXml),
        };
        let Some(root) = root else { continue };
        let kind = classify_root(&reader, &root)?;
        if kind == DocumentKind::Other {
            break (kind, None);
        }
        let mut walker = Walker::new(kind, &rewrite, max_event);
        // The root never matches a rewrite rule, but it opens the element stack.
        walker
            .element(&mut reader, &root, empty)
            .map_err(|_| RewriteError::NotXml)?;
        break (kind, Some(walker));
    };

    let Some(walker) = walker else {
        // Hand everything consumed so far plus the unread rest to the byte replacer.
        let TeeReader {
            input,
            chunk,
            record,
            ..
        } = reader.into_inner();
        let head = stream::iter([Ok(record.freeze()), Ok(chunk)]);
        let whole: ByteStream = Box::pin(head.chain(input));
        return Ok((kind, replace_stream(whole, &rewrite)));
    };

    // From here on the limit bounds one construct, not the prolog.
    reader.get_mut().limit = max_event;
    let state = CapsState {
        reader,
        buf,
        walker,
        ended: false,
        finished: false,
    };
    Ok((kind, caps_stream(state)))
}

/// Decides the document kind from the root start tag, rejecting undefined prefixes
/// (lxml refuses those, so the original answered "could not decode content").
fn classify_root<R>(
    reader: &NsReader<R>,
    root: &BytesStart<'_>,
) -> Result<DocumentKind, RewriteError> {
    let (ns, local) = reader.resolve_element(root.name());
    if matches!(ns, ResolveResult::Unknown(_)) {
        return Err(RewriteError::NotXml);
    }
    for attr in root.attributes() {
        let attr = attr.map_err(|_| RewriteError::NotXml)?;
        if matches!(
            reader.resolve_attribute(attr.key).0,
            ResolveResult::Unknown(_)
        ) {
            return Err(RewriteError::NotXml);
        }
    }
    let local = local.as_ref();
    Ok(
        if local == b"WMT_MS_Capabilities" || local == b"WMS_Capabilities" {
            DocumentKind::WmsCapabilities
        } else if memmem::find(local, b"Capabilities").is_some() {
            DocumentKind::WpsCapabilities
        } else {
            DocumentKind::Other
        },
    )
}

/// XML's whitespace characters (not Unicode's).
fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

// ---------------------------------------------------------------------------------------
// Input side: a buffered reader that records what the parser consumes.

/// [`AsyncBufRead`] over a [`ByteStream`] that appends every consumed byte to `record`,
/// so the raw bytes of each parser event are available for verbatim output.
struct TeeReader {
    input: ByteStream,
    /// Current input chunk, not yet consumed.
    chunk: Bytes,
    /// Consumed bytes not yet handed to the output.
    record: BytesMut,
    /// Bytes recorded since `base` may not exceed this (prolog limit, then per-event limit).
    limit: usize,
    /// Length of `record` when the current construct started.
    base: usize,
    /// The original error from `input`, kept so callers get it rather than a copy.
    upstream_error: Option<io::Error>,
    eof: bool,
}

impl TeeReader {
    fn new(input: ByteStream, limit: usize) -> Self {
        Self {
            input,
            chunk: Bytes::new(),
            record: BytesMut::new(),
            limit,
            base: 0,
            upstream_error: None,
            eof: false,
        }
    }

    /// Whether `limit` stopped the reader (rather than the input or the parser).
    fn limit_reached(&self) -> bool {
        self.record.len().saturating_sub(self.base) >= self.limit && !self.chunk.is_empty()
    }

    /// Polls the next chunk into `self.chunk`, appending to what is left of the current one.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.input.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => {
                if self.chunk.is_empty() {
                    self.chunk = bytes;
                } else {
                    let mut joined = BytesMut::with_capacity(self.chunk.len() + bytes.len());
                    joined.extend_from_slice(&self.chunk);
                    joined.extend_from_slice(&bytes);
                    self.chunk = joined.freeze();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Some(Err(e))) => {
                // quick-xml wraps the error; keep the original for the caller.
                let copy = io::Error::new(e.kind(), e.to_string());
                self.upstream_error = Some(e);
                Poll::Ready(Err(copy))
            }
            Poll::Ready(None) => {
                self.eof = true;
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// The prolog, as far as it is read without quick-xml.
impl TeeReader {
    /// Maps a failure before the root to the caller's error.
    fn prolog_error(&mut self) -> RewriteError {
        match self.upstream_error.take() {
            Some(e) => RewriteError::Upstream(e),
            // Syntax errors and an over-long prolog alike.
            None => RewriteError::NotXml,
        }
    }

    /// Whether the unconsumed input starts with `pattern`. Reads more only while what
    /// is buffered is a proper prefix of it, so nothing beyond is pulled needlessly.
    async fn starts_with(&mut self, pattern: &[u8]) -> Result<bool, RewriteError> {
        while self.chunk.len() < pattern.len() && pattern.starts_with(&self.chunk) && !self.eof {
            if std::future::poll_fn(|cx| self.poll_chunk(cx))
                .await
                .is_err()
            {
                return Err(self.prolog_error());
            }
        }
        Ok(self.chunk.starts_with(pattern))
    }

    /// Consumes a UTF-8 BOM, returning its length (0 or 3).
    async fn start(&mut self) -> Result<usize, RewriteError> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        let bom = self.starts_with(BOM).await?;
        if bom {
            self.consume_bytes(BOM.len());
        }
        // quick-xml strips a BOM if its first look at the input shows one: let it see a
        // whole one if there is one, so a second BOM is handled alike whatever the chunking.
        self.starts_with(BOM).await?;
        Ok(if bom { BOM.len() } else { 0 })
    }

    fn consume_bytes(&mut self, n: usize) {
        Pin::new(self).consume(n);
    }

    async fn fill(&mut self) -> Result<&[u8], RewriteError> {
        match std::future::poll_fn(|cx| Pin::new(&mut *self).poll_fill_buf(cx).map_ok(|b| b.len()))
            .await
        {
            Ok(n) => Ok(&self.chunk[..n]),
            Err(_) => Err(self.prolog_error()),
        }
    }

    /// Consumes whitespace and a DOCTYPE declaration in the prolog. quick-xml finds the
    /// end of a DOCTYPE by counting `<` and `>`, which goes wrong when the internal
    /// subset has them inside quoted literals or comments, so DOCTYPEs are read here.
    async fn prolog_gap(&mut self, seen_doctype: &mut bool) -> Result<(), RewriteError> {
        while self.prolog_space_and_doctype(seen_doctype).await? {}
        Ok(())
    }

    /// Consumes whitespace, then a DOCTYPE if one follows; returns whether it did.
    async fn prolog_space_and_doctype(
        &mut self,
        seen_doctype: &mut bool,
    ) -> Result<bool, RewriteError> {
        loop {
            let data = self.fill().await?;
            let n = data.iter().take_while(|&&b| is_xml_space(b)).count();
            let all = n == data.len();
            self.consume_bytes(n);
            if n == 0 || !all {
                break;
            }
        }
        const DOCTYPE: &[u8] = b"<!DOCTYPE";
        if !self.starts_with(DOCTYPE).await? {
            return Ok(false);
        }
        self.consume_bytes(DOCTYPE.len());
        let space_follows = self.fill().await?.first().is_some_and(|&b| is_xml_space(b));
        if *seen_doctype || !space_follows {
            return Err(RewriteError::NotXml);
        }
        *seen_doctype = true;
        let mut scanner = DoctypeScanner::Outside;
        loop {
            let data = self.fill().await?;
            if data.is_empty() {
                return Err(RewriteError::NotXml);
            }
            match data.iter().position(|&b| scanner.feed(b)) {
                Some(end) => {
                    self.consume_bytes(end + 1);
                    return Ok(true);
                }
                None => {
                    let n = data.len();
                    self.consume_bytes(n);
                }
            }
        }
    }
}

/// Where a byte of a DOCTYPE declaration (after `<!DOCTYPE`) is.
#[derive(Debug, Clone, Copy)]
enum DoctypeScanner {
    Outside,
    OutsideQuoted(u8),
    Subset,
    SubsetQuoted(u8),
    /// `<`, `<!`, `<!-` seen in the internal subset.
    Lt,
    LtBang,
    LtBangDash,
    Comment,
    CommentDash,
    CommentDashDash,
    Pi,
    PiQuestion,
}

impl DoctypeScanner {
    /// Advances over `b`; true if it is the `>` that ends the declaration.
    fn feed(&mut self, b: u8) -> bool {
        use DoctypeScanner::*;
        *self = match (*self, b) {
            (Outside, b'>') => return true,
            (Outside, b'[') => Subset,
            (Outside, b'"' | b'\'') => OutsideQuoted(b),
            (Outside, _) => Outside,
            (OutsideQuoted(q), _) if b == q => Outside,
            (OutsideQuoted(q), _) => OutsideQuoted(q),
            (Subset, b']') => Outside,
            (Subset, b'"' | b'\'') => SubsetQuoted(b),
            (Subset, b'<') => Lt,
            (Subset, _) => Subset,
            (SubsetQuoted(q), _) if b == q => Subset,
            (SubsetQuoted(q), _) => SubsetQuoted(q),
            (Lt, b'!') => LtBang,
            (Lt, b'?') => Pi,
            (LtBang, b'-') => LtBangDash,
            (LtBangDash, b'-') => Comment,
            // A markup declaration (`<!ENTITY`, ...): its quotes are handled in Subset.
            (Lt | LtBang | LtBangDash, _) => {
                *self = Subset;
                return self.feed(b);
            }
            (Comment, b'-') => CommentDash,
            (CommentDash, b'-') => CommentDashDash,
            (CommentDashDash, b'>') => Subset,
            (CommentDashDash, b'-') => CommentDashDash,
            (Comment | CommentDash | CommentDashDash, _) => Comment,
            (Pi | PiQuestion, b'?') => PiQuestion,
            (PiQuestion, b'>') => Subset,
            (Pi | PiQuestion, _) => Pi,
        };
        false
    }
}

impl AsyncBufRead for TeeReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        while this.chunk.is_empty() && !this.eof {
            if let Err(e) = std::task::ready!(this.poll_chunk(cx)) {
                return Poll::Ready(Err(e));
            }
        }
        let room = this
            .limit
            .saturating_sub(this.record.len().saturating_sub(this.base));
        if room == 0 && !this.chunk.is_empty() {
            return Poll::Ready(Err(invalid(format!(
                "XML construct larger than {} bytes",
                this.limit
            ))));
        }
        let available = this.chunk.len().min(room);
        Poll::Ready(Ok(&this.chunk[..available]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        let amt = amt.min(this.chunk.len());
        this.record.extend_from_slice(&this.chunk[..amt]);
        this.chunk.advance(amt);
    }
}

impl AsyncRead for TeeReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let available = std::task::ready!(self.as_mut().poll_fill_buf(cx))?;
        let n = available.len().min(out.remaining());
        out.put_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------------------
// Capabilities documents: event-by-event pass-through with attribute rewriting.

/// Tracks where the parser is in the document and rewrites the tags that need it.
struct Walker {
    kind: DocumentKind,
    /// The public URL escaped for a `"`-quoted and a `'`-quoted attribute.
    public_dq: Vec<u8>,
    public_sq: Vec<u8>,
    /// Raw tag length of each open element, to bound what the parser keeps per level.
    open: Vec<usize>,
    open_bytes: usize,
    max_open_bytes: usize,
    /// Depth (index in `open`) of the outermost open `ows:OperationsMetadata`.
    ops_start: Option<usize>,
    /// The root element has been closed: only whitespace, comments and PIs may follow.
    root_closed: bool,
}

impl Walker {
    fn new(kind: DocumentKind, rewrite: &Rewrite, max_event: usize) -> Self {
        let public = rewrite.public_url.as_bytes();
        Self {
            kind,
            public_dq: escape_attr(public, b'"'),
            public_sq: escape_attr(public, b'\''),
            open: Vec::new(),
            open_bytes: 0,
            max_open_bytes: max_event,
            ops_start: None,
            root_closed: false,
        }
    }

    /// Handles one event after the root start tag; returns whether the document ended.
    fn handle(&mut self, reader: &mut NsReader<TeeReader>, event: Event<'_>) -> io::Result<bool> {
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
    fn element(
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
            DocumentKind::Other => false,
        };
        let is_ops = local == b"OperationsMetadata"
            && matches!(ns, ResolveResult::Bound(Namespace(uri)) if OWS_NS.contains(&uri));
        if applies {
            self.rewrite_tag(reader, e, empty)?;
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
            self.open.push(e.len());
        } else if self.open.is_empty() {
            // An empty root element: the document body is complete.
            self.root_closed = true;
        }
        Ok(())
    }

    /// Replaces the values of the tag's `xlink:href` attributes in the recorded bytes.
    fn rewrite_tag(
        &self,
        reader: &mut NsReader<TeeReader>,
        e: &BytesStart<'_>,
        empty: bool,
    ) -> io::Result<()> {
        // Same checks as lxml would make (quoting, duplicates) before touching anything.
        for attr in e.attributes() {
            attr.map_err(|err| invalid(format!("malformed attribute: {err}")))?;
        }
        let content: &[u8] = e;
        let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
        for span in scan_attributes(content, e.name().as_ref().len())? {
            let (ns, local) = reader.resolve_attribute(QName(&content[span.key.clone()]));
            let is_xlink_href = local.as_ref() == b"href"
                && matches!(ns, ResolveResult::Bound(Namespace(uri)) if uri == XLINK_NS);
            if !is_xlink_href {
                continue;
            }
            let mut value = match span.quote {
                b'"' => self.public_dq.clone(),
                _ => self.public_sq.clone(),
            };
            if self.kind == DocumentKind::WmsCapabilities {
                // The query is copied raw: it was valid inside this very quote.
                if let Some(query) = raw_query(&content[span.value.clone()]) {
                    value.push(b'?');
                    value.extend_from_slice(query);
                }
            }
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

/// Byte ranges of one attribute within a tag's content.
struct AttrSpan {
    key: Range<usize>,
    /// The value without its quotes.
    value: Range<usize>,
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

/// State of the output stream of a capabilities document.
struct CapsState {
    reader: NsReader<TeeReader>,
    buf: Vec<u8>,
    walker: Walker,
    /// The document ended well; only the pending record remains to be sent.
    ended: bool,
    /// Nothing more to produce.
    finished: bool,
}

impl CapsState {
    /// Produces the next output chunk, reading events until one is due.
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        if self.finished {
            return None;
        }
        loop {
            let tee = self.reader.get_mut();
            // Hand bytes on whenever the next event would have to wait for the backend,
            // so output keeps pace with input; and in bounded pieces otherwise.
            let due = self.ended || tee.record.len() >= FLUSH_BYTES || tee.chunk.is_empty();
            if due && !tee.record.is_empty() {
                return Some(Ok(tee.record.split().freeze()));
            }
            if self.ended {
                self.finished = true;
                return None;
            }
            if let Err(e) = self.step().await {
                self.finished = true;
                return Some(Err(e));
            }
        }
    }

    /// Reads and handles one event.
    async fn step(&mut self) -> io::Result<()> {
        let Self {
            reader,
            buf,
            walker,
            ..
        } = self;
        // Don't keep the memory of one huge event for the rest of the document.
        if buf.capacity() > 4 * FLUSH_BYTES {
            *buf = Vec::new();
        }
        buf.clear();
        let tee = reader.get_mut();
        tee.base = tee.record.len();
        let event = match reader.read_event_into_async(buf).await {
            Ok(event) => event,
            Err(e) => {
                let position = reader.error_position();
                let tee = reader.get_mut();
                if let Some(upstream) = tee.upstream_error.take() {
                    return Err(upstream);
                }
                if tee.limit_reached() {
                    return Err(invalid(format!(
                        "XML construct larger than {} bytes",
                        tee.limit
                    )));
                }
                return Err(invalid(format!("malformed XML at byte {position}: {e}")));
            }
        };
        self.ended = walker.handle(reader, event)?;
        Ok(())
    }
}

/// The output stream of a capabilities document; pulls input only when polled.
fn caps_stream(state: CapsState) -> ByteStream {
    Box::pin(stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    }))
}

// ---------------------------------------------------------------------------------------
// Other documents: plain byte replacement.

/// Replaces every occurrence of the service URL by the public URL, left to right and
/// non-overlapping like Python's `bytes.replace`, holding back just enough bytes between
/// chunks to catch occurrences split across them.
struct Replacer {
    input: ByteStream,
    finder: memmem::Finder<'static>,
    replacement: Bytes,
    /// Tail of the previous data that may start an occurrence (< needle length).
    carry: BytesMut,
    done: bool,
}

impl Replacer {
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        while !self.done {
            match self.input.next().await {
                Some(Ok(chunk)) => {
                    let out = self.feed(chunk);
                    if !out.is_empty() {
                        return Some(Ok(out));
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    if !self.carry.is_empty() {
                        return Some(Ok(self.carry.split().freeze()));
                    }
                }
            }
        }
        None
    }

    /// Processes one chunk; returns the output that is final.
    fn feed(&mut self, chunk: Bytes) -> Bytes {
        let data = if self.carry.is_empty() {
            chunk
        } else {
            self.carry.extend_from_slice(&chunk);
            self.carry.split().freeze()
        };
        let needle_len = self.finder.needle().len();
        let mut out: Option<BytesMut> = None;
        let mut pos = 0;
        for at in self.finder.find_iter(&data) {
            let out = out.get_or_insert_with(|| BytesMut::with_capacity(data.len()));
            out.extend_from_slice(&data[pos..at]);
            out.extend_from_slice(&self.replacement);
            pos = at + needle_len;
        }
        // Every complete occurrence starts before `len - (needle_len - 1)`; what follows
        // (and is not part of a replaced occurrence) might begin one.
        let cut = pos.max(data.len().saturating_sub(needle_len - 1));
        self.carry.extend_from_slice(&data[cut..]);
        match out {
            Some(mut out) => {
                out.extend_from_slice(&data[pos..cut]);
                out.freeze()
            }
            None => data.slice(..cut),
        }
    }
}

/// The output stream of an `Other` document.
fn replace_stream(input: ByteStream, rewrite: &Rewrite) -> ByteStream {
    if rewrite.service_url.is_empty() {
        return input;
    }
    let replacer = Replacer {
        input,
        finder: memmem::Finder::new(rewrite.service_url.as_bytes()).into_owned(),
        replacement: Bytes::copy_from_slice(rewrite.public_url.as_bytes()),
        carry: BytesMut::new(),
        done: false,
    };
    Box::pin(stream::unfold(replacer, |mut replacer| async move {
        let item = replacer.next_chunk().await?;
        Some((item, replacer))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // Backend documents from the original's recordings (see fixtures/capabilities): the
    // `-proxied` files are what the Python Twitcher sent to the client. The WMS, `other`
    // and `helper-caps` backend bodies were rebuilt from the proxied ones by putting the
    // backend URL back (the recordings only hold the proxied form).
    const EMU: &[u8] = include_bytes!("../../fixtures/capabilities/emu-getcaps.xml");
    const EMU_PROXIED_T06: &[u8] =
        include_bytes!("../../fixtures/capabilities/emu-getcaps-proxied-t06.xml");
    const HELPER_CAPS: &[u8] = include_bytes!("../../fixtures/capabilities/helper-caps.xml");
    const HELPER_CAPS_PROXIED: &[u8] =
        include_bytes!("../../fixtures/capabilities/helper-caps-proxied.xml");
    const WMS111: &[u8] = include_bytes!("../../fixtures/capabilities/wms111.xml");
    const WMS111_PROXIED: &[u8] = include_bytes!("../../fixtures/capabilities/wms111-proxied.xml");
    const WMS130: &[u8] = include_bytes!("../../fixtures/capabilities/wms130.xml");
    const WMS130_PROXIED: &[u8] = include_bytes!("../../fixtures/capabilities/wms130-proxied.xml");
    const OTHER: &[u8] = include_bytes!("../../fixtures/capabilities/other.xml");
    const OTHER_PROXIED: &[u8] = include_bytes!("../../fixtures/capabilities/other-proxied.xml");

    const EMU_SERVICE: &str = "http://127.0.0.1:15060/wps";
    const EMU_PUBLIC: &str = "http://127.0.0.1:18060/ows/proxy/emu";

    fn rw(service_url: &str, public_url: &str) -> Rewrite {
        Rewrite {
            service_url: service_url.to_owned(),
            public_url: public_url.to_owned(),
            max_prolog: 1024 * 1024,
        }
    }

    fn body(parts: Vec<Bytes>) -> ByteStream {
        Box::pin(stream::iter(parts.into_iter().map(Ok)))
    }

    fn with_error(parts: Vec<Bytes>, error: io::Error) -> ByteStream {
        let items = parts.into_iter().map(Ok).chain([Err(error)]);
        Box::pin(stream::iter(items.collect::<Vec<_>>()))
    }

    fn split(data: &[u8], mut size: impl FnMut() -> usize) -> Vec<Bytes> {
        let mut parts = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = size().min(rest.len());
            parts.push(Bytes::copy_from_slice(&rest[..n]));
            rest = &rest[n..];
        }
        parts
    }

    /// Chunk sizes from 0 (empty chunks must be harmless) to 40, reproducibly.
    fn random_sizes(seed: u64) -> impl FnMut() -> usize {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 41) as usize
        }
    }

    /// The ways a body is cut into chunks in the tests.
    fn chunkings(data: &[u8]) -> Vec<(String, Vec<Bytes>)> {
        let mut all = vec![
            ("whole".to_owned(), vec![Bytes::copy_from_slice(data)]),
            ("1-byte".to_owned(), split(data, || 1)),
            ("7-byte".to_owned(), split(data, || 7)),
        ];
        for seed in 1..=3 {
            all.push((format!("random-{seed}"), split(data, random_sizes(seed))));
        }
        all
    }

    /// Collects a stream; an error must be its last item.
    async fn collect(mut out: ByteStream) -> (Vec<u8>, Option<io::Error>) {
        let mut data = Vec::new();
        while let Some(item) = out.next().await {
            match item {
                Ok(bytes) => data.extend_from_slice(&bytes),
                Err(e) => {
                    assert!(out.next().await.is_none(), "stream goes on after an error");
                    return (data, Some(e));
                }
            }
        }
        (data, None)
    }

    async fn rewrite_ok(parts: Vec<Bytes>, rewrite: Rewrite) -> (DocumentKind, Vec<u8>) {
        let (kind, out) = rewrite_xml(body(parts), rewrite).await.expect("rewritable");
        let (data, error) = collect(out).await;
        assert!(error.is_none(), "unexpected stream error: {error:?}");
        (kind, data)
    }

    /// Rewrites `data` cut in every way of [`chunkings`], checks that all agree.
    async fn rewrite_every_way(data: &[u8], rewrite: &Rewrite) -> (DocumentKind, Vec<u8>) {
        let mut first: Option<(DocumentKind, Vec<u8>)> = None;
        for (name, parts) in chunkings(data) {
            let got = rewrite_ok(parts, rewrite.clone()).await;
            match &first {
                None => first = Some(got),
                Some(expected) => assert!(got == *expected, "{name} chunking differs"),
            }
        }
        first.expect("at least one chunking")
    }

    /// `bytes.replace(from, to)` as Python does it: left to right, non-overlapping.
    fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = haystack;
        while let Some(at) = memmem::find(rest, from) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(to);
            rest = &rest[at + from.len()..];
        }
        out.extend_from_slice(rest);
        out
    }

    fn count(haystack: &[u8], needle: &[u8]) -> usize {
        memmem::find_iter(haystack, needle).count()
    }

    /// Elements, sorted attributes (unescaped) and text of the root element, to compare
    /// documents as XML rather than as bytes (lxml re-serialized the original's output).
    fn normalize(xml: &[u8]) -> Vec<String> {
        fn lossy(bytes: &[u8]) -> String {
            String::from_utf8_lossy(bytes).into_owned()
        }
        fn start(e: &BytesStart<'_>) -> String {
            let mut attrs: Vec<String> = e
                .attributes()
                .map(|a| {
                    let a = a.expect("attribute");
                    let value = a.unescape_value().expect("attribute value");
                    format!("{}={value}", lossy(a.key.as_ref()))
                })
                .collect();
            attrs.sort();
            format!("<{} {}>", lossy(e.name().as_ref()), attrs.join(" "))
        }
        let mut reader = quick_xml::Reader::from_reader(xml);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let mut text = String::new();
        let mut depth = 0usize;
        loop {
            let event = reader.read_event_into(&mut buf).expect("well-formed XML");
            if matches!(event, Event::Start(_) | Event::Empty(_) | Event::End(_))
                && !text.is_empty()
            {
                out.push(std::mem::take(&mut text));
            }
            match event {
                Event::Start(e) => {
                    out.push(start(&e));
                    depth += 1;
                }
                Event::Empty(e) => {
                    out.push(start(&e));
                    out.push("</>".to_owned());
                }
                Event::End(_) => {
                    out.push("</>".to_owned());
                    depth -= 1;
                }
                Event::Text(t) if depth > 0 => text.push_str(&lossy(&t)),
                Event::CData(c) if depth > 0 => text.push_str(&lossy(&c)),
                Event::GeneralRef(r) if depth > 0 => match r.resolve_char_ref() {
                    Ok(Some(c)) => text.push(c),
                    _ => text.push_str(match &*r {
                        b"amp" => "&",
                        b"lt" => "<",
                        b"gt" => ">",
                        b"quot" => "\"",
                        b"apos" => "'",
                        other => panic!("unexpected entity {}", lossy(other)),
                    }),
                },
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        out
    }

    /// A WPS capabilities document exercising what must pass unchanged: BOM, declaration
    /// in single quotes, CRLF, comments, DOCTYPE with an internal subset (an entity, a
    /// `>` inside a quoted default), PI, ISO-8859-1 bytes, entity and character
    /// references, CDATA, odd spacing in tags, `/>` after spaces, an end tag with a
    /// space, and an xlink prefix that is not `xlink`.
    fn torture() -> Vec<u8> {
        [
            &b"\xEF\xBB\xBF<?xml version='1.0' encoding='ISO-8859-1'?>\r\n"[..],
            b"<!-- head comment -->\r\n",
            b"<!DOCTYPE wps:Capabilities [\r\n  <!ENTITY backend \"http://backend/wps\">\r\n",
            b"  <!ATTLIST ows:Get note CDATA \"a>b\">\r\n]>\r\n",
            b"<?pi some data?>\r\n",
            b"<wps:Capabilities xmlns:wps='http://www.opengis.net/wps/1.0.0' ",
            b"xmlns:ows=\"http://www.opengis.net/ows/1.1\" xmlns:xl='http://www.w3.org/1999/xlink' >\r\n",
            b"  <ows:ServiceIdentification><ows:Title>Caf\xE9 &amp; &backend; &#233;</ows:Title>",
            b"<ows:Abstract><![CDATA[<x xl:href=\"http://backend/wps\"> & ]]></ows:Abstract>",
            b"</ows:ServiceIdentification>\r\n",
            b"  <ows:ServiceProvider><ows:ProviderSite xl:href='http://backend/site'/></ows:ServiceProvider>\r\n",
            b"  <ows:OperationsMetadata xl:href=\"http://backend/self\">\r\n",
            b"    <!-- comment inside -->\r\n",
            b"    <ows:Operation name=\"GetCapabilities\"><ows:DCP><ows:HTTP>\r\n",
            b"      <ows:Get   xl:type = 'simple' title='caf\xE9'  xl:href = 'http://backend/wps?a=1&amp;b=2'   />\r\n",
            b"      <ows:Post xl:href=\"http://backend/wps\" data=\"&quot;q&quot;\"></ows:Post >\r\n",
            b"    </ows:HTTP></ows:DCP></ows:Operation>\r\n",
            b"  </ows:OperationsMetadata >\r\n",
            b"  <wps:ProcessOfferings><wps:Process><ows:Metadata xl:href=\"http://backend/doc\"/>",
            b"</wps:Process></wps:ProcessOfferings>\r\n",
            b"</wps:Capabilities>\r\n<!-- trailing -->\r\n",
        ]
        .concat()
    }

    /// A public URL with every character that needs escaping in an attribute.
    const AWKWARD_PUBLIC: &str = "http://proxy/p?a='1'&b=\"2\"<";
    const AWKWARD_DQ: &[u8] = b"http://proxy/p?a='1'&amp;b=&quot;2&quot;&lt;";
    const AWKWARD_SQ: &[u8] = b"http://proxy/p?a=&apos;1&apos;&amp;b=\"2\"&lt;";

    #[tokio::test]
    async fn emu_caps_only_operations_metadata_hrefs_change() {
        let (kind, out) = rewrite_every_way(EMU, &rw(EMU_SERVICE, EMU_PUBLIC)).await;
        assert_eq!(kind, DocumentKind::WpsCapabilities);
        let old = format!("xlink:href=\"{EMU_SERVICE}\"");
        let new = format!("xlink:href=\"{EMU_PUBLIC}\"");
        assert_eq!(count(EMU, old.as_bytes()), 5);
        // Byte identity everywhere else: declaration, PyWPS comment, multi-line tags.
        assert_eq!(out, replace_all(EMU, old.as_bytes(), new.as_bytes()));
        assert!(
            out.starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- PyWPS 4.6.0 -->\n")
        );
        assert_eq!(count(&out, b"https://emu.readthedocs.org/en/latest/"), 1);
    }

    #[tokio::test]
    async fn emu_caps_equal_the_original_twitcher_output_as_xml() {
        // The rule ignores service_url: a different one must not matter.
        let (_, out) = rewrite_ok(
            vec![Bytes::from_static(EMU)],
            rw("http://elsewhere/", EMU_PUBLIC),
        )
        .await;
        assert_eq!(normalize(&out), normalize(EMU_PROXIED_T06));
        assert_ne!(normalize(EMU), normalize(EMU_PROXIED_T06));
    }

    #[tokio::test]
    async fn emu_operations_metadata_snapshot() {
        let (_, out) = rewrite_ok(vec![Bytes::from_static(EMU)], rw(EMU_SERVICE, EMU_PUBLIC)).await;
        let start = memmem::find(&out, b"<ows:OperationsMetadata>").expect("section start");
        let end_tag = b"</ows:OperationsMetadata>";
        let end = memmem::find(&out, end_tag).expect("section end") + end_tag.len();
        let section = String::from_utf8(out[start..end].to_vec()).expect("UTF-8");
        insta::assert_snapshot!("emu_operations_metadata", section);
    }

    #[tokio::test]
    async fn torture_document_is_byte_identical_outside_rewritten_values() {
        let input = torture();
        let (kind, out) =
            rewrite_every_way(&input, &rw("http://backend/wps", AWKWARD_PUBLIC)).await;
        assert_eq!(kind, DocumentKind::WpsCapabilities);
        let get_old: &[u8] = b"xl:href = 'http://backend/wps?a=1&amp;b=2'";
        let post_old: &[u8] = b"<ows:Post xl:href=\"http://backend/wps\"";
        let get_new = [&b"xl:href = '"[..], AWKWARD_SQ, b"'"].concat();
        let post_new = [&b"<ows:Post xl:href=\""[..], AWKWARD_DQ, b"\""].concat();
        let expected = replace_all(&replace_all(&input, get_old, &get_new), post_old, &post_new);
        assert_ne!(expected, input);
        // Untouched: the CDATA look-alike, hrefs outside OperationsMetadata and the
        // href on OperationsMetadata itself (only descendants are rewritten).
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn doctype_is_passed_through_and_never_expanded() {
        let docs: [&[u8]; 3] = [
            b"<!DOCTYPE Capabilities SYSTEM \"http://x/a>b.dtd\">\n<Capabilities/>",
            // `>`, `]` and quotes inside comments, PIs and literals of the internal subset.
            b"<!DOCTYPE Capabilities [<!-- ]> <!ENTITY no \"x\"> -->\n<!ENTITY lt2 \"&#60;\">\
              <!ENTITY q '\"<>'><?pi ]> ?>]>\n<Capabilities>&q;&lt2;</Capabilities>",
            b"<?xml version=\"1.0\"?><!DOCTYPE Capabilities[]><!-- c --><Capabilities>&amp;</Capabilities>",
        ];
        for doc in docs {
            let (kind, out) = rewrite_every_way(doc, &rw("http://unused/", "http://p/")).await;
            assert_eq!(kind, DocumentKind::WpsCapabilities);
            assert_eq!(out, doc);
        }
        let not_xml: [&[u8]; 5] = [
            b"<!doctype a><a/>",
            b"<!DOCTYPEa><a/>",
            b"<!DOCTYPE a [<!ENTITY x \"y>]><a/>",
            b"<!DOCTYPE a [ ]",
            b"<Capabilities/><!DOCTYPE a>",
        ];
        for doc in not_xml {
            for (name, parts) in chunkings(doc) {
                let result = rewrite_xml(body(parts), rw("http://unused/", "http://p/")).await;
                let result = match result {
                    // The last case only fails after the root, in the output stream.
                    Ok((_, out)) if doc.starts_with(b"<Capabilities/>") => {
                        collect(out).await.1.map(|_| ()).ok_or(())
                    }
                    Ok(_) => Err(()),
                    Err(RewriteError::NotXml) => Ok(()),
                    Err(_) => Err(()),
                };
                assert!(
                    result.is_ok(),
                    "{:?} ({name})",
                    String::from_utf8_lossy(doc)
                );
            }
        }
    }

    #[tokio::test]
    async fn wms_111_and_130_match_the_recordings() {
        let cases = [
            (
                WMS111,
                WMS111_PROXIED,
                "http://127.0.0.1:15156/wms111",
                "http://127.0.0.1:18056/ows/proxy/p_wms111",
            ),
            (
                WMS130,
                WMS130_PROXIED,
                "http://127.0.0.1:15156/wms130",
                "http://127.0.0.1:18056/ows/proxy/p_wms130",
            ),
        ];
        for (input, proxied, service, public) in cases {
            let (kind, out) = rewrite_every_way(input, &rw(service, public)).await;
            assert_eq!(kind, DocumentKind::WmsCapabilities);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(proxied)
            );
        }
    }

    #[tokio::test]
    async fn wms_hrefs_keep_their_raw_query() {
        let input = [
            &b"<WMT_MS_Capabilities xmlns:xlink=\"http://www.w3.org/1999/xlink\" version=\"1.1.1\">\n"[..],
            b"<Service><OnlineResource xlink:href='http://b/wms?SERVICE=WMS&amp;x=&apos;1&apos;#frag'/></Service>\n",
            b"<OnlineResource xlink:href=\"http://b/wms?\"/>\n",
            b"<OnlineResource xlink:href=\"http://b/wms#f?not-a-query\"/>\n",
            b"<OnlineResource xlink:href=\"http://b/wms?a=1&#38;b=2#top\"></OnlineResource>\n",
            b"<OnlineResource href=\"http://b/wms?plain\"/>\n",
            b"<Other xlink:href=\"http://b/wms?other\"/>\n",
            b"</WMT_MS_Capabilities>\n",
        ]
        .concat();
        let expected = [
            &b"<WMT_MS_Capabilities xmlns:xlink=\"http://www.w3.org/1999/xlink\" version=\"1.1.1\">\n"[..],
            b"<Service><OnlineResource xlink:href='http://proxy/w?SERVICE=WMS&amp;x=&apos;1&apos;'/></Service>\n",
            b"<OnlineResource xlink:href=\"http://proxy/w\"/>\n",
            b"<OnlineResource xlink:href=\"http://proxy/w\"/>\n",
            b"<OnlineResource xlink:href=\"http://proxy/w?a=1&#38;b=2\"></OnlineResource>\n",
            b"<OnlineResource href=\"http://b/wms?plain\"/>\n",
            b"<Other xlink:href=\"http://b/wms?other\"/>\n",
            b"</WMT_MS_Capabilities>\n",
        ]
        .concat();
        let (kind, out) = rewrite_every_way(&input, &rw("http://b/wms", "http://proxy/w")).await;
        assert_eq!(kind, DocumentKind::WmsCapabilities);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );

        // WMS 1.3.0 with a prefixed WMS namespace and the escaping of the public URL.
        let input = b"<w:WMS_Capabilities xmlns:w=\"http://www.opengis.net/wms\" \
            xmlns:xlink=\"http://www.w3.org/1999/xlink\"><w:OnlineResource \
            xlink:href=\"http://b/wms?SERVICE=WMS&amp;\"/></w:WMS_Capabilities>";
        let (kind, out) = rewrite_every_way(input, &rw("http://b/wms", AWKWARD_PUBLIC)).await;
        assert_eq!(kind, DocumentKind::WmsCapabilities);
        let href = [&b"xlink:href=\""[..], AWKWARD_DQ, b"?SERVICE=WMS&amp;\""].concat();
        assert_eq!(
            out,
            replace_all(
                input,
                b"xlink:href=\"http://b/wms?SERVICE=WMS&amp;\"",
                &href
            )
        );
    }

    #[tokio::test]
    async fn xlink_is_recognized_by_namespace_not_prefix() {
        let input = b"<Capabilities xmlns:ows=\"http://www.opengis.net/ows/1.1\" \
            xmlns:l=\"http://www.w3.org/1999/xlink\"><ows:OperationsMetadata>\
            <ows:Get l:href=\"http://b/1\"/>\
            <ows:HTTP xmlns:xlink=\"urn:not-xlink\"><ows:Get xlink:href=\"http://b/2\"/></ows:HTTP>\
            <ows:HTTP xmlns:q=\"http://www.w3.org/1999/xlink\"><ows:Post q:href='http://b/3'/></ows:HTTP>\
            <ows:Get href=\"http://b/4\"/>\
            <ows:Get xmlns:l=\"urn:rebound\" l:href=\"http://b/5\"/>\
            </ows:OperationsMetadata></Capabilities>";
        let expected = replace_all(
            &replace_all(input, b"l:href=\"http://b/1\"", b"l:href=\"http://p\""),
            b"q:href='http://b/3'",
            b"q:href='http://p'",
        );
        let (kind, out) = rewrite_every_way(input, &rw("http://b", "http://p")).await;
        assert_eq!(kind, DocumentKind::WpsCapabilities);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }

    #[tokio::test]
    async fn hrefs_outside_ows_operations_metadata_are_untouched() {
        // Recording: the `<Other xlink:href>` after OperationsMetadata kept its value.
        let (kind, out) = rewrite_every_way(
            HELPER_CAPS,
            &rw(
                "http://127.0.0.1:15160/h/caps",
                "http://127.0.0.1:18060/ows/proxy/helper",
            ),
        )
        .await;
        assert_eq!(kind, DocumentKind::WpsCapabilities);
        assert_eq!(out, HELPER_CAPS_PROXIED);

        // OperationsMetadata counts only in an OWS namespace (all three versions); the
        // rewritten scope ends with it, and nested occurrences don't end it early.
        let input = b"<x:WCS_Capabilities xmlns:x=\"urn:x\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">\
            <f:OperationsMetadata xmlns:f=\"urn:foreign\"><a xlink:href=\"http://b/1\"/></f:OperationsMetadata>\
            <OperationsMetadata><a xlink:href=\"http://b/2\"/></OperationsMetadata>\
            <o:OperationsMetadata xmlns:o=\"http://www.opengis.net/ows\"><a xlink:href=\"http://b/3\"/>\
            <o:OperationsMetadata><a xlink:href=\"http://b/4\"/></o:OperationsMetadata>\
            <deep><deeper xlink:href=\"http://b/5\"/></deep></o:OperationsMetadata>\
            <a xlink:href=\"http://b/6\"/>\
            <OperationsMetadata xmlns=\"http://www.opengis.net/ows/2.0\"><a xlink:href=\"http://b/7\"/></OperationsMetadata>\
            <a xlink:href=\"http://b/8\"/></x:WCS_Capabilities>";
        let mut expected = input.to_vec();
        for n in [3, 4, 5, 7] {
            let old = format!("xlink:href=\"http://b/{n}\"");
            expected = replace_all(&expected, old.as_bytes(), b"xlink:href=\"http://p\"");
        }
        let (kind, out) = rewrite_every_way(input, &rw("http://b", "http://p")).await;
        assert_eq!(kind, DocumentKind::WpsCapabilities);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }

    #[tokio::test]
    async fn document_kind_comes_from_the_root_local_name() {
        let cases: [(&[u8], DocumentKind); 6] = [
            (b"<WMT_MS_Capabilities/>", DocumentKind::WmsCapabilities),
            (
                b"<w:WMS_Capabilities xmlns:w='urn:w'/>",
                DocumentKind::WmsCapabilities,
            ),
            (
                b"<wps:Capabilities xmlns:wps='urn:wps'/>",
                DocumentKind::WpsCapabilities,
            ),
            (b"<WFS_Capabilities/>", DocumentKind::WpsCapabilities),
            (b"<ExceptionReport/>", DocumentKind::Other),
            (b"<capabilities/>", DocumentKind::Other),
        ];
        for (input, kind) in cases {
            let (got, out) = rewrite_ok(
                vec![Bytes::from_static(input)],
                rw("http://unused/", "http://p/"),
            )
            .await;
            assert_eq!(got, kind, "{}", String::from_utf8_lossy(input));
            assert_eq!(out, input);
        }
    }

    #[tokio::test]
    async fn other_documents_get_plain_replacement() {
        // Recording: the service URL was replaced in text and attributes alike, and
        // another URL on the same backend was not.
        let (kind, out) = rewrite_every_way(
            OTHER,
            &rw(
                "http://127.0.0.1:15156/xmliso",
                "http://127.0.0.1:18056/ows/proxy/p_xmliso",
            ),
        )
        .await;
        assert_eq!(kind, DocumentKind::Other);
        assert_eq!(out, OTHER_PROXIED);
    }

    #[tokio::test]
    async fn other_replacement_across_chunk_boundaries() {
        // A self-overlapping needle, occurrences in the prolog, the root tag, at the very
        // end, back to back, and near misses; after the root nothing is parsed.
        let service = "abcabd";
        let input = b"<?xml version=\"1.0\"?><!-- abcabd --><doc a='abcabd'>abcabcabd abcab \
            abcabdabcabd aabcabdd abcabcab</wrong>&&abcabd";
        for public in ["X", "longer-replacement-&", ""] {
            let expected = replace_all(input, service.as_bytes(), public.as_bytes());
            let mut parts = chunkings(input);
            parts.extend((1..=20).map(|n| (format!("{n}-byte"), split(input, || n))));
            for (name, parts) in parts {
                let (kind, out) = rewrite_ok(parts, rw(service, public)).await;
                assert_eq!(kind, DocumentKind::Other);
                assert_eq!(out, expected, "{name} chunking, public {public:?}");
            }
        }
        // An empty service URL changes nothing.
        let (_, out) = rewrite_every_way(input, &rw("", "http://p")).await;
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn other_replacement_matches_naive_replace_on_random_input() {
        let mut next = random_sizes(42);
        for round in 0..300 {
            let needle = ["a", "aa", "aab", "abab", "abcab"][round % 5];
            let public = ["X", "", "aab-longer"][round % 3];
            let mut input = b"<r>".to_vec();
            let len = next() * 5;
            input.extend((0..len).map(|_| b"abc"[next() % 3]));
            let expected = replace_all(&input, needle.as_bytes(), public.as_bytes());
            let parts = split(&input, random_sizes(round as u64 + 1));
            let (kind, out) = rewrite_ok(parts, rw(needle, public)).await;
            assert_eq!(kind, DocumentKind::Other);
            assert_eq!(
                out,
                expected,
                "needle {needle:?} in {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[tokio::test]
    async fn not_xml_before_the_root() {
        let cases: &[&[u8]] = &[
            b"",
            b"  \r\n\t",
            b"hello",
            b"{\"json\": true}",
            b"<?xml version=\"1.0\"?>\n<!-- only a prolog -->\n",
            b"<!-- unclosed comment",
            b"<!-- double -- hyphen --><a/>",
            b"\n<?xml version=\"1.0\"?><a/>",
            b"<?xml encoding=\"UTF-8\"?><a/>",
            b"<!DOCTYPE a><!DOCTYPE a><a/>",
            b"</a>",
            b"<![CDATA[x]]><a/>",
            b"&amp;<a/>",
            b"text<a/>",
            b"<x:Capabilities/>",
            b"<Capabilities y:attr=\"1\"/>",
            b"<Capabilities attr=unquoted/>",
            b"<Capabilities a='1' a='2'/>",
            b"<Capabilities",
            b"\xEF\xBB\xBF",
            b"\xFF\xFE<\0a\0/\0>\0",
        ];
        for &input in cases {
            for (name, parts) in chunkings(input) {
                let result = rewrite_xml(body(parts), rw("http://unused/", "http://p/")).await;
                assert!(
                    matches!(result, Err(RewriteError::NotXml)),
                    "{:?} ({name}): {:?}",
                    String::from_utf8_lossy(input),
                    result.map(|(kind, _)| kind)
                );
            }
        }
        // Only empty chunks.
        let result = rewrite_xml(
            body(vec![Bytes::new(), Bytes::new()]),
            rw("http://unused/", "http://p/"),
        )
        .await;
        assert!(matches!(result, Err(RewriteError::NotXml)));
        assert_eq!(RewriteError::NotXml.to_string(), "could not decode content");
    }

    #[tokio::test]
    async fn prolog_limit_counts_bytes_up_to_the_root_start_tag() {
        for root in [&b"<wps:Capabilities xmlns:wps='urn:wps'>"[..], b"<doc>"] {
            let prolog = [
                &b"<?xml version=\"1.0\"?>\n<!-- "[..],
                &[b'x'; 200],
                b" -->\n",
            ]
            .concat();
            let head = [&prolog[..], root].concat();
            let input = [
                &head[..],
                b"text</",
                &root[1..root
                    .iter()
                    .position(|&b| b == b' ' || b == b'>')
                    .unwrap_or(1)],
                b">",
            ]
            .concat();
            for (name, parts) in chunkings(&input) {
                let mut exact = rw("http://unused/", "http://p/");
                exact.max_prolog = head.len();
                let (_, out) = rewrite_ok(parts.clone(), exact.clone()).await;
                assert_eq!(out, input, "{name}");
                exact.max_prolog = head.len() - 1;
                let result = rewrite_xml(body(parts), exact).await;
                assert!(matches!(result, Err(RewriteError::NotXml)), "{name}");
            }
        }
    }

    #[tokio::test]
    async fn upstream_error_before_the_root() {
        let reset = || io::Error::new(io::ErrorKind::ConnectionReset, "backend went away");
        for parts in [
            vec![],
            vec![Bytes::from_static(b"<?xml version=\"1.0\"?>\n<wps:Capa")],
        ] {
            match rewrite_xml(
                with_error(parts, reset()),
                rw("http://unused/", "http://p/"),
            )
            .await
            {
                Err(RewriteError::Upstream(e)) => {
                    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
                    assert_eq!(e.to_string(), "backend went away");
                }
                other => panic!("expected Upstream, got {:?}", other.map(|(kind, _)| kind)),
            }
        }
    }

    #[tokio::test]
    async fn errors_after_the_root_end_the_stream() {
        const ROOT: &str = "<wps:Capabilities xmlns:wps=\"urn:wps\" \
            xmlns:ows=\"http://www.opengis.net/ows/1.1\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">";
        let malformed = [
            format!("{ROOT}<a></b></wps:Capabilities>"),
            format!("{ROOT}<a>text"),
            format!("{ROOT}<a>a & b</a></wps:Capabilities>"),
            format!("{ROOT}</wps:Capabilities><second/>"),
            format!("{ROOT}</wps:Capabilities>junk"),
            format!("{ROOT}<?xml version=\"1.0\"?></wps:Capabilities>"),
            format!(
                "{ROOT}<ows:OperationsMetadata><g xlink:href=nope/></ows:OperationsMetadata></wps:Capabilities>"
            ),
            format!("{ROOT}<!-- a -- b --></wps:Capabilities>"),
        ];
        for input in &malformed {
            for (name, parts) in chunkings(input.as_bytes()) {
                let (kind, out) = rewrite_xml(body(parts), rw("http://unused/", "http://p/"))
                    .await
                    .expect("root is fine");
                assert_eq!(kind, DocumentKind::WpsCapabilities);
                let (data, error) = collect(out).await;
                let error = error.unwrap_or_else(|| panic!("no error for {input} ({name})"));
                assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{input}");
                assert!(
                    input.as_bytes().starts_with(&data),
                    "output is not a prefix: {input}"
                );
            }
        }

        // A connection drop after the root reaches the client as that same error.
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "backend went away");
        let parts = vec![Bytes::from(format!("{ROOT}<a>"))];
        let (_, out) = rewrite_xml(
            with_error(parts.clone(), reset),
            rw("http://unused/", "http://p/"),
        )
        .await
        .expect("root");
        let (data, error) = collect(out).await;
        let error = error.expect("error");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(error.to_string(), "backend went away");
        assert_eq!(data, parts[0]);

        // Other documents are not parsed after the root: only input errors end them.
        let (kind, out) = rewrite_xml(
            body(vec![Bytes::from_static(b"<a>x</b>&")]),
            rw("http://unused/", "http://p/"),
        )
        .await
        .expect("root");
        assert_eq!(kind, DocumentKind::Other);
        assert_eq!(collect(out).await.0, b"<a>x</b>&");
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "gone");
        let (_, out) = rewrite_xml(
            with_error(vec![Bytes::from_static(b"<a>x")], reset),
            rw("http://unused/", "http://p/"),
        )
        .await
        .expect("root");
        assert_eq!(
            collect(out).await.1.map(|e| e.kind()),
            Some(io::ErrorKind::ConnectionReset)
        );
    }

    #[tokio::test]
    async fn oversized_event_ends_the_stream() {
        let root = "<Capabilities>";
        let big = format!("{root}<a>{}</a></Capabilities>", "x".repeat(4096));
        let many_small = format!("{root}{}</Capabilities>", "<a>xxxx</a>".repeat(1000));
        for (name, parts) in chunkings(big.as_bytes()) {
            let (_, out) =
                rewrite_xml_with_limit(body(parts), rw("http://unused/", "http://p/"), 1024)
                    .await
                    .expect("root");
            let (_, error) = collect(out).await;
            let error = error.unwrap_or_else(|| panic!("no error ({name})"));
            assert!(
                error.to_string().contains("larger than 1024 bytes"),
                "{error}"
            );
        }
        // The limit is per construct, not per document.
        for (name, parts) in chunkings(many_small.as_bytes()) {
            let (_, out) =
                rewrite_xml_with_limit(body(parts), rw("http://unused/", "http://p/"), 1024)
                    .await
                    .expect("root");
            let (data, error) = collect(out).await;
            assert!(error.is_none(), "{name}: {error:?}");
            assert_eq!(data, many_small.as_bytes());
        }
        // Nesting is bounded too.
        let deep = format!("{root}{}", "<a>".repeat(MAX_DEPTH + 1));
        let (_, out) = rewrite_xml(
            body(vec![Bytes::from(deep)]),
            rw("http://unused/", "http://p/"),
        )
        .await
        .expect("root");
        assert!(
            collect(out)
                .await
                .1
                .expect("error")
                .to_string()
                .contains("nested deeper")
        );
    }

    #[tokio::test]
    async fn output_starts_before_the_input_ends() {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let input: ByteStream = Box::pin(stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
        let head = "<?xml version=\"1.0\"?><wps:Capabilities xmlns:wps=\"urn:wps\" \
            xmlns:ows=\"http://www.opengis.net/ows/1.1\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">\
            <ows:OperationsMetadata><ows:Get xlink:href=\"http://b/wps\"/>";
        tx.send(Ok(Bytes::from_static(head.as_bytes())))
            .await
            .expect("send");
        let (kind, mut out) = rewrite_xml(input, rw("http://b/wps", "http://p"))
            .await
            .expect("root");
        assert_eq!(kind, DocumentKind::WpsCapabilities);
        // Everything sent so far comes out without waiting for the rest.
        let first = out
            .next()
            .now_or_never()
            .expect("ready")
            .expect("item")
            .expect("ok");
        assert_eq!(first, head.replace("http://b/wps", "http://p").as_bytes());
        assert!(
            out.next().now_or_never().is_none(),
            "must wait for more input"
        );
        tx.send(Ok(Bytes::from_static(
            b"</ows:OperationsMetadata></wps:Capabilities>",
        )))
        .await
        .expect("send");
        drop(tx);
        let (rest, error) = collect(out).await;
        assert!(error.is_none());
        assert_eq!(rest, b"</ows:OperationsMetadata></wps:Capabilities>");
    }

    const BIG_CHUNK: usize = 64 * 1024;

    /// A lazily generated body: `chunk(i)` for `i in 0..n`, counting what was pulled.
    fn generated(
        n: usize,
        chunk: fn(usize, usize) -> Bytes,
        pulled: Arc<AtomicUsize>,
    ) -> ByteStream {
        Box::pin(stream::unfold(0, move |i| {
            let pulled = pulled.clone();
            async move {
                (i < n).then(|| {
                    pulled.fetch_add(1, Ordering::SeqCst);
                    (Ok(chunk(i, n)), i + 1)
                })
            }
        }))
    }

    /// Checks output pieces against the regenerated expected bytes without storing them.
    struct Expected {
        chunk: fn(usize, usize) -> Bytes,
        n: usize,
        next: usize,
        pending: Bytes,
    }

    impl Expected {
        fn check(&mut self, mut got: &[u8]) {
            while !got.is_empty() {
                if self.pending.is_empty() {
                    assert!(self.next < self.n, "more output than expected");
                    self.pending = (self.chunk)(self.next, self.n);
                    self.next += 1;
                }
                let k = got.len().min(self.pending.len());
                assert!(got[..k] == self.pending[..k], "output differs");
                got = &got[k..];
                self.pending.advance(k);
            }
        }

        fn finished(&self) -> bool {
            self.pending.is_empty() && self.next == self.n
        }
    }

    const BIG_SERVICE: &str = "http://backend/wps/";

    fn big_other_chunk(i: usize, n: usize) -> Bytes {
        let mut chunk = vec![b'a' + (i % 26) as u8; BIG_CHUNK];
        if i == 0 {
            let head = b"<?xml version=\"1.0\"?><data>";
            chunk[..head.len()].copy_from_slice(head);
        }
        // Each chunk ends in all but the last byte of the service URL, so the replacer
        // has to hold bytes back at every boundary; the next one starts with a letter.
        let partial = &BIG_SERVICE.as_bytes()[..BIG_SERVICE.len() - 1];
        let end = if i + 1 == n { BIG_CHUNK - 7 } else { BIG_CHUNK };
        chunk[end - partial.len()..end].copy_from_slice(partial);
        if i + 1 == n {
            chunk[end..].copy_from_slice(b"</data>");
        }
        Bytes::from(chunk)
    }

    #[tokio::test]
    async fn large_other_body_streams_in_bounded_chunks() {
        const N: usize = 800; // 50 MiB
        let pulled = Arc::new(AtomicUsize::new(0));
        let input = generated(N, big_other_chunk, pulled.clone());
        let (kind, mut out) = rewrite_xml(input, rw(BIG_SERVICE, "http://p"))
            .await
            .expect("root");
        assert_eq!(kind, DocumentKind::Other);
        let mut expected = Expected {
            chunk: big_other_chunk,
            n: N,
            next: 0,
            pending: Bytes::new(),
        };
        let mut max_chunk = 0;
        let mut first = true;
        while let Some(item) = out.next().await {
            let bytes = item.expect("no error");
            max_chunk = max_chunk.max(bytes.len());
            expected.check(&bytes);
            if first {
                // Backpressure: nothing is read ahead of what is consumed.
                assert!(pulled.load(Ordering::SeqCst) <= 2, "read ahead");
                first = false;
            }
        }
        assert!(expected.finished(), "output shorter than input");
        assert!(
            max_chunk <= BIG_CHUNK + BIG_SERVICE.len(),
            "chunk of {max_chunk} bytes"
        );
        assert_eq!(pulled.load(Ordering::SeqCst), N);
    }

    const CAPS_HEAD: &str = "<wps:Capabilities xmlns:wps=\"http://www.opengis.net/wps/1.0.0\" \
        xmlns:ows=\"http://www.opengis.net/ows/1.1\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">\n\
        <ows:OperationsMetadata><ows:Get xlink:href=\"http://backend/wps\"/></ows:OperationsMetadata>\n\
        <wps:ProcessOfferings>\n";
    const CAPS_PROCESS: &str =
        "<wps:Process><ows:Metadata xlink:href=\"http://backend/wps\"/></wps:Process>\n";

    fn big_caps_chunk(i: usize, n: usize, head: &str) -> Bytes {
        if i == 0 {
            return Bytes::from(head.to_owned());
        }
        if i + 1 == n {
            return Bytes::from_static(b"</wps:ProcessOfferings>\n</wps:Capabilities>\n");
        }
        let mut chunk = CAPS_PROCESS
            .repeat(BIG_CHUNK / CAPS_PROCESS.len())
            .into_bytes();
        chunk.resize(BIG_CHUNK, b'\n');
        Bytes::from(chunk)
    }

    #[tokio::test]
    async fn large_caps_body_streams_in_bounded_chunks() {
        const N: usize = 130; // 8 MiB of processes
        let pulled = Arc::new(AtomicUsize::new(0));
        let input = generated(N, |i, n| big_caps_chunk(i, n, CAPS_HEAD), pulled.clone());
        let (kind, mut out) = rewrite_xml(input, rw("http://backend/wps", "http://p"))
            .await
            .expect("root");
        assert_eq!(kind, DocumentKind::WpsCapabilities);
        let mut expected = Expected {
            chunk: |i, n| {
                big_caps_chunk(i, n, &CAPS_HEAD.replace("http://backend/wps", "http://p"))
            },
            n: N,
            next: 0,
            pending: Bytes::new(),
        };
        let mut max_chunk = 0;
        let mut first = true;
        while let Some(item) = out.next().await {
            let bytes = item.expect("no error");
            max_chunk = max_chunk.max(bytes.len());
            expected.check(&bytes);
            if first {
                assert!(pulled.load(Ordering::SeqCst) <= 2, "read ahead");
                first = false;
            }
        }
        assert!(expected.finished(), "output shorter than input");
        assert!(
            max_chunk <= FLUSH_BYTES + CAPS_PROCESS.len(),
            "chunk of {max_chunk} bytes"
        );
    }

    #[test]
    fn rewrite_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        is_send(&rewrite_xml(
            body(Vec::new()),
            rw("http://unused/", "http://p/"),
        ));
    }
}
