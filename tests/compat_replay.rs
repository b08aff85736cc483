//! Replays every HTTP case of the golden transcripts of the original Twitcher (T05 = 0.5.6,
//! T06 = 0.6.0, in `compat/golden/`) against twitcher, in-process, and compares status,
//! Content-Type and body of each exchange (see `compat/README.md`): the OWS proxy, the other
//! routes, XML-RPC (T05), OAuth, REST and `/__api__` (T06). twitcherctl runs are replayed by
//! `twitcherctl/tests/against_server.rs`.
//!
//! Each replayed case is a test of its own, named after its group and transcript
//! (`t05::xmlrpc::case_003_rpc_generate_token_odd_args`), found in `compat/golden/` at run
//! time: `cargo test --test compat_replay -- t06::rest` runs the T06 REST cases, `-- --list`
//! lists them all. A failing case prints its id, transcript, and for each differing exchange
//! what was expected (as recorded, or the deviation ids of `compat/DEVIATIONS.md` it cites)
//! and what was received.
//!
//! Cases that share a twitcher run together in recorded order (`run::Run`), so state flows
//! between them as it did; state made by steps not replayed here (CLI runs, held-out cases,
//! the capture script) is restored before the case that needs it (`prepare`). Client ids,
//! secrets and tokens of the recording are mapped to the ones twitcher made (`dynamic`), so
//! everything else is compared byte for byte.
//!
//! The backends of the recordings are replaced by stubs on `127.0.0.1:0` that answer what
//! the original backends answered: Emu's direct recordings (T05 case 42, T06 244–247) or the
//! recorded passthrough body, and a table of routes for the probe (T05, :15156) and helper
//! (T06, :15160) backends. Backend addresses in recorded bodies are mapped to the stubs'
//! before comparing; requests keep the recorded `Host`, so rewritten URLs are comparable.
//!
//! Every exchange has an expectation (`t05::expect_t05`, `t06::expect_t06`): it matches the
//! recording, or it is covered by deviations of `compat/DEVIATIONS.md` and the table says
//! what twitcher does instead. Both kinds fail when twitcher answers otherwise. A summary of
//! the cases run goes to `target/compat-report.txt`.

mod common;

// The modules live in `tests/compat_replay/`: a crate root finds `mod x;` at `tests/x.rs`,
// where cargo would build it as a test of its own.
#[path = "compat_replay/bodies.rs"]
mod bodies;
#[path = "compat_replay/bytes.rs"]
mod bytes;
#[path = "compat_replay/compare.rs"]
mod compare;
#[path = "compat_replay/dynamic.rs"]
mod dynamic;
#[path = "compat_replay/env.rs"]
mod env;
#[path = "compat_replay/expect.rs"]
mod expect;
#[path = "compat_replay/group.rs"]
mod group;
#[path = "compat_replay/prepare.rs"]
mod prepare;
#[path = "compat_replay/report.rs"]
mod report;
#[path = "compat_replay/run.rs"]
mod run;
#[path = "compat_replay/stub.rs"]
mod stub;
#[path = "compat_replay/t05.rs"]
mod t05;
#[path = "compat_replay/t05_env.rs"]
mod t05_env;
#[path = "compat_replay/t06.rs"]
mod t06;
#[path = "compat_replay/t06_env.rs"]
mod t06_env;
#[path = "compat_replay/transcript.rs"]
mod transcript;
#[path = "compat_replay/upstream.rs"]
mod upstream;
#[path = "compat_replay/wire.rs"]
mod wire;
#[path = "compat_replay/xml.rs"]
mod xml;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::group::test_name;
use crate::run::{Replay, Run};

/// Errors of the replay machinery: a text saying what could not be done.
pub type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let replay = match Replay::load(&root) {
        Ok(replay) => Arc::new(replay),
        Err(e) => {
            // Without the transcripts there are no cases to list: one test says why.
            let trial = Trial::test("load_golden_transcripts", move || {
                Err(format!("the golden transcripts could not be loaded: {e}").into())
            });
            return libtest_mimic::run(&args, vec![trial]).exit_code();
        }
    };
    let trials = replay
        .cases()
        .map(|(group, case)| {
            let (replay, run, id) = (replay.clone(), Run::of(case), case.id.clone());
            Trial::test(test_name(group, case), move || outcome(&replay, run, &id))
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    if let Err(e) = report::write(&root, &replay) {
        eprintln!("could not write the replay report: {e}");
    }
    conclusion.exit_code()
}

/// The test of one case: passes when every exchange met its expectation.
fn outcome(replay: &Replay, run: Run, id: &str) -> Result<(), Failed> {
    let result = replay.result(run, id)?;
    if result.passed() {
        Ok(())
    } else {
        Err(report::failure(result).into())
    }
}
