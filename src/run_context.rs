//! What every command that runs stages sets up once, `amt run` and `amt
//! sweep` alike: the project lock, a clean staging directory, the remote
//! cache, the cluster executor (after settling jobs an earlier, killed run
//! left behind), the registry of running processes that Ctrl-C cancels, and
//! the run ledger, which observes each scheduler run through [`Recorder`].
//! Each engine the command opens (one per sweep point) shares all of it.

use std::sync::Arc;
use std::time::Duration;

use amt_registry::progress::Progress;

use crate::action_cache::RemoteCache;
use crate::config::{ExecutorKind, Stage};
use crate::engine::{Change, Engine};
use crate::exec::Processes;
use crate::executor::Executor;
use crate::ledger::{Ledger, LedgerError, PipelineRun, RunRow, now_ms};
use crate::lock::{self, Holder, LockError, ProjectLock};
use crate::project::Project;
use crate::remote::{Remote, RemoteError};
use crate::scheduler::{Outcome, Reporter};
use crate::slurm::Slurm;
use crate::store::{Store, StoreError};
use crate::warning::Warning;

/// Which remote cache to read and write through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RemoteChoice {
    /// The one `[remote]` names, if any.
    #[default]
    Configured,
    /// This URL instead (`--remote`).
    Url(String),
    /// None (`--no-remote`).
    Off,
}

/// How a command wants its runs set up.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Describe only: take no lock, touch no cache, submit nothing.
    pub dry_run: bool,
    /// How long to wait for another amt process to release the project.
    pub lock_timeout: Duration,
    pub remote: RemoteChoice,
    /// Where stages run unless they say otherwise (`None`: `[executor] kind`).
    pub executor: Option<ExecutorKind>,
    /// Prefixes the invocation id (`sweep`), so the ledger and Slurm's job
    /// names tell a sweep's work from a run's.
    pub label: Option<&'static str>,
}

/// What happened while setting up, for the caller to show.
#[derive(Debug)]
pub enum Event {
    /// Another process holds the project; waiting for it.
    WaitingForLock(Holder),
    /// The remote cache could not be opened; the run goes on without it.
    RemoteUnavailable(RemoteError),
}

/// Why a run could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RunContextError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cleaning the cache's staging directory")]
    Staging(#[from] StoreError),
    #[error("cancelling the Slurm jobs of an earlier run: {0}")]
    Leftovers(std::io::Error),
    #[error("starting the Slurm executor: {0}")]
    Slurm(std::io::Error),
}

/// The shared set-up of one invocation.
pub struct RunContext {
    invocation: String,
    remote: Option<Arc<RemoteCache>>,
    cluster: Option<(Arc<Slurm>, ExecutorKind)>,
    processes: Arc<Processes>,
    ledger: Ledger,
    /// Declared last, so it is released after everything above is dropped.
    _lock: Option<ProjectLock>,
}

impl RunContext {
    /// Sets up runs of `project`; `on_event` hears what the caller may want to say.
    pub fn open(
        project: &Project,
        settings: &Settings,
        mut on_event: impl FnMut(Event),
    ) -> Result<Self, RunContextError> {
        let cache = project.cache_dir();
        let lock = if settings.dry_run {
            None
        } else {
            let lock = lock::acquire(&cache.join("lock"), settings.lock_timeout, |holder| {
                on_event(Event::WaitingForLock(holder.clone()))
            })?;
            Store::new(&cache).clean_tmp()?;
            Some(lock)
        };
        let invocation = match settings.label {
            Some(label) => format!("{label}-{}-{}", now_ms(), std::process::id()),
            None => format!("{}-{}", now_ms(), std::process::id()),
        };
        let remote = if settings.dry_run {
            None
        } else {
            open_remote(project, &settings.remote, &mut on_event)
        };
        let kind = settings.executor.unwrap_or(project.pipeline.executor.kind);
        let cluster = cluster(project, kind, &invocation, !settings.dry_run)?.map(|s| (s, kind));
        Ok(Self {
            invocation,
            remote,
            cluster,
            processes: Arc::new(Processes::default()),
            ledger: Ledger::new(&cache),
            _lock: lock,
        })
    }

    /// An engine for `project` that uses this context's remote, cluster and
    /// processes. `part` names a part of the invocation (a sweep point's
    /// workspace), whose executions the ledger then records apart.
    pub fn engine<'p>(&self, project: &'p Project, part: Option<&str>) -> Engine<'p> {
        let invocation = match part {
            Some(part) => format!("{}-{part}", self.invocation),
            None => self.invocation.clone(),
        };
        let mut engine = Engine::open(project).with_invocation(invocation);
        engine.processes = Arc::clone(&self.processes);
        if let Some(remote) = &self.remote {
            engine = engine.with_remote(Arc::clone(remote));
        }
        if let Some((slurm, kind)) = &self.cluster {
            engine = engine.with_executor(Arc::clone(slurm) as Arc<dyn Executor>, *kind);
        }
        engine
    }

    /// `reporter`, with every execution it hears of also kept in the ledger.
    pub fn recorder<'a>(&'a self, reporter: &'a dyn Reporter) -> Recorder<'a> {
        Recorder {
            ledger: &self.ledger,
            inner: reporter,
        }
    }

    /// Appends a pipeline run (or sweep point) to the ledger.
    pub fn record_run(&self, run: &PipelineRun) -> Result<(), LedgerError> {
        self.ledger.record_run(run)
    }

    /// The running processes of every engine of this context; cancel them on Ctrl-C.
    pub fn processes(&self) -> &Arc<Processes> {
        &self.processes
    }

    /// This invocation's id in the ledger (and in its Slurm job names).
    pub fn invocation(&self) -> &str {
        &self.invocation
    }
}

fn open_remote(
    project: &Project,
    choice: &RemoteChoice,
    on_event: &mut impl FnMut(Event),
) -> Option<Arc<RemoteCache>> {
    let configured = project.pipeline.remote.as_ref();
    let url = match choice {
        RemoteChoice::Off => return None,
        RemoteChoice::Url(url) => url.clone(),
        RemoteChoice::Configured => configured?.url.clone(),
    };
    let push = configured.is_none_or(|r| r.push);
    match Remote::open(&url) {
        Ok(remote) => Some(Arc::new(RemoteCache::new(remote, push))),
        Err(e) => {
            on_event(Event::RemoteUnavailable(e));
            None
        }
    }
}

/// The Slurm executor the project needs, if any stage runs on Slurm: by
/// default (`kind`), or because it asks to. `start` makes it ready to submit
/// (a dry run only describes). Whatever runs, no job of an earlier run may
/// still be writing, so leftovers are settled first.
fn cluster(
    project: &Project,
    kind: ExecutorKind,
    invocation: &str,
    start: bool,
) -> Result<Option<Arc<Slurm>>, RunContextError> {
    let records = project.cache_dir().join("slurm");
    if !project.pipeline.uses_slurm(kind) {
        if start {
            Slurm::settle_leftovers(&records).map_err(RunContextError::Leftovers)?;
        }
        return Ok(None);
    }
    let stages = project
        .pipeline
        .stages
        .iter()
        .map(|s| (s.name.to_string(), s.slurm.clone()))
        .collect();
    let slurm = Slurm::new(
        project.pipeline.executor.slurm.clone(),
        stages,
        invocation,
        &project.cache_dir(),
    );
    let slurm = if start {
        slurm.start().map_err(RunContextError::Slurm)?
    } else {
        slurm
    };
    Ok(Some(Arc::new(slurm)))
}

/// A reporter that keeps each execution in the run ledger, then passes
/// everything on. A ledger that cannot be written warns; it never fails a stage.
pub struct Recorder<'a> {
    ledger: &'a Ledger,
    inner: &'a dyn Reporter,
}

impl Reporter for Recorder<'_> {
    fn started(&self, stage: &Stage, changes: &[Change]) {
        self.inner.started(stage, changes);
    }
    fn finished(&self, stage: &Stage, outcome: &Outcome) {
        self.inner.finished(stage, outcome);
    }
    fn progress(&self, stage: &Stage, progress: &Progress) {
        self.inner.progress(stage, progress);
    }
    fn warning(&self, warning: &Warning) {
        self.inner.warning(warning);
    }
    fn executed(&self, row: &RunRow) {
        if let Err(e) = self.ledger.record(row) {
            self.inner.warning(&e.into());
        }
        self.inner.executed(row);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ledger::ExecutionStatus;

    /// A reporter that remembers what it heard.
    #[derive(Default)]
    struct Heard(Mutex<Vec<String>>);

    impl Reporter for Heard {
        fn started(&self, stage: &Stage, _: &[Change]) {
            self.0
                .lock()
                .unwrap()
                .push(format!("started {}", stage.name));
        }
        fn finished(&self, stage: &Stage, outcome: &Outcome) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", outcome.label(), stage.name));
        }
        fn progress(&self, stage: &Stage, _: &Progress) {
            self.0
                .lock()
                .unwrap()
                .push(format!("progress {}", stage.name));
        }
        fn warning(&self, warning: &Warning) {
            self.0.lock().unwrap().push(format!("warning: {warning}"));
        }
        fn executed(&self, row: &RunRow) {
            self.0
                .lock()
                .unwrap()
                .push(format!("executed {}", row.stage));
        }
    }

    fn row(stage: &str) -> RunRow {
        RunRow {
            invocation: "i".into(),
            stage: stage.into(),
            action_key: "k".into(),
            params: "{}".into(),
            started_at_ms: 1,
            duration_ms: 2,
            peak_rss_kb: None,
            status: ExecutionStatus::Ran,
            exit_code: Some(0),
            cache_hit: false,
            metrics: None,
            executor: "local".into(),
            job_id: None,
        }
    }

    #[test]
    fn the_recorder_keeps_each_execution_and_passes_it_on() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        let heard = Heard::default();
        let recorder = Recorder {
            ledger: &ledger,
            inner: &heard,
        };
        let pipeline = crate::config::parse(
            std::path::Path::new("amt.toml"),
            "[stages.a]\ncmd = \"true\"\nouts = [\"a\"]\n",
            &crate::config::NoBuiltins,
        )
        .unwrap();
        let stage = &pipeline.stages[0];
        recorder.started(stage, &[]);
        recorder.progress(
            stage,
            &serde_json::from_str(r#"{"done": 1, "unit": "steps"}"#).unwrap(),
        );
        recorder.executed(&row("a"));
        recorder.finished(
            stage,
            &Outcome::Ran {
                duration_ms: 2,
                job: None,
            },
        );
        recorder.executed(&row("b"));
        let kept: Vec<String> = ledger
            .rows(None, None)
            .unwrap()
            .into_iter()
            .map(|r| r.stage)
            .collect();
        assert_eq!(kept, ["a", "b"]);
        assert_eq!(
            *heard.0.lock().unwrap(),
            [
                "started a",
                "progress a",
                "executed a",
                "ran a",
                "executed b"
            ],
            "everything is passed on, in order"
        );
    }

    #[test]
    fn a_ledger_that_cannot_be_written_warns_and_the_run_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        // The cache directory is a file: the ledger cannot be created in it.
        let cache = dir.path().join("cache");
        std::fs::write(&cache, b"not a directory").unwrap();
        let ledger = Ledger::new(&cache);
        let heard = Heard::default();
        Recorder {
            ledger: &ledger,
            inner: &heard,
        }
        .executed(&row("a"));
        let heard = heard.0.lock().unwrap();
        assert_eq!(heard.len(), 2, "{heard:?}");
        assert!(
            heard[0].starts_with("warning: ") && heard[0].contains("ledger.sqlite"),
            "{heard:?}"
        );
        assert_eq!(heard[1], "executed a");
    }
}
