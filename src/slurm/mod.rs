//! Stages as Slurm jobs. amt keeps the DAG and decides what runs; each stage
//! that must execute becomes one `sbatch --parsable` job, and one `squeue`
//! query per tick, by the run's job name, follows all of the run's jobs,
//! with a wait that grows while nothing finishes (from `poll` to `poll_max`)
//! so that a large sweep never floods the controller.
//!
//! A job's result is trusted only after amt hashes its outputs on the shared
//! filesystem, as for a local stage. Every job is recorded under
//! `cache/slurm/` before it is submitted (by a token also written in its
//! comment, so a job whose id amt never learnt is still found) and until
//! Slurm says it ended. A run that finds records of an earlier one (which
//! `kill -9`, or a job amt lost track of, left behind) cancels those jobs and
//! waits until Slurm confirms they are gone before it runs anything; if it
//! cannot confirm, it refuses to run. So a stage never runs twice at once.
//! Ctrl-C cancels the run's jobs (`scancel`, repeated until Slurm confirms).
//!
//! `squeue --states=all` is the status query; a finished job stays visible
//! to it for `MinJobAge`, and `poll_max` is kept below half of that. A job
//! squeue no longer shows is looked up in `sacct` (where slurmdbd keeps
//! accounting) before it counts as unseen.

mod follow;
mod leftovers;
mod query;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::{SlurmConfig, SlurmOptions};
use crate::exec::{Finished, Job, Processes};
use crate::executor::{Executor, shell_quote};
use follow::Board;
use leftovers::Record;
use query::{End, exit_status, min_job_age, run_command, terminal};

/// How long a job may go unseen by successful status queries, or status
/// queries may keep failing, before amt gives the job up as lost.
const LOST_AFTER: Duration = Duration::from_secs(600);

/// After a cancellation, how often `scancel` is sent again, and how long amt
/// waits for Slurm to confirm before it leaves the job to the next run.
const CANCEL_EVERY: Duration = Duration::from_secs(5);
const CANCEL_PATIENCE: Duration = Duration::from_secs(60);

/// Variables sbatch reads that would change what amt decides itself.
const SBATCH_VARS: &[&str] = &[
    "SBATCH_JOB_NAME",
    "SBATCH_ARRAY_INX",
    "SBATCH_HOLD",
    "SBATCH_WAIT",
    "SBATCH_EXPORT",
    "SBATCH_REQUEUE",
    "SBATCH_NO_REQUEUE",
    "SBATCH_OPEN_MODE",
];

/// The Slurm executor of one amt invocation (shared by a sweep's points).
pub struct Slurm {
    config: SlurmConfig,
    /// Each stage's own options over `[executor.slurm]`, by stage name.
    stages: HashMap<String, SlurmOptions>,
    /// `<prefix>-<invocation>`: every job of the run carries it.
    job_name: String,
    records: PathBuf,
    board: Arc<(Mutex<Board>, Condvar)>,
    submitted: AtomicU64,
}

/// A path for sbatch's `--output`, where `%` starts a pattern.
fn sbatch_path(path: &Path) -> String {
    path.display().to_string().replace('%', "%%")
}

impl Slurm {
    /// The executor for one invocation (`invocation` makes the job name
    /// unique), touching nothing yet: enough to describe submissions.
    pub fn new(
        config: SlurmConfig,
        stages: HashMap<String, SlurmOptions>,
        invocation: &str,
        cache: &Path,
    ) -> Self {
        Self {
            job_name: format!("{}-{invocation}", config.job_name),
            config,
            stages,
            records: cache.join("slurm"),
            board: Arc::default(),
            submitted: AtomicU64::new(0),
        }
    }

    /// Makes it ready to submit: jobs of earlier runs are dealt with (see
    /// [`Slurm::settle_leftovers`]), and `poll_max` is kept below half of
    /// slurmctld's `MinJobAge`, so no job ends and is forgotten between two looks.
    pub fn start(mut self) -> io::Result<Self> {
        Self::settle_leftovers(&self.records)?;
        std::fs::create_dir_all(&self.records)?;
        if let Some(age) = min_job_age() {
            self.config.poll_max = self.config.poll_max.min(age / 2).max(self.config.poll);
        }
        Ok(self)
    }

    /// Cancels every job recorded under `records` (by an earlier, killed amt,
    /// or one that lost track of a job) and waits until Slurm confirms each
    /// is gone; errors, and runs nothing, when it cannot confirm. Every run
    /// calls this, whatever its executor.
    pub fn settle_leftovers(records: &Path) -> io::Result<()> {
        leftovers::settle(records)
    }

    /// The job name of this run.
    pub fn job_name(&self) -> &str {
        &self.job_name
    }

    /// The sbatch arguments for a job (the command goes in `--wrap`).
    fn sbatch_args(&self, job: &Job<'_>, token: &str) -> Vec<String> {
        let o = self.config.options.with(
            self.stages
                .get(job.stage)
                .unwrap_or(&SlurmOptions::default()),
        );
        let mut a = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", self.job_name),
            format!(
                "--comment=amt stage={} key={} token={token}",
                job.stage,
                &job.key[..job.key.len().min(16)]
            ),
            format!("--output={}", sbatch_path(job.log)),
            "--open-mode=truncate".to_owned(),
            format!("--chdir={}", job.dir.display()),
            "--export=ALL".to_owned(),
            // A requeued job would run the command again behind amt's back.
            "--no-requeue".to_owned(),
            "--ntasks=1".to_owned(),
            format!("--cpus-per-task={}", job.resources.cpus.max(1)),
        ];
        if job.resources.mem > 0 {
            a.push(format!("--mem={}M", job.resources.mem.div_ceil(1 << 20)));
        }
        if job.resources.gpus > 0 {
            a.push(format!("--gres=gpu:{}", job.resources.gpus));
        }
        let flags = [
            ("--partition", &o.partition),
            ("--account", &o.account),
            ("--time", &o.time),
            ("--qos", &o.qos),
            ("--constraint", &o.constraint),
        ];
        for (flag, value) in flags {
            if let Some(v) = value {
                a.push(format!("{flag}={v}"));
            }
        }
        a.extend(o.extra.iter().cloned());
        a.push(format!("--wrap={}", wrapped(job)));
        a
    }

    fn submit(&self, job: &Job<'_>, token: &str) -> io::Result<String> {
        if let Some(dir) = job.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut cmd = Command::new("sbatch");
        cmd.args(self.sbatch_args(job, token))
            .current_dir(job.dir)
            .envs(job.env.iter().map(|(k, v)| (k, v)));
        for var in SBATCH_VARS {
            cmd.env_remove(var);
        }
        // Inside a job (amt itself under Slurm), the job's own variables must
        // not leak into the jobs it submits; where to find the cluster stays.
        if std::env::var_os("SLURM_JOB_ID").is_some() {
            for (k, _) in std::env::vars_os() {
                let k_text = k.to_string_lossy();
                if k_text.starts_with("SLURM_") && k_text != "SLURM_CONF" {
                    cmd.env_remove(k);
                }
            }
        }
        let out = run_command(&mut cmd, "sbatch")?;
        // `--parsable` prints `id` or `id;cluster`; sites may print more before it.
        let id = out
            .lines()
            .filter_map(|l| l.split(';').next())
            .map(str::trim)
            .rfind(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| io::Error::other(format!("sbatch printed no job id: {out:?}")))?
            .to_owned();
        Ok(id)
    }

    /// Waits for a job's end. Once `processes` is cancelled, scancel is sent
    /// (again every few seconds) until Slurm confirms; after a minute without
    /// confirmation the job is left to the next run, which cancels it first.
    fn wait(&self, id: &str, processes: &Processes) -> End {
        let (lock, cond) = &*self.board;
        let mut cancel: Option<(Instant, Instant)> = None; // (first sent, last sent)
        loop {
            let must_cancel = {
                let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(Some(end)) = guard.jobs.get(id) {
                        return end.clone();
                    }
                    let due = processes.is_cancelled()
                        && cancel.is_none_or(|(_, last)| last.elapsed() >= CANCEL_EVERY);
                    if due {
                        break true;
                    }
                    if let Some((first, _)) = cancel
                        && first.elapsed() >= CANCEL_PATIENCE
                    {
                        return End::unconfirmed(
                            "CANCELLED",
                            "scancel sent; Slurm did not confirm within a minute",
                        );
                    }
                    guard = cond
                        .wait_timeout(guard, Duration::from_millis(200))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            };
            if must_cancel {
                // Outside the lock: slurmctld may be slow to answer.
                let _ = run_command(Command::new("scancel").arg(id), "scancel");
                let now = Instant::now();
                cancel = Some((cancel.map_or(now, |(first, _)| first), now));
                // Hear about it soon, whatever the back-off says.
                cond.notify_all();
            }
        }
    }
}

/// The job's script: the stage's `mem` as `ulimit -d` (as amt applies it
/// locally), then its command.
fn wrapped(job: &Job<'_>) -> String {
    if job.resources.mem > 0 {
        format!("ulimit -d {}\n{}", job.resources.mem / 1024, job.command)
    } else {
        job.command.to_owned()
    }
}

impl Executor for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn run(&self, job: &Job<'_>, processes: &Processes) -> io::Result<Finished> {
        use std::os::unix::process::ExitStatusExt;
        if processes.is_cancelled() {
            return Ok(Finished {
                status: ExitStatus::from_raw(libc::SIGTERM),
                peak_rss_kb: None,
                job_id: None,
                failure: Some("cancelled before submission".into()),
            });
        }
        // Recorded before it exists: a job sbatch queued but whose id never
        // came back (a timeout, a kill) is still found by its token.
        let n = self.submitted.fetch_add(1, Ordering::Relaxed);
        let mut record = Record {
            token: format!("{}-{n}", self.job_name),
            job: None,
            stage: job.stage.to_owned(),
            key: job.key.to_owned(),
        };
        leftovers::write(&self.records, &record)?;
        let id = self.submit(job, &record.token)?;
        record.job = Some(id.clone());
        leftovers::write(&self.records, &record)?;
        {
            let (lock, _) = &*self.board;
            let mut board = lock.lock().unwrap_or_else(|e| e.into_inner());
            board.jobs.insert(id.clone(), None);
            if !board.poller {
                board.poller = true;
                let (b, name, config) = (
                    Arc::clone(&self.board),
                    self.job_name.clone(),
                    self.config.clone(),
                );
                std::thread::spawn(move || follow::poll(b, name, config));
            }
            // The poller is not woken: its back-off, not the submissions, sets the pace.
        }
        let end = self.wait(&id, processes);
        let details = run_command(
            Command::new("scontrol").args(["show", "job", &id]),
            "scontrol",
        )
        .unwrap_or_default();
        // A job amt lost track of may still run: its record stays for the
        // next run to cancel. A job Slurm says ended is done with.
        if end.confirmed {
            let _ = std::fs::remove_file(self.records.join(format!("{}.json", record.token)));
        } else {
            let _ = run_command(Command::new("scancel").arg(&id), "scancel");
        }
        let status = match &end.exit_code {
            Some(code) => exit_status(&format!("ExitCode={code}")),
            None => exit_status(&details),
        };
        let success = terminal(&end.state) == Some(true);
        let failure = (!success).then(|| {
            let mut why = format!("Slurm job {id} ended {}", end.state);
            if !end.reason.is_empty() && end.reason != "None" {
                why.push_str(&format!(" ({})", end.reason));
            }
            if end.state == "FAILED" {
                why.push_str(&format!(", {}", crate::exec::describe(&status)));
            }
            why
        });
        Ok(Finished {
            status: if success {
                ExitStatus::from_raw(0)
            } else {
                status
            },
            peak_rss_kb: None,
            job_id: Some(id),
            failure,
        })
    }

    fn describe(&self, job: &Job<'_>) -> String {
        let words: Vec<String> = std::iter::once("sbatch".to_owned())
            .chain(self.sbatch_args(job, "TOKEN"))
            .map(|w| shell_quote(&w))
            .collect();
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_escape_sbatch_patterns() {
        assert_eq!(sbatch_path(Path::new("/p/100%j/x.log")), "/p/100%%j/x.log");
    }
}
