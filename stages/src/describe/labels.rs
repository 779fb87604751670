//! Collection labels from a corpus manifest (`manifest.jsonl`, one JSON object
//! per file, keyed by `path`), for the captions. Unknown fields are ignored:
//! manifests carry far more than captions use.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// The labels captions use. Every field is optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Labels {
    /// E.g. `"G major"` or `"A dorian"`.
    pub key: Option<String>,
    /// E.g. `"reel"`, `"hornpipe"`.
    pub tune_type: Option<String>,
    /// E.g. `"BossaNova"`.
    pub groove_family: Option<String>,
    /// E.g. `"Ireland"`.
    pub region: Option<String>,
    /// Expression words such as `"Slow"` or `"With spirit"`.
    #[serde(default)]
    pub mood_words: Vec<String>,
    /// The ensemble's part names, e.g. Soprano/Alto/Tenor/Bass.
    #[serde(default)]
    pub part_names: Vec<String>,
}

#[derive(Deserialize)]
struct Record {
    path: String,
    #[serde(flatten)]
    labels: Labels,
}

/// Reads a manifest; an error names the file and line.
pub fn read_manifest(path: &Path) -> anyhow::Result<HashMap<String, Labels>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = HashMap::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}: cannot read", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Record =
            serde_json::from_str(&line).with_context(|| format!("{}:{}", path.display(), i + 1))?;
        out.insert(r.path, r.labels);
    }
    Ok(out)
}
