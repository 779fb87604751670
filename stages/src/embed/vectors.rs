//! `embeddings.parquet` and `embed.json`, embed's outputs: each piece's
//! sentence vector, and how the vectors were made. embed writes them;
//! cluster, train and evaluate read them, through this one schema.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{Array, ArrayRef, FixedSizeListArray, Float32Array, StringArray};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::table::{column, for_each_batch};

/// The vectors' file name in embed's output.
pub const FILE: &str = "embeddings.parquet";
/// The run's description's file name in embed's output.
pub const INFO: &str = "embed.json";

/// How token states become one vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean over real tokens (sentence-transformers' default).
    #[default]
    Mean,
    /// The `[CLS]` token's state, as the original system used.
    Cls,
}

/// What `embed.json` records about a run.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct EmbedInfo {
    pub model: String,
    pub dim: usize,
    pub pooling: Pooling,
    pub normalize: bool,
    pub texts: usize,
    pub unique_texts: usize,
    pub truncated_texts: usize,
    pub pieces_without_text: usize,
}

/// Rows of `embeddings.parquet` as one record batch: path, text digest,
/// and the vector as FixedSizeList<f32>.
pub fn embeddings_batch(
    rows: &[(String, String, &[f32])],
    dim: usize,
) -> anyhow::Result<RecordBatch> {
    let values = Float32Array::from_iter_values(rows.iter().flat_map(|r| r.2.iter().copied()));
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let vectors = FixedSizeListArray::try_new(item, dim as i32, Arc::new(values), None)?;
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "path",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.0))),
        ),
        (
            "text_digest",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
        ),
        ("embedding", Arc::new(vectors)),
    ];
    Ok(RecordBatch::try_from_iter(columns)?)
}

/// Reads `embeddings.parquet` back as (path, vector) pairs.
pub fn read_embeddings(path: &Path) -> anyhow::Result<Vec<(String, Vec<f32>)>> {
    let mut out = Vec::new();
    for_each_batch(path, |batch| {
        let paths = column::<StringArray>(&batch, "path", path)?;
        let vectors = column::<FixedSizeListArray>(&batch, "embedding", path)?;
        for i in 0..batch.num_rows() {
            let v = vectors.value(i);
            let v = v
                .as_any()
                .downcast_ref::<Float32Array>()
                .context("embedding values are not f32")?;
            out.push((paths.value(i).to_owned(), v.values().to_vec()));
        }
        Ok(())
    })?;
    Ok(out)
}
