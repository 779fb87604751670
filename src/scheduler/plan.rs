//! The planning half of the scheduler: where each selected stage stands,
//! what may start next within the budget, and what a check's decision means
//! under `dry_run` and `verify`.

use std::collections::{BTreeMap, BTreeSet};

use super::{Options, Outcome};
use crate::config::{Resources, Stage, StageId};
use crate::engine::{Change, Check, Decision, ExecMode, StageError};
use crate::names::StageName;
use crate::project::Project;
use crate::store::{ActionResult, OutRecord};

/// Where one selected stage stands.
enum Slot {
    Waiting,
    Checking,
    Ready(Box<Check>),
    Running(Resources),
    Done(Outcome),
}

/// What the runner is to start next.
pub(super) enum Step {
    /// Decide the stage's fate (fresh, restore or run).
    Check(StageId),
    /// Execute a checked stage; `verifying` holds the outputs it must reproduce.
    Execute {
        id: StageId,
        check: Box<Check>,
        mode: ExecMode,
        verifying: Option<Vec<OutRecord>>,
    },
}

/// What a finished check leads to.
pub(super) enum AfterCheck {
    /// The stage's outcome is known.
    Settle(Outcome),
    /// Restore its outputs from the cache.
    Restore(Box<Check>, ActionResult),
    /// It waits for resources to execute.
    Ready,
}

/// The run's free CPU slots, GPUs and memory. A check takes one CPU slot; an
/// execution what its stage needs (one slot for a cluster's job).
struct Budget {
    cpus: usize,
    gpus: u32,
    mem: u64,
    mem_limited: bool,
}

/// What a check takes from the budget.
const CHECK: Resources = Resources {
    cpus: 1,
    gpus: 0,
    mem: 0,
};

/// What a restore takes: nothing, it only links files.
const RESTORE: Resources = Resources {
    cpus: 0,
    gpus: 0,
    mem: 0,
};

impl Budget {
    fn new(opts: &Options) -> Self {
        Self {
            cpus: opts.jobs.max(1),
            gpus: opts.gpus,
            mem: opts.mem,
            mem_limited: opts.mem > 0,
        }
    }

    /// Takes `need` if it is free now.
    fn take(&mut self, need: &Resources) -> bool {
        if need.cpus as usize > self.cpus
            || need.gpus > self.gpus
            || (self.mem_limited && need.mem > self.mem)
        {
            return false;
        }
        self.cpus -= need.cpus as usize;
        self.gpus -= need.gpus;
        self.mem = self.mem.saturating_sub(need.mem);
        true
    }

    fn give_back(&mut self, r: &Resources) {
        self.cpus += r.cpus as usize;
        self.gpus += r.gpus;
        self.mem += r.mem;
    }
}

/// The planning half of the scheduler: where each selected stage stands and
/// what may start next, within the budget. It starts no threads and calls no
/// engine; [`run`](super::run) asks it for steps and tells it what happened, as ninja's
/// Plan and its command runner divide the work.
pub(super) struct Plan<'a> {
    project: &'a Project,
    opts: &'a Options,
    /// The selected stages in topological order.
    order: Vec<StageId>,
    slots: BTreeMap<StageId, Slot>,
    budget: Budget,
    failed: bool,
    /// Dry run: the upstream stage that would run first, for each stage
    /// whose inputs that leaves unknown.
    stale_upstream: BTreeMap<StageId, StageName>,
    /// Verify: the outputs each re-executed stage must reproduce.
    expected: BTreeMap<StageId, Vec<OutRecord>>,
}

impl<'a> Plan<'a> {
    pub(super) fn new(
        project: &'a Project,
        selection: &BTreeSet<StageId>,
        opts: &'a Options,
    ) -> Self {
        let order = project.dag.sorted(selection);
        Self {
            slots: order.iter().map(|&i| (i, Slot::Waiting)).collect(),
            order,
            project,
            opts,
            budget: Budget::new(opts),
            failed: false,
            stale_upstream: BTreeMap::new(),
            expected: BTreeMap::new(),
        }
    }

    /// Whether a failure stops the run from starting anything new.
    pub(super) fn stopping(&self) -> bool {
        self.failed && !self.opts.keep_going
    }

    pub(super) fn outcome(&self, i: StageId) -> Option<&Outcome> {
        match &self.slots[&i] {
            Slot::Done(o) => Some(o),
            _ => None,
        }
    }

    /// The steps that can start now, in topological order, and the stages
    /// settled without starting (skipped, not started, unable to fit).
    /// `remote` says which stages a cluster runs.
    pub(super) fn next(
        &mut self,
        stopping: bool,
        remote: impl Fn(&Stage) -> bool,
    ) -> (Vec<Step>, Vec<(StageId, Outcome)>) {
        let stages = &self.project.pipeline.stages;
        let (mut steps, mut settled) = (Vec::new(), Vec::new());
        // Checks: stages whose upstream has settled.
        for &i in &self.order {
            if !matches!(self.slots[&i], Slot::Waiting) {
                continue;
            }
            let ups: Vec<StageId> = self
                .project
                .dag
                .upstream(i)
                .into_iter()
                .filter(|u| self.slots.contains_key(u))
                .collect();
            let Some(outcomes) = ups
                .iter()
                .map(|&u| self.outcome(u).map(|o| (u, o)))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let bad = outcomes.iter().find(|(_, o)| !o.is_ok()).map(|(u, _)| *u);
            let would_run = outcomes
                .iter()
                .find(|(_, o)| matches!(o, Outcome::WouldRun(_)))
                .map(|(u, _)| *u);
            if let Some(bad) = bad {
                settled.push((i, Outcome::Skipped(stages[bad].name.clone())));
            } else if stopping {
                settled.push((i, Outcome::NotStarted));
            } else if self.budget.take(&CHECK) {
                // Dry run: an upstream stage that would run leaves this one's inputs unknown;
                // it is still checked against the workspace to report its own changes.
                if let Some(up) = would_run {
                    self.stale_upstream.insert(i, stages[up].name.clone());
                }
                self.slots.insert(i, Slot::Checking);
                steps.push(Step::Check(i));
            }
        }
        // Executions: checked stages that fit the free resources.
        for &i in &self.order {
            if !matches!(self.slots[&i], Slot::Ready(_)) {
                continue;
            }
            if stopping {
                settled.push((i, Outcome::NotStarted));
                continue;
            }
            let stage = &stages[i];
            // A stage a cluster runs takes one slot: `-j` counts jobs in flight.
            let need = if remote(stage) {
                Resources {
                    cpus: 1,
                    gpus: 0,
                    mem: 0,
                }
            } else {
                Resources {
                    cpus: stage.resources.cpus.min(self.opts.jobs.max(1) as u32),
                    ..stage.resources
                }
            };
            if let Some(why) = never_fits(&need, self.opts) {
                settled.push((
                    i,
                    Outcome::Failed(StageError::Io {
                        what: "resources".into(),
                        source: std::io::Error::other(why),
                    }),
                ));
                continue;
            }
            if !self.budget.take(&need) {
                continue;
            }
            let Slot::Ready(check) = std::mem::replace(
                self.slots.get_mut(&i).expect("slot exists"),
                Slot::Running(need),
            ) else {
                unreachable!("checked above")
            };
            let verifying = self.expected.remove(&i);
            let mode = ExecMode {
                fresh_scratch: self.opts.force.contains(&i) || verifying.is_some(),
                cache_result: verifying.is_none(),
            };
            steps.push(Step::Execute {
                id: i,
                check,
                mode,
                verifying,
            });
        }
        (steps, settled)
    }

    /// A check came back: what it leads to under `--dry-run` and `--verify`.
    /// `recorded` gives the outputs on record for a fresh stage.
    pub(super) fn checked(
        &mut self,
        i: StageId,
        result: Result<Check, StageError>,
        recorded: impl FnOnce() -> Vec<OutRecord>,
    ) -> AfterCheck {
        self.budget.give_back(&CHECK);
        let stale = self.stale_upstream.get(&i);
        let opts = self.opts;
        match result {
            // Dry run: the upstream stage would create what is missing now.
            Err(_) if stale.is_some() => {
                AfterCheck::Settle(Outcome::WouldRun(vec![Change::Upstream(
                    stale.expect("matched").clone(),
                )]))
            }
            Err(e) => AfterCheck::Settle(Outcome::Failed(e)),
            Ok(mut check) if stale.is_some() => {
                check.changes.retain(|c| !matches!(c, Change::NeverRun));
                check
                    .changes
                    .push(Change::Upstream(stale.expect("matched").clone()));
                AfterCheck::Settle(Outcome::WouldRun(check.changes))
            }
            Ok(mut check)
                if opts.verify && !opts.dry_run && !matches!(check.decision, Decision::Run) =>
            {
                let want = match std::mem::replace(&mut check.decision, Decision::Run) {
                    Decision::Restore(result) => result.outs,
                    _ => recorded(),
                };
                check.changes = vec![Change::Verify];
                self.expected.insert(i, want);
                self.slots.insert(i, Slot::Ready(Box::new(check)));
                AfterCheck::Ready
            }
            Ok(mut check) => match std::mem::replace(&mut check.decision, Decision::Run) {
                Decision::Fresh => AfterCheck::Settle(Outcome::Fresh),
                Decision::Restore(_) if opts.dry_run => {
                    AfterCheck::Settle(Outcome::WouldRestore(check.changes))
                }
                Decision::Run if opts.dry_run => {
                    AfterCheck::Settle(Outcome::WouldRun(check.changes))
                }
                Decision::Restore(result) => {
                    self.slots.insert(i, Slot::Running(RESTORE));
                    AfterCheck::Restore(Box::new(check), result)
                }
                Decision::Run => {
                    self.slots.insert(i, Slot::Ready(Box::new(check)));
                    AfterCheck::Ready
                }
            },
        }
    }

    /// A restore or execution ended: its resources are free again.
    pub(super) fn finished(&mut self, i: StageId) {
        if let Slot::Running(r) = &self.slots[&i] {
            self.budget.give_back(r);
        }
    }

    /// Records a stage's outcome.
    pub(super) fn settle(&mut self, i: StageId, outcome: Outcome) {
        self.failed |= !outcome.is_ok();
        self.slots.insert(i, Slot::Done(outcome));
    }

    /// Whether a check or an execution is in flight.
    pub(super) fn busy(&self) -> bool {
        self.slots
            .values()
            .any(|s| matches!(s, Slot::Checking | Slot::Running(_)))
    }

    /// Whether a stage has yet to settle without being in flight.
    pub(super) fn pending(&self) -> bool {
        self.slots
            .values()
            .any(|s| matches!(s, Slot::Waiting | Slot::Ready(_)))
    }

    /// Every selected stage's outcome, in topological order.
    pub(super) fn outcomes(mut self) -> Vec<(StageId, Outcome)> {
        self.order
            .iter()
            .map(|&i| match self.slots.remove(&i) {
                Some(Slot::Done(o)) => (i, o),
                _ => (i, Outcome::NotStarted),
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(jobs: usize, gpus: u32, mem: u64) -> Options {
        Options {
            jobs,
            force: BTreeSet::new(),
            dry_run: false,
            keep_going: false,
            gpus,
            mem,
            verify: false,
        }
    }

    #[test]
    fn the_budget_gives_out_what_it_has_and_takes_it_back() {
        let mut b = Budget::new(&options(2, 1, 8 << 30));
        let big = Resources {
            cpus: 1,
            gpus: 1,
            mem: 6 << 30,
        };
        assert!(b.take(&big));
        // The CPU slot is free, the GPU and the memory are not.
        assert!(!b.take(&big));
        assert!(!b.take(&Resources { gpus: 0, ..big }));
        assert!(b.take(&CHECK));
        assert!(!b.take(&CHECK), "two slots, both in use");
        assert!(b.take(&RESTORE), "a restore needs nothing");
        b.give_back(&big);
        b.give_back(&CHECK);
        assert!(b.take(&big));
    }

    #[test]
    fn memory_counts_only_under_a_limit_and_jobs_is_at_least_one() {
        let mut b = Budget::new(&options(0, 0, 0));
        let hungry = Resources {
            cpus: 1,
            gpus: 0,
            mem: u64::MAX,
        };
        assert!(b.take(&hungry), "no limit: memory is not counted");
        assert!(!b.take(&CHECK), "-j 0 still gives one slot, now taken");
        b.give_back(&hungry);
        assert!(b.take(&CHECK));
    }
}
