//! The corpus and reference features the stage tests read: the repository's
//! own (`data/corpus`, 320 files, and `data/reference`, their pretty_midi,
//! mido and muspy features from `scripts/reference/make_reference.py`), or a
//! larger set in the same layout (`corpus/`, `reference/corpus_features.parquet`)
//! named by `AMT_DATA`: `scripts/parity.sh` points it at the shared
//! 3,913-file corpus.
#![allow(dead_code)]

use std::path::PathBuf;

/// The folder holding `corpus/` and `reference/`.
pub fn data() -> PathBuf {
    let dir = std::env::var_os("AMT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data"));
    assert!(
        dir.join("corpus/manifest.jsonl").exists(),
        "no corpus at {} (AMT_DATA names a folder with corpus/ and reference/)",
        dir.display()
    );
    dir
}

pub fn corpus() -> PathBuf {
    data().join("corpus")
}

/// pretty_midi, mido and muspy features of every file of [`corpus`].
pub fn reference() -> PathBuf {
    data().join("reference/corpus_features.parquet")
}
