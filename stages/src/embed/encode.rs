//! Sentence embeddings: tokenize, embed each distinct text once, in batches
//! sorted by length (so padding is small) with attention masks, then pool.
//! Texts are tokenized a round at a time, so memory holds one round's
//! tokenizations and every distinct text's vector, not every tokenization.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, anyhow};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::bert::Bert;
use super::vectors::Pooling;

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

/// Distinct texts tokenized at a time, unless set otherwise: bounds the
/// tokenizations held (a few KiB each) without making the length-sorted
/// batches much less even.
const ROUND: usize = 4096;

/// The vectors of distinct texts, in their order, in one flat buffer.
#[derive(Debug)]
pub struct Vectors {
    dim: usize,
    values: Vec<f32>,
    /// Texts cut at the model's length limit.
    pub truncated: usize,
}

impl Vectors {
    /// The vector of the `i`-th text.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }
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
    /// Distinct texts tokenized at a time.
    round: usize,
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
            round: ROUND,
        })
    }

    /// Tokenizes about `texts` distinct texts at a time (4096 unless set;
    /// rounded up to whole batches): fewer hold less memory, more sort more
    /// texts by length together.
    pub fn with_round(mut self, texts: usize) -> Self {
        self.round = texts.max(1);
        self
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
        let distinct = self.encode_distinct(&unique, batch_size, on_batch)?;
        Ok(Encoded {
            vectors: slots.iter().map(|&s| distinct.vector(s).to_vec()).collect(),
            unique: unique.len(),
            truncated: distinct.truncated,
        })
    }

    /// Embeds texts that are already distinct, in rounds (see [`Encoder::with_round`]) so that
    /// only one round's tokenizations are held; within a round, batches of
    /// `batch_size` texts of similar length keep padding small.
    pub fn encode_distinct(
        &self,
        texts: &[&str],
        batch_size: usize,
        on_batch: &mut dyn FnMut(u64, u64),
    ) -> anyhow::Result<Vectors> {
        let dim = self.dim();
        let mut out = Vectors {
            dim,
            values: vec![0.0; texts.len() * dim],
            truncated: 0,
        };
        let _guard = tch::no_grad_guard();
        let mut done = 0;
        // Whole batches per round, so that only the last batch may be short.
        let batch_size = batch_size.max(1);
        let per_round = self.round.div_ceil(batch_size) * batch_size;
        for (round, chunk) in texts.chunks(per_round).enumerate() {
            let encodings = self
                .tokenizer
                .encode_batch(chunk.to_vec(), true)
                .map_err(|e| anyhow!("tokenizing: {e}"))?;
            out.truncated += encodings
                .iter()
                .filter(|e| !e.get_overflowing().is_empty())
                .count();
            let mut order: Vec<usize> = (0..chunk.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));
            for batch in order.chunks(batch_size) {
                let flat = self.embed_batch(batch.iter().map(|&i| &encodings[i]))?;
                for (row, &i) in batch.iter().enumerate() {
                    let at = (round * per_round + i) * dim;
                    out.values[at..at + dim].copy_from_slice(&flat[row * dim..(row + 1) * dim]);
                }
                done += batch.len() as u64;
                on_batch(done, texts.len() as u64);
            }
        }
        Ok(out)
    }

    /// One forward pass over tokenized texts, padded to the longest: the
    /// pooled (and, if asked, normalised) vectors, row after row.
    fn embed_batch<'e>(
        &self,
        encodings: impl ExactSizeIterator<Item = &'e Encoding> + Clone,
    ) -> anyhow::Result<Vec<f32>> {
        let rows = encodings.len();
        let len = encodings
            .clone()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = vec![self.pad_id; rows * len];
        let mut mask = vec![0i64; rows * len];
        for (row, e) in encodings.enumerate() {
            for (col, &id) in e.get_ids().iter().enumerate() {
                ids[row * len + col] = i64::from(id);
                mask[row * len + col] = 1;
            }
        }
        let device = self.bert.device();
        let shape = [rows as i64, len as i64];
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
        Vec::try_from(pooled.to_device(Device::Cpu).contiguous().view(-1))
            .context("reading embeddings")
    }
}
