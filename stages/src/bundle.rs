//! The model bundle: the directory train writes and generate and evaluate
//! load. It holds everything generation needs, the sentence encoder
//! included, so a copied bundle generates anywhere.

use std::path::Path;

use anyhow::Context;

/// The weights and optimizer state (`model::checkpoint`).
pub const MODEL: &str = "model";
/// The same weights under Hugging Face GPT-2 names (`model::hf`).
pub const HF: &str = "hf";
/// The tokenizer's vocabulary, as prepare wrote it.
pub const VOCAB: &str = "vocab.json";
/// The semantic token centroids, as cluster wrote them.
pub const CENTROIDS: &str = "centroids.json";
/// A copy of the sentence encoder the centroids were computed with.
pub const ENCODER: &str = "encoder";
/// The training run's summary (`train::Summary`).
pub const SUMMARY: &str = "train.json";

/// What of a sentence encoder's directory `embed::Encoder::load` reads
/// (the last is optional).
const ENCODER_FILES: [&str; 4] = [
    "config.json",
    "tokenizer.json",
    "model.safetensors",
    "sentence_bert_config.json",
];

/// Copies the sentence encoder in `from` into the bundle at `bundle`.
pub fn copy_encoder(from: &Path, bundle: &Path) -> anyhow::Result<()> {
    let to = bundle.join(ENCODER);
    std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
    for (i, name) in ENCODER_FILES.iter().enumerate() {
        let src = from.join(name);
        let optional = i == ENCODER_FILES.len() - 1;
        if optional && !src.exists() {
            continue;
        }
        std::fs::copy(&src, to.join(name))
            .with_context(|| format!("copying the sentence encoder's {}", src.display()))?;
    }
    Ok(())
}
