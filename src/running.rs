//! Which stages an `amt run` is executing now, kept in `cache/running.json`
//! so that other processes (`amt status`, the studio) can say so. The file
//! names its run's process; it counts only while that process holds the
//! project lock, so one left by a killed run is ignored even when another
//! process (a sweep, `amt gc`) holds the lock later.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::change::Change;
use crate::config::Stage;
use crate::ledger::RunRow;
use crate::scheduler::{Outcome, Reporter};
use crate::warning::Warning;
use amt_registry::progress::Progress;

/// The file, in the cache directory.
pub const FILE: &str = "running.json";

/// What the file holds.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Board {
    /// The process running the stages; the project lock names it the same way.
    holder: String,
    stages: BTreeSet<String>,
}

/// A [`Reporter`] that keeps the file up to date and passes every event on.
pub struct Tracker<'a> {
    path: PathBuf,
    running: Mutex<BTreeSet<String>>,
    inner: &'a dyn Reporter,
}

impl<'a> Tracker<'a> {
    /// Reports to `inner`, keeping `cache/running.json` (empty to start with).
    pub fn new(cache: &Path, inner: &'a dyn Reporter) -> Self {
        let board = Self {
            path: cache.join(FILE),
            running: Mutex::new(BTreeSet::new()),
            inner,
        };
        board.save(&BTreeSet::new());
        board
    }

    fn save(&self, running: &BTreeSet<String>) {
        let board = Board {
            holder: crate::lock::me().0,
            stages: running.clone(),
        };
        // Best effort: a failed write only makes status less informative.
        let bytes = serde_json::to_vec(&board).unwrap_or_default();
        if let Err(e) = crate::fsutil::write_atomic(&self.path, &bytes) {
            tracing::debug!("writing {}: {e}", self.path.display());
        }
    }

    /// Applies `f`, and writes the file when `f` says it changed the set: a
    /// stage that was fresh or restored never started, and finishing it
    /// writes nothing (a no-op run of 200 stages wrote the file 200 times).
    fn update(&self, f: impl FnOnce(&mut BTreeSet<String>) -> bool) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if f(&mut running) {
            self.save(&running);
        }
    }
}

impl Drop for Tracker<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Reporter for Tracker<'_> {
    fn started(&self, stage: &Stage, changes: &[Change]) {
        self.update(|r| r.insert(stage.name.as_str().to_owned()));
        self.inner.started(stage, changes);
    }

    fn finished(&self, stage: &Stage, outcome: &Outcome) {
        self.update(|r| r.remove(stage.name.as_str()));
        self.inner.finished(stage, outcome);
    }

    fn progress(&self, stage: &Stage, progress: &Progress) {
        self.inner.progress(stage, progress);
    }

    fn warning(&self, warning: &Warning) {
        self.inner.warning(warning);
    }

    fn executed(&self, row: &RunRow) {
        self.inner.executed(row);
    }
}

/// The stages the process named `holder` (the lock's holder) is executing;
/// empty when the file is missing or was written by another process.
pub fn read(cache: &Path, holder: &crate::lock::Holder) -> BTreeSet<String> {
    std::fs::read(cache.join(FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Board>(&b).ok())
        .filter(|board| board.holder == holder.0)
        .map(|board| board.stages)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::Holder;

    #[test]
    fn the_board_counts_only_for_the_process_that_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let board = Board {
            holder: "pid 41".into(),
            stages: ["train".to_owned()].into(),
        };
        std::fs::write(dir.path().join(FILE), serde_json::to_vec(&board).unwrap()).unwrap();
        assert_eq!(read(dir.path(), &Holder("pid 41".into())), board.stages);
        // A killed run's board, read while another process holds the lock.
        assert!(read(dir.path(), &Holder("pid 42".into())).is_empty());
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert!(read(dir.path(), &Holder("pid 41".into())).is_empty());
    }

    /// Passes nothing on.
    struct Quiet;

    impl Reporter for Quiet {
        fn started(&self, _: &Stage, _: &[Change]) {}
        fn finished(&self, _: &Stage, _: &Outcome) {}
        fn warning(&self, _: &Warning) {}
        fn executed(&self, _: &RunRow) {}
    }

    #[test]
    fn only_a_stage_that_started_rewrites_the_board() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = crate::config::parse(
            Path::new("amt.toml"),
            "[stages.a]\ncmd = \"true\"\nouts = [\"a\"]\n",
            &crate::config::NoBuiltins,
        )
        .unwrap();
        let stage = &pipeline.stages[0];
        let tracker = Tracker::new(dir.path(), &Quiet);
        let file = dir.path().join(FILE);
        // A fresh stage finishes without starting: the board is not written
        // (a no-op run of 200 stages wrote it 200 times).
        std::fs::remove_file(&file).unwrap();
        tracker.finished(stage, &Outcome::Fresh);
        assert!(!file.exists());
        tracker.started(stage, &[]);
        let me = crate::lock::me();
        assert_eq!(read(dir.path(), &me), BTreeSet::from(["a".to_owned()]));
        tracker.finished(stage, &Outcome::Fresh);
        assert!(read(dir.path(), &me).is_empty());
        drop(tracker);
        assert!(!file.exists(), "the board goes with its run");
    }
}
