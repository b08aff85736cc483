//! The output stream of an `Other` document: the service URL replaced by the public URL
//! byte-wise, streaming, with no XML parsing.

use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use memchr::memmem;

use super::{ByteStream, Rewrite};

/// Replaces every occurrence of the service URL by the public URL, left to right and
/// non-overlapping like Python's `bytes.replace`, holding back just enough bytes between
/// chunks to catch occurrences split across them.
struct Replacer {
    /// The body.
    input: ByteStream,
    /// Finds the service URL.
    finder: memmem::Finder<'static>,
    /// The public URL.
    replacement: Bytes,
    /// Tail of the previous data that may start an occurrence (< needle length).
    carry: BytesMut,
    /// The input has ended or failed.
    done: bool,
}

impl Replacer {
    /// Produces the next non-empty output chunk, reading input until one is due.
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
pub(super) fn replace_stream(input: ByteStream, rewrite: &Rewrite) -> ByteStream {
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
