//! Texts supplied by the user: a CSV, JSONL or Parquet file mapping a piece's
//! path to its text (and optionally a URL).

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use arrow::array::{Array, StringArray};
use serde::Deserialize;

use crate::table::{column, read_parquet};

/// A user-supplied text.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserText {
    pub path: String,
    pub text: String,
    #[serde(default)]
    pub url: Option<String>,
}

/// Reads texts by the file's extension (`.csv`, `.jsonl`/`.ndjson`, `.parquet`).
/// Errors name the file and the line (or row); a repeated path is an error.
pub fn read_texts(file: &Path) -> anyhow::Result<HashMap<String, UserText>> {
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let rows: Vec<(usize, UserText)> = match ext.as_str() {
        "csv" => read_csv(file)?,
        "jsonl" | "ndjson" => read_jsonl(file)?,
        "parquet" => read_parquet_texts(file)?,
        _ => bail!("{}: texts must be .csv, .jsonl or .parquet", file.display()),
    };
    let mut out = HashMap::new();
    for (line, row) in rows {
        if let Some(prev) = out.insert(row.path.clone(), row) {
            bail!(
                "{}:{line}: `{}` already has a text",
                file.display(),
                prev.path
            );
        }
    }
    Ok(out)
}

fn read_csv(file: &Path) -> anyhow::Result<Vec<(usize, UserText)>> {
    let mut reader =
        csv::Reader::from_path(file).with_context(|| format!("opening {}", file.display()))?;
    let mut out = Vec::new();
    for (i, row) in reader.deserialize::<UserText>().enumerate() {
        // Line 1 is the header.
        let row = row.with_context(|| format!("{}:{}", file.display(), i + 2))?;
        out.push((i + 2, row));
    }
    Ok(out)
}

fn read_jsonl(file: &Path) -> anyhow::Result<Vec<(usize, UserText)>> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", file.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let row =
            serde_json::from_str(&line).with_context(|| format!("{}:{}", file.display(), i + 1))?;
        out.push((i + 1, row));
    }
    Ok(out)
}

fn read_parquet_texts(file: &Path) -> anyhow::Result<Vec<(usize, UserText)>> {
    let mut out = Vec::new();
    for batch in read_parquet(file)? {
        let paths = column::<StringArray>(&batch, "path", file)?;
        let texts = column::<StringArray>(&batch, "text", file)?;
        let urls = batch
            .column_by_name("url")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
        for i in 0..batch.num_rows() {
            let row = out.len() + 1;
            if paths.is_null(i) || texts.is_null(i) {
                return Err(anyhow!(
                    "{} row {row}: `path` and `text` must not be null",
                    file.display()
                ));
            }
            let url = urls
                .as_ref()
                .and_then(|u| (!u.is_null(i)).then(|| u.value(i).to_owned()));
            out.push((
                row,
                UserText {
                    path: paths.value(i).to_owned(),
                    text: texts.value(i).to_owned(),
                    url,
                },
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_jsonl_read_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, "path,text\na.mid,\"a calm, slow air\"\nb.mid,fast\n").unwrap();
        let t = read_texts(&csv).unwrap();
        assert_eq!(t["a.mid"].text, "a calm, slow air");

        let jsonl = dir.path().join("t.jsonl");
        std::fs::write(
            &jsonl,
            "{\"path\": \"a.mid\", \"text\": \"x\"}\n{\"path\": \"b.mid\", \"txt\": \"y\"}\n",
        )
        .unwrap();
        let e = format!("{:#}", read_texts(&jsonl).unwrap_err());
        assert!(
            e.contains("t.jsonl:2") && e.contains("unknown field `txt`"),
            "{e}"
        );

        std::fs::write(&csv, "path,text\na.mid,x\na.mid,y\n").unwrap();
        let e = format!("{:#}", read_texts(&csv).unwrap_err());
        assert!(e.contains("t.csv:3: `a.mid` already has a text"), "{e}");
    }

    #[test]
    fn parquet_reads_with_an_optional_url_column() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.parquet");
        let batch = arrow::record_batch::RecordBatch::try_from_iter(vec![
            (
                "path",
                Arc::new(StringArray::from(vec!["a.mid", "b.mid"])) as arrow::array::ArrayRef,
            ),
            (
                "text",
                Arc::new(StringArray::from(vec!["one", "two"])) as arrow::array::ArrayRef,
            ),
            (
                "url",
                Arc::new(StringArray::from(vec![Some("https://x/a"), None]))
                    as arrow::array::ArrayRef,
            ),
        ])
        .unwrap();
        crate::table::write_parquet(&file, batch).unwrap();
        let t = read_texts(&file).unwrap();
        assert_eq!(t["a.mid"].url.as_deref(), Some("https://x/a"));
        assert_eq!(
            t["b.mid"],
            UserText {
                path: "b.mid".into(),
                text: "two".into(),
                url: None
            }
        );
        assert!(
            format!("{:#}", read_texts(&dir.path().join("t.txt")).unwrap_err())
                .contains("must be .csv, .jsonl or .parquet")
        );
    }
}
