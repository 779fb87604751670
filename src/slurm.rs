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

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{SlurmConfig, SlurmOptions};
use crate::exec::{Finished, Job, Processes};
use crate::executor::{Executor, shell_quote};

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

/// How a job ended, as Slurm says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct End {
    state: String,
    reason: String,
    /// False when amt gave the job up without Slurm saying it ended (lost,
    /// or a cancellation Slurm did not confirm): it may still run.
    confirmed: bool,
    /// `code:signal`, when accounting told it (slurmctld has forgotten the job).
    exit_code: Option<String>,
}

impl End {
    fn unconfirmed(state: &str, reason: impl Into<String>) -> Self {
        Self {
            state: state.into(),
            reason: reason.into(),
            confirmed: false,
            exit_code: None,
        }
    }
}

/// The jobs of a run that are in flight, and what the poller learnt of them.
#[derive(Default)]
struct Board {
    /// Job id → its end, once known.
    jobs: HashMap<String, Option<End>>,
    poller: bool,
}

/// What `cache/slurm/TOKEN.json` holds while a job may be in flight.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    token: String,
    /// The job's id, once sbatch said it.
    job: Option<String>,
    stage: String,
    key: String,
}

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

/// Runs a Slurm command; its stdout, or an error with its stderr.
fn run_command(cmd: &mut Command, what: &str) -> io::Result<String> {
    let out = cmd
        .output()
        .map_err(|e| io::Error::other(format!("cannot run {what}: {e} (is Slurm installed?)")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True for the error Slurm gives for a job it no longer knows.
fn forgotten(e: &io::Error) -> bool {
    e.to_string().contains("Invalid job id")
}

/// Slurm's states that end a job, and whether it succeeded. (`SPECIAL_EXIT`
/// holds a job for requeueing; `REQUEUED` comes back: neither is an end.)
fn terminal(state: &str) -> Option<bool> {
    match state {
        "COMPLETED" => Some(true),
        "FAILED" | "CANCELLED" | "TIMEOUT" | "OUT_OF_MEMORY" | "NODE_FAIL" | "BOOT_FAIL"
        | "DEADLINE" | "PREEMPTED" | "REVOKED" => Some(false),
        _ => None,
    }
}

/// The ends Slurm's accounting (`sacct`, where slurmdbd runs) records for
/// jobs squeue no longer shows. Only ends count: a job accounting still
/// calls running (a runaway record) stays unseen, and is lost after
/// [`LOST_AFTER`], as it is where there is no accounting at all.
fn ask_accounting(ids: &[String]) -> HashMap<String, End> {
    let text = run_command(
        // A hung slurmdbd must not stall the poller.
        Command::new("timeout").args([
            "30",
            "sacct",
            "--allocations",
            "--noheader",
            "--parsable2",
            "--format=JobID,State,Reason,ExitCode",
            &format!("--jobs={}", ids.join(",")),
        ]),
        "sacct",
    );
    text.map(|t| parse_accounting(&t)).unwrap_or_default()
}

/// `42|FAILED|NonZeroExitCode|1:0` lines → job id → its end, for ended jobs.
fn parse_accounting(text: &str) -> HashMap<String, End> {
    let exit_codes: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            Some((*f.first()?, *f.get(3)?))
        })
        .collect();
    parse_squeue(text)
        .into_iter()
        .filter(|(_, end)| terminal(&end.state).is_some())
        .map(|(id, mut end)| {
            end.exit_code = exit_codes.get(id.as_str()).map(|c| c.trim().to_owned());
            (id, end)
        })
        .collect()
}

/// `42|CANCELLED by 0|None` lines → job id → (state, reason). A state is
/// its first word, without a trailing `+`.
fn parse_squeue(text: &str) -> HashMap<String, End> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split('|');
            let id = f.next()?.trim().to_owned();
            let state = f.next()?.split_whitespace().next()?.trim_end_matches('+').to_owned();
            let reason = f.next().unwrap_or("").trim().to_owned();
            (!id.is_empty()).then_some((
                id,
                End {
                    state,
                    reason,
                    confirmed: true,
                    exit_code: None,
                },
            ))
        })
        .collect()
}

/// A `Key=Value` field of `scontrol show` output.
fn field<'t>(scontrol: &'t str, key: &str) -> Option<&'t str> {
    scontrol
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// `ExitCode=3:0` in `scontrol show job` → exit code 3 (or signal).
fn exit_status(scontrol: &str) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    let code = field(scontrol, "ExitCode").unwrap_or("0:0");
    let (code, signal) = code.split_once(':').unwrap_or((code, "0"));
    let (code, signal): (i32, i32) = (code.parse().unwrap_or(0), signal.parse().unwrap_or(0));
    if signal != 0 {
        ExitStatus::from_raw(signal)
    } else {
        ExitStatus::from_raw(code << 8)
    }
}

/// A path for sbatch's `--output`, where `%` starts a pattern.
fn sbatch_path(path: &Path) -> String {
    path.display().to_string().replace('%', "%%")
}

/// `MinJobAge` from slurmctld's configuration, when it says.
fn min_job_age() -> Option<Duration> {
    let config = run_command(Command::new("scontrol").args(["show", "config"]), "scontrol").ok()?;
    let line = config.lines().find(|l| l.trim_start().starts_with("MinJobAge"))?;
    let secs = line.split('=').nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs(secs))
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

    /// The job name of this run.
    pub fn job_name(&self) -> &str {
        &self.job_name
    }

    /// Cancels every job recorded under `records` (by an earlier, killed amt,
    /// or one that lost track of a job) and waits until Slurm confirms each
    /// is gone; errors, and runs nothing, when it cannot confirm. Every run
    /// calls this, whatever its executor.
    pub fn settle_leftovers(records: &Path) -> io::Result<()> {
        let Ok(dir) = std::fs::read_dir(records) else {
            return Ok(());
        };
        let left: Vec<(PathBuf, Option<Record>)> = dir
            .flatten()
            .map(|e| {
                let record = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
                (e.path(), record)
            })
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<String> = Vec::new();
        let unknown: Vec<&Record> = left
            .iter()
            .filter_map(|(_, r)| r.as_ref())
            .filter(|r| {
                if let Some(id) = &r.job {
                    ids.push(id.clone());
                }
                r.job.is_none()
            })
            .collect();
        if !unknown.is_empty() {
            // Submitted, but amt never learnt the id: find the job by its token.
            let all = run_command(
                Command::new("squeue").args(["--all", "--noheader", "--states=all", "--format=%i|%k"]),
                "squeue",
            )?;
            for line in all.lines() {
                let (id, comment) = line.split_once('|').unwrap_or((line, ""));
                if unknown.iter().any(|r| comment.contains(&format!(" token={}", r.token))) {
                    ids.push(id.trim().to_owned());
                }
            }
        }
        ids.retain(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()));
        if !ids.is_empty() {
            match run_command(Command::new("scancel").args(&ids), "scancel") {
                Err(e) if !forgotten(&e) => return Err(e),
                _ => {}
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        for id in &ids {
            loop {
                match run_command(
                    Command::new("squeue").args(["--noheader", "--states=all", "--format=%i|%T|%r", "--jobs", id]),
                    "squeue",
                ) {
                    Err(e) if forgotten(&e) => break,
                    Err(e) => {
                        return Err(io::Error::other(format!(
                            "cannot confirm that Slurm job {id} of an earlier run has ended ({e}); \
                             make sure it has (scancel {id}), then remove {}",
                            records.display()
                        )));
                    }
                    Ok(text) => match parse_squeue(&text).get(id) {
                        Some(end) if terminal(&end.state).is_none() => {}
                        _ => break,
                    },
                }
                if Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "Slurm job {id} of an earlier run is still running after scancel"
                    )));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        for (path, _) in left {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    /// The sbatch arguments for a job (the command goes in `--wrap`).
    fn sbatch_args(&self, job: &Job<'_>, token: &str) -> Vec<String> {
        let o = self
            .config
            .options
            .with(self.stages.get(job.stage).unwrap_or(&SlurmOptions::default()));
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

    fn write_record(&self, record: &Record) -> io::Result<()> {
        crate::fsutil::write_atomic(
            &self.records.join(format!("{}.json", record.token)),
            &serde_json::to_vec(record).expect("records serialise"),
        )
    }

    /// One status query for every job of the run, on a back-off.
    fn poll(board: Arc<(Mutex<Board>, Condvar)>, job_name: String, config: SlurmConfig) {
        let (lock, cond) = &*board;
        let mut wait = config.poll;
        let mut unseen_since: HashMap<String, Instant> = HashMap::new();
        let mut answered = Instant::now();
        loop {
            {
                let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                if guard.jobs.values().all(Option::is_some) {
                    // Nothing in flight: the next submission starts a poller again.
                    guard.poller = false;
                    return;
                }
                let (_guard, timeout) = cond
                    .wait_timeout(guard, wait)
                    .unwrap_or_else(|e| e.into_inner());
                if !timeout.timed_out() {
                    // Woken by a cancellation: the next waits are short again.
                    wait = config.poll;
                }
            }
            let answer = run_command(
                Command::new("squeue").args([
                    "--all",
                    "--noheader",
                    "--states=all",
                    "--format=%i|%T|%r",
                    &format!("--name={job_name}"),
                ]),
                "squeue",
            );
            let mut ended = Vec::new();
            match answer {
                Err(e) => {
                    // A busy controller: ask again later, no sooner; one that
                    // never answers loses the run's jobs (their records stay).
                    wait = (wait.mul_f64(1.5)).min(config.poll_max);
                    if answered.elapsed() > LOST_AFTER {
                        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                        for (id, end) in &guard.jobs {
                            if end.is_none() {
                                ended.push((
                                    id.clone(),
                                    End::unconfirmed("LOST", format!("squeue has failed for 10 minutes: {e}")),
                                ));
                            }
                        }
                    }
                }
                Ok(text) => {
                    answered = Instant::now();
                    let mut states = parse_squeue(&text);
                    let unseen: Vec<String> = {
                        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                        guard
                            .jobs
                            .iter()
                            .filter(|(id, end)| end.is_none() && !states.contains_key(*id))
                            .map(|(id, _)| id.clone())
                            .collect()
                    };
                    if !unseen.is_empty() {
                        states.extend(ask_accounting(&unseen));
                    }
                    let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                    for (id, end) in &guard.jobs {
                        if end.is_some() {
                            continue;
                        }
                        match states.get(id) {
                            Some(e) if terminal(&e.state).is_some() => {
                                ended.push((id.clone(), e.clone()))
                            }
                            Some(_) => {
                                unseen_since.remove(id);
                            }
                            None => {
                                let since = unseen_since.entry(id.clone()).or_insert_with(Instant::now);
                                if since.elapsed() > LOST_AFTER {
                                    ended.push((
                                        id.clone(),
                                        End::unconfirmed("LOST", "squeue no longer knows the job"),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            if ended.is_empty() {
                wait = (wait.mul_f64(1.5)).min(config.poll_max);
                continue;
            }
            wait = config.poll;
            let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            for (id, end) in ended {
                guard.jobs.insert(id, Some(end));
            }
            cond.notify_all();
        }
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
        self.write_record(&record)?;
        let id = self.submit(job, &record.token)?;
        record.job = Some(id.clone());
        self.write_record(&record)?;
        {
            let (lock, _) = &*self.board;
            let mut board = lock.lock().unwrap_or_else(|e| e.into_inner());
            board.jobs.insert(id.clone(), None);
            if !board.poller {
                board.poller = true;
                let (b, name, config) = (Arc::clone(&self.board), self.job_name.clone(), self.config.clone());
                std::thread::spawn(move || Slurm::poll(b, name, config));
            }
            // The poller is not woken: its back-off, not the submissions, sets the pace.
        }
        let end = self.wait(&id, processes);
        let details = run_command(Command::new("scontrol").args(["show", "job", &id]), "scontrol")
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
            status: if success { ExitStatus::from_raw(0) } else { status },
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
    fn squeue_lines_become_states() {
        let s = parse_squeue("41|COMPLETED|None\n42|CANCELLED by 0|None\n43|RUNNING|None\n44|FAILED+|NonZeroExitCode\n");
        assert_eq!(s["41"].state, "COMPLETED");
        assert_eq!(s["42"].state, "CANCELLED", "`CANCELLED by UID` is CANCELLED");
        assert_eq!(s["44"].state, "FAILED");
        assert_eq!(s["44"].reason, "NonZeroExitCode");
        assert_eq!(terminal("RUNNING"), None);
        assert_eq!(terminal("COMPLETING"), None);
        assert_eq!(terminal("SPECIAL_EXIT"), None, "held for requeueing, not ended");
        assert_eq!(terminal("TIMEOUT"), Some(false));
        assert_eq!(terminal("REVOKED"), Some(false));
        assert_eq!(terminal("COMPLETED"), Some(true));
    }

    #[test]
    fn accounting_gives_ends_with_exit_codes_and_ignores_runaway_records() {
        let a = parse_accounting("41|FAILED|NonZeroExitCode|3:0\n42|RUNNING|None|0:0\n43|COMPLETED|None|0:0\n");
        assert_eq!(a["41"].state, "FAILED");
        assert_eq!(a["41"].exit_code.as_deref(), Some("3:0"));
        assert_eq!(exit_status("ExitCode=3:0").code(), Some(3));
        assert!(!a.contains_key("42"), "a job accounting calls running is not an end");
        assert!(a["43"].confirmed);
    }

    #[test]
    fn exit_codes_and_signals_come_from_scontrol() {
        assert_eq!(exit_status("JobState=FAILED ExitCode=3:0").code(), Some(3));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_status("ExitCode=0:15").signal(), Some(15));
        assert_eq!(field("JobState=TIMEOUT Reason=TimeLimit", "Reason"), Some("TimeLimit"));
    }

    #[test]
    fn log_paths_escape_sbatch_patterns() {
        assert_eq!(sbatch_path(Path::new("/p/100%j/x.log")), "/p/100%%j/x.log");
    }
}
