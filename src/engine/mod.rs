//! Deciding what each stage needs, and doing it: leave it (fresh), restore its
//! outputs from the cache, or execute it and record the result. Checking and
//! restoring are here; `execute.rs` runs a stage's command and keeps what it
//! wrote, `record.rs` writes the stage's record and makes its ledger row
//! (kept in `executions` for the caller: the ledger observes the scheduler).

mod execute;
mod record;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::action_cache::ActionCache;
pub use crate::action_cache::RemoteCache;
pub use crate::change::{Change, diff_inputs};
use crate::config::{ExecutorKind, Run, Stage};
use crate::digest::{ActionKey, Digest};
use crate::exec::{Job, Processes};
use crate::executor::{Executor, Local};
use crate::fingerprint::Inputs;
use crate::ledger::{ExecutionStatus, RunRow, now_ms};
use crate::names::ProjectPath;
use crate::project::Project;
use crate::statcache::StatCache;
use crate::state::{Origin, StateDir};
use crate::store::{ActionResult, LinkMethod, OutRecord, Store, StoreError};
use crate::tree::{HashStats, TreeError, TreeHasher};
use crate::warning::{Kept, Warnings};

/// What a stage needs, as found by [`Engine::check`].
#[derive(Debug)]
pub enum Decision {
    /// Its outputs are in the workspace and match its inputs.
    Fresh,
    /// Its outputs for these inputs are in the cache.
    Restore(ActionResult),
    /// It must execute.
    Run,
}

/// The outcome of checking a stage.
#[derive(Debug)]
pub struct Check {
    /// The stage's current inputs.
    pub inputs: Inputs,
    /// Their action key.
    pub key: ActionKey,
    /// What to do.
    pub decision: Decision,
    /// Why it is not fresh (empty when fresh).
    pub changes: Vec<Change>,
    dep_manifests: Vec<(Digest, Vec<u8>)>,
}

impl Check {
    /// The listings of the stage's directory deps, keyed by digest.
    pub fn dep_manifests(&self) -> &[(Digest, Vec<u8>)] {
        &self.dep_manifests
    }
}

/// How to execute a stage.
#[derive(Clone, Copy, Debug)]
pub struct ExecMode {
    /// Empty the stage's scratch work first, so nothing is resumed (`--force`, `--verify`).
    pub fresh_scratch: bool,
    /// Store the result in the action cache (false when verifying a result already there).
    pub cache_result: bool,
}

/// What an execution produced.
#[derive(Debug)]
pub struct Executed {
    /// How long the command ran.
    pub duration_ms: u64,
    /// The outputs as hashed.
    pub outs: Vec<OutRecord>,
    /// The cluster's id for the job, when it ran as one.
    pub job_id: Option<String>,
}

/// Something went wrong while handling a stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{0}")]
    Tree(#[from] TreeError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot start the command: {0}")]
    Spawn(std::io::Error),
    #[error("param {key} holds a NUL byte, which no environment variable ({var}) can carry")]
    NulInParam { key: String, var: String },
    #[error("{0}")]
    Inputs(#[from] crate::inputs::InputsError),
    #[error(
        "out `{out}` lies under `{link}`, a symbolic link; amt will not delete or write through it"
    )]
    LinkedOut { out: ProjectPath, link: ProjectPath },
    #[error("the command failed ({status}); log: {log}")]
    Failed { status: String, log: String },
    #[error("the command exited 0 but did not produce its declared out `{0}`")]
    MissingOut(ProjectPath),
    #[error("cannot write {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("cancelled")]
    Cancelled,
}

/// Shared, thread-safe context for checking and running stages.
pub struct Engine<'p> {
    /// The project.
    pub project: &'p Project,
    /// The cache.
    pub store: Store,
    /// The stage records.
    pub state: StateDir,
    /// The stat cache.
    pub stat: StatCache,
    /// Files read while hashing.
    pub hash_stats: HashStats,
    /// Running processes, shared with the interrupt handler.
    pub processes: Arc<Processes>,
    /// The cluster stages can run on, and whether they do unless they say otherwise.
    cluster: Option<(Arc<dyn Executor>, ExecutorKind)>,
    /// This invocation's id in the ledger.
    invocation: String,
    /// The action cache: the local store, and a remote one when set.
    cache: ActionCache,
    /// What went wrong without failing a stage, until the caller takes it.
    pub warnings: Warnings,
    /// Each execution and restore as the ledger records it, until the
    /// caller takes it (the scheduler hands them to its reporter).
    pub executions: Kept<RunRow>,
}

impl<'p> Engine<'p> {
    /// Opens the engine's cache and state for a project. The cache (objects
    /// and action results) may be shared; state, logs, scratch and the stat
    /// cache belong to the project's workspace.
    pub fn open(project: &'p Project) -> Self {
        let (cache, local) = (project.cache_dir(), project.local_dir());
        Self {
            project,
            store: Store::new(&cache),
            state: StateDir::new(&local.join("state")),
            stat: StatCache::load(&local.join("stat").join("v1")),
            hash_stats: HashStats::default(),
            processes: Arc::new(Processes::default()),
            cluster: None,
            invocation: format!("{}-{}", now_ms(), std::process::id()),
            cache: ActionCache::new(Store::new(&cache)),
            warnings: Warnings::default(),
            executions: Kept::default(),
        }
    }

    /// This invocation's id in the ledger.
    pub fn invocation(&self) -> &str {
        &self.invocation
    }

    /// Reads and writes through a remote cache from now on.
    pub fn with_remote(mut self, remote: Arc<RemoteCache>) -> Self {
        self.cache = self.cache.with_remote(remote);
        self
    }

    /// Records executions under this invocation id (engines of one command share it).
    pub fn with_invocation(mut self, invocation: String) -> Self {
        self.invocation = invocation;
        self
    }

    /// Makes `cluster` available: stages that ask for it (`executor =
    /// "slurm"`) run there, and so does every other stage when `default` is
    /// `Slurm`, except those that ask to stay local.
    pub fn with_executor(mut self, cluster: Arc<dyn Executor>, default: ExecutorKind) -> Self {
        self.cluster = Some((cluster, default));
        self
    }

    /// The executor a stage runs with.
    pub fn executor_for(&self, stage: &Stage) -> &dyn Executor {
        match &self.cluster {
            Some((cluster, default))
                if stage.executor.unwrap_or(*default) == ExecutorKind::Slurm =>
            {
                cluster.as_ref()
            }
            _ => &Local,
        }
    }

    /// What executing a stage would do (`--dry-run`): for a cluster, the
    /// submission.
    pub fn describe_execution(&self, stage: &Stage, key: &str) -> String {
        let command = match &stage.run {
            Run::Shell(cmd) => cmd.clone(),
            Run::Builtin { command, .. } => command.clone(),
        };
        let log = self.log_path(stage);
        let job = Job {
            stage: stage.name.as_str(),
            key,
            command: &command,
            dir: self.root(),
            env: &[],
            log: &log,
            resources: stage.resources,
        };
        self.executor_for(stage).describe(&job)
    }

    fn root(&self) -> &Path {
        &self.project.root
    }

    /// A hasher over the project's files.
    pub fn hasher(&self) -> TreeHasher<'_> {
        TreeHasher::new(self.root(), &self.stat, &self.hash_stats)
    }

    /// Where stage logs go.
    pub fn log_dir(&self) -> std::path::PathBuf {
        self.project.local_dir().join("logs")
    }

    /// Where a stage's log goes.
    pub fn log_path(&self, stage: &Stage) -> std::path::PathBuf {
        self.log_dir().join(format!("{}.log", stage.name))
    }

    /// Computes a stage's current inputs from the workspace.
    pub fn inputs(
        &self,
        stage: &Stage,
        hasher: &TreeHasher<'_>,
    ) -> Result<(Inputs, Vec<(Digest, Vec<u8>)>), StageError> {
        Ok(crate::inputs::collect(self.project, stage, hasher)?)
    }

    /// Decides what a stage needs. `force` skips both the freshness check and the cache.
    ///
    /// Freshness is decided by the action key alone: the workspace is fresh
    /// when its record has this key and the outs are as recorded. The diff of
    /// inputs only explains a stale stage; it never decides.
    pub fn check(&self, stage: &Stage, force: bool) -> Result<Check, StageError> {
        let hasher = self.hasher();
        let (inputs, dep_manifests) = self.inputs(stage, &hasher)?;
        let key = inputs.action_key();
        let record = self.state.load(&stage.name);
        let mut changes = match &record {
            None => vec![Change::NeverRun],
            Some(r) if r.action_key == key => self.out_changes(stage, &r.outs, &hasher),
            Some(r) => {
                let diff = diff_inputs(&r.inputs, &inputs);
                if diff.is_empty() {
                    vec![Change::Key]
                } else {
                    diff
                }
            }
        };
        let decision = if force {
            changes.insert(0, Change::Forced);
            Decision::Run
        } else if changes.is_empty() {
            Decision::Fresh
        } else {
            match self.cache.lookup(stage, &key, &self.warnings) {
                Some(result) => Decision::Restore(result),
                None => Decision::Run,
            }
        };
        Ok(Check {
            inputs,
            key,
            decision,
            changes,
            dep_manifests,
        })
    }

    /// Compares the workspace outs against what was recorded.
    fn out_changes(
        &self,
        stage: &Stage,
        recorded: &[OutRecord],
        hasher: &TreeHasher<'_>,
    ) -> Vec<Change> {
        if recorded.iter().map(|o| &o.path).ne(stage.outs.iter()) {
            return vec![Change::OutsDeclared];
        }
        recorded
            .iter()
            .filter_map(|out| match hasher.hash(&out.path) {
                Ok(h) if h.entry == out.entry => None,
                Ok(_) => Some(Change::OutModified(out.path.clone())),
                Err(_) => Some(Change::OutMissing(out.path.clone())),
            })
            .collect()
    }

    /// Puts a cached result's outputs into the workspace and records it.
    pub fn restore(
        &self,
        stage: &Stage,
        check: Check,
        result: ActionResult,
    ) -> Result<LinkMethod, StageError> {
        let (started, started_at_ms) = (Instant::now(), now_ms());
        self.check_out_paths(stage)?;
        let hasher = self.hasher();
        let mut method = LinkMethod::Reflink;
        for out in &result.outs {
            let already_there = hasher.hash(&out.path).is_ok_and(|h| h.entry == out.entry);
            if !already_there {
                method = method.max(
                    self.store
                        .restore(&out.entry, &out.path.to_fs(self.root()))?,
                );
            }
        }
        let mut row = self.ledger_row(stage, &check, started_at_ms, 0);
        self.record(stage, check, result.outs, Origin::Restored, 0)?;
        row.duration_ms = started.elapsed().as_millis() as i64;
        row.status = ExecutionStatus::Restored;
        row.cache_hit = true;
        row.metrics = self.read_metrics(stage);
        self.log_run(row);
        Ok(method)
    }

    /// Refuses outs reached through a symbolic link: the load-time check may
    /// be stale, and deleting or writing through a link acts outside the project.
    fn check_out_paths(&self, stage: &Stage) -> Result<(), StageError> {
        for out in &stage.outs {
            if let Some(link) = crate::fsutil::linked_ancestor(self.root(), out) {
                return Err(StageError::LinkedOut {
                    out: out.clone(),
                    link,
                });
            }
        }
        Ok(())
    }

    /// Where a running stage reports its progress (`AMT_PROGRESS`).
    pub fn progress_path(&self, stage: &Stage) -> std::path::PathBuf {
        self.project
            .local_dir()
            .join("progress")
            .join(format!("{}.json", stage.name))
    }
}
