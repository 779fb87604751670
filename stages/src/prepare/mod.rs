//! The prepare stage: token sequences ready for training. Every piece is
//! tokenized with its conditioning prefix, cut into fixed-length windows that
//! each repeat the prefix (and restate the meter, tempo and program they
//! start in), and assigned to train, val or test by a hash of its source
//! group (see [`groups`]), so the split is deterministic, the variants of one
//! source (an MMA groove's, a Lakh song's duplicates) are held out together,
//! and augmented copies of a piece stay in its split. Augmentation (train
//! only): transposition, which rewrites the key token, tempo scaling, which
//! rewrites the tempo tokens, and playing a one-family piece on another
//! instrument, which rewrites the instrument tokens.

pub mod augment;
pub mod shard;
pub mod split;

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::midi::{self, features};
use crate::tokenizer::{Conditioning, Config, Header, Token, Tokenizer, Vocab};
pub use shard::Window;
pub use split::{Split, split_of};

/// `[params] prepare.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareParams {
    /// Tokens per window, prefix included (the model's context).
    #[serde(default = "context")]
    pub context: usize,
    #[serde(default = "tenth")]
    pub val_fraction: f64,
    #[serde(default = "tenth")]
    pub test_fraction: f64,
    /// Salt for the split hash.
    #[serde(default)]
    pub split_seed: u64,
    /// Semitone shifts added to the training split (0 is always included).
    #[serde(default)]
    pub transpose: Vec<i8>,
    /// Tempo factors added to the training split (1.0 is always included).
    #[serde(default)]
    pub tempo_scales: Vec<f64>,
    /// General MIDI programs a training piece is also played on, where
    /// that is plausible (see [`augment::reassigned`]).
    #[serde(default)]
    pub programs: Vec<u8>,
}

fn context() -> usize {
    256
}
fn tenth() -> f64 {
    0.1
}

impl Default for PrepareParams {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("all fields have defaults")
    }
}

/// Cuts `prefix + music + EOS` into windows of `context` tokens, each
/// starting with the prefix; every window after the first restates the
/// meter, tempo and program it starts in (see [`Header`]). The last is padded.
pub fn windows(vocab: &Vocab, ids: &[u16], prefix_len: usize, context: usize) -> Vec<Vec<u16>> {
    let (prefix, music) = ids.split_at(prefix_len.min(ids.len()));
    let mut out = Vec::new();
    let mut state = Header::default();
    let mut at = 0;
    while at < music.len() {
        let header = if at == 0 { Vec::new() } else { state.tokens() };
        let body = context.saturating_sub(prefix.len() + header.len()).max(1);
        let end = (at + body).min(music.len());
        let mut w = Vec::with_capacity(context);
        w.extend_from_slice(prefix);
        w.extend_from_slice(&header);
        w.extend_from_slice(&music[at..end]);
        w.resize(context.max(w.len()), vocab.id(Token::Pad));
        out.push(w);
        for &id in &music[at..end] {
            state.observe(vocab, id);
        }
        at = end;
    }
    out
}

/// `prepare.json`: what went where.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub pieces: BTreeMap<String, usize>,
    pub windows: BTreeMap<String, usize>,
    pub tokens: usize,
    pub skipped: Vec<String>,
    pub vocab_size: usize,
    pub context: usize,
}

/// Pieces tokenized per parallel round: bounds the windows held at once, so
/// the stage's memory does not grow with the corpus.
const PIECES_PER_ROUND: usize = 1024;

/// Tokenizes and windows every piece (corpus-relative path, file); returns
/// the windows per split. For a corpus of any size, see [`prepare_each`].
pub fn prepare(
    files: &[(String, PathBuf)],
    semantic: &HashMap<String, u32>,
    groups: &HashMap<String, String>,
    params: &PrepareParams,
    tok: &Tokenizer,
) -> anyhow::Result<(BTreeMap<Split, Vec<Window>>, Summary)> {
    let mut by_split: BTreeMap<Split, Vec<Window>> = [Split::Train, Split::Val, Split::Test]
        .into_iter()
        .map(|s| (s, Vec::new()))
        .collect();
    let summary = prepare_each(files, semantic, groups, params, tok, PIECES_PER_ROUND, &mut |split, windows| {
        by_split
            .get_mut(&split)
            .expect("all splits present")
            .extend(windows);
        Ok(())
    })?;
    Ok((by_split, summary))
}

/// Tokenizes and windows the pieces `round` at a time, handing each piece's
/// windows to `emit` in file order. A piece's split is its group's (by
/// path in `groups`; a piece not there is a group of its own).
pub fn prepare_each(
    files: &[(String, PathBuf)],
    semantic: &HashMap<String, u32>,
    groups: &HashMap<String, String>,
    params: &PrepareParams,
    tok: &Tokenizer,
    round: usize,
    emit: &mut dyn FnMut(Split, Vec<Window>) -> anyhow::Result<()>,
) -> anyhow::Result<Summary> {
    let mut summary = Summary {
        vocab_size: tok.vocab.len(),
        context: params.context,
        ..Summary::default()
    };
    let shape = WindowShape {
        prefix_len: Conditioning::default().tokens(&tok.vocab).len(),
        context: params.context,
    };
    for round in files.chunks(round.max(1)) {
        let results: Vec<Result<(Split, Vec<Window>), String>> = round
            .par_iter()
            .map(|(rel, abs)| {
                let group = groups.get(rel).map_or(rel.as_str(), String::as_str);
                piece_windows(rel, abs, group, semantic, params, tok, &shape)
            })
            .collect();
        for r in results {
            match r {
                Ok((split, windows)) => {
                    *summary.pieces.entry(split.name().into()).or_default() += 1;
                    *summary.windows.entry(split.name().into()).or_default() += windows.len();
                    summary.tokens += windows.iter().map(|w| w.tokens.len()).sum::<usize>();
                    emit(split, windows)?;
                }
                Err(e) => summary.skipped.push(e),
            }
        }
    }
    Ok(summary)
}

/// How token sequences are cut: the same for every piece of a run.
struct WindowShape {
    prefix_len: usize,
    context: usize,
}

/// One piece's split and windows (augmented variants included for train).
fn piece_windows(
    rel: &str,
    abs: &Path,
    group: &str,
    semantic: &HashMap<String, u32>,
    params: &PrepareParams,
    tok: &Tokenizer,
    shape: &WindowShape,
) -> Result<(Split, Vec<Window>), String> {
    let bytes = std::fs::read(abs).map_err(|e| format!("{rel}: {e}"))?;
    let score = midi::parse(&bytes).map_err(|e| format!("{rel}: {e}"))?;
    if score.notes.is_empty() {
        return Err(format!("{rel}: no notes"));
    }
    let split = split_of(
        group,
        params.split_seed,
        params.val_fraction,
        params.test_fraction,
    );
    let mut variants = vec![(0i8, 1.0f64, None)];
    if split == Split::Train {
        for &k in params.transpose.iter().filter(|&&k| k != 0) {
            variants.push((k, 1.0, None));
        }
        for &s in params.tempo_scales.iter().filter(|&&s| s != 1.0 && s > 0.0) {
            variants.push((0, s, None));
        }
        for &p in &params.programs {
            variants.push((0, 1.0, Some(p)));
        }
    }
    let mut out = Vec::new();
    for (k, s, program) in variants {
        let variant = match program {
            Some(p) => augment::reassigned(&score, p),
            None => augment::variant(&score, k, s),
        };
        let Some(variant) = variant else {
            continue;
        };
        let f = features(&variant);
        let cond = Conditioning::from_features(
            &f,
            semantic.get(rel).copied(),
            tok.vocab.config.prefix_instruments,
        );
        let ids = tok.encode(&variant, &cond);
        for (i, w) in windows(&tok.vocab, &ids, shape.prefix_len, shape.context)
            .into_iter()
            .enumerate()
        {
            out.push(Window {
                path: rel.to_owned(),
                index: i as u32,
                transpose: k,
                tempo_scale: s as f32,
                program,
                tokens: w,
            });
        }
    }
    Ok((split, out))
}

/// Each piece's source group, by path: its `collection` in the corpus
/// manifest when the manifest names one (an MMA groove file, a music21
/// score, an ABC book), else its artist and title as collect read them
/// (which folds a Lakh song's `.1`, `.2` duplicates together).
pub fn groups(
    pieces: &[crate::collect::table::PieceRow],
    manifest: &HashMap<String, crate::manifest::Labels>,
) -> HashMap<String, String> {
    pieces
        .iter()
        .map(|p| {
            let group = match manifest.get(&p.path).and_then(|l| l.collection.as_deref()) {
                Some(c) => format!("collection {c}"),
                None => format!("title {}/{}", p.artist.as_deref().unwrap_or(""), p.title),
            };
            (p.path.clone(), group)
        })
        .collect()
}

/// The stage: `deps = { pieces = "<collect's midi.parquet>", corpus = "…",
/// tokens = ".../tokens.parquet", manifest = "…" (optional) }`, `outs = { dir = "…" }`. The pieces are
/// those collect kept (its filters and rejects decide what is trained on);
/// their notes are read from the corpus.
pub fn run(ctx: &crate::StageContext) -> anyhow::Result<()> {
    let params: PrepareParams = ctx.params("prepare")?;
    let tok = Tokenizer::new(Config::default());
    if let Some(p) = params.programs.iter().find(|&&p| p > 127) {
        anyhow::bail!("[params] prepare.programs: {p} is not a General MIDI program (0–127)");
    }
    // The prefix, a restated header and some music must fit in a window.
    let least = Conditioning::default().tokens(&tok.vocab).len() + 8;
    anyhow::ensure!(
        params.context >= least,
        "[params] prepare.context is {}; a window needs at least {least} tokens (the prefix and some music)",
        params.context
    );
    let semantic = crate::cluster::tokens::read(&ctx.dep("tokens")?)?;
    let corpus = ctx.dep("corpus")?;
    let manifest = match ctx.optional_dep("manifest")? {
        Some(m) => crate::manifest::read_manifest(&m)?,
        None => HashMap::new(),
    };
    // Only the paths and groups are kept: the rest of collect's table is read a batch at a time.
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut group = HashMap::new();
    crate::collect::table::for_each_piece_batch(&ctx.dep("pieces")?, |pieces| {
        group.extend(groups(&pieces, &manifest));
        for p in pieces {
            // A path from an upstream table is checked like one from a config.
            let inside = Path::new(&p.path)
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
            anyhow::ensure!(inside, "collect's table names `{}`, which is not inside the corpus", p.path);
            let file = corpus.join(&p.path);
            files.push((p.path, file));
        }
        Ok(())
    })?;
    let started = std::time::Instant::now();
    let out = ctx.out("dir")?;
    let mut sinks: BTreeMap<Split, shard::Sink> = [Split::Train, Split::Val, Split::Test]
        .into_iter()
        .map(|split| {
            let path = out.join(format!("{}.parquet", split.name()));
            Ok((split, shard::Sink::create(&path)?))
        })
        .collect::<anyhow::Result<_>>()?;
    let summary = prepare_each(&files, &semantic, &group, &params, &tok, PIECES_PER_ROUND, &mut |split, windows| {
        let sink = sinks.get_mut(&split).expect("all splits present");
        sink.write(&windows)
    })?;
    anyhow::ensure!(
        files.is_empty() || summary.skipped.len() < files.len(),
        "every piece collect kept was skipped (is deps.corpus the corpus collect scanned?); the first: {}",
        summary.skipped.first().map_or("", String::as_str)
    );
    for sink in sinks.into_values() {
        sink.finish()?;
    }
    let write_json = |name: &str, value: serde_json::Value| -> anyhow::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(&value)?;
        bytes.push(b'\n');
        std::fs::write(out.join(name), bytes).with_context(|| format!("writing {name}"))
    };
    write_json(crate::tokenizer::vocab::FILE, serde_json::to_value(tok.vocab.file())?)?;
    write_json("prepare.json", serde_json::to_value(&summary)?)?;
    println!(
        "prepare: {:?} pieces, {:?} windows of {} tokens, {} skipped, in {:.2}s",
        summary.pieces,
        summary.windows,
        params.context,
        summary.skipped.len(),
        started.elapsed().as_secs_f64()
    );
    for s in &summary.skipped {
        println!("  skipped {s}");
    }
    Ok(())
}
