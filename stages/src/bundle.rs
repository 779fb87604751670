//! The model bundle: the directory train writes and generate and evaluate
//! load. It holds everything generation needs, the sentence encoder
//! included, so a copied bundle generates anywhere.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::model::GptConfig;
use crate::train::scores::Evaluation;

/// The weights and optimizer state (`model::checkpoint`).
pub const MODEL: &str = "model";
/// The same weights under Hugging Face GPT-2 names (`model::hf`).
pub const HF: &str = "hf";
/// The tokenizer's vocabulary, as prepare wrote it.
pub const VOCAB: &str = crate::tokenizer::vocab::FILE;
/// The semantic token centroids, as cluster wrote them.
pub const CENTROIDS: &str = crate::cluster::centroids::FILE;
/// A copy of the sentence encoder the centroids were computed with.
pub const ENCODER: &str = "encoder";
/// The training run's summary ([`Summary`]).
pub const SUMMARY: &str = "train.json";

/// What of a sentence encoder's directory `embed::Encoder::load` reads
/// (the last is optional).
const ENCODER_FILES: [&str; 4] = [
    "config.json",
    "tokenizer.json",
    "model.safetensors",
    "sentence_bert_config.json",
];

/// `train.json`: the run's summary (no timings, so the bytes are reproducible).
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    /// The micro-batch training ended with: smaller than configured after it
    /// ran out of memory (the effective batch is the same).
    pub micro_batch: usize,
    pub parameters: i64,
    pub config: GptConfig,
    pub steps: u64,
    pub stopped_early: bool,
    pub train_windows: usize,
    pub tokens_seen: u64,
    pub final_train_loss: f64,
    pub val: Evaluation,
    /// `train.uncondition`: the share of windows trained with nothing asked,
    /// which guidance needs (`None` in summaries from before it was recorded).
    #[serde(default)]
    pub uncondition: Option<f64>,
}

impl Summary {
    /// The bundle's summary; `None` for a bundle without one (one a caller
    /// assembled).
    pub fn read(bundle: &Path) -> anyhow::Result<Option<Self>> {
        let path = bundle.join(SUMMARY);
        if !path.exists() {
            return Ok(None);
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let summary = serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", path.display()))?;
        Ok(Some(summary))
    }
}

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
