//! The prolog, read on the [`TeeReader`] before quick-xml takes over: a BOM, whitespace
//! and the DOCTYPE declaration (whose end quick-xml cannot find reliably).

use std::pin::Pin;

use tokio::io::AsyncBufRead;

use super::tee::TeeReader;
use super::{RewriteError, is_xml_space};

/// The prolog, as far as it is read without quick-xml.
impl TeeReader {
    /// Maps a failure before the root to the caller's error.
    pub(super) fn prolog_error(&mut self) -> RewriteError {
        match self.upstream_error.take() {
            Some(e) => RewriteError::Upstream(e),
            // Syntax errors and an over-long prolog alike.
            None => RewriteError::NotXml,
        }
    }

    /// Whether the unconsumed input starts with `pattern`. Reads more only while what
    /// is buffered is a proper prefix of it, so nothing beyond is pulled needlessly.
    async fn starts_with(&mut self, pattern: &[u8]) -> Result<bool, RewriteError> {
        while self.chunk.len() < pattern.len() && pattern.starts_with(&self.chunk) && !self.eof {
            if std::future::poll_fn(|cx| self.poll_chunk(cx))
                .await
                .is_err()
            {
                return Err(self.prolog_error());
            }
        }
        Ok(self.chunk.starts_with(pattern))
    }

    /// Consumes a UTF-8 BOM, returning its length (0 or 3).
    pub(super) async fn start(&mut self) -> Result<usize, RewriteError> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        let bom = self.starts_with(BOM).await?;
        if bom {
            self.consume_bytes(BOM.len());
        }
        // quick-xml strips a BOM if its first look at the input shows one: let it see a
        // whole one if there is one, so a second BOM is handled alike whatever the chunking.
        self.starts_with(BOM).await?;
        Ok(if bom { BOM.len() } else { 0 })
    }

    /// Consumes (and so records) the next `n` buffered bytes.
    fn consume_bytes(&mut self, n: usize) {
        self.record_consumed(n);
    }

    /// The buffered bytes up to the limit, reading more if none are; empty at the end.
    async fn fill(&mut self) -> Result<&[u8], RewriteError> {
        match std::future::poll_fn(|cx| Pin::new(&mut *self).poll_fill_buf(cx).map_ok(|b| b.len()))
            .await
        {
            Ok(n) => Ok(&self.chunk[..n]),
            Err(_) => Err(self.prolog_error()),
        }
    }

    /// Consumes whitespace and a DOCTYPE declaration in the prolog. quick-xml finds the
    /// end of a DOCTYPE by counting `<` and `>`, which goes wrong when the internal
    /// subset has them inside quoted literals or comments, so DOCTYPEs are read here.
    pub(super) async fn prolog_gap(&mut self, seen_doctype: &mut bool) -> Result<(), RewriteError> {
        while self.prolog_space_and_doctype(seen_doctype).await? {}
        Ok(())
    }

    /// Consumes whitespace, then a DOCTYPE if one follows; returns whether it did.
    async fn prolog_space_and_doctype(
        &mut self,
        seen_doctype: &mut bool,
    ) -> Result<bool, RewriteError> {
        loop {
            let data = self.fill().await?;
            let n = data.iter().take_while(|&&b| is_xml_space(b)).count();
            let all = n == data.len();
            self.consume_bytes(n);
            if n == 0 || !all {
                break;
            }
        }
        const DOCTYPE: &[u8] = b"<!DOCTYPE";
        if !self.starts_with(DOCTYPE).await? {
            return Ok(false);
        }
        self.consume_bytes(DOCTYPE.len());
        let space_follows = self.fill().await?.first().is_some_and(|&b| is_xml_space(b));
        if *seen_doctype || !space_follows {
            return Err(RewriteError::NotXml);
        }
        *seen_doctype = true;
        let mut scanner = DoctypeScanner::Outside;
        loop {
            let data = self.fill().await?;
            if data.is_empty() {
                return Err(RewriteError::NotXml);
            }
            match data.iter().position(|&b| scanner.feed(b)) {
                Some(end) => {
                    self.consume_bytes(end + 1);
                    return Ok(true);
                }
                None => {
                    let n = data.len();
                    self.consume_bytes(n);
                }
            }
        }
    }
}

/// Where a byte of a DOCTYPE declaration (after `<!DOCTYPE`) is.
#[derive(Debug, Clone, Copy)]
enum DoctypeScanner {
    Outside,
    OutsideQuoted(u8),
    Subset,
    SubsetQuoted(u8),
    /// `<`, `<!`, `<!-` seen in the internal subset.
    Lt,
    LtBang,
    LtBangDash,
    Comment,
    CommentDash,
    CommentDashDash,
    Pi,
    PiQuestion,
}

impl DoctypeScanner {
    /// Advances over `b`; true if it is the `>` that ends the declaration.
    fn feed(&mut self, b: u8) -> bool {
        use DoctypeScanner::*;
        *self = match (*self, b) {
            (Outside, b'>') => return true,
            (Outside, b'[') => Subset,
            (Outside, b'"' | b'\'') => OutsideQuoted(b),
            (Outside, _) => Outside,
            (OutsideQuoted(q), _) if b == q => Outside,
            (OutsideQuoted(q), _) => OutsideQuoted(q),
            (Subset, b']') => Outside,
            (Subset, b'"' | b'\'') => SubsetQuoted(b),
            (Subset, b'<') => Lt,
            (Subset, _) => Subset,
            (SubsetQuoted(q), _) if b == q => Subset,
            (SubsetQuoted(q), _) => SubsetQuoted(q),
            (Lt, b'!') => LtBang,
            (Lt, b'?') => Pi,
            (LtBang, b'-') => LtBangDash,
            (LtBangDash, b'-') => Comment,
            // A markup declaration (`<!ENTITY`, ...): its quotes are handled in Subset.
            (Lt | LtBang | LtBangDash, _) => {
                *self = Subset;
                return self.feed(b);
            }
            (Comment, b'-') => CommentDash,
            (CommentDash, b'-') => CommentDashDash,
            (CommentDashDash, b'>') => Subset,
            (CommentDashDash, b'-') => CommentDashDash,
            (Comment | CommentDash | CommentDashDash, _) => Comment,
            (Pi | PiQuestion, b'?') => PiQuestion,
            (PiQuestion, b'>') => Subset,
            (Pi | PiQuestion, _) => Pi,
        };
        false
    }
}
