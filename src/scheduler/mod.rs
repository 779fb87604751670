//! The scheduler: runs the selected stages in dependency order, independent
//! stages in parallel within CPU, GPU and memory limits.
//!
//! On a failure it starts no new work (unless `keep_going`), lets running
//! stages finish, and records nothing for the failed stage. With `dry_run` it
//! only checks, which is also how `amt status` works.
//!
//! Two halves: a `Plan` (plan.rs) decides what may start (and what a check's
//! decision means under `dry_run` and `verify`), and [`run`] starts it on
//! worker threads and reports each outcome.

mod plan;

use plan::{AfterCheck, Plan, Step};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use amt_registry::progress::Progress;

use crate::config::{Stage, StageId};
use crate::engine::{Change, Check, Engine, StageError};
use crate::ledger::RunRow;
use crate::names::{ProjectPath, StageName};
use crate::store::{LinkMethod, OutRecord};
use crate::tree::Entry;
use crate::warning::Warning;

/// How to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// CPU slots: the most stages (weighted by `cpus`) running at once.
    pub jobs: usize,
    /// Stages to run even when fresh.
    pub force: BTreeSet<StageId>,
    /// Check only; change nothing.
    pub dry_run: bool,
    /// After a failure, keep running stages that do not depend on it.
    pub keep_going: bool,
    /// GPUs available to stages.
    pub gpus: u32,
    /// Memory available to stages, in bytes (0: unlimited).
    pub mem: u64,
    /// Execute stages that are fresh or cached too, and compare their
    /// outputs with what the workspace or the cache holds.
    pub verify: bool,
}

/// What happened to one stage.
#[derive(Debug)]
pub enum Outcome {
    /// Already up to date.
    Fresh,
    /// Outputs restored from the cache.
    Restored(LinkMethod),
    /// Executed successfully (as the cluster job `job`, when it ran as one).
    Ran {
        duration_ms: u64,
        job: Option<String>,
    },
    /// Verify: executed again and produced the recorded bytes.
    Verified { duration_ms: u64 },
    /// Verify: executed again and produced other bytes than the ones on record.
    Nondeterministic(Vec<OutDiff>),
    /// Dry run: would execute, for these reasons.
    WouldRun(Vec<Change>),
    /// Dry run: would restore from the cache, for these reasons.
    WouldRestore(Vec<Change>),
    /// Failed; nothing was recorded.
    Failed(StageError),
    /// Not run because an upstream stage failed.
    Skipped(StageName),
    /// Not started because the run stopped early.
    NotStarted,
}

impl Outcome {
    /// True for outcomes that let downstream stages proceed.
    pub fn is_ok(&self) -> bool {
        matches!(
            self,
            Outcome::Fresh
                | Outcome::Restored(_)
                | Outcome::Ran { .. }
                | Outcome::Verified { .. }
                | Outcome::Nondeterministic(_)
                | Outcome::WouldRun(_)
                | Outcome::WouldRestore(_)
        )
    }

    /// A short, stable label.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Fresh => "fresh",
            Outcome::Restored(_) => "restored",
            Outcome::Ran { .. } => "ran",
            Outcome::Verified { .. } => "verified",
            Outcome::Nondeterministic(_) => "nondeterministic",
            Outcome::WouldRun(_) => "would run",
            Outcome::WouldRestore(_) => "would restore",
            Outcome::Failed(StageError::Cancelled) => "cancelled",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
            Outcome::NotStarted => "not started",
        }
    }
}

/// An output that came out differently when a stage was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutDiff {
    /// The declared out.
    pub path: ProjectPath,
    /// What the workspace or cache held.
    pub expected: Option<Entry>,
    /// What the stage produced now.
    pub actual: Entry,
}

/// Receives progress as the scheduler works. Called from worker threads.
pub trait Reporter: Sync {
    /// A stage starts executing (not called for checks or dry runs).
    fn started(&self, stage: &Stage, changes: &[Change]);
    /// A stage reached its outcome.
    fn finished(&self, stage: &Stage, outcome: &Outcome);
    /// A running stage reported how far it is.
    fn progress(&self, _stage: &Stage, _progress: &Progress) {}
    /// Something went wrong without failing a stage (the remote cache, say).
    fn warning(&self, warning: &Warning);
    /// A stage executed or was restored, as the run ledger records it. No
    /// default: a reporter that wraps another must pass it on.
    fn executed(&self, row: &RunRow);
}

/// Gives the reporter what the engine kept: warnings, then executions.
fn hand_over(engine: &Engine, reporter: &dyn Reporter) {
    for w in engine.warnings.take() {
        reporter.warning(&w);
    }
    for row in engine.executions.take() {
        reporter.executed(&row);
    }
}

/// Hands over what is left when a run ends, however it ends: if the
/// dispatch loop panics, the stages that finished while it waited for the
/// running ones still reach the ledger (only the executions then: a
/// warning would go to a reporter that may be what panicked).
struct FinalHandOver<'a, 'p> {
    engine: &'a Engine<'p>,
    reporter: &'a dyn Reporter,
}

impl Drop for FinalHandOver<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for row in self.engine.executions.take() {
                self.reporter.executed(&row);
            }
        } else {
            hand_over(self.engine, self.reporter);
        }
    }
}

/// The result of a scheduler run.
#[derive(Debug)]
pub struct Summary {
    /// Each selected stage's outcome, in topological order.
    pub outcomes: Vec<(StageId, Outcome)>,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl Summary {
    /// True when any stage failed, was cancelled or could not run.
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|(_, o)| !o.is_ok())
    }

    /// The stages that produced other bytes when verified.
    pub fn nondeterministic(&self) -> Vec<StageId> {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Nondeterministic(_)))
            .map(|(i, _)| *i)
            .collect()
    }

    /// How many stages had each outcome label, sorted by label.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for (_, o) in &self.outcomes {
            *counts.entry(o.label()).or_insert(0) += 1;
        }
        counts
    }
}

/// What a worker thread tells the runner.
enum Msg {
    Checked(StageId, Result<Check, StageError>),
    Finished(StageId, Outcome),
}

/// Runs `selection` (any order) and returns every outcome: the running half,
/// which starts what the `Plan` says on worker threads and reports each
/// outcome as it comes.
pub fn run(
    engine: &Engine<'_>,
    selection: &BTreeSet<StageId>,
    opts: &Options,
    reporter: &dyn Reporter,
) -> Summary {
    let started = Instant::now();
    let stages = &engine.project.pipeline.stages;
    let _last = FinalHandOver { engine, reporter };
    let mut plan = Plan::new(engine.project, selection, opts);
    let (tx, rx) = mpsc::channel::<Msg>();

    std::thread::scope(|scope| {
        loop {
            let stopping = plan.stopping() || engine.processes.is_cancelled();
            let (steps, settled) = plan.next(stopping, |s| engine.executor_for(s).is_remote());
            for step in steps {
                let tx = tx.clone();
                match step {
                    Step::Check(i) => {
                        let force = opts.force.contains(&i);
                        scope.spawn(move || {
                            let _ = tx.send(Msg::Checked(i, engine.check(&stages[i], force)));
                        });
                    }
                    Step::Execute {
                        id: i,
                        check,
                        mode,
                        verifying,
                    } => {
                        scope.spawn(move || {
                            let stage = &stages[i];
                            reporter.started(stage, &check.changes);
                            let on_progress = |p: &Progress| reporter.progress(stage, p);
                            let done = engine.execute(stage, *check, mode, &on_progress);
                            let outcome = match (done, verifying) {
                                (Ok(done), None) => Outcome::Ran {
                                    duration_ms: done.duration_ms,
                                    job: done.job_id,
                                },
                                (Ok(done), Some(want)) => {
                                    compare(&want, &done.outs, done.duration_ms)
                                }
                                (Err(e), _) => Outcome::Failed(e),
                            };
                            let _ = tx.send(Msg::Finished(i, outcome));
                        });
                    }
                }
            }

            let progressed = !settled.is_empty();
            for (i, outcome) in settled {
                reporter.finished(&stages[i], &outcome);
                plan.settle(i, outcome);
            }
            if !plan.busy() {
                // With nothing in flight no message will come: settle what the
                // newly settled stages unblock (skips cascade down a chain), or stop.
                if plan.pending() && progressed {
                    continue;
                }
                break;
            }
            let Ok(msg) = rx.recv() else { break };
            hand_over(engine, reporter);
            let (i, outcome) = match msg {
                Msg::Checked(i, result) => {
                    let recorded = || {
                        let state = engine.state.load(&stages[i].name);
                        state.map(|r| r.outs).unwrap_or_default()
                    };
                    match plan.checked(i, result, recorded) {
                        AfterCheck::Settle(outcome) => (i, outcome),
                        AfterCheck::Ready => continue,
                        AfterCheck::Restore(check, result) => {
                            let tx = tx.clone();
                            scope.spawn(move || {
                                let outcome = match engine.restore(&stages[i], *check, result) {
                                    Ok(method) => Outcome::Restored(method),
                                    Err(e) => Outcome::Failed(e),
                                };
                                let _ = tx.send(Msg::Finished(i, outcome));
                            });
                            continue;
                        }
                    }
                }
                Msg::Finished(i, outcome) => {
                    plan.finished(i);
                    (i, outcome)
                }
            };
            reporter.finished(&stages[i], &outcome);
            plan.settle(i, outcome);
        }
    });

    Summary {
        outcomes: plan.outcomes(),
        elapsed: started.elapsed(),
    }
}

/// A verified stage's outcome: the same outs, or which ones differ.
fn compare(want: &[OutRecord], got: &[OutRecord], duration_ms: u64) -> Outcome {
    let diffs: Vec<OutDiff> = got
        .iter()
        .filter_map(|g| {
            let w = want.iter().find(|w| w.path == g.path).map(|w| w.entry);
            (w != Some(g.entry)).then(|| OutDiff {
                path: g.path.clone(),
                expected: w,
                actual: g.entry,
            })
        })
        .collect();
    if diffs.is_empty() {
        Outcome::Verified { duration_ms }
    } else {
        Outcome::Nondeterministic(diffs)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::NoBuiltins;
    use crate::project::Project;

    /// Breaks when stage `quick` finishes; remembers the executions it heard.
    #[derive(Default)]
    struct Fragile(Mutex<Vec<String>>);

    impl Reporter for Fragile {
        fn started(&self, _: &Stage, _: &[Change]) {}
        fn finished(&self, stage: &Stage, _: &Outcome) {
            assert!(stage.name.as_str() != "quick", "the reporter broke");
        }
        fn warning(&self, _: &Warning) {}
        fn executed(&self, row: &RunRow) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(row.stage.clone());
        }
    }

    #[test]
    fn a_stage_that_finishes_while_a_run_panics_still_reaches_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("amt.toml"),
            "[stages.quick]\ncmd = \"echo > q\"\nouts = [\"q\"]\n\
             [stages.slow]\ncmd = \"sleep 1; echo > s\"\nouts = [\"s\"]\n",
        )
        .unwrap();
        let project = Project::load(dir.path(), &NoBuiltins, None).unwrap();
        let engine = Engine::open(&project);
        let selection: BTreeSet<StageId> =
            ["quick", "slow"].iter().map(|n| project.pipeline.id(n).unwrap()).collect();
        let opts = Options {
            jobs: 2,
            force: BTreeSet::new(),
            dry_run: false,
            keep_going: false,
            gpus: 0,
            mem: 0,
            verify: false,
        };
        let reporter = Fragile::default();
        // `quick` finishes and the reporter panics while `slow` still runs;
        // the run waits for `slow`, whose row is handed over as it unwinds.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&engine, &selection, &opts, &reporter)
        }));
        assert!(ran.is_err(), "the reporter's panic goes on up");
        let mut heard = reporter.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        heard.sort();
        assert_eq!(heard, ["quick", "slow"]);
    }
}
