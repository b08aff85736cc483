//! TEMPORARY STUB (the real module is being written): passes XML through unchanged.
use bytes::Bytes;
/// Stream of body chunks.
pub type ByteStream = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send>>;
/// URLs used for rewriting one response.
pub struct Rewrite {
    /// Backend URL.
    pub service_url: String,
    /// Proxy URL.
    pub public_url: String,
    /// Prolog limit.
    pub max_prolog: usize,
}
/// Why a body could not be rewritten.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// Not XML.
    #[error("could not decode content")]
    NotXml,
    /// Backend read failure.
    #[error("reading the backend response failed: {0}")]
    Upstream(std::io::Error),
}
/// Kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// WPS caps.
    WpsCapabilities,
    /// WMS caps.
    WmsCapabilities,
    /// Other.
    Other,
}
/// Stub.
pub async fn rewrite_xml(body: ByteStream, _rewrite: Rewrite) -> Result<(DocumentKind, ByteStream), RewriteError> {
    Ok((DocumentKind::Other, body))
}
