//! The output stream of a capabilities document: parser events go through the
//! [`Walker`], and the recorded (possibly rewritten) bytes come out in bounded pieces.

use std::io;

use bytes::Bytes;
use futures_util::stream;
use quick_xml::NsReader;

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
            if let Err(e) = self.step().await {
                self.finished = true;
                return Some(Err(e));
            }
        }
    }

    /// Reads and handles one event.
    async fn step(&mut self) -> io::Result<()> {
        let Self {
            reader,
            buf,
            walker,
            ..
        } = self;
        // Don't keep the memory of one huge event for the rest of the document.
        if buf.capacity() > 4 * FLUSH_BYTES {
            *buf = Vec::new();
        }
        buf.clear();
        let tee = reader.get_mut();
        tee.base = tee.record.len();
        let event = match reader.read_event_into_async(buf).await {
            Ok(event) => event,
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
                return Err(invalid(format!("malformed XML at byte {position}: {e}")));
            }
        };
        self.ended = walker.handle(reader, event)?;
        Ok(())
    }
}

/// The output stream of a capabilities document whose root start tag `walker` has seen;
/// pulls input only when polled.
pub(super) fn caps_stream(reader: NsReader<TeeReader>, buf: Vec<u8>, walker: Walker) -> ByteStream {
    let state = CapsState {
        reader,
        buf,
        walker,
        ended: false,
        finished: false,
    };
    Box::pin(stream::unfold(state, |mut state| async move {
        let item = state.next_chunk().await?;
        Some((item, state))
    }))
}
