//! Telling `amt run` how far a stage is: a [`Meter`] writes the progress file
//! amt reads (`amt_registry::progress`), at most four times a second, and
//! always at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use amt_registry::progress::Progress;

/// Reports of one kind of unit (`steps`, `files`) for one stage run.
pub struct Meter {
    path: Option<PathBuf>,
    unit: &'static str,
    total: Option<u64>,
    last: Option<Instant>,
}

/// How often a meter writes at most.
const EVERY: Duration = Duration::from_millis(250);

impl Meter {
    /// A meter writing to `path` (none: reports go nowhere, as in library use).
    pub fn new(path: Option<PathBuf>, unit: &'static str, total: Option<u64>) -> Self {
        Self {
            path,
            unit,
            total,
            last: None,
        }
    }

    /// Sets the number of units in all, once it is known.
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
    }

    /// Reports `done` units; `message` is only built when a report is written.
    pub fn update(&mut self, done: u64, message: impl FnOnce() -> String) {
        let Some(path) = &self.path else {
            return;
        };
        let now = Instant::now();
        let finished = self.total.is_some_and(|t| done >= t);
        if !finished && self.last.is_some_and(|t| now.duration_since(t) < EVERY) {
            return;
        }
        self.last = Some(now);
        let report = Progress {
            done,
            total: self.total,
            unit: self.unit.to_owned(),
            message: message(),
        };
        // Progress is a courtesy: a full disk must not fail the stage.
        let _ = report.write(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_rations_its_writes_but_always_writes_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        let mut m = Meter::new(Some(path.clone()), "steps", Some(10));
        m.update(1, || "first".into());
        m.update(2, || "too soon".into());
        assert_eq!(Progress::read(&path).unwrap().message, "first");
        m.update(10, || "done".into());
        let p = Progress::read(&path).unwrap();
        assert_eq!((p.done, p.total, p.message.as_str()), (10, Some(10), "done"));
    }
}
