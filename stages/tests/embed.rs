//! The tch BERT against sentence-transformers (fixtures/minilm_reference.json,
//! written by scripts/make_embedding_fixture.py from the same model files).

use std::path::PathBuf;

use amt_stages::device::pick as device;
use amt_stages::embed::{Encoder, Pooling};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

fn model_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").exists(),
        "{} is missing: scripts/test.sh installs it",
        dir.display()
    );
    dir
}

fn reference() -> Reference {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_reference.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn matches_sentence_transformers_on_128_varied_texts() {
    let reference = reference();
    assert!(reference.texts.len() >= 100);
    let encoder =
        Encoder::load(&model_dir(), device("cpu", 2).unwrap(), Pooling::Mean, true).unwrap();
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    // A small batch size puts texts of very different lengths in one batch: padding must not leak.
    let encoded = encoder.encode(&texts, 7).unwrap();
    assert_eq!(encoded.vectors.len(), texts.len());
    assert_eq!(
        encoded.unique,
        texts.len() - 1,
        "the long text appears twice and is embedded once"
    );
    assert_eq!(
        encoded.truncated, 1,
        "only the long text exceeds 256 tokens"
    );
    let mut worst = (1.0f64, 0usize);
    for (i, (ours, theirs)) in encoded.vectors.iter().zip(&reference.vectors).enumerate() {
        let c = cosine(ours, theirs);
        if c < worst.0 {
            worst = (c, i);
        }
    }
    eprintln!("lowest cosine {:.9} on text {}", worst.0, worst.1);
    assert!(
        worst.0 >= 0.9999,
        "cosine {:.6} on text {:?}",
        worst.0,
        texts[worst.1]
    );
    let norm: f64 = encoded.vectors[0]
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "mean pooling is L2-normalised");
}

/// Tokenized a few texts at a time, each text still gets its own vector:
/// rounds of 10 over 127 distinct texts (the last one short) against
/// sentence-transformers.
#[test]
fn rounds_keep_every_vector_with_its_text() {
    let reference = reference();
    let encoder = Encoder::load(&model_dir(), device("cpu", 2).unwrap(), Pooling::Mean, true)
        .unwrap()
        .with_round(10);
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let encoded = encoder.encode(&texts, 4).unwrap();
    assert_eq!((encoded.unique, encoded.truncated), (texts.len() - 1, 1));
    for (i, (ours, theirs)) in encoded.vectors.iter().zip(&reference.vectors).enumerate() {
        let c = cosine(ours, theirs);
        assert!(c >= 0.9999, "cosine {c:.6} on text {i}: {:?}", texts[i]);
    }
}

#[test]
fn cls_pooling_and_raw_vectors_are_available() {
    let encoder =
        Encoder::load(&model_dir(), device("cpu", 2).unwrap(), Pooling::Cls, false).unwrap();
    let v = encoder
        .encode(&["a calm waltz", "a calm waltz for strings"], 2)
        .unwrap()
        .vectors;
    assert_eq!(v[0].len(), 384);
    let norm: f64 = v[0]
        .iter()
        .map(|x| f64::from(*x).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((norm - 1.0).abs() > 1e-3, "not normalised");
    assert!(cosine(&v[0], &v[1]) > 0.5 && cosine(&v[0], &v[1]) < 0.9999);
}
