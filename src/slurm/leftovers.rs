//! The records of jobs that may be in flight (`cache/slurm/TOKEN.json`),
//! and what a run does with those an earlier run left behind.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::query::{forgotten, parse_squeue, run_command, terminal};

/// What `cache/slurm/TOKEN.json` holds while a job may be in flight.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) token: String,
    /// The job's id, once sbatch said it.
    pub(super) job: Option<String>,
    pub(super) stage: String,
    pub(super) key: String,
}

/// Writes `record` into the records directory `records`.
pub(super) fn write(records: &Path, record: &Record) -> io::Result<()> {
    crate::fsutil::write_atomic(
        &records.join(format!("{}.json", record.token)),
        &serde_json::to_vec(record).expect("records serialise"),
    )
}

/// [`super::Slurm::settle_leftovers`]: cancel the recorded jobs and wait
/// until Slurm confirms each is gone.
pub fn settle(records: &Path) -> io::Result<()> {
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
            if unknown
                .iter()
                .any(|r| comment.contains(&format!(" token={}", r.token)))
            {
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
                Command::new("squeue").args([
                    "--noheader",
                    "--states=all",
                    "--format=%i|%T|%r",
                    "--jobs",
                    id,
                ]),
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
