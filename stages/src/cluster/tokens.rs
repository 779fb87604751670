//! `tokens.parquet`, cluster's table: each piece's semantic token and its
//! distance to the token's centroid. cluster writes it; prepare and evaluate
//! read it, through this one schema.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt32Array};
use arrow::record_batch::RecordBatch;

use crate::table::{column, read_parquet, write_parquet};

/// The table's file name in cluster's output.
pub const FILE: &str = "tokens.parquet";

/// Writes the table: `paths[i]` has token `tokens[i]` at `distances[i]`.
pub fn write(
    path: &Path,
    paths: &[String],
    tokens: &[u32],
    distances: &[f64],
) -> anyhow::Result<()> {
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("path", Arc::new(StringArray::from_iter_values(paths))),
        (
            "token",
            Arc::new(UInt32Array::from_iter_values(tokens.iter().copied())),
        ),
        (
            "distance",
            Arc::new(Float64Array::from_iter_values(distances.iter().copied())),
        ),
    ];
    write_parquet(path, RecordBatch::try_from_iter(columns)?)
}

/// Each piece's semantic token, by path.
pub fn read(path: &Path) -> anyhow::Result<HashMap<String, u32>> {
    let mut out = HashMap::new();
    for batch in read_parquet(path)? {
        let paths = column::<StringArray>(&batch, "path", path)?;
        let tokens = column::<UInt32Array>(&batch, "token", path)?;
        for i in 0..batch.num_rows() {
            out.insert(paths.value(i).to_owned(), tokens.value(i));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        let paths = ["a.mid".to_owned(), "b/c.mid".to_owned()];
        write(&file, &paths, &[3, 0], &[0.5, 1.25]).unwrap();
        let read = read(&file).unwrap();
        assert_eq!(
            read,
            HashMap::from([(paths[0].clone(), 3), (paths[1].clone(), 0)])
        );
    }
}
