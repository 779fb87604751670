//! Sentence embeddings: tokenize, embed each distinct text once, in batches
//! sorted by length (so padding is small) with attention masks, then pool.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use tokenizers::{Tokenizer, TruncationParams};

use super::bert::Bert;

/// How token states become one vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean over real tokens (sentence-transformers' default).
    #[default]
    Mean,
    /// The `[CLS]` token's state, as the original system used.
    Cls,
}

/// What encoding a list of texts produced.
#[derive(Debug)]
pub struct Encoded {
    /// One vector per input text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Distinct texts actually run through the model.
    pub unique: usize,
    /// Distinct texts cut at the model's length limit.
    pub truncated: usize,
}

/// A BERT with its tokenizer.
pub struct Encoder {
    bert: Bert,
    tokenizer: Tokenizer,
    pad_id: i64,
    /// Tokens per text, special tokens included.
    pub max_length: usize,
    pooling: Pooling,
    normalize: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

impl Encoder {
    /// Loads a Hugging Face BERT directory. The length limit is the
    /// sentence-transformers `max_seq_length` when the directory has one.
    pub fn load(
        dir: &Path,
        device: Device,
        pooling: Pooling,
        normalize: bool,
    ) -> anyhow::Result<Self> {
        let bert = Bert::load(dir, device)?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| anyhow!("reading {}: {e}", tokenizer_path.display()))?;
        let max_length = std::fs::read(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<SentenceBertConfig>(&b).ok())
            .map_or(bert.config.max_position_embeddings as usize, |c| {
                c.max_seq_length
            })
            .min(bert.config.max_position_embeddings as usize);
        // The shipped tokenizer.json pads everything to 128; we pad per batch instead.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("configuring truncation: {e}"))?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0) as i64;
        Ok(Self {
            bert,
            tokenizer,
            pad_id,
            max_length,
            pooling,
            normalize,
        })
    }

    /// The embedding dimension.
    pub fn dim(&self) -> usize {
        self.bert.config.hidden_size as usize
    }

    /// Embeds texts, `batch_size` at a time.
    pub fn encode(&self, texts: &[&str], batch_size: usize) -> anyhow::Result<Encoded> {
        self.encode_reporting(texts, batch_size, &mut |_, _| {})
    }

    /// [`Encoder::encode`], telling `on_batch` how many distinct texts of how
    /// many are done after each batch.
    pub fn encode_reporting(
        &self,
        texts: &[&str],
        batch_size: usize,
        on_batch: &mut dyn FnMut(u64, u64),
    ) -> anyhow::Result<Encoded> {
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut unique: Vec<&str> = Vec::new();
        let slots: Vec<usize> = texts
            .iter()
            .map(|t| {
                *index.entry(t).or_insert_with(|| {
                    unique.push(t);
                    unique.len() - 1
                })
            })
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(unique.clone(), true)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        let truncated = encodings
            .iter()
            .filter(|e| !e.get_overflowing().is_empty())
            .count();

        let mut order: Vec<usize> = (0..unique.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
        let mut vectors = vec![Vec::new(); unique.len()];
        let device = self.bert.device();
        let _guard = tch::no_grad_guard();
        let mut done = 0;
        for chunk in order.chunks(batch_size.max(1)) {
            let len = chunk
                .iter()
                .map(|&i| encodings[i].get_ids().len())
                .max()
                .unwrap_or(0)
                .max(1);
            let mut ids = vec![self.pad_id; chunk.len() * len];
            let mut mask = vec![0i64; chunk.len() * len];
            for (row, &i) in chunk.iter().enumerate() {
                for (col, &id) in encodings[i].get_ids().iter().enumerate() {
                    ids[row * len + col] = i64::from(id);
                    mask[row * len + col] = 1;
                }
            }
            let shape = [chunk.len() as i64, len as i64];
            let ids = Tensor::from_slice(&ids).view(shape).to_device(device);
            let mask = Tensor::from_slice(&mask).view(shape).to_device(device);
            let hidden = self.bert.forward(&ids, &mask);
            let pooled = match self.pooling {
                Pooling::Cls => hidden.select(1, 0),
                Pooling::Mean => {
                    let m = mask.unsqueeze(-1).to_kind(Kind::Float);
                    (hidden * &m).sum_dim_intlist(1, false, Kind::Float)
                        / m.sum_dim_intlist(1, false, Kind::Float).clamp_min(1e-9)
                }
            };
            let pooled = if self.normalize {
                let norm = pooled.norm_scalaropt_dim(2.0, 1, true).clamp_min(1e-12);
                pooled / norm
            } else {
                pooled
            };
            let flat: Vec<f32> = Vec::try_from(pooled.to_device(Device::Cpu).contiguous().view(-1))
                .context("reading embeddings")?;
            for (row, &i) in chunk.iter().enumerate() {
                vectors[i] = flat[row * self.dim()..(row + 1) * self.dim()].to_vec();
            }
            done += chunk.len() as u64;
            on_batch(done, unique.len() as u64);
        }
        Ok(Encoded {
            vectors: slots.iter().map(|&s| vectors[s].clone()).collect(),
            unique: unique.len(),
            truncated,
        })
    }
}
