//! Which stages an `amt run` is executing now, kept in `cache/running.json`
//! so that other processes (`amt status`, the studio) can say so. The file
//! means something only while its run holds the project lock: one left by a
//! killed run is ignored because the lock is free.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::change::Change;
use crate::config::Stage;
use crate::scheduler::{Outcome, Reporter};
use crate::warning::Warning;
use amt_registry::progress::Progress;

/// The file, in the cache directory.
pub const FILE: &str = "running.json";

/// A [`Reporter`] that keeps the file up to date and passes every event on.
pub struct Board<'a> {
    path: PathBuf,
    running: Mutex<BTreeSet<String>>,
    inner: &'a dyn Reporter,
}

impl<'a> Board<'a> {
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
        // Best effort: a failed write only makes status less informative.
        let bytes = serde_json::to_vec(running).unwrap_or_default();
        if let Err(e) = crate::fsutil::write_atomic(&self.path, &bytes) {
            tracing::debug!("writing {}: {e}", self.path.display());
        }
    }

    fn update(&self, f: impl FnOnce(&mut BTreeSet<String>)) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut running);
        self.save(&running);
    }
}

impl Drop for Board<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Reporter for Board<'_> {
    fn started(&self, stage: &Stage, changes: &[Change]) {
        self.update(|r| {
            r.insert(stage.name.as_str().to_owned());
        });
        self.inner.started(stage, changes);
    }

    fn finished(&self, stage: &Stage, outcome: &Outcome) {
        self.update(|r| {
            r.remove(stage.name.as_str());
        });
        self.inner.finished(stage, outcome);
    }

    fn progress(&self, stage: &Stage, progress: &Progress) {
        self.inner.progress(stage, progress);
    }

    fn warning(&self, warning: &Warning) {
        self.inner.warning(warning);
    }
}

/// The stages the run holding the lock is executing (empty when none is).
pub fn read(cache: &Path) -> BTreeSet<String> {
    std::fs::read(cache.join(FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}
