//! Where the shared corpus and reference live (`../shared` beside the repo,
//! or `$AMT_SHARED`). Tests that need them fail loudly when they are missing.
#![allow(dead_code)]

use std::path::PathBuf;

pub fn shared() -> PathBuf {
    let dir = std::env::var_os("AMT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    assert!(
        dir.join("corpus/manifest.jsonl").exists(),
        "the shared corpus is missing at {}; set AMT_SHARED",
        dir.display()
    );
    dir
}

pub fn corpus() -> PathBuf {
    shared().join("corpus")
}
