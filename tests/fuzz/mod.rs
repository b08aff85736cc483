//! Generators, reference readings and properties for the gate's fuzz targets
//! (`tests/fuzz_gate.rs`). Each target module turns a generated value into a concrete
//! input (strings and bytes, so a finding becomes a readable regression test) and checks
//! its property on it, panicking with the input on a violation.

pub mod gate;
pub mod kvp;
pub mod ogcapi;
pub mod path;
pub mod reference;
pub mod xml;

/// Cuts `bytes` at the given points (taken modulo the length, sorted, deduplicated) into
/// consecutive chunks: the way a client's body may arrive.
pub fn chunks(bytes: &[u8], cuts: &[u16]) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| usize::from(*c) % bytes.len())
        .filter(|c| *c > 0)
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in at.into_iter().chain([bytes.len()]) {
        out.push(bytes[start..cut].to_vec());
        start = cut;
    }
    out
}
