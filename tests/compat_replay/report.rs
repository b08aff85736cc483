//! What a failing case prints, and the summary of the runs in `target/compat-report.txt`.

use std::fmt::Write as _;
use std::path::Path;

use crate::Res;
use crate::group::Group;
use crate::run::{CaseResult, Replay};

/// The message of a failing case: its id and transcript, then each differing exchange with
/// its expectation (as recorded, or the deviations it cites) and what was expected and
/// received.
pub fn failure(result: &CaseResult) -> String {
    let mut out = format!("{} ({})\n", result.id, relative(&result.file));
    if let Some(e) = &result.setup {
        let _ = writeln!(
            out,
            "  setup: the recorded state could not be restored: {e}"
        );
    }
    for ex in result.exchanges.iter().filter(|e| !e.problems.is_empty()) {
        let expectation = if ex.deviations.is_empty() {
            "expected as recorded".to_string()
        } else {
            format!(
                "expected the listed deviation {} (compat/DEVIATIONS.md)",
                ex.deviations.join(" ")
            )
        };
        let _ = writeln!(out, "  {}: {expectation}", ex.label);
        for problem in &ex.problems {
            let _ = writeln!(out, "    {problem}");
        }
    }
    out
}

/// Writes `target/compat-report.txt` for the runs made: per group how many cases passed,
/// the failures, and every case with the deviations it cites (what `compat/MATRIX.md` is
/// generated from). Nothing is written when no run was made (`--list`, or a filter that
/// selects no case).
pub fn write(root: &Path, replay: &Replay) -> Res<()> {
    let results = replay.finished();
    if results.is_empty() {
        return Ok(());
    }
    let mut out = String::from("golden transcript replay (tests/compat_replay.rs)\n");
    for group in Group::ALL {
        let in_group: Vec<&&CaseResult> = results.iter().filter(|r| r.group == group).collect();
        if in_group.is_empty() {
            continue;
        }
        let failed = in_group.iter().filter(|r| !r.passed()).count();
        let deviating = in_group
            .iter()
            .filter(|r| r.passed() && !r.deviations().is_empty())
            .count();
        let _ = writeln!(
            out,
            "{}: {} passed, {failed} failed ({deviating} as listed deviations)",
            group.label(),
            in_group.len() - failed,
        );
    }
    let _ = writeln!(
        out,
        "{} cases replayed ({} transcripts loaded)",
        results.len(),
        replay.loaded()
    );
    if results.iter().any(|r| !r.passed()) {
        out.push_str("\nfailures:\n");
        for r in results.iter().filter(|r| !r.passed()) {
            let _ = write!(out, "FAIL {}", failure(r));
        }
    }
    out.push_str("\nall cases:\n");
    for r in &results {
        let status = if r.passed() { "pass" } else { "FAIL" };
        let ids = r.deviations();
        let ids = if ids.is_empty() {
            "matches".to_string()
        } else {
            ids.join(" ")
        };
        let _ = writeln!(out, "{status} {} [{ids}]", r.id);
    }
    let path = root.join("target/compat-report.txt");
    std::fs::create_dir_all(root.join("target"))
        .and_then(|()| std::fs::write(&path, out))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A path relative to the repository, as the failure messages name transcripts.
fn relative(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
