//! Running a stage's command: `sh -c` from the project root, in its own process
//! group, with stdout and stderr captured to a log file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a cancelled stage gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

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

    /// Stops every running stage: SIGTERM now, SIGKILL after a grace period.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.signal_all(libc::SIGTERM);
        std::thread::sleep(GRACE);
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
    /// The shell command.
    pub command: &'a str,
    /// The working directory (the project root).
    pub dir: &'a Path,
    /// Extra environment variables.
    pub env: &'a [(String, String)],
    /// Where stdout and stderr go.
    pub log: &'a Path,
}

/// How a job ended.
#[derive(Clone, Copy, Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// The largest resident set of the shell or any process it waited for, in KiB.
    pub peak_rss_kb: u64,
}

/// Runs the job to completion (or cancellation) and returns how it ended.
pub fn run(job: &Job<'_>, processes: &Processes) -> io::Result<Finished> {
    if let Some(dir) = job.log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let log = File::create(job.log)?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(job.command)
        .current_dir(job.dir)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    // If amt itself dies (even by SIGKILL), the kernel kills the stage's shell too,
    // so an orphan can never write outputs behind the next run's back.
    // SAFETY: prctl is async-signal-safe and touches only the new process.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Registering under the lock means cancel() either sees this group or runs
    // before it exists, in which case we refuse to start.
    let child = {
        let mut groups = processes.groups.lock().expect("process table poisoned");
        if processes.is_cancelled() {
            return Ok(Finished {
                status: ExitStatus::from_raw(libc::SIGTERM),
                peak_rss_kb: 0,
            });
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
            return Ok(Finished {
                status: ExitStatus::from_raw(status),
                peak_rss_kb: usage.ru_maxrss.max(0) as u64,
            });
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
