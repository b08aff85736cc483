//! The output stream of a capabilities document: parser events go through the
//! [`Walker`], and the recorded (possibly rewritten) bytes come out in bounded pieces.

use std::io;

use bytes::Bytes;
use futures_util::stream;
use quick_xml::NsReader;
use quick_xml::events::Event;

use super::tee::TeeReader;
use super::walker::Walker;
use super::{ByteStream, invalid};

/// Output is handed on once this many bytes are pending, even if more input is buffered.
pub(super) const FLUSH_BYTES: usize = 16 * 1024;

/// State of the output stream of a capabilities document.
struct CapsState {
    /// The parser, over the recording reader.
    reader: NsReader<TeeReader>,
    /// The parser's event buffer.
    buf: Vec<u8>,
    /// Decides and performs the rewriting of each event.
    walker: Walker,
    /// The input has been gathered once (at the first step).
    gathered: bool,
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
            let stepped = if self.reader.get_ref().eof {
                self.step_in_hand()
            } else {
                self.step().await
            };
            if let Err(e) = stepped {
                self.finished = true;
                return Some(Err(e));
            }
        }
    }

    /// Handles events synchronously, the whole rest of the input being in hand, until
    /// output is due.
    fn step_in_hand(&mut self) -> io::Result<()> {
        while !self.ended && self.reader.get_ref().record.len() < FLUSH_BYTES {
            self.begin_event();
            let event = self.reader.read_event_into(&mut self.buf);
            self.ended = finish_event(&mut self.reader, &mut self.walker, event)?;
        }
        Ok(())
    }

    /// Reads and handles one event, waiting for input as needed.
    async fn step(&mut self) -> io::Result<()> {
        if !self.gathered || self.reader.get_ref().chunk.is_empty() {
            self.gathered = true;
            if self.reader.get_mut().gather().await {
                return self.step_in_hand();
            }
        }
        self.begin_event();
        let event = self.reader.read_event_into_async(&mut self.buf).await;
        self.ended = finish_event(&mut self.reader, &mut self.walker, event)?;
        Ok(())
    }

    /// Prepares the event buffer and the record for the next event.
    fn begin_event(&mut self) {
        // Don't keep the memory of one huge event for the rest of the document.
        if self.buf.capacity() > 4 * FLUSH_BYTES {
            self.buf = Vec::new();
        }
        self.buf.clear();
        let tee = self.reader.get_mut();
        tee.base = tee.record.len();
    }
}

/// Hands a parsed event to the walker, or turns a parse failure into the stream's error;
/// returns whether the document ended.
fn finish_event(
    reader: &mut NsReader<TeeReader>,
    walker: &mut Walker,
    event: quick_xml::Result<Event<'_>>,
) -> io::Result<bool> {
    match event {
        Ok(event) => walker.handle(reader, event),
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
            Err(invalid(format!("malformed XML at byte {position}: {e}")))
        }
    }
}

/// The output stream of a capabilities document whose root start tag `walker` has seen;
/// pulls input only when polled.
pub(super) fn caps_stream(reader: NsReader<TeeReader>, buf: Vec<u8>, walker: Walker) -> ByteStream {
    let state = CapsState {
        reader,
        buf,
        walker,
        gathered: false,
        ended: false,
        finished: false,
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    }))
}
