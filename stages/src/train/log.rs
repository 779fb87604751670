//! The loss log: one row per optimizer step, written as `loss.csv` and drawn
//! as `loss.png`. It holds no timings, so the same run gives the same bytes.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One step's numbers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogRow {
    pub step: u64,
    pub lr: f64,
    pub train_loss: f64,
    /// The gradient norm before clipping.
    pub grad_norm: f64,
    /// Set on the steps where validation ran.
    pub val_loss: Option<f64>,
}

/// Writes `loss.csv`.
pub fn write_csv(path: &Path, rows: &[LogRow]) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()
        .with_context(|| format!("writing {}", path.display()))
}

/// Draws the training and validation loss against the step.
pub fn plot(path: &Path, rows: &[LogRow]) -> anyhow::Result<()> {
    let train: Vec<(f64, f64)> = rows.iter().map(|r| (r.step as f64, r.train_loss)).collect();
    let val: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.step as f64, r.val_loss?)))
        .collect();
    crate::plot::lines(
        path,
        "Loss",
        "step",
        "loss (nats/token)",
        &[("train", &train), ("validation", &val)],
    )
}
