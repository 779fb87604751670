//! Per-stage records of the last successful execution in this workspace.
//!
//! Each stage has its own small JSON file, written atomically, so recording
//! one stage never rewrites another's (unlike a single lock file).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::ActionKey;
use crate::fingerprint::Inputs;
use crate::fsutil::write_atomic;
use crate::names::StageName;
use crate::store::OutRecord;

/// How a stage's outputs came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The command was executed.
    Ran,
    /// The outputs were restored from the cache.
    Restored,
}

/// What the workspace holds for one stage.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRecord {
    /// The stage.
    pub stage: StageName,
    /// The key of the action whose outputs are in the workspace.
    pub action_key: ActionKey,
    /// The inputs that produced that key, kept for `amt why`.
    pub inputs: Inputs,
    /// The outputs as recorded.
    pub outs: Vec<OutRecord>,
    /// Whether the stage ran or was restored.
    pub origin: Origin,
    /// Milliseconds since the Unix epoch when it was recorded.
    pub recorded_at_ms: u64,
    /// How long the command ran (0 when restored).
    pub duration_ms: u64,
}

/// A record that exists but cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("stage record `{path}`: {why}")]
pub struct StateError {
    path: PathBuf,
    why: String,
}

/// The directory of stage records (`cache/state`).
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Records under `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn path(&self, stage: &StageName) -> PathBuf {
        self.dir.join(format!("{stage}.json"))
    }

    /// The stage's record. A missing record is `None`; an unreadable one is
    /// treated the same, because it only means the stage must be checked afresh.
    pub fn load(&self, stage: &StageName) -> Option<StageRecord> {
        self.try_load(stage).ok().flatten()
    }

    fn try_load(&self, stage: &StageName) -> Result<Option<StageRecord>, StateError> {
        let path = self.path(stage);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StateError {
                    path,
                    why: e.to_string(),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError {
                path,
                why: e.to_string(),
            }),
        }
    }

    /// Writes a record atomically.
    pub fn save(&self, record: &StageRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(record).expect("records serialise");
        write_atomic(&self.path(&record.stage), &bytes)
    }

    /// Every readable record, for garbage collection.
    pub fn all(&self) -> Vec<StageRecord> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut records: Vec<StageRecord> = entries
            .flatten()
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        records.sort_by(|a, b| a.stage.cmp(&b.stage));
        records
    }
}
