//! `centroids.json`, cluster's model of the text space: enough to map a new
//! sentence embedding to its semantic token. cluster writes it; train copies
//! it into the model bundle, where generate reads it.

use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The file's name, in cluster's output and in a model bundle.
pub const FILE: &str = "centroids.json";

/// The saved model: enough to map a new embedding to its token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Centroids {
    /// The embedding model the centroids live in.
    pub model: String,
    pub dim: usize,
    pub pooling: crate::embed::vectors::Pooling,
    pub normalize: bool,
    pub seed: u64,
    /// `k` rows of `dim` values.
    pub centroids: Vec<Vec<f32>>,
}

impl Centroids {
    /// Loads `centroids.json`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let c: Self = serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?;
        if c.centroids.iter().any(|v| v.len() != c.dim) {
            bail!(
                "{}: a centroid does not have {} values",
                path.display(),
                c.dim
            );
        }
        Ok(c)
    }

    /// The nearest centroid (the semantic token) and the Euclidean distance to it.
    pub fn nearest(&self, v: &[f32]) -> (u32, f64) {
        let mut best = (0u32, f64::INFINITY);
        for (i, c) in self.centroids.iter().enumerate() {
            let d: f64 = c
                .iter()
                .zip(v)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
                .sum();
            if d < best.1 {
                best = (i as u32, d);
            }
        }
        (best.0, best.1.sqrt())
    }
}
