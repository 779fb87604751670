//! The embed stage: a sentence embedding for every text, from a BERT model
//! directory named in amt.toml (all-MiniLM-L6-v2 by default).

pub mod bert;
pub mod encode;
pub mod vectors;

use std::collections::HashMap;

use anyhow::Context;
use serde::Deserialize;

pub use encode::Encoder;
pub use vectors::{EmbedInfo, Pooling, read_embeddings};
use vectors::embeddings_batch;

use crate::describe::texts::for_each_text;
use crate::table::TableSink;

/// `[params] embed.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedParams {
    /// `mean` (default, L2-normalised) or `cls`.
    #[serde(default)]
    pub pooling: Pooling,
    /// L2-normalise the vectors.
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Texts per forward pass.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Torch threads on CPU (0: the stage's CPU share, `cpus` in amt.toml).
    #[serde(default)]
    pub threads: usize,
    /// `auto` (CUDA when present), `cpu` or `cuda`.
    #[serde(default = "auto")]
    pub device: String,
}

fn yes() -> bool {
    true
}
fn default_batch() -> usize {
    32
}
fn auto() -> String {
    "auto".into()
}

impl Default for EmbedParams {
    fn default() -> Self {
        Self {
            pooling: Pooling::Mean,
            normalize: true,
            batch_size: default_batch(),
            threads: 0,
            device: auto(),
        }
    }
}

/// The stage: `deps = { texts = ".../texts.parquet", model = "models/…" }`, `outs = { dir = "…" }`.
///
/// It reads the texts twice: once for the distinct texts, which are embedded
/// (a round at a time, see [`Encoder::encode_distinct`]), and once to write each
/// piece's row. Memory holds the distinct texts and their vectors, not every
/// piece's row or every tokenization.
pub fn run(ctx: &crate::StageContext) -> anyhow::Result<()> {
    let params: EmbedParams = ctx.params("embed")?;
    let model_dir = ctx.dep("model")?;
    let texts_path = ctx.dep("texts")?;
    let mut slots: HashMap<blake3::Hash, usize> = HashMap::new();
    let mut distinct: Vec<String> = Vec::new();
    let (mut texts, mut without) = (0, 0);
    for_each_text(&texts_path, |_, text| {
        match text {
            None => without += 1,
            Some(t) => {
                texts += 1;
                slots.entry(blake3::hash(t.as_bytes())).or_insert_with(|| {
                    distinct.push(t.to_owned());
                    distinct.len() - 1
                });
            }
        }
        Ok(())
    })?;
    let device = crate::device::pick(&params.device, params.threads)?;
    let started = std::time::Instant::now();
    let encoder = Encoder::load(&model_dir, device, params.pooling, params.normalize)
        .with_context(|| format!("loading the model in {}", model_dir.display()))?;
    let mut meter = ctx.meter("distinct texts", None);
    let vectors = {
        let refs: Vec<&str> = distinct.iter().map(String::as_str).collect();
        encoder.encode_distinct(&refs, params.batch_size, &mut |done, total| {
            meter.set_total(total);
            meter.update(done, String::new)
        })?
    };
    let unique_texts = distinct.len();
    drop(distinct);

    let out = ctx.out("dir")?;
    let dim = encoder.dim();
    let mut sink = TableSink::create(&out.join(vectors::FILE), embeddings_batch(&[], dim)?.schema())?;
    let mut rows: Vec<(String, String, &[f32])> = Vec::new();
    for_each_text(&texts_path, |path, text| {
        if let Some(t) = text {
            let digest = blake3::hash(t.as_bytes());
            let slot = *slots
                .get(&digest)
                .with_context(|| format!("{} changed while embed read it", texts_path.display()))?;
            rows.push((path.to_owned(), digest.to_hex().to_string(), vectors.vector(slot)));
        }
        if rows.len() == ROWS_PER_WRITE {
            sink.write(&embeddings_batch(&rows, dim)?)?;
            rows.clear();
        }
        Ok(())
    })?;
    sink.write(&embeddings_batch(&rows, dim)?)?;
    sink.finish()?;
    let model = model_dir.file_name().map_or_else(
        || model_dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let info = EmbedInfo {
        model,
        dim,
        pooling: params.pooling,
        normalize: params.normalize,
        texts,
        unique_texts,
        truncated_texts: vectors.truncated,
        pieces_without_text: without,
    };
    let mut json = serde_json::to_vec_pretty(&info)?;
    json.push(b'\n');
    std::fs::write(out.join(vectors::INFO), json)?;
    println!(
        "embed: {} texts ({} distinct, {} truncated at {} tokens, {} pieces without text) with {} on {:?} in {:.2}s",
        info.texts,
        info.unique_texts,
        info.truncated_texts,
        encoder.max_length,
        without,
        info.model,
        device,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Rows of `embeddings.parquet` encoded at a time.
const ROWS_PER_WRITE: usize = 4096;

