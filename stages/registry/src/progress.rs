//! Progress: a long stage says how far it is, and `amt run` shows it.
//!
//! The stage rewrites one small JSON file (the path in `AMT_PROGRESS`)
//! atomically whenever it has news, at most a few times a second; amt reads
//! it while the stage runs. A file, not a pipe, so it works for any command
//! (a shell stage may write it too) and on a cluster's shared filesystem.

use serde::{Deserialize, Serialize};

/// The variable naming the progress file.
pub const PROGRESS_VAR: &str = "AMT_PROGRESS";

/// The most of a progress file amt reads; a report is a few hundred bytes.
pub const MAX_BYTES: u64 = 64 * 1024;

/// How far a stage is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Units done so far.
    pub done: u64,
    /// Units in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// What a unit is: `steps`, `files`, `batches`, `pieces`.
    pub unit: String,
    /// Anything else worth a glance: `loss 2.31, 8200 tokens/s`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Progress {
    /// Reads a progress file; `None` when there is none yet or it is not one.
    /// Only a plain file is read, and only its first [`MAX_BYTES`]: the
    /// command controls this path, and a pipe or a link to `/dev/zero` must
    /// not hang or exhaust amt. The file is opened without following a link
    /// and without blocking, then checked, so swapping one in between a check
    /// and the open gains nothing.
    pub fn read(path: &std::path::Path) -> Option<Self> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let mut bytes = Vec::new();
        file.take(MAX_BYTES).read_to_end(&mut bytes).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes a progress file atomically (a temp file, then a rename).
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }

    /// `120/400 steps` or `120 steps`, then the message.
    pub fn summary(&self) -> String {
        let mut s = match self.total {
            Some(t) => format!("{}/{t} {}", self.done, self.unit),
            None => format!("{} {}", self.done, self.unit),
        };
        if !self.message.is_empty() {
            s.push_str(", ");
            s.push_str(&self.message);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        assert_eq!(Progress::read(&path), None);
        let p = Progress {
            done: 120,
            total: Some(400),
            unit: "steps".into(),
            message: "loss 2.31".into(),
        };
        p.write(&path).unwrap();
        assert_eq!(Progress::read(&path), Some(p.clone()));
        assert_eq!(p.summary(), "120/400 steps, loss 2.31");
        std::fs::write(&path, "{\"done\": \"x\"}").unwrap();
        assert_eq!(Progress::read(&path), None, "a torn or foreign file is ignored");
    }

    #[test]
    fn only_a_plain_file_of_bounded_size_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        assert_eq!(Progress::read(&path), None, "a link is not followed");
        std::fs::remove_file(&path).unwrap();
        let fifo = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(fifo.success());
        assert_eq!(Progress::read(&path), None, "a pipe is not opened (opening it would block)");
        std::fs::remove_file(&path).unwrap();
        let big = format!("{{\"done\":1,\"unit\":\"steps\",\"message\":\"{}\"}}", "x".repeat(MAX_BYTES as usize));
        std::fs::write(&path, big).unwrap();
        assert_eq!(Progress::read(&path), None, "only the first MAX_BYTES are read");
    }
}
