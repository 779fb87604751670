//! A split's shard (`train.parquet`, `val.parquet`, `test.parquet`): one
//! row per window, with its piece, its augmentation and its tokens. prepare
//! writes it; train and evaluate read it (as `train::Windows`), through
//! this one schema.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow::array::{
    Array, ArrayRef, Float32Array, Int8Array, ListArray, ListBuilder, StringArray, UInt8Array,
    UInt16Array, UInt16Builder, UInt32Array,
};
use arrow::record_batch::RecordBatch;

use crate::table::{TableSink, column, for_each_batch};

/// One training window.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub path: String,
    pub index: u32,
    pub transpose: i8,
    pub tempo_scale: f32,
    /// The program every pitched note was moved to, if any.
    pub program: Option<u8>,
    pub tokens: Vec<u16>,
}

/// A shard written a batch of windows at a time; it appears at its path
/// when finished.
pub struct Sink(TableSink);

impl Sink {
    /// Starts the shard at `path`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        Ok(Self(TableSink::create(path, batch(&[])?.schema())?))
    }

    /// Appends windows.
    pub fn write(&mut self, windows: &[Window]) -> anyhow::Result<()> {
        self.0.write(&batch(windows)?)
    }

    /// Closes the shard and moves it into place.
    pub fn finish(self) -> anyhow::Result<()> {
        self.0.finish()
    }
}

/// Windows as rows of a shard.
fn batch(windows: &[Window]) -> anyhow::Result<RecordBatch> {
    let mut tokens = ListBuilder::new(UInt16Builder::new());
    for w in windows {
        tokens.values().append_slice(&w.tokens);
        tokens.append(true);
    }
    // Nullability is declared, not inferred from the rows: every batch of a
    // shard must have the schema of the first.
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        (
            "path",
            Arc::new(StringArray::from_iter_values(
                windows.iter().map(|w| &w.path),
            )),
            false,
        ),
        (
            "window",
            Arc::new(UInt32Array::from_iter_values(
                windows.iter().map(|w| w.index),
            )),
            false,
        ),
        (
            "transpose",
            Arc::new(Int8Array::from_iter_values(
                windows.iter().map(|w| w.transpose),
            )),
            false,
        ),
        (
            "tempo_scale",
            Arc::new(Float32Array::from_iter_values(
                windows.iter().map(|w| w.tempo_scale),
            )),
            false,
        ),
        (
            "program",
            Arc::new(UInt8Array::from(
                windows.iter().map(|w| w.program).collect::<Vec<_>>(),
            )),
            true,
        ),
        ("tokens", Arc::new(tokens.finish()), false),
    ];
    Ok(RecordBatch::try_from_iter_with_nullable(columns)?)
}

/// A shard's windows as read: `rows × width` token ids, and each window's piece.
pub struct Rows {
    pub tokens: Vec<u16>,
    pub width: usize,
    pub paths: Vec<String>,
}

/// Reads a shard; every window must have the same length.
pub fn read(path: &Path) -> anyhow::Result<Rows> {
    let mut out = Rows {
        tokens: Vec::new(),
        width: 0,
        paths: Vec::new(),
    };
    for_each_batch(path, |batch| {
        let paths = column::<StringArray>(&batch, "path", path)?;
        let lists = column::<ListArray>(&batch, "tokens", path)?;
        for i in 0..batch.num_rows() {
            let list = lists.value(i);
            let ids = list
                .as_any()
                .downcast_ref::<UInt16Array>()
                .with_context(|| format!("{}: tokens are not u16", path.display()))?;
            if out.width == 0 {
                out.width = ids.len();
            } else if ids.len() != out.width {
                bail!(
                    "{}: window {} has {} tokens, the others {}",
                    path.display(),
                    out.paths.len(),
                    ids.len(),
                    out.width
                );
            }
            out.tokens.extend_from_slice(ids.values());
            out.paths.push(paths.value(i).to_owned());
        }
        Ok(())
    })?;
    Ok(out)
}
