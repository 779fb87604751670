//! Resumable training checkpoints: the weights, the optimizer's moments, the
//! step and the loss history, written atomically every N steps.
//!
//! A checkpoint is a directory `step-NNNNNNNN` built under a temporary name
//! and renamed into place; `latest` (itself replaced atomically) names the
//! newest. A checkpoint records the fingerprint of what it was trained on, so
//! a run with other data or params starts over instead of resuming the wrong one
//! ([`fingerprint`]).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tch::Device;

use super::log::LogRow;
use super::optim::AdamW;
use super::{TrainData, TrainParams};
use crate::atomic::write_json;
use crate::model::{Gpt, GptConfig, weights};

/// A digest of everything that determines the weights, so a checkpoint is
/// resumed only by the run that wrote it: the config, the params, the data,
/// the device it trains on (CUDA trains in bf16) and the code that trains.
/// The engine's scratch directory is already per action; this guards the
/// library's own callers too.
pub fn fingerprint(
    config: &GptConfig,
    params: &TrainParams,
    data: &TrainData,
    device: Device,
) -> String {
    let mut h = blake3::Hasher::new();
    let mut p = params.clone();
    // The device param is replaced by the device it resolved to.
    p.device = format!("{device:?}");
    // Only the effective batch shapes an update (micro-batches see the same
    // windows), so a run that halved its micro-batch after running out of
    // memory resumes the same checkpoints.
    (p.batch_size, p.grad_accum) = (params.batch_size * params.grad_accum, 1);
    h.update(&serde_json::to_vec(&(config, &p)).expect("plain data serializes"));
    let code = crate::builtin("train").map_or("", |b| b.version);
    h.update(code.as_bytes());
    for w in [&data.train, &data.val] {
        h.update(&(w.width as u64).to_le_bytes());
        w.tokens.iter().for_each(|t| _ = h.update(&t.to_le_bytes()));
    }
    if let Some((table, dim)) = &data.embeddings {
        let mut keys: Vec<&String> = table.keys().collect();
        keys.sort();
        h.update(&(*dim as u64).to_le_bytes());
        for k in keys {
            h.update(k.as_bytes());
            table[k].iter().for_each(|v| _ = h.update(&v.to_le_bytes()));
        }
    }
    h.finalize().to_hex().to_string()
}

/// What a checkpoint holds besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Optimizer updates applied.
    pub step: u64,
    /// Digest of the config, params and training data.
    pub fingerprint: String,
    /// The loss log up to `step`.
    pub log: Vec<LogRow>,
    /// The best validation loss so far, and evaluations since it improved.
    pub best_val: Option<f64>,
    pub evals_since_best: u32,
}

const LATEST: &str = "latest";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "state.json";

/// Writes a full checkpoint into `dir` (which is created).
pub fn write(dir: &Path, model: &Gpt, optim: &AdamW, state: &TrainState) -> anyhow::Result<()> {
    model.save(dir)?;
    weights::save(&dir.join(OPTIMIZER), &optim.state(), None)?;
    write_json(&dir.join(STATE), state)
}

/// Saves a checkpoint under `root` and points `latest` at it; older ones are removed.
pub fn save(
    root: &Path,
    model: &Gpt,
    optim: &AdamW,
    state: &TrainState,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let name = format!("step-{:08}", state.step);
    let tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(root)?;
    write(tmp.path(), model, optim, state)?;
    let dest = root.join(&name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(tmp.keep(), &dest)
        .with_context(|| format!("renaming into {}", dest.display()))?;
    crate::atomic::write(&root.join(LATEST), name.as_bytes())?;
    for entry in std::fs::read_dir(root)?.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if (n.starts_with("step-") && n != name) || n.starts_with(".partial-") {
            std::fs::remove_dir_all(entry.path()).ok();
        }
    }
    Ok(dest)
}

/// The newest checkpoint's state under `root`, if there is one with this fingerprint.
pub fn latest(root: &Path, fingerprint: &str) -> anyhow::Result<Option<(PathBuf, TrainState)>> {
    let Ok(name) = std::fs::read_to_string(root.join(LATEST)) else {
        return Ok(None);
    };
    let dir = root.join(name.trim());
    let path = dir.join(STATE);
    let Ok(text) = std::fs::read(&path) else {
        return Ok(None);
    };
    let state: TrainState =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok((state.fingerprint == fingerprint).then_some((dir, state)))
}

/// Loads a checkpoint's weights and optimizer moments into a model and optimizer of the same shape.
pub fn restore(
    dir: &Path,
    model: &Gpt,
    optim: &mut AdamW,
    state: &TrainState,
) -> anyhow::Result<()> {
    weights::load_into(&dir.join(crate::model::WEIGHTS), &model.named_weights())?;
    weights::load_into(&dir.join(OPTIMIZER), &optim.state())?;
    optim.step = state.step;
    Ok(())
}
