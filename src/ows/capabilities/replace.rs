//! The output stream of an `Other` document: the service URL replaced by the public URL
//! byte-wise, streaming, while the [`Checker`] makes sure the body is well-formed.

use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use memchr::memmem;

use super::check::Checker;
use super::tee::TeeReader;
use super::{ByteStream, Rewrite};

/// Replaces every occurrence of the service URL by the public URL, left to right and
/// non-overlapping like Python's `bytes.replace`, holding back just enough bytes between
/// chunks to catch occurrences split across them. The input is checked before it is
/// replaced: a defect, or an end before the document's, ends the output with an error.
struct Replacer {
    /// The body after the root start tag.
    input: ByteStream,
    /// Finds the service URL and holds the public URL; `None` for an empty service URL.
    replace: Option<(memmem::Finder<'static>, Bytes)>,
    /// Tail of the previous data that may start an occurrence (< needle length).
    carry: BytesMut,
    /// Checks the input (XML documents; `None` for bodies that are not XML).
    check: Option<Checker>,
    /// The input has ended or failed.
    done: bool,
}

impl Replacer {
    /// Produces the next non-empty output chunk, reading input until one is due.
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        while !self.done {
            match self.input.next().await {
                Some(Ok(chunk)) => {
                    if let Some(Err(e)) = self.check.as_mut().map(|c| c.feed(&chunk)) {
                        self.done = true;
                        return Some(Err(e));
                    }
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
                    if let Some(Err(e)) = self.check.as_ref().map(|c| c.finish()) {
                        return Some(Err(e));
                    }
                    if !self.carry.is_empty() {
                        return Some(Ok(self.carry.split().freeze()));
                    }
                }
            }
        }
        None
    }

    /// Replaces in one chunk; returns the output that is final.
    fn feed(&mut self, chunk: Bytes) -> Bytes {
        let Some((finder, replacement)) = &self.replace else {
            return chunk;
        };
        let data = if self.carry.is_empty() {
            chunk
        } else {
            self.carry.extend_from_slice(&chunk);
            self.carry.split().freeze()
        };
        let needle_len = finder.needle().len();
        let mut out: Option<BytesMut> = None;
        let mut pos = 0;
        for at in finder.find_iter(&data) {
            let out = out.get_or_insert_with(|| BytesMut::with_capacity(data.len()));
            out.extend_from_slice(&data[pos..at]);
            out.extend_from_slice(replacement);
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

/// The output stream of an `Other` document whose prolog and root start tag `tee` has
/// read (and recorded); `check` starts after that tag. Pulls input only when polled.
pub(super) fn replace_stream(tee: TeeReader, check: Checker, rewrite: &Rewrite) -> ByteStream {
    let TeeReader {
        input,
        chunk,
        record,
        eof,
        ..
    } = tee;
    let unread = stream::iter([Ok(chunk)]);
    let input: ByteStream = if eof {
        Box::pin(unread)
    } else {
        Box::pin(unread.chain(input))
    };
    let mut replacer = Replacer::new(input, rewrite, Some(check));
    // The recorded head was parsed already: it is replaced but not checked.
    let head = replacer.feed(record.freeze());
    let head = stream::iter((!head.is_empty()).then_some(Ok(head)));
    Box::pin(head.chain(replacer.into_stream()))
}

/// A body of any text format with every occurrence of the service URL replaced by the
/// public URL, streaming (bounded memory, no parsing, no check).
pub fn replace_urls(input: ByteStream, rewrite: &Rewrite) -> ByteStream {
    Box::pin(Replacer::new(input, rewrite, None).into_stream())
}

impl Replacer {
    /// A replacer of `rewrite`'s service URL over `input`.
    fn new(input: ByteStream, rewrite: &Rewrite, check: Option<Checker>) -> Replacer {
        Replacer {
            input,
            replace: (!rewrite.service_url.is_empty()).then(|| {
                (
                    memmem::Finder::new(rewrite.service_url.as_bytes()).into_owned(),
                    Bytes::copy_from_slice(rewrite.public_url.as_bytes()),
                )
            }),
            carry: BytesMut::new(),
            check,
            done: false,
        }
    }

    /// The output, pulling input only when polled.
    fn into_stream(self) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send {
        stream::unfold(self, |mut replacer| async move {
            let item = replacer.next_chunk().await?;
            Some((item, replacer))
        })
    }
}
