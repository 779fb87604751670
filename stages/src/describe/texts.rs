//! `texts.parquet`, describe's table: one row per piece with its text (or
//! none, when no source had one), where the text came from and its URL.
//! describe writes it and embed reads it, through this one schema.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;

use crate::table::{column, for_each_batch};

/// The table's file name in describe's output.
pub const FILE: &str = "texts.parquet";

/// One row of `texts.parquet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextRow {
    pub path: String,
    pub source: Option<&'static str>,
    pub text: Option<String>,
    pub url: Option<String>,
}

/// Rows of `texts.parquet` as one record batch.
pub fn texts_batch(rows: &[TextRow]) -> anyhow::Result<RecordBatch> {
    // Nullability is declared, not inferred from the rows: every batch of
    // the file must have the schema of the first.
    let columns: Vec<(&str, ArrayRef, bool)> = vec![
        (
            "path",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.path))),
            false,
        ),
        (
            "source",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.source).collect::<Vec<_>>(),
            )),
            true,
        ),
        (
            "text",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.text.clone()).collect::<Vec<_>>(),
            )),
            true,
        ),
        (
            "url",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.url.clone()).collect::<Vec<_>>(),
            )),
            true,
        ),
    ];
    Ok(RecordBatch::try_from_iter_with_nullable(columns)?)
}

/// Hands each row of `texts.parquet` to `f` as (path, text), a batch at a time.
pub fn for_each_text(
    path: &Path,
    mut f: impl FnMut(&str, Option<&str>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for_each_batch(path, |batch| {
        let paths = column::<StringArray>(&batch, "path", path)?;
        let texts = column::<StringArray>(&batch, "text", path)?;
        for i in 0..batch.num_rows() {
            f(paths.value(i), (!texts.is_null(i)).then(|| texts.value(i)))?;
        }
        Ok(())
    })
}
