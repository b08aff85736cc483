//! Well-formedness of an `Other` document after its root start tag, checked as the bytes
//! stream past: a small state machine that keeps no more than the names of the open
//! elements, so a body of any size (a 100 MB text node included) is checked in bounded
//! memory and one pass, with `memchr` skipping over text, attribute values, comments,
//! CDATA sections and processing instructions.
//!
//! Checked: tags (names, attribute quoting, `/>`), end tags matching their start tags,
//! comments (no `--` inside), CDATA sections (only inside the root), processing
//! instructions (a target, not `xml`), no `<` in text or attribute values, no `]]>` in
//! text, the form of entity and character references, only whitespace, comments and
//! processing instructions after the root element, and the root closed at the end.
//! Not checked (lxml would): characters and encoding, duplicate attributes, namespace
//! prefixes, which entities are defined.

use std::io;

use memchr::{memchr, memchr3};

use super::walker::MAX_DEPTH;
use super::{invalid, is_xml_space};

/// Longest element name accepted below the root (the names of open elements are kept).
const MAX_NAME: usize = 1024;

/// Where the next byte is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Character data inside the root element.
    Text,
    /// `]` (1) or `]]` (2) seen in character data, where `]]>` is not allowed.
    TextBracket(u8),
    /// After the root element: whitespace, comments and processing instructions only.
    Misc,
    /// `<` seen.
    Lt,
    /// In the name of a start tag (pushed on `names` as it comes).
    StartName,
    /// In a start tag after whitespace: an attribute, `/` or `>` may follow.
    TagSpace,
    /// In a start tag right after an attribute value: whitespace, `/` or `>` must follow.
    TagAfterValue,
    /// In an attribute name.
    AttrName,
    /// After an attribute name: whitespace, then `=`.
    AttrEq,
    /// After `=`: whitespace, then a quote.
    AttrQuote,
    /// In an attribute value quoted with this byte.
    AttrValue(u8),
    /// `/` in a start tag: `>` must follow.
    EmptyEnd,
    /// In the name of an end tag; `matched` bytes of the open element's name seen.
    EndName,
    /// After the name of an end tag: whitespace, then `>`.
    EndSpace,
    /// `<!` seen.
    Bang,
    /// `<!-` seen.
    BangDash,
    /// In a comment; after one or two `-`.
    Comment,
    CommentDash,
    CommentDashDash,
    /// `<![` and this many bytes of `CDATA[` seen.
    CdataOpen(u8),
    /// In a CDATA section; after `]` (1) or `]]` (2).
    Cdata,
    CdataBracket(u8),
    /// `<?` seen: a processing instruction's target must follow.
    PiStart,
    /// In a processing instruction's target, of which this many bytes spell `xml`
    /// (case-insensitively; `NOT_XML` once they don't).
    PiTarget(u8),
    /// `?` right after the target: `>` must follow.
    PiTargetEnd,
    /// In a processing instruction after its target; after a `?`.
    PiBody,
    PiQuestion,
    /// `&` seen; `&#`; `&#x`; in the digits; in a name. `Some(quote)` in an attribute
    /// value, `None` in text.
    Ref(Option<u8>),
    CharRef(Option<u8>),
    CharRefHex(Option<u8>),
    CharRefDigits(Option<u8>, bool),
    RefName(Option<u8>),
}

/// [`State::PiTarget`] for a target that is not `xml`.
const NOT_XML: u8 = u8::MAX;

/// Streaming well-formedness check of the bytes after a root start tag.
pub(super) struct Checker {
    /// Where the next byte is.
    state: State,
    /// Names of the open elements, root first, one after the other.
    names: Vec<u8>,
    /// End of each open element's name in `names`.
    ends: Vec<usize>,
    /// In an end tag: how many bytes of the innermost open element's name it matched.
    matched: usize,
    /// Offset in the body of the next byte, for error messages.
    position: usize,
}

impl Checker {
    /// A checker for the bytes after the start tag of the root element `name` (`empty`
    /// if the tag was `<name/>`), which ends at byte `position` of the body.
    pub(super) fn after_root(name: &[u8], empty: bool, position: usize) -> Self {
        let (state, names, ends) = if empty {
            (State::Misc, Vec::new(), Vec::new())
        } else {
            (State::Text, name.to_vec(), vec![name.len()])
        };
        Self {
            state,
            names,
            ends,
            matched: 0,
            position,
        }
    }

    /// Checks the next bytes of the body.
    pub(super) fn feed(&mut self, data: &[u8]) -> io::Result<()> {
        let mut i = 0;
        while i < data.len() {
            // Skip runs that need no byte-by-byte look: character data, and names.
            let rest = &data[i..];
            let run = match self.state {
                State::Text => find3(b'<', b'&', b']', rest),
                State::AttrValue(quote) => find3(quote, b'<', b'&', rest),
                State::Comment => memchr(b'-', rest),
                State::Cdata => memchr(b']', rest),
                State::PiBody => memchr(b'?', rest),
                State::StartName | State::EndName | State::AttrName | State::RefName(_) => {
                    let n = rest.iter().position(|&b| !is_name_char(b));
                    self.name_run(&rest[..n.unwrap_or(rest.len())])
                        .map_err(|(defect, at)| self.error(defect, i + at))?;
                    n
                }
                _ => Some(0),
            };
            let Some(run) = run else { break };
            i += run;
            match self.step(data[i]) {
                Ok(true) => i += 1,
                Ok(false) => {}
                Err(defect) => return Err(self.error(defect, i)),
            }
        }
        self.position += data.len();
        Ok(())
    }

    /// The error for `defect` at byte `i` of the data being fed.
    fn error(&self, defect: Defect, i: usize) -> io::Error {
        let what = match defect {
            Defect::Mismatch => format!(
                "end tag does not match <{}>",
                String::from_utf8_lossy(self.innermost().unwrap_or_default())
            ),
            defect => defect.to_string(),
        };
        invalid(format!(
            "malformed XML at byte {}: {what}",
            self.position + i
        ))
    }

    /// Takes `run`, name characters continuing the name being read; on error, says at
    /// which byte of `run`.
    fn name_run(&mut self, run: &[u8]) -> Result<(), (Defect, usize)> {
        match self.state {
            State::StartName => {
                let start = self.ends.last().copied().unwrap_or(0);
                let room = MAX_NAME - (self.names.len() - start);
                if run.len() > room {
                    return Err((Defect::NameTooLong, room));
                }
                self.names.extend_from_slice(run);
            }
            State::EndName => {
                let name = self.innermost().unwrap_or_default();
                let expected = &name[self.matched.min(name.len())..];
                let same = run.iter().zip(expected).take_while(|(a, b)| a == b).count();
                if same < run.len() {
                    return Err((Defect::Mismatch, same));
                }
                self.matched += run.len();
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks that the body may end here: the root element is closed, and no comment or
    /// processing instruction after it is left open.
    pub(super) fn finish(&self) -> io::Result<()> {
        if self.state == State::Misc {
            return Ok(());
        }
        let what = match self.innermost() {
            Some(name) => format!("inside <{}>", String::from_utf8_lossy(name)),
            None => "inside markup after the root element".to_owned(),
        };
        Err(invalid(format!(
            "malformed XML: the document ends at byte {} {what}",
            self.position
        )))
    }

    /// The name of the innermost open element.
    fn innermost(&self) -> Option<&[u8]> {
        let end = *self.ends.last()?;
        let start = self.ends.len().checked_sub(2).map_or(0, |i| self.ends[i]);
        Some(&self.names[start..end])
    }

    /// Where character data continues after markup: in the root, or after it.
    fn content(&self) -> State {
        if self.ends.is_empty() {
            State::Misc
        } else {
            State::Text
        }
    }

    /// Advances over `b`; false if `b` is to be looked at again in the new state.
    fn step(&mut self, b: u8) -> Result<bool, Defect> {
        use State::*;
        let space = is_xml_space(b);
        self.state = match self.state {
            Text => match b {
                b'<' => Lt,
                b'&' => Ref(None),
                b']' => TextBracket(1),
                _ => Text,
            },
            TextBracket(_) if b == b']' => TextBracket(2),
            TextBracket(2) if b == b'>' => return Err(Defect::CdataEndInText),
            TextBracket(_) => {
                self.state = Text;
                return Ok(false);
            }
            Misc if space => Misc,
            Misc if b == b'<' => Lt,
            Misc => return Err(Defect::TextAfterRoot),

            Lt => match b {
                b'/' if self.ends.is_empty() => return Err(Defect::EndTagAfterRoot),
                b'/' => {
                    self.matched = 0;
                    EndName
                }
                b'!' => Bang,
                b'?' => PiStart,
                _ if !is_name_start(b) => return Err(Defect::LtWithoutName),
                _ if self.ends.is_empty() => return Err(Defect::ElementAfterRoot),
                _ if self.ends.len() >= MAX_DEPTH => return Err(Defect::TooDeep),
                _ => {
                    self.names.push(b);
                    StartName
                }
            },
            // Names come in runs (see `feed`); this is for a lone byte.
            StartName | EndName | AttrName | RefName(_) if is_name_char(b) => {
                self.name_run(&[b]).map_err(|(defect, _)| defect)?;
                self.state
            }
            StartName => {
                self.ends.push(self.names.len());
                match b {
                    _ if space => TagSpace,
                    b'/' => EmptyEnd,
                    b'>' => Text,
                    _ => return Err(Defect::StartTagName),
                }
            }
            TagSpace | TagAfterValue if space => TagSpace,
            TagSpace | TagAfterValue if b == b'/' => EmptyEnd,
            TagSpace | TagAfterValue if b == b'>' => Text,
            TagSpace if is_name_start(b) => AttrName,
            TagSpace => return Err(Defect::StartTag),
            TagAfterValue => return Err(Defect::NoSpaceAfterValue),
            AttrName | AttrEq if space => AttrEq,
            AttrName | AttrEq if b == b'=' => AttrQuote,
            AttrName | AttrEq => return Err(Defect::NoEquals),
            AttrQuote if space => AttrQuote,
            AttrQuote if b == b'"' || b == b'\'' => AttrValue(b),
            AttrQuote => return Err(Defect::Unquoted),
            AttrValue(quote) => match b {
                _ if b == quote => TagAfterValue,
                b'<' => return Err(Defect::LtInValue),
                b'&' => Ref(Some(quote)),
                _ => AttrValue(quote),
            },
            EmptyEnd if b == b'>' => {
                self.close();
                self.content()
            }
            EmptyEnd => return Err(Defect::SlashWithoutGt),

            EndName if space || b == b'>' => {
                if self.matched != self.innermost().unwrap_or_default().len() {
                    return Err(Defect::Mismatch);
                }
                if space {
                    EndSpace
                } else {
                    self.close();
                    self.content()
                }
            }
            EndName => return Err(Defect::Mismatch),
            EndSpace if space => EndSpace,
            EndSpace if b == b'>' => {
                self.close();
                self.content()
            }
            EndSpace => return Err(Defect::EndTag),

            Bang if b == b'-' => BangDash,
            Bang if b == b'[' && !self.ends.is_empty() => CdataOpen(0),
            Bang => return Err(Defect::Bang),
            BangDash if b == b'-' => Comment,
            BangDash => return Err(Defect::Bang),
            Comment if b == b'-' => CommentDash,
            Comment => Comment,
            CommentDash if b == b'-' => CommentDashDash,
            CommentDash => Comment,
            CommentDashDash if b == b'>' => self.content(),
            CommentDashDash => return Err(Defect::DashesInComment),
            CdataOpen(n) if b == b"CDATA["[usize::from(n)] => {
                if n == 5 {
                    Cdata
                } else {
                    CdataOpen(n + 1)
                }
            }
            CdataOpen(_) => return Err(Defect::CdataStart),
            Cdata if b == b']' => CdataBracket(1),
            Cdata => Cdata,
            CdataBracket(_) if b == b']' => CdataBracket(2),
            CdataBracket(2) if b == b'>' => Text,
            CdataBracket(_) => Cdata,

            PiStart if is_name_start(b) => PiTarget(xml_prefix(0, b)),
            PiStart => return Err(Defect::PiWithoutTarget),
            PiTarget(n) if is_name_char(b) => PiTarget(xml_prefix(n, b)),
            PiTarget(3) if space || b == b'?' => return Err(Defect::PiTargetXml),
            PiTarget(_) if space => PiBody,
            PiTarget(_) if b == b'?' => PiTargetEnd,
            PiTarget(_) => return Err(Defect::PiTarget),
            PiTargetEnd if b == b'>' => self.content(),
            PiTargetEnd => return Err(Defect::PiTarget),
            PiBody | PiQuestion if b == b'?' => PiQuestion,
            PiQuestion if b == b'>' => self.content(),
            PiBody | PiQuestion => PiBody,

            Ref(quote) if b == b'#' => CharRef(quote),
            Ref(quote) if is_name_start(b) => RefName(quote),
            CharRef(quote) if b == b'x' => CharRefHex(quote),
            CharRef(quote) if b.is_ascii_digit() => CharRefDigits(quote, false),
            CharRefHex(quote) if b.is_ascii_hexdigit() => CharRefDigits(quote, true),
            CharRefDigits(quote, false) if b.is_ascii_digit() => CharRefDigits(quote, false),
            CharRefDigits(quote, true) if b.is_ascii_hexdigit() => CharRefDigits(quote, true),
            CharRefDigits(quote, _) | RefName(quote) if b == b';' => match quote {
                Some(quote) => AttrValue(quote),
                None => Text,
            },
            Ref(_) | CharRef(_) | CharRefHex(_) | CharRefDigits(..) | RefName(_) => {
                return Err(Defect::Reference);
            }
        };
        Ok(true)
    }

    /// Closes the innermost open element.
    fn close(&mut self) {
        self.ends.pop();
        self.names.truncate(self.ends.last().copied().unwrap_or(0));
    }
}

/// What is wrong where the check stopped.
#[derive(Debug, Clone, Copy, thiserror::Error)]
enum Defect {
    #[error("`]]>` in text")]
    CdataEndInText,
    #[error("text after the root element")]
    TextAfterRoot,
    #[error("end tag after the root element")]
    EndTagAfterRoot,
    #[error("element after the root element")]
    ElementAfterRoot,
    #[error("`<` not followed by a name")]
    LtWithoutName,
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("element name longer than {MAX_NAME} bytes")]
    NameTooLong,
    #[error("unexpected byte in a start tag's name")]
    StartTagName,
    #[error("unexpected byte in a start tag")]
    StartTag,
    #[error("no whitespace after an attribute value")]
    NoSpaceAfterValue,
    #[error("attribute without `=`")]
    NoEquals,
    #[error("attribute value without quotes")]
    Unquoted,
    #[error("`<` in an attribute value")]
    LtInValue,
    #[error("`/` not followed by `>` in a start tag")]
    SlashWithoutGt,
    /// Rendered with the open element's name by [`Checker::error`].
    #[error("end tag does not match the open element")]
    Mismatch,
    #[error("unexpected byte in an end tag")]
    EndTag,
    #[error("`<!` not starting a comment or CDATA section")]
    Bang,
    #[error("`--` in a comment")]
    DashesInComment,
    #[error("`<![` not starting a CDATA section")]
    CdataStart,
    #[error("processing instruction without a target")]
    PiWithoutTarget,
    #[error("processing instruction target `xml`")]
    PiTargetXml,
    #[error("unexpected byte after a processing instruction target")]
    PiTarget,
    #[error("`&` not starting an entity or character reference")]
    Reference,
}

/// Where the first `a`, `b` or `c` is in `hay`. The first bytes are looked at one by one:
/// in dense markup, text runs are short, and `memchr3`'s setup would dominate.
fn find3(a: u8, b: u8, c: u8, hay: &[u8]) -> Option<usize> {
    const SHORT: usize = 16;
    let (head, tail) = hay.split_at(hay.len().min(SHORT));
    match head.iter().position(|&x| x == a || x == b || x == c) {
        Some(n) => Some(n),
        None => memchr3(a, b, c, tail).map(|n| n + head.len()),
    }
}

/// How many bytes of a processing instruction's target spell `xml` after `b`, given `n`
/// before it.
fn xml_prefix(n: u8, b: u8) -> u8 {
    match b"xml".get(usize::from(n)) {
        Some(&c) if b.eq_ignore_ascii_case(&c) => n + 1,
        _ => NOT_XML,
    }
}

/// Bytes that may start an XML name (any byte of a non-ASCII UTF-8 character counts).
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

/// Bytes that may continue an XML name.
fn is_name_char(b: u8) -> bool {
    NAME_CHARS[usize::from(b)]
}

/// [`is_name_char`] as a table: names are scanned in runs.
static NAME_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'-' | b'.') || c >= 0x80;
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests;
