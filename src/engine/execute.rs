//! Executing a stage: its scratch directories, the variables its command
//! sees, the run itself (local or on the cluster, progress followed), and
//! keeping what it wrote.

use std::time::Instant;

use amt_registry::invocation::{Place, var};
use amt_registry::progress::Progress;

use super::{Check, Engine, ExecMode, Executed, StageError};
use crate::config::{Run, Stage};
use crate::digest::ActionKey;
use crate::exec::Job;
use crate::fingerprint::Inputs;
use crate::fsutil::remove_path;
use crate::ledger::{ExecutionStatus, now_ms};
use crate::params::{json_of_canonical, nest};
use crate::stage_env::watch_progress;
use crate::state::Origin;
use crate::store::{ActionResult, OutRecord};
use crate::tree::TreeError;

impl Engine<'_> {
    /// A stage's own directories: `work/` for resumable work on one action
    /// (train's checkpoints), `memo/` for memos of outside lookups that hold
    /// whatever the action (describe's HTTP cache).
    fn scratch_root(&self, stage: &Stage) -> std::path::PathBuf {
        self.project
            .local_dir()
            .join("scratch")
            .join(stage.name.as_str())
    }

    /// Where a stage resumes interrupted work: it holds only work on the
    /// action recorded in its `key` file, so another action (other code,
    /// params or data) or `--force` starts from an empty directory.
    pub(super) fn prepare_scratch(
        &self,
        stage: &Stage,
        key: &ActionKey,
        force: bool,
    ) -> Result<(std::path::PathBuf, std::path::PathBuf), StageError> {
        let root = self.scratch_root(stage);
        let (work, memo, stamp) = (root.join("work"), root.join("memo"), root.join("key"));
        let io = |what: &std::path::Path| {
            let what = format!("scratch directory {}", what.display());
            move |source| StageError::Io { what, source }
        };
        let same = std::fs::read_to_string(&stamp).is_ok_and(|k| k.trim() == key.to_string());
        if force || !same {
            remove_path(&work).map_err(io(&work))?;
            crate::fsutil::write_atomic(&stamp, key.to_string().as_bytes()).map_err(io(&stamp))?;
        }
        std::fs::create_dir_all(&work).map_err(io(&work))?;
        std::fs::create_dir_all(&memo).map_err(io(&memo))?;
        Ok((work, memo))
    }

    /// Executes a stage's command, then stores and records its outputs.
    /// `on_progress` hears each new report the stage writes while it runs.
    pub fn execute(
        &self,
        stage: &Stage,
        check: Check,
        mode: ExecMode,
        on_progress: &(dyn Fn(&Progress) + Sync),
    ) -> Result<Executed, StageError> {
        let force = mode.fresh_scratch;
        self.check_out_paths(stage)?;
        for out in &stage.outs {
            let abs = out.to_fs(self.root());
            remove_path(&abs).map_err(|source| StageError::Io {
                what: format!("out `{out}`"),
                source,
            })?;
            if let Some(parent) = abs.parent() {
                std::fs::create_dir_all(parent).map_err(|source| StageError::Io {
                    what: format!("the parent of `{out}`"),
                    source,
                })?;
            }
        }
        let command = match &stage.run {
            Run::Shell(cmd) => cmd.clone(),
            Run::Builtin { command, .. } => command.clone(),
        };
        let (scratch, memo) = self.prepare_scratch(stage, &check.key, force)?;
        let progress = self.progress_path(stage);
        let progress_io = |source| StageError::Io {
            what: format!("the progress file {}", progress.display()),
            source,
        };
        remove_path(&progress).map_err(progress_io)?;
        if let Some(dir) = progress.parent() {
            std::fs::create_dir_all(dir).map_err(progress_io)?;
        }
        let place = Place {
            root: self.root().to_owned(),
            scratch,
            memo,
            progress: Some(progress.clone()),
        };
        let mut env = self.stage_env(&check.inputs, &place)?;
        if matches!(stage.run, Run::Builtin { .. }) {
            // The program checks that its machine has the facts the key holds;
            // set also when there are none, so a variable of the user's shell
            // never stands in for the key's.
            let facts = serde_json::to_string(&check.inputs.facts).expect("strings serialise");
            env.push((var::FACTS.to_owned(), facts));
        }

        let log = self.log_path(stage);
        let key = check.key.to_string();
        let job = Job {
            stage: stage.name.as_str(),
            key: &key,
            command: &command,
            dir: self.root(),
            env: &env,
            log: &log,
            resources: stage.resources,
        };
        let executor = self.executor_for(stage);
        let (started, started_at_ms) = (Instant::now(), now_ms());
        let finished = watch_progress(&progress, on_progress, || {
            executor.run(&job, &self.processes)
        })
        .map_err(StageError::Spawn)?;
        let duration_ms = started.elapsed().as_millis() as u64;
        let mut row = self.ledger_row(stage, &check, started_at_ms, duration_ms);
        row.peak_rss_kb = finished.peak_rss_kb.map(|kb| kb as i64);
        row.exit_code = finished.status.code();
        row.executor = executor.name().to_owned();
        row.job_id = finished.job_id.clone();
        if self.processes.is_cancelled() {
            row.status = ExecutionStatus::Cancelled;
            self.log_run(row);
            return Err(StageError::Cancelled);
        }
        if !finished.success() {
            row.status = ExecutionStatus::Failed;
            self.log_run(row);
            return Err(StageError::Failed {
                status: finished.describe(),
                log: log.display().to_string(),
            });
        }

        // The command succeeded; the execution has yet to keep its outputs.
        match self.keep_outputs(stage, check, mode, duration_ms) {
            Ok(outs) => {
                row.status = ExecutionStatus::Ran;
                row.metrics = self.read_metrics(stage);
                self.log_run(row);
                Ok(Executed {
                    duration_ms,
                    outs,
                    job_id: finished.job_id,
                })
            }
            Err(e) => {
                row.status = ExecutionStatus::Failed;
                self.log_run(row);
                Err(e)
            }
        }
    }

    /// Hashes what an execution wrote, stores it, publishes it to the action
    /// cache (unless only verifying), and records the stage as up to date.
    pub(super) fn keep_outputs(
        &self,
        stage: &Stage,
        check: Check,
        mode: ExecMode,
        duration_ms: u64,
    ) -> Result<Vec<OutRecord>, StageError> {
        let hasher = self.hasher();
        let mut outs = Vec::with_capacity(stage.outs.len());
        for out in &stage.outs {
            let hashed = hasher.hash(out).map_err(|e| match e {
                TreeError::Missing(_) => StageError::MissingOut(out.clone()),
                e => e.into(),
            })?;
            self.store
                .ingest(self.root(), out, &hashed.entry, &hashed.manifests)?;
            outs.push(OutRecord {
                path: out.clone(),
                entry: hashed.entry,
            });
        }
        let result = ActionResult {
            stage: stage.name.clone(),
            outs: outs.clone(),
        };
        if mode.cache_result {
            self.cache.publish(&check.key, &result, &self.warnings)?;
        }
        self.record(stage, check, outs.clone(), Origin::Ran, duration_ms)?;
        Ok(outs)
    }

    /// The variables a command sees: what its key covers (the variables amt
    /// gives it and its params), and where it runs, which the key leaves out
    /// so that results are shared between checkouts.
    pub(super) fn stage_env(
        &self,
        inputs: &Inputs,
        place: &Place,
    ) -> Result<Vec<(String, String)>, StageError> {
        let mut env: Vec<(String, String)> = inputs
            .given
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend(place.vars());
        let params = nest(
            inputs
                .params
                .iter()
                .map(|(k, v)| (k.as_str(), json_of_canonical(v))),
        );
        env.push((var::PARAMS.to_owned(), params.to_string()));
        for (k, v) in &inputs.params {
            // A string as itself; anything else as its canonical JSON.
            let plain = match json_of_canonical(v) {
                serde_json::Value::String(s) => s,
                _ => v.clone(),
            };
            if plain.contains('\0') {
                return Err(StageError::NulInParam {
                    key: k.to_string(),
                    var: k.env_var(),
                });
            }
            env.push((k.env_var(), plain));
        }
        Ok(env)
    }
}
