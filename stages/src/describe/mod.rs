//! The describe stage: a text for every piece, from any combination of
//! sources tried in order: `captions` (generated from the features; the
//! offline default), `file` (user-supplied) and `wikipedia` (MediaWiki API).
//! Every piece gets a row in `texts.parquet`; a piece no source could
//! describe has a null text and is listed in the summary, never dropped.

pub mod captions;
pub mod file;
pub mod labels;
pub mod template;
pub mod wikipedia;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{ArrayRef, StringArray};
use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use crate::collect::table::{PieceRow, read_pieces};
use crate::table::write_parquet;

/// A text source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Captions,
    File,
    Wikipedia,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Captions => "captions",
            Source::File => "file",
            Source::Wikipedia => "wikipedia",
        }
    }
}

/// `[params] describe.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Sources in order of preference; the first with a text wins.
    #[serde(default = "default_sources")]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub captions: captions::CaptionParams,
    #[serde(default)]
    pub wikipedia: wikipedia::WikiParams,
}

fn default_sources() -> Vec<Source> {
    vec![Source::Captions]
}

impl Default for Params {
    fn default() -> Self {
        Self {
            sources: default_sources(),
            captions: Default::default(),
            wikipedia: Default::default(),
        }
    }
}

/// One row of `texts.parquet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextRow {
    pub path: String,
    pub source: Option<&'static str>,
    pub text: Option<String>,
    pub url: Option<String>,
}

/// Writes `texts.parquet`.
pub fn write_texts(path: &Path, rows: &[TextRow]) -> anyhow::Result<()> {
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "path",
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.path))),
        ),
        (
            "source",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.source).collect::<Vec<_>>(),
            )),
        ),
        (
            "text",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.text.clone()).collect::<Vec<_>>(),
            )),
        ),
        (
            "url",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.url.clone()).collect::<Vec<_>>(),
            )),
        ),
    ];
    write_parquet(path, RecordBatch::try_from_iter(columns)?)
}

/// Describes pieces with the configured sources. `memo` holds the Wikipedia
/// response cache (kept across runs), `scratch` the journal of this run's
/// lookups (kept until the run completes).
pub fn describe(
    pieces: &[PieceRow],
    params: &Params,
    labels: &HashMap<String, labels::Labels>,
    user: &HashMap<String, file::UserText>,
    scratch: &Path,
    memo: &Path,
) -> anyhow::Result<(Vec<TextRow>, Vec<String>)> {
    let captioner =
        captions::Captioner::new(&params.captions).context("invalid [params] describe.captions")?;
    let mut wiki = if params.sources.contains(&Source::Wikipedia) {
        let client =
            wikipedia::Client::new(params.wikipedia.clone(), &memo.join("wikipedia/http"))?;
        let (journal, done) =
            wikipedia::Journal::open(&client.journal_path(&scratch.join("wikipedia")))?;
        let done: HashMap<String, Option<wikipedia::Found>> =
            done.into_iter().map(|e| (e.path, e.found)).collect();
        Some((client, journal, done))
    } else {
        None
    };
    let mut failures = Vec::new();
    let mut rows = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let mut row = TextRow {
            path: piece.path.clone(),
            source: None,
            text: None,
            url: None,
        };
        for source in &params.sources {
            let found: Option<(String, Option<String>)> = match source {
                Source::Captions => Some((captioner.caption(piece, labels.get(&piece.path)), None)),
                Source::File => user
                    .get(&piece.path)
                    .map(|t| (t.text.clone(), t.url.clone())),
                Source::Wikipedia => {
                    let (client, journal, done) =
                        wiki.as_mut().expect("built when wikipedia is a source");
                    let found = match done.get(&piece.path) {
                        Some(f) => f.clone(),
                        None => match client.describe(piece.artist.as_deref(), &piece.title) {
                            Ok(f) => {
                                journal.record(&wikipedia::JournalEntry {
                                    path: piece.path.clone(),
                                    found: f.clone(),
                                })?;
                                f
                            }
                            Err(e) => {
                                failures.push(format!("{}: {e}", piece.path));
                                None
                            }
                        },
                    };
                    found.map(|f| (f.text, Some(f.url)))
                }
            };
            if let Some((text, url)) = found {
                row.source = Some(source.name());
                row.text = Some(text);
                row.url = url;
                break;
            }
        }
        rows.push(row);
    }
    Ok((rows, failures))
}

/// The stage: `deps = { pieces = ".../midi.parquet", manifest = "…" (optional),
/// texts = "…" (for the file source) }`, `outs = { dir = "…" }`.
pub fn run(ctx: &crate::StageContext) -> anyhow::Result<()> {
    let params: Params = ctx.params("describe")?;
    let pieces = read_pieces(&ctx.dep("pieces")?)?;
    let labels = match ctx.optional_dep("manifest")? {
        Some(m) => labels::read_manifest(&m)?,
        None => HashMap::new(),
    };
    let user = if params.sources.contains(&Source::File) {
        file::read_texts(&ctx.dep("texts")?)?
    } else {
        HashMap::new()
    };
    let (rows, failures) = describe(&pieces, &params, &labels, &user, &ctx.scratch, &ctx.memo)?;
    let out = ctx.out("dir")?;
    write_texts(&out.join("texts.parquet"), &rows)?;

    let mut by_source: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *by_source.entry(r.source.unwrap_or("none")).or_default() += 1;
    }
    let counts: Vec<String> = by_source.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!("describe: {} pieces: {}", rows.len(), counts.join(", "));
    for r in rows.iter().filter(|r| r.text.is_none()) {
        println!("  no text for {}", r.path);
    }
    for f in &failures {
        println!("  lookup failed (will be retried on the next run): {f}");
    }
    Ok(())
}
