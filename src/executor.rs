//! Where a stage's command runs: here, under the guard ([`Local`]), or as a
//! job on a cluster ([`crate::slurm::Slurm`]). The scheduler and the cache
//! are the same either way: a stage reaches an executor only once its deps
//! are up to date and hashed and the cache holds nothing for its key, and its
//! outputs are trusted only after amt hashes them itself.

use std::io;

use crate::exec::{self, Finished, Job, Processes};

/// Runs stage commands.
pub trait Executor: Send + Sync {
    /// Its name in messages and in the ledger: `local`, `slurm`.
    fn name(&self) -> &'static str;

    /// True when commands run elsewhere, so a stage takes no CPU, GPU or
    /// memory of this machine (one `-j` slot counts one job in flight).
    fn is_remote(&self) -> bool;

    /// Runs a job to completion; stops early (as a failure) once `processes`
    /// is cancelled.
    fn run(&self, job: &Job<'_>, processes: &Processes) -> io::Result<Finished>;

    /// What running the job would do, for `--dry-run`.
    fn describe(&self, job: &Job<'_>) -> String;
}

/// This machine, under the stage guard.
pub struct Local;

impl Executor for Local {
    fn name(&self) -> &'static str {
        "local"
    }

    fn is_remote(&self) -> bool {
        false
    }

    fn run(&self, job: &Job<'_>, processes: &Processes) -> io::Result<Finished> {
        exec::run(job, processes)
    }

    fn describe(&self, job: &Job<'_>) -> String {
        format!("sh -c {}", shell_quote(job.command))
    }
}

/// Quotes a word for a POSIX shell, for commands shown to people.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_they_need_it() {
        assert_eq!(shell_quote("--cpus-per-task=2"), "--cpus-per-task=2");
        assert_eq!(shell_quote("echo hi > out"), "'echo hi > out'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
