//! The describe stage: a text for every piece, from any combination of
//! sources tried in order: `captions` (generated from the features; the
//! offline default), `file` (user-supplied) and `wikipedia` (MediaWiki API).
//! Every piece gets a row in `texts.parquet`; a piece no source could
//! describe has a null text and is listed in the summary, never dropped.
//! `captions.parquet` holds a few more captions of every piece, each from
//! its own seed: the held-out prompts evaluate asks of the test split.

pub mod captions;
pub mod heldout;
pub mod file;
pub mod template;
pub mod texts;
pub mod wikipedia;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::collect::table::{PieceRow, for_each_piece_batch};
use crate::manifest::{Labels, read_manifest};
use crate::table::TableSink;
use texts::{TextRow, texts_batch};

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

/// The Wikipedia source's state: the client, this run's journal and what an
/// earlier, interrupted run already looked up.
struct Wiki {
    client: wikipedia::Client,
    journal: wikipedia::Journal,
    done: HashMap<String, Option<wikipedia::Found>>,
}

/// Describes pieces one at a time with the configured sources.
pub struct Describer<'a> {
    params: &'a Params,
    labels: &'a HashMap<String, Labels>,
    user: &'a HashMap<String, file::UserText>,
    captioner: captions::Captioner,
    /// One captioner per held-out caption, each with its own seed.
    heldout: Vec<captions::Captioner>,
    wiki: Option<Wiki>,
    /// Lookups that failed (retried on the next run), one line each.
    pub failures: Vec<String>,
}

impl<'a> Describer<'a> {
    /// `memo` holds the Wikipedia response cache (kept across runs),
    /// `scratch` the journal of this run's lookups (kept until the run completes).
    pub fn new(
        params: &'a Params,
        labels: &'a HashMap<String, Labels>,
        user: &'a HashMap<String, file::UserText>,
        scratch: &Path,
        memo: &Path,
    ) -> anyhow::Result<Self> {
        let captioner = captions::Captioner::new(&params.captions)
            .context("invalid [params] describe.captions")?;
        let wiki = if params.sources.contains(&Source::Wikipedia) {
            let client =
                wikipedia::Client::new(params.wikipedia.clone(), &memo.join("wikipedia/http"))?;
            let (journal, done) =
                wikipedia::Journal::open(&client.journal_path(&scratch.join("wikipedia")))?;
            let done = done.into_iter().map(|e| (e.path, e.found)).collect();
            Some(Wiki { client, journal, done })
        } else {
            None
        };
        let heldout = (0..params.captions.heldout)
            .map(|v| captioner.reseeded(captioner.heldout_seed(v)))
            .collect();
        Ok(Self { params, labels, user, captioner, heldout, wiki, failures: Vec::new() })
    }

    /// The held-out captions of one piece (`describe.captions.heldout` of them).
    pub fn heldout(&self, piece: &PieceRow) -> Vec<heldout::HeldOutCaption> {
        let labels = self.labels.get(&piece.path);
        self.heldout
            .iter()
            .zip(0..)
            .map(|(c, variant)| heldout::HeldOutCaption {
                path: piece.path.clone(),
                variant,
                text: c.caption(piece, labels),
            })
            .collect()
    }

    /// The row of one piece: the text of the first source that has one.
    pub fn describe(&mut self, piece: &PieceRow) -> anyhow::Result<TextRow> {
        let mut row = TextRow {
            path: piece.path.clone(),
            source: None,
            text: None,
            url: None,
        };
        for source in &self.params.sources {
            let found: Option<(String, Option<String>)> = match source {
                Source::Captions => Some((
                    self.captioner.caption(piece, self.labels.get(&piece.path)),
                    None,
                )),
                Source::File => self
                    .user
                    .get(&piece.path)
                    .map(|t| (t.text.clone(), t.url.clone())),
                Source::Wikipedia => {
                    let wiki = self.wiki.as_mut().expect("built when wikipedia is a source");
                    let found = match wiki.done.get(&piece.path) {
                        Some(f) => f.clone(),
                        None => match wiki.client.describe(piece.artist.as_deref(), &piece.title) {
                            Ok(f) => {
                                wiki.journal.record(&wikipedia::JournalEntry {
                                    path: piece.path.clone(),
                                    found: f.clone(),
                                })?;
                                f
                            }
                            Err(e) => {
                                self.failures.push(format!("{}: {e}", piece.path));
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
        Ok(row)
    }
}

/// Describes a list of pieces: their rows, and the lookups that failed.
pub fn describe(
    pieces: &[PieceRow],
    params: &Params,
    labels: &HashMap<String, Labels>,
    user: &HashMap<String, file::UserText>,
    scratch: &Path,
    memo: &Path,
) -> anyhow::Result<(Vec<TextRow>, Vec<String>)> {
    let mut describer = Describer::new(params, labels, user, scratch, memo)?;
    let rows = pieces
        .iter()
        .map(|p| describer.describe(p))
        .collect::<anyhow::Result<_>>()?;
    Ok((rows, describer.failures))
}

/// The stage: `deps = { pieces = ".../midi.parquet", manifest = "…" (optional),
/// texts = "…" (for the file source) }`, `outs = { dir = "…" }`.
pub fn run(ctx: &crate::StageContext) -> anyhow::Result<()> {
    let params: Params = ctx.params("describe")?;
    let labels = match ctx.optional_dep("manifest")? {
        Some(m) => read_manifest(&m)?,
        None => HashMap::new(),
    };
    let user = if params.sources.contains(&Source::File) {
        file::read_texts(&ctx.dep("texts")?)?
    } else {
        HashMap::new()
    };
    // Batch by batch, so that memory holds the manifest's labels, the user's
    // texts, the paths left without a text and one batch of pieces and
    // texts, not the whole table.
    let mut describer = Describer::new(&params, &labels, &user, &ctx.scratch, &ctx.memo)?;
    let out = ctx.out("dir")?;
    let mut sink = TableSink::create(&out.join(texts::FILE), texts_batch(&[])?.schema())?;
    let mut heldout = TableSink::create(
        &out.join("captions.parquet"),
        heldout::heldout_batch(&[])?.schema(),
    )?;
    let mut by_source: BTreeMap<&str, usize> = BTreeMap::new();
    let mut missing = Vec::new();
    for_each_piece_batch(&ctx.dep("pieces")?, |pieces| {
        let rows = pieces
            .iter()
            .map(|p| describer.describe(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        for r in &rows {
            *by_source.entry(r.source.unwrap_or("none")).or_default() += 1;
            if r.text.is_none() {
                missing.push(r.path.clone());
            }
        }
        let captions: Vec<_> = pieces.iter().flat_map(|p| describer.heldout(p)).collect();
        heldout.write(&heldout::heldout_batch(&captions)?)?;
        sink.write(&texts_batch(&rows)?)
    })?;
    sink.finish()?;
    heldout.finish()?;

    let total: usize = by_source.values().sum();
    let counts: Vec<String> = by_source.iter().map(|(s, n)| format!("{n} {s}")).collect();
    println!("describe: {total} pieces: {}", counts.join(", "));
    for path in &missing {
        println!("  no text for {path}");
    }
    for f in &describer.failures {
        println!("  lookup failed (will be retried on the next run): {f}");
    }
    Ok(())
}
