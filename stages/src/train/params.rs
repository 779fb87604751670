//! `[params] train.*`: the optimisation, its schedule and its checkpoints,
//! and the conditioning dropout training applies.

use serde::{Deserialize, Serialize};

/// `[params] train.*`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainParams {
    pub seed: u64,
    /// Optimizer updates in all.
    pub steps: u64,
    /// Windows per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per update.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub warmup_steps: u64,
    /// The cosine decays to `lr · min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Global gradient-norm limit (0: none).
    pub grad_clip: f64,
    /// Validate every this many updates (and at the end).
    pub eval_every: u64,
    /// Windows per validation forward pass.
    pub eval_batch: usize,
    /// Checkpoint every this many updates (and at the end).
    pub checkpoint_every: u64,
    /// Stop after this many validations without improvement (0: never).
    pub patience: u32,
    /// The probability that a training window's tempo, key, meter or
    /// instrument list (each on its own) is replaced by N/A, as in prompts
    /// that leave them out (see `data::ConditionDrop`).
    pub condition_drop: f64,
    /// The probability that a training window is unconditioned: its whole
    /// prefix N/A and its sentence embedding zero, so that sampling can
    /// guide by the difference (classifier-free guidance, `generate.guidance`).
    pub uncondition: f64,
    /// The loss weight of the music tokens a prompt asks for by name
    /// (`Tempo`, `TimeSig`, `Program`); every other token weighs 1. A window
    /// holds one `Tempo` and one `TimeSig` among hundreds of note tokens
    /// (and a `Program` at each change of instrument), so a short run learns
    /// to follow the prefix's tempo and instruments last; a weight above 1
    /// makes it learn them sooner. The training loss (`loss.csv`) is the
    /// weighted one; validation loss and perplexity stay unweighted.
    pub condition_weight: f64,
    /// Torch threads on CPU (0: the stage's CPU share, `cpus` in amt.toml).
    pub threads: usize,
    /// `auto` (CUDA when present), `cpu` or `cuda`.
    pub device: String,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            seed: 0,
            steps: 400,
            batch_size: 16,
            grad_accum: 1,
            lr: 2e-3,
            warmup_steps: 20,
            min_lr_ratio: 0.1,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            grad_clip: 1.0,
            eval_every: 50,
            eval_batch: 32,
            checkpoint_every: 50,
            patience: 0,
            condition_drop: 0.15,
            uncondition: 0.1,
            condition_weight: 1.0,
            threads: 0,
            device: "auto".into(),
        }
    }
}
