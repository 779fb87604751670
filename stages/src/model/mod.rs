//! The music transformer: a GPT-2 over amt's tokens, its configuration, and
//! its weights on disk (ours, and a Hugging Face export).

pub mod config;
pub mod gpt;
pub mod hf;
pub mod weights;

use std::path::Path;

use anyhow::Context;
use tch::{Device, Tensor};

use crate::atomic::write_json;

pub use config::{Conditioning, GptConfig, ModelParams};
pub use gpt::{Gpt, KvCache};

/// The weights file in a model directory.
pub const WEIGHTS: &str = "model.safetensors";
/// The configuration file in a model directory.
pub const CONFIG: &str = "config.json";

impl Gpt {
    /// Every parameter by name, sorted.
    pub fn named_weights(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Writes `config.json` and `model.safetensors` into `dir`.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_json(&dir.join(CONFIG), &self.config)?;
        weights::save(&dir.join(WEIGHTS), &self.named_weights(), None)
    }

    /// Loads a model directory written by [`Gpt::save`].
    pub fn load(dir: &Path, device: Device) -> anyhow::Result<Self> {
        let path = dir.join(CONFIG);
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let config: GptConfig =
            serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("in {}", path.display()))?;
        let model = Gpt::new(config, device);
        weights::load_into(&dir.join(WEIGHTS), &model.named_weights())?;
        Ok(model)
    }
}
