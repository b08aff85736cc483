//! The replays: the cases that share a twitcher run once, in recorded order, the first time
//! one of their tests asks for its result; every test then reads its own case's result.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::Res;
use crate::compare::evaluate;
use crate::dynamic::{learn, substitute_request};
use crate::env::{Env, emu_answer, plain_env};
use crate::group::{Family, Group};
use crate::prepare::prepare;
use crate::t05::{expect_t05, load_t05};
use crate::t06::{expect_t06, load_t06};
use crate::transcript::Case;
use crate::wire::send;
use crate::{t05_env, t06_env};

/// Cases replayed on one twitcher: state flows between them as it did in the recording, so
/// they always run together and in order, whichever of their tests are selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// T05 XML-RPC 1–29: a fresh store, no management user (`config/twitcher.ini`).
    T05Fresh,
    /// T05 OWS, other routes and 87–90: the setup of case 40 (87–90 with
    /// `twitcher-auth.ini`'s management user); the two twitchers share the stub backends.
    T05Setup,
    /// T06 OAuth and REST: a fresh store, management user demo / demo.
    T06Management,
    /// T06 OWS, tutorial, other routes and OpenAPI: the services of case 130, OAuth tokens.
    T06Services,
}

/// The number of `Run` variants.
const RUNS: usize = 4;

impl Run {
    /// The run a replayed case belongs to.
    pub fn of(case: &Case) -> Run {
        match (case.family, case.group) {
            (Family::T05, _) if case.number <= 29 => Run::T05Fresh,
            (Family::T05, _) => Run::T05Setup,
            (Family::T06, Some(Group::T06OAuth | Group::T06Rest)) => Run::T06Management,
            (Family::T06, _) => Run::T06Services,
        }
    }
}

/// The outcome of one exchange of a case.
pub struct ExchangeResult {
    /// `T05 41.1`, `T06 136`.
    pub label: String,
    /// The deviations the expectation cites (empty: as recorded).
    pub deviations: &'static [&'static str],
    /// Every difference from the expectation, as `expected …, received …`.
    pub problems: Vec<String>,
}

/// The outcome of one case.
pub struct CaseResult {
    /// The case's family.
    pub family: Family,
    /// The case's number.
    pub number: u32,
    /// `T05 41-ows-getcaps`.
    pub id: String,
    /// The case's group.
    pub group: Group,
    /// The transcript file.
    pub file: PathBuf,
    /// Why the state the case starts from could not be restored (`prepare`).
    pub setup: Option<String>,
    /// Its exchanges, in order.
    pub exchanges: Vec<ExchangeResult>,
}

impl CaseResult {
    /// No exchange differs from its expectation.
    pub fn passed(&self) -> bool {
        self.setup.is_none() && self.exchanges.iter().all(|e| e.problems.is_empty())
    }

    /// The deviations cited by the case's exchanges, each once, in order.
    pub fn deviations(&self) -> Vec<&'static str> {
        let mut ids = Vec::new();
        for id in self.exchanges.iter().flat_map(|e| e.deviations) {
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        ids
    }
}

/// Deviation ids of `compat/DEVIATIONS.md`, and those only proposed so far.
struct Known {
    listed: HashSet<String>,
    proposed: HashSet<String>,
}

/// The loaded golden cases and the results of the runs made so far.
pub struct Replay {
    root: PathBuf,
    known: Known,
    /// T05 cases replayed, plus 40 and 42 (setup and Emu's answers).
    t05: Vec<Case>,
    /// T06 cases replayed, plus 244–247 (Emu's answers).
    t06: Vec<Case>,
    /// One runtime for every run: the twitchers and stubs of a run live on it.
    runtime: tokio::runtime::Runtime,
    /// The results of each run (indexed by `Run as usize`), made by the first test that asks.
    results: [OnceLock<Res<Vec<CaseResult>>>; RUNS],
}

impl Replay {
    /// Loads the transcripts under `root/compat/golden` and the deviation ids.
    pub fn load(root: &Path) -> Res<Replay> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        Ok(Replay {
            root: root.to_path_buf(),
            known: Known {
                listed: deviation_ids(&root.join("compat/DEVIATIONS.md"))?,
                proposed: deviation_ids(&root.join("compat/PROPOSED-DEVIATIONS.md"))
                    .unwrap_or_default(),
            },
            t05: load_t05(&root.join("compat/golden/v056/transcripts"))?,
            t06: load_t06(&root.join("compat/golden/v060/transcripts"))?,
            runtime,
            results: Default::default(),
        })
    }

    /// The cases that are replayed (each one test), with their groups, in recorded order.
    pub fn cases(&self) -> impl Iterator<Item = (Group, &Case)> {
        self.t05
            .iter()
            .chain(&self.t06)
            .filter_map(|case| Some((case.group?, case)))
    }

    /// The number of transcripts loaded (replayed or used for setup and backend answers).
    pub fn loaded(&self) -> usize {
        self.t05.len() + self.t06.len()
    }

    /// The result of the case with this id, replaying its run first if no test did yet.
    pub fn result(&self, run: Run, id: &str) -> Res<&CaseResult> {
        let results = self.results[run as usize]
            .get_or_init(|| self.runtime.block_on(self.replay(run)))
            .as_ref()
            .map_err(|e| format!("the replay could not start ({run:?}): {e}"))?;
        results
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| format!("{id} was not replayed in {run:?}"))
    }

    /// The results of the runs made so far, in recorded order.
    pub fn finished(&self) -> Vec<&CaseResult> {
        let mut all: Vec<&CaseResult> = self
            .results
            .iter()
            .filter_map(|r| r.get()?.as_ref().ok())
            .flatten()
            .collect();
        all.sort_by_key(|r| (r.family, r.number));
        all
    }

    /// Replays the cases of `run` in recorded order.
    async fn replay(&self, run: Run) -> Res<Vec<CaseResult>> {
        let (family_cases, url) = match run {
            Run::T05Fresh | Run::T05Setup => (&self.t05, "http://127.0.0.1:18056"),
            Run::T06Management | Run::T06Services => (&self.t06, "http://127.0.0.1:18060"),
        };
        let cases = family_cases
            .iter()
            .filter(|c| c.group.is_some() && Run::of(c) == run);
        let mut results = Vec::new();
        match run {
            Run::T05Fresh => {
                let env = plain_env(Family::T05, url, None).await?;
                for case in cases {
                    results.push(self.replay_case(&env, case, family_cases).await);
                }
            }
            Run::T05Setup => {
                let env = t05_env::start(&self.t05, false).await?;
                let auth =
                    t05_env::start_with(&self.t05, true, env.emu.clone(), env.aux.clone()).await?;
                for case in cases {
                    let env = if (87..=90).contains(&case.number) {
                        &auth
                    } else {
                        &env
                    };
                    results.push(self.replay_case(env, case, family_cases).await);
                }
            }
            Run::T06Management => {
                // The management cases ran against `golden/v060/twitcher.ini` (management
                // user demo / demo) in order, after the CLI cases 1–52.
                let env = plain_env(Family::T06, url, Some(("demo", "demo"))).await?;
                for case in cases {
                    results.push(self.replay_case(&env, case, family_cases).await);
                }
            }
            Run::T06Services => {
                let env = t06_env::start(&self.t06).await?;
                for case in cases {
                    // The tutorial re-registered `emu` with `auth = cert` for its cases 24–31.
                    let auth = if (24..=31).contains(&case.number) {
                        "cert"
                    } else {
                        "token"
                    };
                    env.set_auth("emu", auth).await?;
                    results.push(self.replay_case(&env, case, family_cases).await);
                }
            }
        }
        Ok(results)
    }

    /// Restores the state `case` started from, then replays its exchanges in order.
    async fn replay_case(&self, env: &Env, case: &Case, cases: &[Case]) -> CaseResult {
        let setup = prepare(env, case, cases, &self.root).await;
        let group = case.group.unwrap_or(Group::T05Ows);
        let mut result = CaseResult {
            family: case.family,
            number: case.number,
            id: case.id.clone(),
            group,
            file: case.file.clone(),
            setup: setup.err(),
            exchanges: Vec::new(),
        };
        for ex in &case.exchanges {
            let expect = match env.family {
                Family::T05 => expect_t05(case.number, ex.index),
                Family::T06 => expect_t06(case.number),
            };
            let mut problems = self.unlisted(expect.deviations);
            env.emu.set_fallback(emu_answer(env, ex));
            env.emu.take_received();
            env.aux.take_received();
            let head = ex.method.eq_ignore_ascii_case("HEAD");
            let raw = substitute_request(env, &ex.raw);
            match send(&env.addr, &raw, head).await {
                Ok(got) => {
                    let mut received = env.emu.take_received();
                    received.extend(env.aux.take_received());
                    problems.extend(learn(env, &ex.response, &got));
                    problems.extend(evaluate(env, group, cases, ex, &expect, &got, &received));
                }
                Err(e) => problems.push(format!("no answer: {e}")),
            }
            result.exchanges.push(ExchangeResult {
                label: ex.label.clone(),
                deviations: expect.deviations,
                problems,
            });
        }
        result
    }

    /// A problem for each cited deviation that `compat/DEVIATIONS.md` does not list: an
    /// expectation may differ from the recording only for a documented reason.
    fn unlisted(&self, deviations: &[&str]) -> Vec<String> {
        let mut problems = Vec::new();
        for id in deviations {
            if !self.known.listed.contains(*id) {
                let only_proposed = self.known.proposed.contains(*id);
                problems.push(if only_proposed {
                    format!(
                        "deviation {id} is only proposed (compat/PROPOSED-DEVIATIONS.md), not yet listed in compat/DEVIATIONS.md"
                    )
                } else {
                    format!("deviation {id} is not listed in compat/DEVIATIONS.md")
                });
            }
        }
        problems
    }
}

/// The `**D-…**` ids of a deviations file.
fn deviation_ids(path: &Path) -> Res<HashSet<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .split("**")
        .filter(|s| {
            s.starts_with("D-")
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
        })
        .map(str::to_string)
        .collect())
}
