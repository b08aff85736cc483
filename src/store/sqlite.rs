//! TEMPORARY STUB (the real module is being written).
use super::{StoreError, StoreResult};
/// Stub.
pub struct SqliteStore;
impl SqliteStore {
    /// Stub.
    pub fn open(path: &std::path::Path) -> StoreResult<std::sync::Arc<super::memory::MemoryStore>> {
        let _ = path;
        Err(StoreError::Open { location: String::new(), reason: "stub".into() })
    }
}
