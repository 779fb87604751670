//! Running a stage's command: `sh -c` from the project root, under a guard
//! process (see [`crate::guard`]) that ends everything the stage started when
//! it exits, is cancelled, or amt dies; stdout and stderr go to a log file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::config::Resources;
use crate::guard::{GRACE, GUARD_ARG};

/// The program that guards stages: amt's own executable, set once at start.
static GUARD: OnceLock<PathBuf> = OnceLock::new();

/// Runs every stage under `program GUARD_ARG …` (amt's own executable, whose
/// `main` hands that argument to [`crate::guard::main`]). Without it, stages
/// run without a guard, and only their shell dies with amt.
pub fn set_guard(program: PathBuf) {
    let _ = GUARD.set(program);
}

/// The process groups of running stages, so Ctrl-C can stop them all.
#[derive(Default)]
pub struct Processes {
    groups: Mutex<BTreeSet<i32>>,
    cancelled: AtomicBool,
}

impl Processes {
    /// True once [`Processes::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Stops every running stage: SIGTERM now (a guard passes it on to the
    /// whole stage and escalates to SIGKILL after its grace period), SIGKILL
    /// if anything is still there after that.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.signal_all(libc::SIGTERM);
        std::thread::sleep(GRACE + Duration::from_secs(2));
        self.signal_all(libc::SIGKILL);
    }

    fn signal_all(&self, signal: i32) {
        for &pgid in self.groups.lock().expect("process table poisoned").iter() {
            // SAFETY: kill(2) with a negative pid signals a process group we created.
            unsafe { libc::kill(-pgid, signal) };
        }
    }
}

/// A command to run for a stage.
pub struct Job<'a> {
    /// The stage it runs for.
    pub stage: &'a str,
    /// The action key it computes (labels a cluster job).
    pub key: &'a str,
    /// The shell command.
    pub command: &'a str,
    /// The working directory (the project root).
    pub dir: &'a Path,
    /// Extra environment variables.
    pub env: &'a [(String, String)],
    /// Where stdout and stderr go.
    pub log: &'a Path,
    /// What it asks of the machine. Its `mem` (when set) is also the most
    /// memory (bytes of data: heap and private mappings) the stage may
    /// allocate (`RLIMIT_DATA`); past it, allocations fail.
    pub resources: Resources,
}

/// How a job ended.
#[derive(Clone, Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// The largest resident set of the shell or any process it waited for, in
    /// KiB, where the executor can tell.
    pub peak_rss_kb: Option<u64>,
    /// The cluster's id for the job, when it ran as one.
    pub job_id: Option<String>,
    /// Why it failed, when the executor knows better than the exit status
    /// (a Slurm job's state: `TIMEOUT`, `CANCELLED`, `NODE_FAIL`).
    pub failure: Option<String>,
}

impl Finished {
    fn local(status: ExitStatus, peak_rss_kb: u64) -> Self {
        Self {
            status,
            peak_rss_kb: Some(peak_rss_kb),
            job_id: None,
            failure: None,
        }
    }

    /// True when the command succeeded.
    pub fn success(&self) -> bool {
        self.status.success() && self.failure.is_none()
    }

    /// How it ended, in words.
    pub fn describe(&self) -> String {
        self.failure.clone().unwrap_or_else(|| describe(&self.status))
    }
}

/// Runs the job to completion (or cancellation) and returns how it ended.
pub fn run(job: &Job<'_>, processes: &Processes) -> io::Result<Finished> {
    if let Some(dir) = job.log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = File::create(job.log)?;
    // The guard's lifeline: it reads the pipe, and sees end-of-file when amt
    // is gone, however it died. Only amt holds the write end (close-on-exec).
    let mut ends = [0; 2];
    // SAFETY: pipe2 fills two descriptors that we then own.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned only here.
    let (lifeline, _keep) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    let mut cmd = match GUARD.get() {
        Some(guard) => {
            let mut c = Command::new(guard);
            c.arg(GUARD_ARG);
            if job.resources.mem > 0 {
                c.arg(format!("--mem={}", job.resources.mem));
            }
            c.arg("sh").stdin(Stdio::from(lifeline));
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.stdin(Stdio::null());
            let limit = (job.resources.mem > 0).then_some(job.resources.mem);
            // Unguarded, at least the shell dies with amt (even by SIGKILL).
            // SAFETY: prctl and setrlimit are async-signal-safe and touch only the new process.
            unsafe {
                c.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    crate::guard::limit_data(limit)
                });
            }
            c
        }
    };
    cmd.arg("-c")
        .arg(job.command)
        .current_dir(job.dir)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    // Registering under the lock means cancel() either sees this group or runs
    // before it exists, in which case we refuse to start.
    let child = {
        let mut groups = processes.groups.lock().expect("process table poisoned");
        if processes.is_cancelled() {
            return Ok(Finished::local(ExitStatus::from_raw(libc::SIGTERM), 0));
        }
        let child = cmd.spawn()?;
        groups.insert(child.id() as i32);
        child
    };
    let finished = wait_with_usage(child.id() as libc::pid_t);
    processes
        .groups
        .lock()
        .expect("process table poisoned")
        .remove(&(child.id() as i32));
    finished
}

/// `wait4(2)`: the exit status and the resource usage, whose maximum RSS
/// covers the child and the descendants it waited for.
fn wait_with_usage(pid: libc::pid_t) -> io::Result<Finished> {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, not yet reaped; the pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok(Finished::local(
                ExitStatus::from_raw(status),
                usage.ru_maxrss.max(0) as u64,
            ));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A readable description of an exit status.
pub fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown status".to_owned(),
    }
}

/// The last `n` lines of a log file, for failure reports.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
