//! Byte-string helpers: search and replace, masking of values that differ from run to run,
//! and short excerpts for failure messages.

/// `name="…"` values replaced by `*`.
pub fn mask_attribute(data: &[u8], name: &str) -> Vec<u8> {
    mask_after(data, format!("{name}=\"").as_bytes())
}

/// The string values of these JSON keys replaced by `*`.
pub fn mask_json_strings(data: &[u8], keys: &[&str]) -> Vec<u8> {
    keys.iter().fold(data.to_vec(), |d, key| {
        mask_after(&d, format!("\"{key}\": \"").as_bytes())
    })
}

/// Replaces the text between each `prefix` and the next `end` byte string by `*`.
pub fn mask_between(data: &[u8], prefix: &[u8], end: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut pos = 0;
    while let Some(i) = find(&data[pos..], prefix) {
        let start = pos + i + prefix.len();
        out.extend_from_slice(&data[pos..start]);
        out.push(b'*');
        pos = find(&data[start..], end).map_or(data.len(), |e| start + e);
    }
    out.extend_from_slice(&data[pos..]);
    out
}

/// Replaces the text between each `prefix` and the next `"` by `*`.
fn mask_after(data: &[u8], prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut pos = 0;
    while let Some(i) = find(&data[pos..], prefix) {
        let start = pos + i + prefix.len();
        out.extend_from_slice(&data[pos..start]);
        let end = data[start..]
            .iter()
            .position(|c| *c == b'"')
            .map_or(data.len(), |e| start + e);
        out.push(b'*');
        pos = end;
    }
    out.extend_from_slice(&data[pos..]);
    out
}

/// Where two byte strings part, with what each holds there.
pub fn first_difference(expected: &[u8], got: &[u8]) -> String {
    let at = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let from = at.saturating_sub(20);
    format!(
        "at byte {at} (lengths {} / {}): expected {:?}, received {:?}",
        expected.len(),
        got.len(),
        snippet(expected, from),
        snippet(got, from)
    )
}

/// Up to 90 bytes from `from`, as text.
pub fn snippet(data: &[u8], from: usize) -> String {
    let from = from.min(data.len());
    let to = (from + 90).min(data.len());
    String::from_utf8_lossy(&data[from..to]).into_owned()
}

/// The media type of a `Content-Type` without parameters, lower-cased.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The first position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every `from` replaced by `to`.
pub fn replace_bytes(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    if from.is_empty() {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len());
    let mut pos = 0;
    while let Some(i) = find(&data[pos..], from) {
        out.extend_from_slice(&data[pos..pos + i]);
        out.extend_from_slice(to);
        pos += i + from.len();
    }
    out.extend_from_slice(&data[pos..]);
    out
}
