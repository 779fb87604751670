//! Export to a Hugging Face `GPT2LMHeadModel` directory (`config.json` and
//! `model.safetensors`), so Python users can load the model with
//! `transformers`. Our parameters already carry GPT-2's names and Conv1D
//! layout; the export drops what GPT-2 has no place for (the sentence
//! embedding projection) and writes GPT-2's config.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::{Gpt, WEIGHTS};
use crate::atomic::write_json;

/// The tokens GPT-2's config names: PAD, BOS and EOS are ids 0, 1 and 2 in amt's vocabulary.
const PAD: u16 = 0;
const BOS: u16 = 1;
const EOS: u16 = 2;

/// GPT-2's `config.json` for a model.
pub fn config(model: &Gpt) -> serde_json::Value {
    let c = &model.config;
    json!({
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": c.vocab_size,
        "n_positions": c.context,
        "n_ctx": c.context,
        "n_embd": c.width,
        "n_layer": c.layers,
        "n_head": c.heads,
        "n_inner": null,
        "activation_function": "gelu_new",
        "resid_pdrop": c.dropout,
        "embd_pdrop": c.dropout,
        "attn_pdrop": c.dropout,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": true,
        "tie_word_embeddings": true,
        "use_cache": true,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "pad_token_id": PAD,
    })
}

/// Writes the export into `dir`. The LM head is tied to `transformer.wte.weight`, as in GPT-2.
pub fn export(model: &Gpt, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_json(&dir.join("config.json"), &config(model))?;
    let tensors: Vec<_> = model
        .named_weights()
        .into_iter()
        .filter(|(n, _)| n.starts_with("transformer."))
        .collect();
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    super::weights::save(&dir.join(WEIGHTS), &tensors, Some(metadata))
}
