//! Gives every built-in stage a code version: a blake3 digest of the source
//! files that implement it (and of Cargo.lock, which pins its dependencies).
//! The engine puts it into the stage's action key, so changing a stage's code
//! reruns that stage and what follows it, and nothing else.

use std::path::{Path, PathBuf};

/// Each built-in stage and the source paths (under `src/`) its behaviour depends on.
const STAGES: &[(&str, &[&str])] = &[
    ("COLLECT", &["collect", "midi", "table.rs", "context.rs"]),
    (
        "DESCRIBE",
        &["describe", "collect/table.rs", "table.rs", "context.rs"],
    ),
    ("EMBED", &["embed", "device.rs", "table.rs", "context.rs"]),
    (
        "CLUSTER",
        &["cluster", "embed/mod.rs", "table.rs", "context.rs"],
    ),
    (
        "PREPARE",
        &[
            "prepare",
            "tokenizer",
            "midi",
            "collect/mod.rs",
            "table.rs",
            "context.rs",
        ],
    ),
    (
        "TRAIN",
        &[
            "train",
            "model",
            "tokenizer/vocab.rs",
            "tokenizer/prefix.rs",
            "cluster/mod.rs",
            "embed/mod.rs",
            "device.rs",
            "plot.rs",
            "table.rs",
            "context.rs",
        ],
    ),
];

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("readable source dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for e in entries {
            files(&e, out);
        }
    } else {
        out.push(path.to_owned());
    }
}

fn main() {
    // This crate lives in stages/registry; the stage sources are in stages/src.
    let here =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let manifest = here.join("..");
    let lock = manifest.join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    for (stage, paths) in STAGES {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&std::fs::read(&lock).unwrap_or_default());
        for p in *paths {
            let root = manifest.join("src").join(p);
            println!("cargo:rerun-if-changed={}", root.display());
            let mut list = Vec::new();
            files(&root, &mut list);
            for f in list {
                let rel = f.strip_prefix(&manifest).expect("under the stages dir");
                hasher.update(rel.to_string_lossy().as_bytes());
                hasher.update(&std::fs::read(&f).expect("readable source file"));
            }
        }
        let hex = hasher.finalize().to_hex();
        println!("cargo:rustc-env=AMT_CODE_{stage}={}", &hex[..16]);
    }
}
