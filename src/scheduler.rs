//! The scheduler: runs the selected stages in dependency order, independent
//! stages in parallel within CPU, GPU and memory limits.
//!
//! On a failure it starts no new work (unless `keep_going`), lets running
//! stages finish, and records nothing for the failed stage. With `dry_run` it
//! only checks, which is also how `amt status` works.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use amt_registry::progress::Progress;

use crate::config::{Resources, Stage};
use crate::engine::{Change, Check, Decision, Engine, ExecMode, StageError};
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
    pub force: BTreeSet<usize>,
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
    /// Something went wrong without failing a stage (the remote cache, the ledger).
    fn warning(&self, warning: &Warning);
}

/// The result of a scheduler run.
#[derive(Debug)]
pub struct Summary {
    /// Each selected stage's outcome, in topological order.
    pub outcomes: Vec<(usize, Outcome)>,
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl Summary {
    /// True when any stage failed, was cancelled or could not run.
    pub fn failed(&self) -> bool {
        self.outcomes.iter().any(|(_, o)| !o.is_ok())
    }

    /// The stages that produced other bytes when verified.
    pub fn nondeterministic(&self) -> Vec<usize> {
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

enum Slot {
    Waiting,
    Checking,
    Ready(Box<Check>),
    Running(Resources),
    Done(Outcome),
}

enum Msg {
    Checked(usize, Result<Check, StageError>),
    Finished(usize, Outcome),
}

/// Runs `selection` (stage indices, any order) and returns every outcome.
pub fn run(
    engine: &Engine<'_>,
    selection: &BTreeSet<usize>,
    opts: &Options,
    reporter: &dyn Reporter,
) -> Summary {
    let started = Instant::now();
    let project = engine.project;
    let stages = &project.pipeline.stages;
    let order = project.dag.sorted(selection);
    let jobs = opts.jobs.max(1);
    let mut slots: BTreeMap<usize, Slot> = order.iter().map(|&i| (i, Slot::Waiting)).collect();
    let (mut cpus_free, mut gpus_free, mut mem_free) = (jobs, opts.gpus, opts.mem);
    let mut failed = false;
    let mut stale_upstream: BTreeMap<usize, StageName> = BTreeMap::new();
    // Verify: the outputs each re-executed stage must reproduce.
    let mut expected: BTreeMap<usize, Vec<OutRecord>> = BTreeMap::new();
    let (tx, rx) = mpsc::channel::<Msg>();

    std::thread::scope(|scope| {
        loop {
            let stopping = (failed && !opts.keep_going) || engine.processes.is_cancelled();
            let mut settled: Vec<(usize, Outcome)> = Vec::new();

            // Checks: stages whose upstream has settled.
            for &i in &order {
                if !matches!(slots[&i], Slot::Waiting) {
                    continue;
                }
                let ups: Vec<usize> = project
                    .dag
                    .upstream(i)
                    .into_iter()
                    .filter(|u| slots.contains_key(u))
                    .collect();
                let done = |u: &usize| matches!(slots[u], Slot::Done(_));
                if !ups.iter().all(done) {
                    continue;
                }
                let outcome_of = |u: &usize| match &slots[u] {
                    Slot::Done(o) => o,
                    _ => unreachable!("all upstream stages are done"),
                };
                if let Some(bad) = ups.iter().find(|u| !outcome_of(u).is_ok()) {
                    settled.push((i, Outcome::Skipped(stages[*bad].name.clone())));
                } else if stopping {
                    settled.push((i, Outcome::NotStarted));
                } else if cpus_free > 0 {
                    // Dry run: an upstream stage that would run leaves this one's inputs unknown;
                    // it is still checked against the workspace to report its own changes.
                    if let Some(up) = ups
                        .iter()
                        .find(|u| matches!(outcome_of(u), Outcome::WouldRun(_)))
                    {
                        stale_upstream.insert(i, stages[*up].name.clone());
                    }
                    cpus_free -= 1;
                    slots.insert(i, Slot::Checking);
                    let (tx, force) = (tx.clone(), opts.force.contains(&i));
                    scope.spawn(move || {
                        let _ = tx.send(Msg::Checked(i, engine.check(&stages[i], force)));
                    });
                }
            }

            // Runs: checked stages that fit the free resources, in topological order.
            for &i in &order {
                if !matches!(slots[&i], Slot::Ready(_)) {
                    continue;
                }
                if stopping {
                    settled.push((i, Outcome::NotStarted));
                    continue;
                }
                // A stage a cluster runs takes one slot: `-j` counts jobs in flight.
                let need = if engine.executor_for(&stages[i]).is_remote() {
                    Resources {
                        cpus: 1,
                        gpus: 0,
                        mem: 0,
                    }
                } else {
                    Resources {
                        cpus: stages[i].resources.cpus.min(jobs as u32),
                        ..stages[i].resources
                    }
                };
                if let Some(why) = never_fits(&need, opts) {
                    settled.push((
                        i,
                        Outcome::Failed(StageError::Io {
                            what: "resources".into(),
                            source: std::io::Error::other(why),
                        }),
                    ));
                    continue;
                }
                if need.cpus as usize > cpus_free
                    || need.gpus > gpus_free
                    || (opts.mem > 0 && need.mem > mem_free)
                {
                    continue;
                }
                cpus_free -= need.cpus as usize;
                gpus_free -= need.gpus;
                mem_free = mem_free.saturating_sub(need.mem);
                let Slot::Ready(check) =
                    std::mem::replace(slots.get_mut(&i).expect("slot exists"), Slot::Running(need))
                else {
                    unreachable!("checked above")
                };
                let tx = tx.clone();
                let verifying = expected.remove(&i);
                let mode = ExecMode {
                    fresh_scratch: opts.force.contains(&i) || verifying.is_some(),
                    cache_result: verifying.is_none(),
                };
                scope.spawn(move || {
                    let stage = &stages[i];
                    reporter.started(stage, &check.changes);
                    let on_progress = |p: &Progress| reporter.progress(stage, p);
                    let outcome = match (engine.execute(stage, *check, mode, &on_progress), verifying) {
                        (Ok(done), None) => Outcome::Ran {
                            duration_ms: done.duration_ms,
                            job: done.job_id,
                        },
                        (Ok(done), Some(want)) => compare(&want, &done.outs, done.duration_ms),
                        (Err(e), _) => Outcome::Failed(e),
                    };
                    let _ = tx.send(Msg::Finished(i, outcome));
                });
            }

            let progressed = !settled.is_empty();
            for (i, outcome) in settled {
                failed |= !outcome.is_ok();
                reporter.finished(&stages[i], &outcome);
                slots.insert(i, Slot::Done(outcome));
            }

            let busy = slots
                .values()
                .any(|s| matches!(s, Slot::Checking | Slot::Running(_)));
            let pending = slots
                .values()
                .any(|s| matches!(s, Slot::Waiting | Slot::Ready(_)));
            if !busy {
                // With nothing in flight no message will come: settle what the
                // newly settled stages unblock (skips cascade down a chain), or stop.
                if pending && progressed {
                    continue;
                }
                break;
            }
            let Ok(msg) = rx.recv() else { break };
            for w in engine.warnings.take() {
                reporter.warning(&w);
            }
            let (i, outcome) = match msg {
                Msg::Checked(i, result) => {
                    cpus_free += 1;
                    match result {
                        // Dry run: the upstream stage would create what is missing now.
                        Err(_) if stale_upstream.contains_key(&i) => (
                            i,
                            Outcome::WouldRun(vec![Change::Upstream(stale_upstream[&i].clone())]),
                        ),
                        Err(e) => (i, Outcome::Failed(e)),
                        Ok(mut check) if stale_upstream.contains_key(&i) => {
                            check.changes.retain(|c| !matches!(c, Change::NeverRun));
                            check
                                .changes
                                .push(Change::Upstream(stale_upstream[&i].clone()));
                            (i, Outcome::WouldRun(check.changes))
                        }
                        Ok(mut check) if opts.verify && !opts.dry_run && !matches!(check.decision, Decision::Run) => {
                            let want = match std::mem::replace(&mut check.decision, Decision::Run) {
                                Decision::Restore(result) => result.outs,
                                _ => engine.state.load(&stages[i].name).map(|r| r.outs).unwrap_or_default(),
                            };
                            check.changes = vec![Change::Verify];
                            expected.insert(i, want);
                            slots.insert(i, Slot::Ready(Box::new(check)));
                            continue;
                        }
                        Ok(check) => match check.decision {
                            Decision::Fresh => (i, Outcome::Fresh),
                            Decision::Restore(_) if opts.dry_run => {
                                (i, Outcome::WouldRestore(check.changes))
                            }
                            Decision::Run if opts.dry_run => (i, Outcome::WouldRun(check.changes)),
                            Decision::Restore(_) => {
                                slots.insert(
                                    i,
                                    Slot::Running(Resources {
                                        cpus: 0,
                                        gpus: 0,
                                        mem: 0,
                                    }),
                                );
                                let tx = tx.clone();
                                scope.spawn(move || {
                                    let mut check = check;
                                    let Decision::Restore(result) =
                                        std::mem::replace(&mut check.decision, Decision::Run)
                                    else {
                                        unreachable!("matched above")
                                    };
                                    let outcome = match engine.restore(&stages[i], check, result) {
                                        Ok(method) => Outcome::Restored(method),
                                        Err(e) => Outcome::Failed(e),
                                    };
                                    let _ = tx.send(Msg::Finished(i, outcome));
                                });
                                continue;
                            }
                            Decision::Run => {
                                slots.insert(i, Slot::Ready(Box::new(check)));
                                continue;
                            }
                        },
                    }
                }
                Msg::Finished(i, outcome) => {
                    if let Slot::Running(r) = &slots[&i] {
                        cpus_free += r.cpus as usize;
                        gpus_free += r.gpus;
                        mem_free += r.mem;
                    }
                    (i, outcome)
                }
            };
            failed |= !outcome.is_ok();
            reporter.finished(&stages[i], &outcome);
            slots.insert(i, Slot::Done(outcome));
        }
    });

    for w in engine.warnings.take() {
        reporter.warning(&w);
    }
    let outcomes = order
        .iter()
        .map(|&i| match slots.remove(&i) {
            Some(Slot::Done(o)) => (i, o),
            _ => (i, Outcome::NotStarted),
        })
        .collect();
    Summary {
        outcomes,
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

/// Why a stage can never run on this machine, if it cannot.
fn never_fits(need: &Resources, opts: &Options) -> Option<String> {
    if need.gpus > opts.gpus {
        return Some(format!(
            "the stage needs {} GPU(s) and {} are available (set AMT_GPUS to override)",
            need.gpus, opts.gpus
        ));
    }
    if opts.mem > 0 && need.mem > opts.mem {
        return Some(format!(
            "the stage needs {} MiB of memory and {} MiB are available",
            need.mem >> 20,
            opts.mem >> 20
        ));
    }
    None
}
