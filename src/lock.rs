//! The project lock: one `amt run` (or `gc`) at a time per project.
//!
//! It is an advisory `flock` on `cache/lock`. The kernel drops it when the
//! holder dies, however it dies, so a lock can never be left stale by a killed
//! process. A second run waits, saying who holds the lock, up to a timeout.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Who holds the lock, as they wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder(pub String);

/// Taking the lock failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another amt process ({holder}) still holds {path} after {waited:?}; try again later or raise --lock-timeout"
    )]
    Timeout {
        path: String,
        holder: String,
        waited: Duration,
    },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct ProjectLock {
    _file: File,
}

/// How this process names itself as the lock's holder.
pub fn me() -> Holder {
    Holder(format!("pid {}", std::process::id()))
}

/// Takes the lock at `path`, waiting up to `timeout`. `on_wait` is called once,
/// with the holder, if the lock is busy.
pub fn acquire(
    path: &Path,
    timeout: Duration,
    on_wait: impl FnOnce(&Holder),
) -> Result<ProjectLock, LockError> {
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    let start = Instant::now();
    let mut on_wait = Some(on_wait);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = read_holder(&mut file);
                if let Some(f) = on_wait.take() {
                    f(&holder);
                }
                if start.elapsed() >= timeout {
                    return Err(LockError::Timeout {
                        path: path.display().to_string(),
                        holder: holder.0,
                        waited: timeout,
                    });
                }
                std::thread::sleep(Duration::from_millis(50).min(timeout));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    let me = me();
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    file.write_all(me.0.as_bytes()).map_err(io)?;
    Ok(ProjectLock { _file: file })
}

/// Who holds the lock at `path` now, if anyone (a missing lock file: no one).
///
/// It asks the kernel's table of locks (`/proc/locks`) rather than trying the
/// lock, so asking never makes a taker with no patience (`--lock-timeout 0`,
/// doctor's probe) see it busy. Where that table cannot be read (not Linux,
/// some sandboxes) the answer is "no one", which only makes status say less.
pub fn holder(path: &Path) -> std::io::Result<Option<Holder>> {
    use std::os::unix::fs::MetadataExt;
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let ino = file.metadata()?.ino();
    // The kernel writes the table a page at a time, and a line can be
    // skipped when locks come and go between two reads: a lock found in any
    // of three readings is held.
    for _ in 0..3 {
        let table = match proc_locks() {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!("reading /proc/locks: {e}");
                return Ok(None);
            }
        };
        let holder = read_holder(&mut file);
        let pid = holder.0.strip_prefix("pid ").and_then(|p| p.parse::<u32>().ok());
        if flock_held(&table, ino, pid) {
            return Ok(Some(holder));
        }
    }
    Ok(None)
}

/// `/proc/locks`, read in page-sized reads into a buffer that has room
/// (`read_to_string` into an empty one starts with a 32-byte read, which
/// splits the table into many more reads).
fn proc_locks() -> std::io::Result<String> {
    let mut bytes = Vec::with_capacity(1 << 16);
    File::open("/proc/locks")?.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether `/proc/locks` lists a granted `flock` on inode `ino`, taken by
/// process `pid` when the lock file names one. Its lines read
/// `1: FLOCK  ADVISORY  WRITE 1234 fe:00:10010691 0 EOF`; waiting requests
/// are marked `->` and do not count. The device is not compared: some file
/// systems (btrfs subvolumes) report another one to `stat` than to this
/// table; the pid the holder wrote tells its lock from another file's.
fn flock_held(table: &str, ino: u64, pid: Option<u32>) -> bool {
    let ino = format!(":{ino}");
    table.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&"FLOCK")
            && fields.get(5).is_some_and(|id| id.ends_with(&ino))
            && pid.is_none_or(|p| fields.get(4) == Some(&p.to_string().as_str()))
    })
}

fn read_holder(file: &mut File) -> Holder {
    let mut s = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut s));
    let s = s.trim();
    Holder(if s.is_empty() {
        "unknown process".to_owned()
    } else {
        s.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_waits_then_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let _held = acquire(&path, Duration::ZERO, |_| {}).unwrap();
        let mut waited_on = None;
        let err = acquire(&path, Duration::from_millis(120), |h| {
            waited_on = Some(h.clone())
        })
        .unwrap_err();
        let me = format!("pid {}", std::process::id());
        assert_eq!(waited_on, Some(Holder(me.clone())));
        assert!(err.to_string().contains(&me), "{err}");
    }

    #[test]
    fn holder_names_the_process_holding_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        assert_eq!(holder(&path).unwrap(), None);
        let held = acquire(&path, Duration::ZERO, |_| {}).unwrap();
        let me = Holder(format!("pid {}", std::process::id()));
        assert_eq!(holder(&path).unwrap(), Some(me));
        // Asking does not take it, even for an instant: an impatient taker
        // still finds it held only by its holder.
        for _ in 0..100 {
            assert!(holder(&path).unwrap().is_some());
        }
        drop(held);
        assert_eq!(holder(&path).unwrap(), None);
        acquire(&path, Duration::ZERO, |_| {}).unwrap();
    }

    #[test]
    fn only_granted_flocks_on_that_file_by_its_holder_count() {
        let table = "1: FLOCK  ADVISORY  WRITE 6271 fe:00:10167977 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 30912 fe:00:42 0 EOF\n\
                     3: -> FLOCK  ADVISORY  WRITE 7000 fe:00:43 0 EOF\n";
        assert!(flock_held(table, 10167977, Some(6271)));
        assert!(flock_held(table, 10167977, None));
        assert!(!flock_held(table, 10167977, Some(6272)), "another process's lock on another device");
        assert!(!flock_held(table, 167977, None), "the inode must match whole");
        assert!(!flock_held(table, 42, None), "a POSIX lock is not the project lock");
        assert!(!flock_held(table, 43, None), "a waiting request holds nothing");
    }
}
