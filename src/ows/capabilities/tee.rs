//! `TeeReader`: the [`AsyncBufRead`] the XML parser reads a body through, which keeps
//! every byte the parser consumes so the raw text of each event can be passed on as is.
//!
//! Reading the prolog with it, before the parser takes over, is in [`super::prolog`].
//!
//! It serves the parser two ways: as an [`AsyncBufRead`] while the rest of the body is
//! still to come, and as a plain [`io::BufRead`] once the whole rest is in hand (see
//! [`TeeReader::gather`]): quick-xml's synchronous reader costs a fraction of the
//! asynchronous one per event, which matters for documents of a few kilobytes.

use std::io::{self, BufRead};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncBufRead, AsyncRead, ReadBuf};

use super::{ByteStream, invalid};

/// Most unconsumed input [`TeeReader::gather`] takes in ahead of the parser.
pub(super) const GATHER_BYTES: usize = 256 * 1024;

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

    /// The current chunk up to the limit; an error if the limit stops a construct.
    fn available(&self) -> io::Result<&[u8]> {
        let room = self
            .limit
            .saturating_sub(self.record.len().saturating_sub(self.base));
        if room == 0 && !self.chunk.is_empty() {
            return Err(invalid(format!(
                "XML construct larger than {} bytes",
                self.limit
            )));
        }
        Ok(&self.chunk[..self.chunk.len().min(room)])
    }

    /// Moves `amt` bytes of the current chunk to the record.
    pub(super) fn record_consumed(&mut self, amt: usize) {
        let amt = amt.min(self.chunk.len());
        self.record.extend_from_slice(&self.chunk[..amt]);
        self.chunk.advance(amt);
    }

    /// Takes in whatever input is ready without waiting, until `GATHER_BYTES` are
    /// unconsumed; returns whether the whole rest of the input is now in `chunk` (`eof`).
    /// An input error is kept for the parser to meet after the data before it.
    pub(super) async fn gather(&mut self) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(self.poll_gather(cx))).await
    }

    /// One non-blocking round of [`Self::gather`].
    fn poll_gather(&mut self, cx: &mut Context<'_>) -> bool {
        let mut joined: Option<BytesMut> = None;
        while !self.eof && self.upstream_error.is_none() {
            let held = joined.as_ref().map_or(self.chunk.len(), BytesMut::len);
            if held >= GATHER_BYTES {
                break;
            }
            match self.input.as_mut().poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(bytes))) if self.chunk.is_empty() && joined.is_none() => {
                    self.chunk = bytes;
                }
                Poll::Ready(Some(Ok(bytes))) => joined
                    .get_or_insert_with(|| BytesMut::from(&self.chunk[..]))
                    .extend_from_slice(&bytes),
                Poll::Ready(Some(Err(e))) => {
                    // Reported when the parser gets to it, after the data before it.
                    self.upstream_error = Some(e);
                    break;
                }
                Poll::Ready(None) => self.eof = true,
            }
        }
        if let Some(joined) = joined {
            self.chunk = joined.freeze();
        }
        self.eof
    }

    /// Polls the next chunk into `self.chunk`, appending to what is left of the current one.
    pub(super) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(e) = &self.upstream_error {
            // Met by `gather` earlier; the input is not polled after an error.
            return Poll::Ready(Err(io::Error::new(e.kind(), e.to_string())));
        }
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
        Poll::Ready(this.available())
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().record_consumed(amt);
    }
}

/// The same reader for quick-xml's synchronous side, once the whole input is in hand.
impl BufRead for TeeReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.chunk.is_empty() && !self.eof {
            // Callers read synchronously only after `eof`: this is a bug, not bad input.
            return Err(io::Error::other("read past the gathered input"));
        }
        self.available()
    }

    fn consume(&mut self, amt: usize) {
        self.record_consumed(amt);
    }
}

/// Reading through the buffered side, so read bytes are recorded too.
impl io::Read for TeeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.record_consumed(n);
        Ok(n)
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
        self.get_mut().record_consumed(n);
        Poll::Ready(Ok(()))
    }
}
