//! The collect stage: walk a folder of MIDI files, parse them in parallel, and
//! write one metadata row per good file and one reject row per bad one.

pub mod table;
pub mod title;

pub use table::{Piece, Reject};

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Deserialize;

use crate::midi;
use crate::table::TableSink;

/// `[params] collect.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Files larger than this many MiB are rejected without being parsed.
    #[serde(default = "default_max_file_mib")]
    pub max_file_mib: f64,
}

fn default_max_file_mib() -> f64 {
    64.0
}

impl Default for Params {
    fn default() -> Self {
        Self {
            max_file_mib: default_max_file_mib(),
        }
    }
}

/// What a scan found, both sorted by path.
#[derive(Debug, Default)]
pub struct Collected {
    pub pieces: Vec<Piece>,
    pub rejects: Vec<Reject>,
}

/// MIDI files under `root` (`.mid`/`.midi` in any case), sorted by relative path.
pub fn find_midi_files(root: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(true) {
        let entry = entry.map_err(std::io::Error::other)?;
        if !entry.file_type().is_file() {
            continue;
        }
        let is_midi = entry
            .path()
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("mid") || e.eq_ignore_ascii_case("midi"));
        if is_midi {
            let rel = entry
                .path()
                .strip_prefix(root)
                .map_err(std::io::Error::other)?;
            let rel = rel
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            files.push((rel, entry.into_path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Reads and analyses one file.
pub fn analyze_file(rel: &str, abs: &Path, max_bytes: u64) -> Result<Piece, Reject> {
    let reject = |file_bytes, kind: &str, reason: String| Reject {
        path: rel.to_owned(),
        file_bytes,
        kind: kind.to_owned(),
        reason,
    };
    let len = std::fs::metadata(abs)
        .map_err(|e| reject(0, "unreadable", e.to_string()))?
        .len();
    if len > max_bytes {
        return Err(reject(
            len,
            "oversize",
            format!("{len} bytes is over the limit of {max_bytes}"),
        ));
    }
    let bytes = std::fs::read(abs).map_err(|e| reject(len, "unreadable", e.to_string()))?;
    let score = midi::parse(&bytes).map_err(|e| reject(len, e.kind(), e.to_string()))?;
    if score.notes.is_empty() {
        let open = score.pairing.unclosed_note_ons;
        let why = if open > 0 {
            format!("no complete notes ({open} note-ons never released)")
        } else {
            "no notes".to_owned()
        };
        return Err(reject(len, "no-notes", why));
    }
    let file_name = rel.rsplit('/').next().unwrap_or(rel);
    Ok(Piece {
        path: rel.to_owned(),
        digest: blake3::hash(&bytes).to_hex().to_string(),
        artist: title::artist(rel),
        title: title::clean_title(file_name),
        file_bytes: len,
        features: midi::features(&score),
        warnings: score.leniencies.iter().map(ToString::to_string).collect(),
    })
}

/// Files analysed per parallel round: bounds the pieces held at once.
const FILES_PER_ROUND: usize = 4096;

/// Scans a corpus in parallel.
pub fn scan(root: &Path, params: &Params) -> std::io::Result<Collected> {
    let mut collected = Collected::default();
    scan_each(root, params, FILES_PER_ROUND, &|_, _| {}, &mut |pieces, rejects| {
        collected.pieces.extend(pieces);
        collected.rejects.extend(rejects);
        Ok(())
    })
    .map_err(std::io::Error::other)?;
    Ok(collected)
}

/// Scans a corpus `round` files at a time, handing each round's pieces and
/// rejects (in path order) to `emit`, and telling `on_file` how many files of
/// how many are done.
pub fn scan_each(
    root: &Path,
    params: &Params,
    round: usize,
    on_file: &(dyn Fn(u64, u64) + Sync),
    emit: &mut dyn FnMut(Vec<Piece>, Vec<Reject>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let max_bytes = (params.max_file_mib * 1024.0 * 1024.0) as u64;
    let files = find_midi_files(root)?;
    let done = std::sync::atomic::AtomicU64::new(0);
    for round in files.chunks(round.max(1)) {
        let results: Vec<Result<Piece, Reject>> = round
            .par_iter()
            .map(|(rel, abs)| {
                let r = analyze_file(rel, abs, max_bytes);
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                on_file(n, files.len() as u64);
                r
            })
            .collect();
        let (mut pieces, mut rejects) = (Vec::new(), Vec::new());
        for r in results {
            match r {
                Ok(p) => pieces.push(p),
                Err(r) => rejects.push(r),
            }
        }
        emit(pieces, rejects)?;
    }
    Ok(())
}

/// The stage: scans `deps.corpus` and writes `midi.parquet` and `rejects.parquet` into `outs.dir`.
pub fn run(ctx: &crate::StageContext) -> anyhow::Result<()> {
    use anyhow::Context;
    let params: Params = ctx.params("collect")?;
    let corpus = ctx.dep("corpus")?;
    let out = ctx.out("dir")?;
    let started = Instant::now();
    let meter = std::sync::Mutex::new(ctx.meter("files", None));
    let report = |done: u64, total: u64| {
        let mut m = meter.lock().unwrap_or_else(|e| e.into_inner());
        m.set_total(total);
        m.update(done, String::new);
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // Pieces go to the table as they come (memory stays flat), encoded on a
    // thread of their own while the next round is parsed; rejects are few and kept.
    let (to_writer, batches) = std::sync::mpsc::sync_channel::<Vec<Piece>>(1);
    let table_path = out.join("midi.parquet");
    let writer = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut sink = TableSink::create(&table_path, table::pieces_batch(&[])?.schema())?;
        for pieces in batches {
            sink.write(&table::pieces_batch(&pieces)?)?;
        }
        sink.finish()
    });
    let (mut n_pieces, mut lenient, mut rejects) = (0usize, 0usize, Vec::new());
    let scanned = scan_each(&corpus, &params, FILES_PER_ROUND, &report, &mut |pieces, more_rejects| {
        n_pieces += pieces.len();
        lenient += pieces.iter().filter(|p| !p.warnings.is_empty()).count();
        rejects.extend(more_rejects);
        to_writer
            .send(pieces)
            .map_err(|_| anyhow::anyhow!("the midi.parquet writer stopped"))
    });
    drop(to_writer);
    // The writer's own error explains a stopped writer better than the scan's.
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the midi.parquet writer panicked"))??;
    scanned.with_context(|| format!("scanning {}", corpus.display()))?;
    table::write_rejects(&out.join("rejects.parquet"), &rejects)?;
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in &rejects {
        *kinds.entry(r.kind.as_str()).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "collect: {} pieces ({lenient} read leniently), {} rejected{} in {:.2}s",
        n_pieces,
        rejects.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({})", kinds.join(", "))
        },
        started.elapsed().as_secs_f64()
    );
    for r in &rejects {
        println!("  rejected {}: {}", r.path, r.reason);
    }
    Ok(())
}
