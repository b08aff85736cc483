//! What kind of body a POST carries, decided the way an XML parser decides it (XML 1.0
//! appendix F), not from the Content-Type: a body whose first character after a byte-order
//! mark and whitespace is `<` is XML in whatever encoding it is written; only a body that is
//! not XML may be read as form pairs. UTF-16 and UTF-32 bodies are transcoded to UTF-8 for
//! the decision (the backend still gets the original bytes).

use std::borrow::Cow;

/// The character encoding of a body, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8 or another ASCII-compatible encoding; the number of byte-order-mark bytes.
    AsciiCompatible {
        /// 3 after a UTF-8 byte-order mark, else 0.
        bom: usize,
    },
    /// UTF-16, little- or big-endian; `bom` is 2 when a byte-order mark was present.
    Utf16 {
        /// Little-endian.
        little: bool,
        /// Byte-order-mark bytes.
        bom: usize,
    },
    /// UTF-32, little- or big-endian.
    Utf32 {
        /// Little-endian.
        little: bool,
        /// Byte-order-mark bytes.
        bom: usize,
    },
    /// EBCDIC or an unusual UCS-4 byte order: no OWS server reads these; refused.
    Unsupported,
}

impl Encoding {
    /// Detects the encoding from the first four bytes (fewer when the body is shorter).
    pub fn detect(head: &[u8]) -> Encoding {
        use Encoding::*;
        match head {
            [0x00, 0x00, 0xFE, 0xFF, ..] => Utf32 {
                little: false,
                bom: 4,
            },
            [0xFF, 0xFE, 0x00, 0x00, ..] => Utf32 {
                little: true,
                bom: 4,
            },
            [0x00, 0x00, 0x00, 0x3C, ..] => Utf32 {
                little: false,
                bom: 0,
            },
            [0x3C, 0x00, 0x00, 0x00, ..] => Utf32 {
                little: true,
                bom: 0,
            },
            [0x00, 0x00, 0x3C, 0x00, ..] | [0x00, 0x3C, 0x00, 0x00, ..] => Unsupported,
            [0xFE, 0xFF, ..] => Utf16 {
                little: false,
                bom: 2,
            },
            [0xFF, 0xFE, ..] => Utf16 {
                little: true,
                bom: 2,
            },
            [0x00, 0x3C, 0x00, 0x3F, ..] => Utf16 {
                little: false,
                bom: 0,
            },
            [0x3C, 0x00, 0x3F, 0x00, ..] => Utf16 {
                little: true,
                bom: 0,
            },
            // `<?xm` in EBCDIC.
            [0x4C, 0x6F, 0xA7, 0x94, ..] => Unsupported,
            [0xEF, 0xBB, 0xBF, ..] => AsciiCompatible { bom: 3 },
            _ => AsciiCompatible { bom: 0 },
        }
    }

    /// Whether the bytes after decoding are UTF-8 (so must be valid UTF-8) given the
    /// declared encoding, if any.
    pub fn is_utf8(self, declared: Option<&str>) -> bool {
        match self {
            Encoding::AsciiCompatible { bom: 3 } => true,
            Encoding::AsciiCompatible { .. } => declared
                .is_none_or(|d| matches!(d.trim().to_ascii_lowercase().as_str(), "utf-8" | "utf8")),
            // Transcoded to UTF-8 by `to_utf8`.
            Encoding::Utf16 { .. } | Encoding::Utf32 { .. } => true,
            Encoding::Unsupported => false,
        }
    }

    /// Whether an XML declaration's `encoding` name agrees with the detected encoding. A
    /// disagreement is a body two parsers may read differently: refused.
    pub fn accepts_declared(self, declared: &str) -> bool {
        let name = declared.trim().to_ascii_lowercase();
        match self {
            Encoding::AsciiCompatible { bom: 3 } => matches!(name.as_str(), "utf-8" | "utf8"),
            Encoding::AsciiCompatible { .. } => is_ascii_superset(&name),
            Encoding::Utf16 { little, .. } => {
                matches!(
                    name.as_str(),
                    "utf-16" | "utf16" | "ucs-2" | "iso-10646-ucs-2"
                ) || name == if little { "utf-16le" } else { "utf-16be" }
            }
            Encoding::Utf32 { little, .. } => {
                matches!(
                    name.as_str(),
                    "utf-32" | "utf32" | "ucs-4" | "iso-10646-ucs-4"
                ) || name == if little { "utf-32le" } else { "utf-32be" }
            }
            Encoding::Unsupported => false,
        }
    }

    /// The body as UTF-8 without its byte-order mark, for reading its markup. An incomplete
    /// trailing code unit of a prefix is left out; what does not decode (an unpaired
    /// surrogate, a number beyond Unicode) becomes NUL, which XML forbids, so the scan of
    /// the root refuses it where it matters.
    pub fn to_utf8(self, body: &[u8]) -> Cow<'_, [u8]> {
        match self {
            Encoding::AsciiCompatible { bom } => Cow::Borrowed(&body[bom.min(body.len())..]),
            Encoding::Utf16 { little, bom } => {
                let units = body[bom.min(body.len())..].chunks_exact(2).map(|c| {
                    if little {
                        u16::from_le_bytes([c[0], c[1]])
                    } else {
                        u16::from_be_bytes([c[0], c[1]])
                    }
                });
                let text: String = char::decode_utf16(units)
                    .map(|c| c.unwrap_or('\0'))
                    .collect();
                Cow::Owned(text.into_bytes())
            }
            Encoding::Utf32 { little, bom } => {
                let text: String = body[bom.min(body.len())..]
                    .chunks_exact(4)
                    .map(|c| {
                        let unit = [c[0], c[1], c[2], c[3]];
                        let n = if little {
                            u32::from_le_bytes(unit)
                        } else {
                            u32::from_be_bytes(unit)
                        };
                        char::from_u32(n).unwrap_or('\0')
                    })
                    .collect();
                Cow::Owned(text.into_bytes())
            }
            Encoding::Unsupported => Cow::Borrowed(&[]),
        }
    }
}

/// Encodings in which every ASCII byte means its ASCII character, so markup reads the same
/// whichever of them a parser assumes.
fn is_ascii_superset(name: &str) -> bool {
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    matches!(
        name,
        "utf-8" | "utf8" | "us-ascii" | "ascii" | "latin1" | "latin-1" | "l1"
    ) || numbered("iso-8859-")
        || numbered("iso8859-")
        || numbered("iso_8859-")
        || numbered("windows-125")
        || numbered("cp125")
        || numbered("latin-")
        || numbered("latin")
}

/// How a POST body is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// An XML document (or an attempt at one: refused later if malformed).
    Xml(Encoding),
    /// Form pairs (`application/x-www-form-urlencoded` and not XML).
    Form,
    /// Only whitespace so far: read more.
    NeedMore,
}

/// Decides how to read a body from its first bytes. `form` says the Content-Type is
/// form-encoded; `complete` that `prefix` is the whole body.
pub fn classify(prefix: &[u8], complete: bool, form: bool) -> BodyKind {
    if prefix.len() < 4 && !complete {
        return BodyKind::NeedMore;
    }
    let encoding = Encoding::detect(prefix);
    if encoding == Encoding::Unsupported {
        return BodyKind::Xml(encoding);
    }
    let text = encoding.to_utf8(prefix);
    match text.iter().find(|b| !is_xml_space(**b)) {
        Some(b'<') => BodyKind::Xml(encoding),
        Some(_) if form && matches!(encoding, Encoding::AsciiCompatible { bom: 0 }) => {
            BodyKind::Form
        }
        Some(_) => BodyKind::Xml(encoding),
        None if !complete => BodyKind::NeedMore,
        None if form && prefix.is_empty() => BodyKind::Form,
        None => BodyKind::Xml(encoding),
    }
}

/// XML's whitespace (the `S` production): space, tab, CR, LF.
pub fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str, little: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend(if little { [0xFF, 0xFE] } else { [0xFE, 0xFF] });
        }
        for u in s.encode_utf16() {
            out.extend(if little {
                u.to_le_bytes()
            } else {
                u.to_be_bytes()
            });
        }
        out
    }

    #[test]
    fn xml_is_xml_whatever_the_content_type() {
        let cases: &[(&[u8], bool, BodyKind)] = &[
            (
                b"<a/>",
                true,
                BodyKind::Xml(Encoding::AsciiCompatible { bom: 0 }),
            ),
            (
                b" \r\n\t<a/>",
                true,
                BodyKind::Xml(Encoding::AsciiCompatible { bom: 0 }),
            ),
            (
                b"\xEF\xBB\xBF<a/>",
                true,
                BodyKind::Xml(Encoding::AsciiCompatible { bom: 3 }),
            ),
            (
                b"\xEF\xBB\xBF  <a/>",
                true,
                BodyKind::Xml(Encoding::AsciiCompatible { bom: 3 }),
            ),
            (b"service=WPS&request=Execute", true, BodyKind::Form),
            (
                b"service=WPS&request=Execute",
                false,
                BodyKind::Xml(Encoding::AsciiCompatible { bom: 0 }),
            ),
            // A BOM is no part of a form body: such a body is an XML attempt.
            (
                b"\xEF\xBB\xBFservice=WPS",
                true,
                BodyKind::Xml(Encoding::AsciiCompatible { bom: 3 }),
            ),
            (b"", true, BodyKind::Form),
        ];
        for (body, form, expected) in cases {
            assert_eq!(classify(body, true, *form), *expected, "{body:?}");
        }
        for (little, bom) in [(true, true), (false, true), (true, false), (false, false)] {
            let body = utf16("<?xml version='1.0'?><a/>", little, bom);
            assert_eq!(
                classify(&body, true, true),
                BodyKind::Xml(Encoding::Utf16 {
                    little,
                    bom: if bom { 2 } else { 0 }
                })
            );
            assert_eq!(
                Encoding::detect(&body).to_utf8(&body).as_ref(),
                b"<?xml version='1.0'?><a/>"
            );
        }
    }

    #[test]
    fn whitespace_alone_asks_for_more() {
        assert_eq!(classify(b"   ", false, true), BodyKind::NeedMore);
        assert_eq!(classify(b"  ", false, false), BodyKind::NeedMore);
        assert_eq!(
            classify(b"   ", true, true),
            BodyKind::Xml(Encoding::AsciiCompatible { bom: 0 })
        );
    }

    #[test]
    fn declared_encodings_must_agree() {
        let ascii = Encoding::AsciiCompatible { bom: 0 };
        assert!(ascii.accepts_declared("UTF-8"));
        assert!(ascii.accepts_declared("ISO-8859-1"));
        assert!(ascii.accepts_declared("windows-1252"));
        assert!(!ascii.accepts_declared("UTF-16"));
        assert!(!ascii.accepts_declared("cp037"));
        assert!(!ascii.accepts_declared("UTF-7"));
        assert!(!Encoding::AsciiCompatible { bom: 3 }.accepts_declared("ISO-8859-1"));
        let le = Encoding::Utf16 {
            little: true,
            bom: 2,
        };
        assert!(le.accepts_declared("UTF-16") && le.accepts_declared("utf-16le"));
        assert!(!le.accepts_declared("utf-16be") && !le.accepts_declared("utf-8"));
        assert_eq!(Encoding::detect(b"\x4C\x6F\xA7\x94"), Encoding::Unsupported);
    }
}
