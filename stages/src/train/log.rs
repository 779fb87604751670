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

/// Reads `loss.csv` as [`write_csv`] wrote it.
pub fn read_csv(path: &Path) -> anyhow::Result<Vec<LogRow>> {
    let mut r = csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    r.deserialize()
        .enumerate()
        .map(|(i, row)| row.with_context(|| format!("{}: row {}", path.display(), i + 2)))
        .collect()
}

/// Draws the training and validation loss against the step; `weighted`
/// says the training loss weighs some tokens more (`train.condition_weight`).
pub fn plot(path: &Path, rows: &[LogRow], weighted: bool) -> anyhow::Result<()> {
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
        &[
            (if weighted { "train (weighted)" } else { "train" }, &train),
            ("validation", &val),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.csv");
        let rows = vec![
            LogRow { step: 1, lr: 1e-3, train_loss: 4.5, grad_norm: 2.0, val_loss: None },
            LogRow { step: 2, lr: 2e-3, train_loss: 4.25, grad_norm: 1.5, val_loss: Some(4.0) },
        ];
        write_csv(&path, &rows).unwrap();
        assert_eq!(read_csv(&path).unwrap(), rows);
        std::fs::write(&path, "step,lr,train_loss,grad_norm,val_loss\n1,x,1,1,\n").unwrap();
        let err = format!("{:#}", read_csv(&path).unwrap_err());
        assert!(err.contains("loss.csv: row 2"), "{err}");
    }
}
