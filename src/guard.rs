//! The stage guard: a small process between amt and each stage's shell that
//! makes sure nothing a stage started outlives it or amt.
//!
//! `PR_SET_PDEATHSIG` reaches only a direct child, and a stage's grandchildren
//! (a background job, a process that calls `setsid`) escape process-group
//! kills. The guard closes both gaps. It is a child subreaper, so every
//! orphaned descendant is re-parented to it; it watches a pipe whose other
//! end only amt holds, so it learns of amt's death however amt died (even
//! `kill -9`); and it ends the whole tree of its descendants:
//!
//! - when the stage's shell exits (what it left running is killed);
//! - on SIGTERM, SIGINT or SIGHUP (amt cancelling): SIGTERM to the tree, then
//!   SIGKILL after a grace period;
//! - at once with SIGKILL when amt is gone.
//!
//! It exits as the shell did (same code, or the same signal), and since it
//! reaps every descendant, `wait4` on it reports the tree's peak memory.
//!
//! One case it cannot cover: a guard killed outright (SIGKILL to the guard
//! itself) takes its shell with it (`PR_SET_PDEATHSIG`), but a descendant
//! that left the shell's process group is re-parented to init. A cgroup per
//! stage would close that; amt does not require one.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hidden first argument that makes `amt` act as a guard.
pub const GUARD_ARG: &str = "__stage-guard";

/// How long a cancelled stage gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// The descendants of `root`, from `/proc` (zombies included).
fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let mut children: std::collections::HashMap<libc::pid_t, Vec<libc::pid_t>> =
        std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            out.push(c);
            todo.push(c);
        }
    }
    out
}

/// Signals the stage's process group and every descendant of the guard.
fn signal_tree(group: libc::pid_t, signal: i32) {
    // SAFETY: kill(2) on our own child's group and on our own descendants.
    unsafe { libc::kill(-group, signal) };
    for pid in descendants(std::process::id() as libc::pid_t) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Kills every descendant and reaps them all.
fn end_tree(group: libc::pid_t) {
    loop {
        signal_tree(group, libc::SIGKILL);
        let mut status = 0;
        // SAFETY: waitpid on any child of ours; status is a valid pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            return;
        }
    }
}

/// Runs `argv` under the guard and returns the exit code to leave with (a
/// signal is re-raised instead). Standard input must be the pipe amt holds.
pub fn main(argv: &[OsString]) -> i32 {
    match guard(argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("amt stage guard: {e}");
            127
        }
    }
}

/// Applies a stage's `mem` as `RLIMIT_DATA` (heap and private mappings),
/// so an allocation past it fails in the stage instead of the machine
/// swapping or the kernel killing something else. Call between fork and exec.
pub fn limit_data(bytes: Option<u64>) -> io::Result<()> {
    let Some(bytes) = bytes else {
        return Ok(());
    };
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit on the calling process with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn guard(argv: &[OsString]) -> io::Result<i32> {
    let (mem, argv) = match argv.first().and_then(|a| a.to_str()?.strip_prefix("--mem=")) {
        Some(n) => (
            Some(n.parse::<u64>().map_err(|_| io::Error::other("--mem takes bytes"))?),
            &argv[1..],
        ),
        None => (None, argv),
    };
    let Some((program, args)) = argv.split_first() else {
        return Err(io::Error::other("no command to run"));
    };
    // SAFETY: plain libc calls on this process's own settings and on
    // sigset_t values we own.
    let signals = unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        let mut mask: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut mask);
        for s in [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut mask, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &mask, std::ptr::null_mut());
        let fd = libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        fd
    };
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            // Should the guard itself be killed outright, the shell goes with it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            limit_data(mem)
        });
    }
    let child = cmd.spawn()?;
    let main = child.id() as libc::pid_t;
    let mut deadline: Option<Instant> = None;
    let status = loop {
        if let Some(status) = reap(main) {
            break status;
        }
        let mut fds = [
            libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout = deadline.map_or(-1, |d| {
            d.saturating_duration_since(Instant::now()).as_millis() as i32
        });
        // SAFETY: fds is a valid array of two pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
        if fds[0].revents != 0 {
            let mut buf = [0u8; 64];
            // SAFETY: reading into a local buffer.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                // amt is gone: nothing may keep writing its outputs.
                end_tree(main);
                return Ok(128 + libc::SIGKILL);
            }
        }
        if fds[1].revents != 0 {
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reading whole siginfo records into a local value.
            while unsafe { libc::read(signals, (&raw mut info).cast(), size) } == size as isize {
                let signo = info.ssi_signo as i32;
                if signo != libc::SIGCHLD && deadline.is_none() {
                    signal_tree(main, libc::SIGTERM);
                    deadline = Some(Instant::now() + GRACE);
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            signal_tree(main, libc::SIGKILL);
            deadline = Some(Instant::now() + Duration::from_secs(1));
        }
    };
    // What the stage left running must not write its outputs after amt hashes them.
    end_tree(main);
    if libc::WIFEXITED(status) {
        return Ok(libc::WEXITSTATUS(status));
    }
    let signal = libc::WTERMSIG(status);
    // SAFETY: restoring the default action and raising the signal on ourselves.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        let mut only: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut only);
        libc::sigaddset(&mut only, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
        libc::raise(signal);
    }
    Ok(128 + signal)
}

/// Reaps every child that has ended; returns the main child's status once it has.
fn reap(main: libc::pid_t) -> Option<i32> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on any child of ours; status is a valid pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            return found;
        }
        if r == main {
            found = Some(status);
        }
    }
}
