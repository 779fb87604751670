//! Parquet I/O shared by the stages: deterministic, atomic writes and typed column access.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, anyhow};
use arrow::array::{Array, AsArray, ListArray, StringArray};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Writes one batch as a zstd-compressed Parquet file, through a temp file and a rename.
/// The same batch always gives the same bytes.
pub fn write_parquet(path: &Path, batch: RecordBatch) -> anyhow::Result<()> {
    let mut sink = TableSink::create(path, batch.schema())?;
    sink.write(&batch)?;
    sink.finish()
}

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 16_384;

/// A Parquet file written batch by batch, so that a stage's memory does not
/// grow with its table; it appears at its path only when finished.
pub struct TableSink {
    writer: ArrowWriter<File>,
    tmp: tempfile::NamedTempFile,
    path: std::path::PathBuf,
}

impl TableSink {
    /// Starts the file `path` with this schema (zstd, deterministic bytes).
    pub fn create(path: &Path, schema: arrow::datatypes::SchemaRef) -> anyhow::Result<Self> {
        let tmp = crate::atomic::temp_beside(path)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_created_by("amt".to_owned())
            // The writer holds a row group until it is full: small groups
            // keep memory flat however long the table (the default is 1M rows).
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(tmp.reopen()?, schema, Some(props))?;
        Ok(Self {
            writer,
            tmp,
            path: path.to_owned(),
        })
    }

    /// Appends rows.
    pub fn write(&mut self, batch: &RecordBatch) -> anyhow::Result<()> {
        self.writer
            .write(batch)
            .with_context(|| format!("writing {}", self.path.display()))
    }

    /// Closes the file and moves it into place.
    pub fn finish(self) -> anyhow::Result<()> {
        self.writer
            .close()
            .with_context(|| format!("writing {}", self.path.display()))?;
        crate::atomic::persist(self.tmp, &self.path)
    }
}

/// Reads every batch of a Parquet file.
pub fn read_parquet(path: &Path) -> anyhow::Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for_each_batch(path, |batch| {
        batches.push(batch);
        Ok(())
    })?;
    Ok(batches)
}

/// Hands the batches of a Parquet file to `f` one at a time, so that a
/// reader that keeps less than the table holds less than the table.
pub fn for_each_batch(
    path: &Path,
    mut f: impl FnMut(RecordBatch) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("reading {}", path.display()))?
        .build()?;
    for batch in reader {
        f(batch.with_context(|| format!("reading {}", path.display()))?)?;
    }
    Ok(())
}

/// A column by name, as the expected array type; the error names the file and column.
pub fn column<'b, A: Array + 'static>(
    batch: &'b RecordBatch,
    name: &str,
    file: &Path,
) -> anyhow::Result<&'b A> {
    let col = batch
        .column_by_name(name)
        .ok_or_else(|| anyhow!("{}: no column `{name}`", file.display()))?;
    col.as_any().downcast_ref::<A>().ok_or_else(|| {
        anyhow!(
            "{}: column `{name}` has type {}, not the expected one",
            file.display(),
            col.data_type()
        )
    })
}

/// A `List<Utf8>` column as nested vectors.
pub fn list_of_strings(
    batch: &RecordBatch,
    name: &str,
    file: &Path,
) -> anyhow::Result<Vec<Vec<String>>> {
    let list = column::<ListArray>(batch, name, file)?;
    let mut out = Vec::with_capacity(list.len());
    for i in 0..list.len() {
        let values = list.value(i);
        let strings: &StringArray = values
            .as_string_opt()
            .ok_or_else(|| anyhow!("{}: `{name}` is not a list of strings", file.display()))?;
        out.push(
            strings
                .iter()
                .map(|s| s.unwrap_or_default().to_owned())
                .collect(),
        );
    }
    Ok(out)
}
