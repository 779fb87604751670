//! `captions.parquet`: describe's held-out captions (`path`, `variant`,
//! `text`), which evaluate asks of the test split. One schema for the
//! writer and the reader.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array};

use crate::table::{column, for_each_batch};

/// One row of `captions.parquet`: a held-out caption of a piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldOutCaption {
    pub path: String,
    pub variant: u32,
    pub text: String,
}

/// Held-out captions as one record batch: `path`, `variant`, `text`.
pub fn heldout_batch(rows: &[HeldOutCaption]) -> anyhow::Result<RecordBatch> {
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "path",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.path))),
        ),
        (
            "variant",
            Arc::new(UInt32Array::from_iter_values(
                rows.iter().map(|r| r.variant),
            )),
        ),
        (
            "text",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.text))),
        ),
    ];
    Ok(RecordBatch::try_from_iter(columns)?)
}

/// Reads `captions.parquet`, keeping the rows `keep` accepts.
pub fn read_heldout(
    path: &Path,
    keep: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<HeldOutCaption>> {
    let mut out = Vec::new();
    for_each_batch(path, |batch| {
        let paths = column::<StringArray>(&batch, "path", path)?;
        let variants = column::<UInt32Array>(&batch, "variant", path)?;
        let texts = column::<StringArray>(&batch, "text", path)?;
        for i in 0..batch.num_rows() {
            if keep(paths.value(i)) {
                out.push(HeldOutCaption {
                    path: paths.value(i).to_owned(),
                    variant: variants.value(i),
                    text: texts.value(i).to_owned(),
                });
            }
        }
        Ok(())
    })?;
    Ok(out)
}
