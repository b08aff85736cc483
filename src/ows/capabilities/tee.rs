//! `TeeReader`: the [`AsyncBufRead`] the XML parser reads a body through, which keeps
//! every byte the parser consumes so the raw text of each event can be passed on as is.
//!
//! Reading the prolog with it, before the parser takes over, is in [`super::prolog`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use super::{ByteStream, invalid};

/// [`AsyncBufRead`] over a [`ByteStream`] that appends every consumed byte to `record`,
/// so the raw bytes of each parser event are available for verbatim output.
pub(super) struct TeeReader {
    /// The body, read chunk by chunk.
    pub(super) input: ByteStream,
    /// Current input chunk, not yet consumed.
    pub(super) chunk: Bytes,
    /// Consumed bytes not yet handed to the output.
    pub(super) record: BytesMut,
    /// Bytes recorded since `base` may not exceed this (prolog limit, then per-event limit).
    pub(super) limit: usize,
    /// Length of `record` when the current construct started.
    pub(super) base: usize,
    /// The original error from `input`, kept so callers get it rather than a copy.
    pub(super) upstream_error: Option<io::Error>,
    /// `input` has ended.
    pub(super) eof: bool,
}

impl TeeReader {
    /// A reader over `input` with nothing recorded yet and `limit` as the first limit.
    pub(super) fn new(input: ByteStream, limit: usize) -> Self {
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
    pub(super) fn limit_reached(&self) -> bool {
        self.record.len().saturating_sub(self.base) >= self.limit && !self.chunk.is_empty()
    }

    /// Polls the next chunk into `self.chunk`, appending to what is left of the current one.
    pub(super) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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

/// Offers the current chunk, at most up to the limit; consuming records the bytes.
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

/// Reading through the buffered side, so read bytes are recorded too.
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
