//! `[params] evaluate.*`: the baselines, the held-out sampling and where it runs.

use serde::{Deserialize, Serialize};

/// `[params] evaluate.*`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluateParams {
    /// Also sample the prompts from an untrained model and as random tokens.
    pub baselines: bool,
    /// Seed of the untrained baseline's weights.
    pub seed: u64,
    /// Windows per perplexity forward pass.
    pub eval_batch: usize,
    /// Held-out captions to sample (0: every one describe wrote for the test split).
    pub heldout_prompts: usize,
    /// Music tokens sampled per held-out caption.
    pub heldout_tokens: usize,
    /// Guidance scales measured on the held-out captions besides 1 (the model as trained).
    pub guidance: Vec<f64>,
    /// Torch threads on CPU (0: the stage's CPU share, `cpus` in amt.toml).
    pub threads: usize,
    /// `auto` (CUDA when present), `cpu` or `cuda`.
    pub device: String,
}

impl Default for EvaluateParams {
    fn default() -> Self {
        Self {
            baselines: true,
            seed: 0,
            eval_batch: 32,
            heldout_prompts: 0,
            heldout_tokens: 256,
            guidance: vec![2.0, 4.0],
            threads: 0,
            device: "auto".into(),
        }
    }
}
