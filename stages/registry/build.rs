//! Gives every built-in stage a code version: a blake3 digest of the source
//! files that implement it (and of Cargo.lock, which pins its dependencies).
//! The engine puts it into the stage's action key, so changing a stage's code
//! reruns that stage and what follows it, and nothing else.

use std::path::{Path, PathBuf};

/// Sources every built-in stage depends on: its inputs, and how it writes outputs.
const COMMON: &[&str] = &["context.rs", "table.rs", "atomic.rs"];

/// Each built-in stage and the source paths (under `src/`) its behaviour depends on, besides [`COMMON`].
#[rustfmt::skip]
const STAGES: &[(&str, &[&str])] = &[
    ("COLLECT", &["collect", "midi"]),
    ("DESCRIBE", &["describe", "collect/table.rs"]),
    ("EMBED", &["embed", "device.rs"]),
    ("CLUSTER", &["cluster", "embed/mod.rs"]),
    ("PREPARE", &["prepare", "tokenizer", "midi", "collect/mod.rs"]),
    ("TRAIN", &["train", "model", "tokenizer/vocab.rs", "tokenizer/prefix.rs", "cluster/mod.rs", "embed/mod.rs", "device.rs", "plot.rs"]),
    ("EVALUATE", &["evaluate", "generate", "model", "train", "tokenizer", "midi", "embed", "cluster/mod.rs", "device.rs", "plot.rs"]),
    ("GENERATE", &["generate", "model", "tokenizer", "midi", "embed", "cluster/mod.rs", "train", "device.rs"]),
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
        for p in COMMON.iter().chain(paths.iter()) {
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
