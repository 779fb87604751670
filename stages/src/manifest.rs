//! The corpus manifest (`manifest.jsonl`, one JSON object per file, keyed
//! by `path`): the labels describe's captions use and the collection
//! prepare's source groups come from. Unknown fields are ignored: manifests
//! carry far more than amt uses.

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
    #[serde(default, deserialize_with = "names")]
    pub mood_words: Vec<String>,
    /// The ensemble's part names, e.g. Soprano/Alto/Tenor/Bass.
    #[serde(default, deserialize_with = "names")]
    pub part_names: Vec<String>,
    /// The source the file was made from (an MMA groove file, a music21
    /// score, an ABC book): files from one source are one group, which
    /// prepare keeps in one split.
    pub collection: Option<String>,
}

/// A list of names in which a part without one is `null` (as in the shared
/// corpus's manifest): the nulls are left out.
fn names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let names: Option<Vec<Option<String>>> = Deserialize::deserialize(d)?;
    Ok(names.into_iter().flatten().flatten().collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_parts_and_missing_lists_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"path": "a.mid", "part_names": [null, "Alto", null], "mood_words": null}"#,
                "\n",
                r#"{"path": "b.mid", "key": "G dorian"}"#,
                "\n"
            ),
        )
        .unwrap();
        let labels = read_manifest(&path).unwrap();
        assert_eq!(labels["a.mid"].part_names, vec!["Alto".to_owned()]);
        assert!(labels["a.mid"].mood_words.is_empty());
        assert_eq!(labels["b.mid"].key.as_deref(), Some("G dorian"));
    }
}
