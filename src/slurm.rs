//! Stages as Slurm jobs. amt keeps the DAG and decides what runs; each stage
//! that must execute becomes one `sbatch --parsable` job, and one `squeue`
//! query per tick, by the run's job name, follows all of the run's jobs,
//! with a wait that grows while nothing finishes (from `poll` to `poll_max`)
//! so that a large sweep never floods the controller.
//!
//! A job's result is trusted only after amt hashes its outputs on the shared
//! filesystem, as for a local stage. Jobs amt submits are recorded under
//! `cache/slurm/` until they end; a run that finds records of a previous one
//! (which `kill -9` left behind) cancels those jobs and waits for them to be
//! gone before it submits anything, so a stage never runs twice at once.
//! Ctrl-C cancels the run's jobs (`scancel`).
//!
//! `squeue --states=all` is the status query, since `sacct` needs slurmdbd;
//! jobs stay visible to it for `MinJobAge` (300 s by default) after they end,
//! longer than the longest wait between queries.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{SlurmConfig, SlurmOptions};
use crate::exec::{Finished, Job, Processes};
use crate::executor::{Executor, shell_quote};

/// How long the status of a submitted job may stay unknown (not yet, or no
/// longer, in squeue's answer) before it counts as lost.
const VANISHED_AFTER: Duration = Duration::from_secs(600);

/// How a job ended, as Slurm says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct End {
    state: String,
    reason: String,
}

/// The jobs of a run that are in flight, and what the poller learnt of them.
#[derive(Default)]
struct Board {
    /// Job id → its end, once known.
    jobs: HashMap<String, Option<End>>,
    poller: bool,
}

/// What `cache/slurm/ID.json` holds while a job is in flight.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    job: String,
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
}

/// A Slurm command failed to start or said no.
fn command_error(what: &str, out: &std::process::Output) -> io::Error {
    io::Error::other(format!(
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

fn run_command(cmd: &mut Command, what: &str) -> io::Result<String> {
    let out = cmd
        .output()
        .map_err(|e| io::Error::other(format!("cannot run {what}: {e} (is Slurm installed?)")))?;
    if !out.status.success() {
        return Err(command_error(what, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Slurm's states that end a job, and whether it succeeded.
fn terminal(state: &str) -> Option<bool> {
    match state {
        "COMPLETED" => Some(true),
        "FAILED" | "CANCELLED" | "TIMEOUT" | "OUT_OF_MEMORY" | "NODE_FAIL" | "BOOT_FAIL"
        | "DEADLINE" | "PREEMPTED" | "SPECIAL_EXIT" => Some(false),
        _ => None,
    }
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
            (!id.is_empty()).then_some((id, End { state, reason }))
        })
        .collect()
}

/// `ExitCode=3:0` in `scontrol show job` → exit code 3 (or signal).
fn exit_status(scontrol: &str) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    let field = scontrol
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ExitCode="))
        .unwrap_or("0:0");
    let (code, signal) = field.split_once(':').unwrap_or((field, "0"));
    let (code, signal): (i32, i32) = (code.parse().unwrap_or(0), signal.parse().unwrap_or(0));
    if signal != 0 {
        ExitStatus::from_raw(signal)
    } else {
        ExitStatus::from_raw(code << 8)
    }
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
        }
    }

    /// Makes it ready to submit: jobs that an earlier, killed amt left
    /// running are cancelled, and this waits until Slurm has let them go.
    pub fn start(self) -> io::Result<Self> {
        std::fs::create_dir_all(&self.records)?;
        self.cancel_leftovers()?;
        Ok(self)
    }

    /// The job name of this run.
    pub fn job_name(&self) -> &str {
        &self.job_name
    }

    fn cancel_leftovers(&self) -> io::Result<()> {
        let mut left: Vec<(PathBuf, Record)> = Vec::new();
        for entry in std::fs::read_dir(&self.records)?.flatten() {
            let record = std::fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
            match record {
                Some(r) if r.job.chars().all(|c| c.is_ascii_digit()) => left.push((entry.path(), r)),
                _ => {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = left.iter().map(|(_, r)| r.job.as_str()).collect();
        let _ = run_command(Command::new("scancel").args(&ids), "scancel");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = run_command(
                Command::new("squeue")
                    .args(["--noheader", "--states=all", "--format=%i|%T|%r", "--jobs"])
                    .arg(ids.join(",")),
                "squeue",
            )
            // Jobs Slurm has forgotten make squeue fail: they are gone.
            .unwrap_or_default();
            let states = parse_squeue(&out);
            let active = ids
                .iter()
                .any(|id| states.get(*id).is_some_and(|e| terminal(&e.state).is_none()));
            if !active {
                break;
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "Slurm jobs {} of an earlier run are still running after scancel",
                    ids.join(", ")
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        for (path, _) in left {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    /// The sbatch arguments for a job (the command goes in `--wrap`).
    fn sbatch_args(&self, job: &Job<'_>) -> Vec<String> {
        let o = self
            .config
            .options
            .with(self.stages.get(job.stage).unwrap_or(&SlurmOptions::default()));
        let mut a = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", self.job_name),
            format!("--comment=amt stage={} key={}", job.stage, &job.key[..job.key.len().min(16)]),
            format!("--output={}", job.log.display()),
            "--open-mode=truncate".to_owned(),
            format!("--chdir={}", job.dir.display()),
            "--export=ALL".to_owned(),
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

    fn submit(&self, job: &Job<'_>) -> io::Result<String> {
        if let Some(dir) = job.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut cmd = Command::new("sbatch");
        cmd.args(self.sbatch_args(job))
            .current_dir(job.dir)
            .envs(job.env.iter().map(|(k, v)| (k, v)));
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

    fn record_path(&self, id: &str) -> PathBuf {
        self.records.join(format!("{id}.json"))
    }

    /// One status query for every job of the run, on a back-off.
    fn poll(board: Arc<(Mutex<Board>, Condvar)>, job_name: String, config: SlurmConfig) {
        let (lock, cond) = &*board;
        let mut wait = config.poll;
        let mut unseen_since: HashMap<String, Instant> = HashMap::new();
        loop {
            {
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                if guard.jobs.values().all(Option::is_some) {
                    // Nothing in flight: the next submission starts a poller again.
                    let mut guard = guard;
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
                    "--noheader",
                    "--states=all",
                    "--format=%i|%T|%r",
                    &format!("--name={job_name}"),
                ]),
                "squeue",
            );
            let Ok(text) = answer else {
                // A busy controller: ask again later, no sooner.
                wait = (wait.mul_f64(1.5)).min(config.poll_max);
                continue;
            };
            let states = parse_squeue(&text);
            let mut ended = Vec::new();
            {
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                for (id, end) in &guard.jobs {
                    if end.is_some() {
                        continue;
                    }
                    match states.get(id) {
                        Some(e) if terminal(&e.state).is_some() => ended.push((id.clone(), e.clone())),
                        Some(_) => {
                            unseen_since.remove(id);
                        }
                        None => {
                            let since = unseen_since.entry(id.clone()).or_insert_with(Instant::now);
                            if since.elapsed() > VANISHED_AFTER {
                                ended.push((
                                    id.clone(),
                                    End {
                                        state: "VANISHED".into(),
                                        reason: "squeue no longer knows the job".into(),
                                    },
                                ));
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

    /// Waits for a job's end; cancels it once `processes` is cancelled.
    fn wait(&self, id: &str, processes: &Processes) -> End {
        let (lock, cond) = &*self.board;
        let mut cancelled = false;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(Some(end)) = guard.jobs.get(id) {
                return end.clone();
            }
            if processes.is_cancelled() && !cancelled {
                cancelled = true;
                let _ = run_command(Command::new("scancel").arg(id), "scancel");
                // Hear about it soon, whatever the back-off says.
                cond.notify_all();
            }
            guard = cond
                .wait_timeout(guard, Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner())
                .0;
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
        let id = self.submit(job)?;
        let record = Record {
            job: id.clone(),
            stage: job.stage.to_owned(),
            key: job.key.to_owned(),
        };
        crate::fsutil::write_atomic(
            &self.record_path(&id),
            &serde_json::to_vec(&record).expect("records serialise"),
        )?;
        {
            let (lock, cond) = &*self.board;
            let mut board = lock.lock().unwrap_or_else(|e| e.into_inner());
            board.jobs.insert(id.clone(), None);
            if !board.poller {
                board.poller = true;
                let (b, name, config) = (Arc::clone(&self.board), self.job_name.clone(), self.config.clone());
                std::thread::spawn(move || Slurm::poll(b, name, config));
            }
            // The poller is not woken: its back-off, not the submissions, sets the pace.
            let _ = cond;
        }
        let end = self.wait(&id, processes);
        let _ = std::fs::remove_file(self.record_path(&id));
        let details = run_command(Command::new("scontrol").args(["show", "job", &id]), "scontrol")
            .unwrap_or_default();
        let status = exit_status(&details);
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
            .chain(self.sbatch_args(job))
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
        assert_eq!(terminal("TIMEOUT"), Some(false));
        assert_eq!(terminal("COMPLETED"), Some(true));
    }

    #[test]
    fn exit_codes_and_signals_come_from_scontrol() {
        assert_eq!(exit_status("JobState=FAILED ExitCode=3:0").code(), Some(3));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_status("ExitCode=0:15").signal(), Some(15));
    }
}
