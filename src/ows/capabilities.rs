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
//! How it works: the body is read through `TeeReader`, an
//! [`AsyncBufRead`](tokio::io::AsyncBufRead) that keeps every byte the XML parser
//! (quick-xml) consumes. After each parser event those recorded bytes
//! *are* the raw text of the event, so they are emitted verbatim; only for a start tag
//! that carries an attribute to rewrite is the value's byte range in the record
//! replaced. The parser's own (normalized) view of the event is used only to decide.
//!
//! Which rewriting applies is decided from the root element ([`DocumentKind`]):
//! - WPS capabilities: `xlink:href` below `ows:OperationsMetadata` becomes the public URL;
//! - WMS capabilities: `xlink:href` on `OnlineResource` becomes the public URL, keeping
//!   the old query string;
//! - anything else: plain byte replacement of the service URL by the public URL; after
//!   the root start tag a streaming check (not a parser) makes sure the body is
//!   well-formed.
//!
//! Limits, compared with the original: documents are checked as they stream, so a
//! defect after the root start tag ends the output with an error instead of turning
//! into an error response; `Other` documents are checked for structure only (see
//! `check`); a prefix left undefined below the root is not an error (it simply matches
//! nothing); UTF-16/32 bodies are `NotXml`.
//!
//! Layout: this file holds the public API, the entry point and the classification of
//! the root; `tee` is the recording reader, `prolog` reads the prolog on it, `walker`
//! rewrites capabilities tags, `caps` streams capabilities documents out, `replace`
//! streams `Other` documents out and `check` checks them as they go.

mod caps;
mod check;
mod prolog;
mod replace;
mod tee;
mod walker;

use std::io;
use std::pin::Pin;

use memchr::memmem;
use quick_xml::NsReader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

use caps::caps_stream;
use check::Checker;
use replace::replace_stream;
pub use replace::replace_urls;
use tee::TeeReader;
use walker::Walker;

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
    /// The service is a WFS, WCS or WMTS: its capabilities get [`DocumentKind::OgcCapabilities`].
    pub ogc_services: bool,
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
    /// A root whose local name contains `Capabilities`, from a WFS, WCS or WMTS service:
    /// operation URLs (`xlink:href` below `OperationsMetadata` or `DCPType`, WFS 1.0's
    /// `onlineResource`) become the public URL WMS-style (rest of the path below the service
    /// URL and query kept); elsewhere `xlink:href` and WMTS `ResourceURL/@template` values
    /// below the service URL are rewritten the same way.
    OgcCapabilities,
    /// Any other document: the service URL is replaced byte-wise everywhere.
    Other,
}

/// Largest single XML construct (tag, text node, comment, ...) buffered while
/// rewriting a capabilities document; a larger one ends the stream with an error.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

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
        let kind = match classify_root(&reader, &root)? {
            DocumentKind::WpsCapabilities | DocumentKind::WmsCapabilities
                if rewrite.ogc_services =>
            {
                DocumentKind::OgcCapabilities
            }
            kind => kind,
        };
        if kind == DocumentKind::Other {
            let tee = reader.into_inner();
            let check = Checker::after_root(root.name().as_ref(), empty, tee.record.len());
            return Ok((kind, replace_stream(tee, check, &rewrite)));
        }
        let mut walker = Walker::new(kind, &rewrite, max_event);
        // The root never matches a rewrite rule, but it opens the element stack.
        walker
            .element(&mut reader, &root, empty)
            .map_err(|_| RewriteError::NotXml)?;
        break (kind, walker);
    };

    // From here on the limit bounds one construct, not the prolog.
    reader.get_mut().limit = max_event;
    Ok((kind, caps_stream(reader, buf, walker)))
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

/// An [`io::Error`] of kind `InvalidData`: how a defect found while streaming is reported.
fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

#[cfg(test)]
mod tests {
    use super::caps::FLUSH_BYTES;
    use super::walker::MAX_DEPTH;
    use super::*;
    use bytes::{Buf, Bytes};
    use futures_util::{FutureExt, StreamExt, stream};
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
            ogc_services: false,
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
            b"<LegendURL><OnlineResource xlink:href=\"http://b/wms/legend/a.png?s=1#x\"/></LegendURL>\n",
            b"<OnlineResource xlink:href=\"http://b/wmsx/legend?s=1\"/>\n",
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
            b"<LegendURL><OnlineResource xlink:href=\"http://proxy/w/legend/a.png?s=1\"/></LegendURL>\n",
            b"<OnlineResource xlink:href=\"http://proxy/w?s=1\"/>\n",
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
        // A self-overlapping needle, occurrences in the prolog, the root tag, right before
        // the end tag and in a comment after it, back to back, and near misses.
        let service = "abcabd";
        let input = b"<?xml version=\"1.0\"?><!-- abcabd --><doc a='abcabd'>abcabcabd abcab \
            abcabdabcabd aabcabdd abcabcab&amp;&amp;abcabd</doc><!--abcabd-->";
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
            // Well-formed, or the check would end the output with an error.
            input.extend_from_slice(b"</r>");
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

    /// An `Other` document exercising what the check must let through unchanged.
    const OTHER_TORTURE: &[u8] = b"\xEF\xBB\xBF<?xml version='1.0' encoding='ISO-8859-1'?>\r\n\
        <!DOCTYPE wps:ExecuteResponse [<!ENTITY b \"http://b/wps\">]>\
        <wps:ExecuteResponse xmlns:wps='urn:wps' serviceInstance=\"http://b/wps?x=1&amp;y\">\r\n\
        <!-- http://b/wps - - --><?pi http://b/wps ??><wps:Status  creationTime = '2024' />\
        <wps:Data\tmime=\"a>b\" enc='&#34;&#x22;'>Caf\xE9 &b; ]] ]> &lt;http://b/wps&gt;\
        <![CDATA[<http://b/wps> & ]] ]]]><Caf\xE9:\xE9l\xE9ment-1.x/></wps:Data\n>\
        </wps:ExecuteResponse >\r\n<!-- http://b/wps -->\r\n<?pi after?>\r\n";

    #[tokio::test]
    async fn other_documents_pass_the_check_unchanged() {
        for (service, public) in [("http://b/wps", "http://p/x"), ("", "http://p/x")] {
            let (kind, out) = rewrite_every_way(OTHER_TORTURE, &rw(service, public)).await;
            assert_eq!(kind, DocumentKind::Other);
            let expected = if service.is_empty() {
                OTHER_TORTURE.to_vec()
            } else {
                replace_all(OTHER_TORTURE, service.as_bytes(), public.as_bytes())
            };
            assert_eq!(out, expected);
        }
        // An empty root: only comments, PIs and whitespace may follow.
        let input = b"<wps:ExecuteResponse xmlns:wps='urn:wps'/>\n<!-- c --><?pi?>\n";
        let (kind, out) = rewrite_every_way(input, &rw("http://b/wps", "http://p")).await;
        assert_eq!(kind, DocumentKind::Other);
        assert_eq!(out, input);
    }

    #[tokio::test]
    async fn defects_in_other_documents_end_the_stream() {
        const ROOT: &str = "<?xml version=\"1.0\"?>\n<wps:ExecuteResponse xmlns:wps=\"urn:wps\" \
            serviceInstance=\"http://b/wps\">";
        const END: &str = "</wps:ExecuteResponse>";
        let defects = [
            // Truncated: the backend crashed mid-document.
            format!("{ROOT}<wps:Data>http://b/wps"),
            format!("{ROOT}<wps:Data>x</wps:Data>"),
            format!("{ROOT}<wps:Data>x</wps:Da"),
            format!("{ROOT}<wps:Data a=\"x"),
            format!("{ROOT}<!-- x"),
            ROOT.to_owned(),
            // Mismatched tags.
            format!("{ROOT}<a>x</b>{END}"),
            format!("{ROOT}</wps:ExecuteRespons>"),
            // Anything but misc after the root.
            format!("{ROOT}{END}junk"),
            format!("{ROOT}{END}<second/>"),
            format!("{ROOT}{END}{END}"),
            format!("{ROOT}{END}<!-- x"),
            // A stray `<` in text or an attribute value.
            format!("{ROOT}a < b{END}"),
            format!("{ROOT}<a b='<'/>{END}"),
            // Attribute quoting.
            format!("{ROOT}<a b=http://b/wps/>{END}"),
            format!("{ROOT}<a b='1\">x</a>{END}"),
            // Comments, CDATA, PIs.
            format!("{ROOT}<!-- a -- b -->{END}"),
            format!("{ROOT}<![CDATA[ x ]>{END}"),
            format!("{ROOT}<?xml version=\"1.0\"?>{END}"),
            format!("{ROOT}<!DOCTYPE x>{END}"),
            // Text.
            format!("{ROOT}a ]]> b{END}"),
            format!("{ROOT}a & b{END}"),
        ];
        let empty_root = [
            "<wps:ExecuteResponse xmlns:wps=\"urn:wps\"/>x",
            "<wps:ExecuteResponse xmlns:wps=\"urn:wps\"/><a/>",
            "<wps:ExecuteResponse xmlns:wps=\"urn:wps\"/></wps:ExecuteResponse>",
        ];
        let inputs = defects.iter().map(String::as_str).chain(empty_root);
        for input in inputs {
            for (service, public) in [("http://b/wps", "http://p"), ("", "http://p")] {
                let expected = if service.is_empty() {
                    input.as_bytes().to_vec()
                } else {
                    replace_all(input.as_bytes(), service.as_bytes(), public.as_bytes())
                };
                for (name, parts) in chunkings(input.as_bytes()) {
                    let (kind, out) = rewrite_xml(body(parts), rw(service, public))
                        .await
                        .expect("root is fine");
                    assert_eq!(kind, DocumentKind::Other);
                    let (data, error) = collect(out).await;
                    let error = error.unwrap_or_else(|| panic!("no error for {input} ({name})"));
                    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{input}");
                    assert!(error.to_string().starts_with("malformed XML"), "{error}");
                    // A body cut short may have gone out whole: only its end is missing.
                    assert!(
                        expected.starts_with(&data),
                        "output is not a prefix: {input} ({name})"
                    );
                }
            }
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

        // An upstream error in an Other document is passed on as it is, too.
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
                // Read-ahead is bounded: what is ready is taken in up to GATHER_BYTES.
                let bound = 2 + tee::GATHER_BYTES.div_ceil(BIG_CHUNK);
                assert!(pulled.load(Ordering::SeqCst) <= bound, "read ahead");
                first = false;
            }
        }
        assert!(expected.finished(), "output shorter than input");
        assert!(
            max_chunk <= FLUSH_BYTES + CAPS_PROCESS.len(),
            "chunk of {max_chunk} bytes"
        );
    }

    /// Makes chunk `i` of `n` of a generated body.
    type ChunkFn = fn(usize, usize) -> Bytes;

    /// Chunk `i` of `n` of an `Other` body with one base64-like text node (the shape of
    /// a WPS ExecuteResponse with embedded output): head, 64 KiB chunks each with one
    /// occurrence of the service URL, tail.
    fn huge_text_chunk(i: usize, n: usize) -> Bytes {
        if i == 0 {
            return Bytes::from(format!(
                "<?xml version=\"1.0\"?><wps:ExecuteResponse xmlns:wps=\"urn:wps\" \
                 serviceInstance=\"{BIG_SERVICE}?service=WPS\"><wps:Data>"
            ));
        }
        if i + 1 == n {
            return Bytes::from_static(b"</wps:Data></wps:ExecuteResponse>\n");
        }
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut chunk = alphabet.repeat(BIG_CHUNK / alphabet.len());
        chunk[1000..1000 + BIG_SERVICE.len()].copy_from_slice(BIG_SERVICE.as_bytes());
        Bytes::from(chunk)
    }

    /// Like [`huge_text_chunk`] but dense markup: small elements with attributes, an
    /// entity reference and a comment, every 120 bytes or so.
    fn dense_markup_chunk(i: usize, n: usize) -> Bytes {
        if i == 0 {
            return Bytes::from_static(b"<?xml version=\"1.0\"?><Result>");
        }
        if i + 1 == n {
            return Bytes::from_static(b"</Result>\n");
        }
        let item = format!(
            "<Output id=\"x1\" href='{BIG_SERVICE}out.nc'><Title>a &amp; b</Title>\
             <!-- note --><Value>12.5</Value></Output>\n"
        );
        Bytes::from(item.repeat(BIG_CHUNK / item.len()))
    }

    #[tokio::test]
    async fn huge_text_node_streams_in_bounded_memory() {
        const N: usize = 1602; // 100 MiB between head and tail
        let expected_chunk: ChunkFn = |i, n| {
            Bytes::from(replace_all(
                &huge_text_chunk(i, n),
                BIG_SERVICE.as_bytes(),
                b"http://p",
            ))
        };
        for complete in [true, false] {
            let pulled = Arc::new(AtomicUsize::new(0));
            // Cut short, the tail never comes: the backend went away mid-document.
            let chunk: ChunkFn = if complete {
                huge_text_chunk
            } else {
                |i, n| huge_text_chunk(i, n + 1)
            };
            let input = generated(N, chunk, pulled.clone());
            let (kind, mut out) = rewrite_xml(input, rw(BIG_SERVICE, "http://p"))
                .await
                .expect("root");
            assert_eq!(kind, DocumentKind::Other);
            let mut expected = Expected {
                chunk: expected_chunk,
                n: if complete { N } else { N + 1 },
                next: 0,
                pending: Bytes::new(),
            };
            let mut outputs = 0;
            let mut error = None;
            while let Some(item) = out.next().await {
                let bytes = match item {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                };
                outputs += 1;
                assert!(bytes.len() <= BIG_CHUNK + BIG_SERVICE.len());
                expected.check(&bytes);
                // Each input chunk is passed on before the next is read: nothing piles up.
                assert!(pulled.load(Ordering::SeqCst) <= outputs + 1, "read ahead");
            }
            assert_eq!(pulled.load(Ordering::SeqCst), N);
            if complete {
                assert!(error.is_none(), "{error:?}");
                assert!(expected.finished(), "output shorter than input");
            } else {
                let error = error.expect("a cut document ends in an error");
                assert_eq!(error.kind(), io::ErrorKind::InvalidData);
                assert!(error.to_string().contains("inside <wps:Data>"), "{error}");
                assert_eq!(expected.next, N, "everything before the end was sent");
            }
        }
    }

    /// Throughput of the `Other` path; run with
    /// `cargo test --release --lib other_body_throughput -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "benchmark"]
    async fn other_body_throughput() {
        const N: usize = 1602; // 100 MiB
        let shapes: [(&str, ChunkFn); 2] = [
            ("text node", huge_text_chunk),
            ("dense markup", dense_markup_chunk),
        ];
        for (shape, chunk) in shapes {
            for _ in 0..3 {
                // Separate buffers, as from the network (a shared one would stay cached).
                let chunks: Vec<io::Result<Bytes>> = (0..N).map(|i| Ok(chunk(i, N))).collect();
                let size: usize = chunks.iter().flatten().map(Bytes::len).sum();
                let input: ByteStream = Box::pin(stream::iter(chunks));
                let started = std::time::Instant::now();
                let (kind, mut out) = rewrite_xml(input, rw(BIG_SERVICE, "http://p"))
                    .await
                    .expect("root");
                assert_eq!(kind, DocumentKind::Other);
                while let Some(item) = out.next().await {
                    item.expect("no error");
                }
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "{shape}: {} MiB in {secs:.3} s: {:.0} MiB/s",
                    size >> 20,
                    size as f64 / secs / f64::from(1 << 20)
                );
            }
        }
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
