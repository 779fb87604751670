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

/// The MiniLM encoder the repository links (`scripts/setup.sh`).
pub fn encoder_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/all-MiniLM-L6-v2")
        .canonicalize()
        .expect("models/all-MiniLM-L6-v2 (scripts/setup.sh links it)")
}

/// Writes a model bundle into `dir` as the train stage does: the model, the
/// vocabulary, two real centroids (the embeddings of two captions) and the encoder.
pub fn write_bundle(dir: &std::path::Path, model: &amt_stages::model::Gpt, vocab: &amt_stages::tokenizer::Vocab) {
    use amt_stages::cluster::Centroids;
    use amt_stages::embed::{Encoder, Pooling};
    model.save(&dir.join("model")).unwrap();
    amt_stages::atomic::write_json(&dir.join("vocab.json"), &vocab.file()).unwrap();
    let encoder = Encoder::load(&encoder_dir(), tch::Device::Cpu, Pooling::Mean, true).unwrap();
    let v = encoder
        .encode(&["an Irish jig for fiddle", "a Bach chorale for choir"], 2)
        .unwrap()
        .vectors;
    let centroids = Centroids {
        model: "all-MiniLM-L6-v2".into(),
        dim: 384,
        pooling: Pooling::Mean,
        normalize: true,
        seed: 0,
        centroids: v,
    };
    amt_stages::atomic::write_json(&dir.join("centroids.json"), &centroids).unwrap();
    amt_stages::bundle::copy_encoder(&encoder_dir(), dir).unwrap();
}
