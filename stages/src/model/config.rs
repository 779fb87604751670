//! The model's shape, from `[params] model.*` in amt.toml: a named preset,
//! optionally with fields overridden.

use serde::{Deserialize, Serialize};

/// What the model is conditioned on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Conditioning {
    /// The prefix tokens only (semantic token and attributes).
    #[default]
    #[serde(rename = "tokens")]
    Tokens,
    /// The prefix tokens, plus the sentence embedding projected onto the first position.
    #[serde(rename = "tokens+embedding")]
    TokensAndEmbedding,
}

/// A GPT-2 configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    pub vocab_size: usize,
    /// The longest sequence (learned positions).
    pub context: usize,
    pub layers: usize,
    pub heads: usize,
    /// The residual width; a multiple of `heads`.
    pub width: usize,
    pub dropout: f64,
    pub conditioning: Conditioning,
    /// The sentence-embedding size, when `conditioning` uses it.
    pub embedding_dim: usize,
}

/// `[params] model.*`: a preset and any fields to override.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// `tiny` (default) or `gpt2-small`.
    #[serde(default)]
    pub preset: Option<String>,
    pub layers: Option<usize>,
    pub heads: Option<usize>,
    pub width: Option<usize>,
    pub context: Option<usize>,
    pub dropout: Option<f64>,
    #[serde(default)]
    pub conditioning: Conditioning,
}

/// The named presets: `(name, layers, heads, width, context, dropout)`.
pub const PRESETS: &[(&str, usize, usize, usize, usize, f64)] = &[
    // Trains in minutes on two CPU cores: the demo and the tests.
    ("tiny", 4, 4, 128, 256, 0.1),
    // GPT-2 small, as in the paper.
    ("gpt2-small", 12, 12, 768, 1024, 0.1),
];

impl ModelParams {
    /// The configuration for a vocabulary and embedding size; errors name the bad key.
    pub fn resolve(&self, vocab_size: usize, embedding_dim: usize) -> anyhow::Result<GptConfig> {
        let name = self.preset.as_deref().unwrap_or("tiny");
        let Some(&(_, layers, heads, width, context, dropout)) =
            PRESETS.iter().find(|p| p.0 == name)
        else {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.0).collect();
            anyhow::bail!(
                "[params] model.preset: `{name}` is not one of {}",
                names.join(", ")
            );
        };
        let c = GptConfig {
            vocab_size,
            context: self.context.unwrap_or(context),
            layers: self.layers.unwrap_or(layers),
            heads: self.heads.unwrap_or(heads),
            width: self.width.unwrap_or(width),
            dropout: self.dropout.unwrap_or(dropout),
            conditioning: self.conditioning,
            embedding_dim,
        };
        c.validate()?;
        Ok(c)
    }
}

impl GptConfig {
    /// Checks the shape is buildable; errors name the `model.*` key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.layers > 0, "[params] model.layers must be at least 1");
        anyhow::ensure!(self.heads > 0, "[params] model.heads must be at least 1");
        anyhow::ensure!(
            self.width > 0 && self.width % self.heads == 0,
            "[params] model.width ({}) must be a positive multiple of model.heads ({})",
            self.width,
            self.heads
        );
        anyhow::ensure!(
            self.context >= 2,
            "[params] model.context must be at least 2"
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.dropout),
            "[params] model.dropout must be in [0, 1)"
        );
        Ok(())
    }

    /// The width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_resolve_and_overrides_apply() {
        let small = ModelParams {
            preset: Some("gpt2-small".into()),
            ..Default::default()
        }
        .resolve(699, 384)
        .unwrap();
        assert_eq!(
            (small.layers, small.heads, small.width, small.context),
            (12, 12, 768, 1024)
        );
        let tiny = ModelParams {
            layers: Some(2),
            ..Default::default()
        }
        .resolve(699, 384)
        .unwrap();
        assert_eq!((tiny.layers, tiny.heads, tiny.width), (2, 4, 128));
    }

    #[test]
    fn bad_shapes_name_the_key() {
        let e = ModelParams {
            preset: Some("huge".into()),
            ..Default::default()
        }
        .resolve(699, 384)
        .unwrap_err();
        assert!(e.to_string().contains("model.preset: `huge`"), "{e}");
        let e = ModelParams {
            width: Some(130),
            ..Default::default()
        }
        .resolve(699, 384)
        .unwrap_err();
        assert!(e.to_string().contains("model.width (130)"), "{e}");
    }
}
