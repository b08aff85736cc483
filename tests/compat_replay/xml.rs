//! XML as the replay compares it: normalized trees of namespace-resolved names (SPEC §3,
//! D-REWRITE-BYTES) and the root element's name.

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::Res;
use crate::bytes::find;

/// `XML` as lines of a normalized tree: `{namespace}name` of elements, attributes sorted
/// (namespace declarations dropped), text trimmed; declaration, comments, PIs and DOCTYPE
/// dropped.
pub fn xml_lines(data: &[u8]) -> Res<Vec<String>> {
    let mut reader = NsReader::from_reader(data);
    reader.config_mut().trim_text(false);
    let mut lines = Vec::new();
    let mut depth = 0usize;
    let mut text = String::new();
    let flush = |text: &mut String, lines: &mut Vec<String>, depth: usize| {
        let t = text.trim();
        if !t.is_empty() && depth > 0 {
            lines.push(format!("{}{t:?}", "  ".repeat(depth)));
        }
        text.clear();
    };
    loop {
        let at = reader.buffer_position();
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("{e} after byte {at}"))?;
        let ns = namespace(ns)?;
        match event {
            Event::Start(e) => {
                flush(&mut text, &mut lines, depth);
                let (name, attrs) = element(&reader, ns, &e)?;
                lines.push(format!("{}<{name} {attrs:?}>", "  ".repeat(depth)));
                depth += 1;
            }
            Event::Empty(e) => {
                flush(&mut text, &mut lines, depth);
                let (name, attrs) = element(&reader, ns, &e)?;
                lines.push(format!("{}<{name} {attrs:?}>", "  ".repeat(depth)));
            }
            Event::End(_) => {
                flush(&mut text, &mut lines, depth);
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => text.push_str(&t.xml_content().map_err(|e| e.to_string())?),
            Event::CData(c) => text.push_str(&c.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    text.extend(r.resolve_char_ref().map_err(|e| e.to_string())?);
                } else {
                    let name = r.decode().map_err(|e| e.to_string())?;
                    text.push(match name.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("unknown entity &{other};")),
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(lines)
}

fn namespace(ns: ResolveResult<'_>) -> Res<Option<String>> {
    match ns {
        ResolveResult::Bound(n) => Ok(Some(String::from_utf8_lossy(n.as_ref()).into_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(p) => Err(format!(
            "unknown namespace prefix {}",
            String::from_utf8_lossy(&p)
        )),
    }
}

fn qualify(ns: Option<String>, local: &[u8]) -> String {
    let local = String::from_utf8_lossy(local);
    match ns {
        Some(ns) => format!("{{{ns}}}{local}"),
        None => local.into_owned(),
    }
}

fn element(
    reader: &NsReader<&[u8]>,
    ns: Option<String>,
    e: &BytesStart<'_>,
) -> Res<(String, BTreeMap<String, String>)> {
    let name = qualify(ns, e.local_name().as_ref());
    let mut attrs = BTreeMap::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let key = attr.key.as_ref();
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            continue;
        }
        let (resolved, local) = reader.resolve_attribute(attr.key);
        let name = qualify(namespace(resolved)?, local.as_ref());
        let value = attr
            .decode_and_unescape_value(reader.decoder())
            .map_err(|e| e.to_string())?;
        attrs.insert(name, value.into_owned());
    }
    Ok((name, attrs))
}

/// Local name of the root element.
pub fn root_name(data: &[u8]) -> Option<String> {
    let mut pos = 0;
    while let Some(i) = find(&data[pos..], b"<") {
        let at = pos + i + 1;
        match data.get(at) {
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let end = data[at..]
                    .iter()
                    .position(|c| c.is_ascii_whitespace() || *c == b'>' || *c == b'/')
                    .map_or(data.len(), |e| at + e);
                let qname = String::from_utf8_lossy(&data[at..end]).into_owned();
                return Some(qname.rsplit(':').next().unwrap_or_default().to_string());
            }
            _ => pos = at,
        }
    }
    None
}
