//! `midi.parquet` and `rejects.parquet`: the collect stage's tables, their
//! rows ([`Piece`], [`Reject`]) and one schema for writing them and reading
//! them back (describe and prepare read `midi.parquet` as [`PieceRow`]s).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, ListBuilder, StringArray, StringBuilder,
    UInt8Array, UInt8Builder, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::record_batch::RecordBatch;

use crate::midi::Features;
use crate::table::write_parquet;

/// One parsed file.
#[derive(Clone, Debug)]
pub struct Piece {
    /// Path relative to the corpus root, `/`-separated.
    pub path: String,
    /// blake3 of the file's bytes, in hex.
    pub digest: String,
    /// The folder name, if the file is not at the root.
    pub artist: Option<String>,
    /// The cleaned file name.
    pub title: String,
    /// Size in bytes.
    pub file_bytes: u64,
    /// The musical features.
    pub features: Features,
    /// What the reader let pass (see [`crate::midi::Leniency`]), one line each.
    pub warnings: Vec<String>,
}

/// A file that was not used, and exactly why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Path relative to the corpus root.
    pub path: String,
    /// Size in bytes (0 if unknown).
    pub file_bytes: u64,
    /// `unreadable`, `oversize`, `not-midi`, `truncated`, `corrupt` or `no-notes`.
    pub kind: String,
    /// A precise human-readable reason.
    pub reason: String,
}

fn strings<'a>(values: impl Iterator<Item = &'a Vec<String>>) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for list in values {
        for v in list {
            b.values().append_value(v);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

/// Writes one row per piece.
pub fn write_pieces(path: &Path, pieces: &[Piece]) -> anyhow::Result<()> {
    write_parquet(path, pieces_batch(pieces)?)
}

/// One row per piece, as `midi.parquet` holds them.
pub fn pieces_batch(pieces: &[Piece]) -> anyhow::Result<RecordBatch> {
    let feats: Vec<&crate::midi::Features> = pieces.iter().map(|p| &p.features).collect();
    let mut programs = ListBuilder::new(UInt8Builder::new());
    for x in &feats {
        programs.values().append_slice(&x.programs);
        programs.append(true);
    }
    let instruments: Vec<Vec<String>> = feats
        .iter()
        .map(|x| {
            x.instrument_names()
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "path",
            Arc::new(StringArray::from_iter_values(
                pieces.iter().map(|p| &p.path),
            )),
        ),
        (
            "digest",
            Arc::new(StringArray::from_iter_values(
                pieces.iter().map(|p| &p.digest),
            )),
        ),
        (
            "artist",
            Arc::new(StringArray::from(
                pieces.iter().map(|p| p.artist.clone()).collect::<Vec<_>>(),
            )),
        ),
        (
            "title",
            Arc::new(StringArray::from_iter_values(
                pieces.iter().map(|p| &p.title),
            )),
        ),
        (
            "file_bytes",
            Arc::new(UInt64Array::from_iter_values(
                pieces.iter().map(|p| p.file_bytes),
            )),
        ),
        (
            "format",
            Arc::new(UInt8Array::from_iter_values(feats.iter().map(|x| x.format))),
        ),
        (
            "ticks_per_beat",
            Arc::new(UInt16Array::from(
                feats.iter().map(|x| x.ticks_per_beat).collect::<Vec<_>>(),
            )),
        ),
        (
            "n_tracks",
            Arc::new(UInt32Array::from_iter_values(
                feats.iter().map(|x| x.n_tracks),
            )),
        ),
        (
            "duration_s",
            Arc::new(Float64Array::from_iter_values(
                feats.iter().map(|x| x.duration_s),
            )),
        ),
        (
            "first_tempo_bpm",
            Arc::new(Float64Array::from_iter_values(
                feats.iter().map(|x| x.first_tempo_bpm),
            )),
        ),
        (
            "mean_tempo_bpm",
            Arc::new(Float64Array::from_iter_values(
                feats.iter().map(|x| x.mean_tempo_bpm),
            )),
        ),
        (
            "n_tempo_changes",
            Arc::new(UInt32Array::from_iter_values(
                feats.iter().map(|x| x.n_tempo_changes),
            )),
        ),
        (
            "time_signatures",
            strings(feats.iter().map(|x| &x.time_signatures)),
        ),
        (
            "key_signatures",
            strings(feats.iter().map(|x| &x.key_signatures)),
        ),
        ("programs", Arc::new(programs.finish())),
        ("instruments", strings(instruments.iter())),
        ("warnings", strings(pieces.iter().map(|p| &p.warnings))),
        (
            "has_drums",
            Arc::new(BooleanArray::from(
                feats.iter().map(|x| x.has_drums).collect::<Vec<_>>(),
            )),
        ),
        (
            "n_notes",
            Arc::new(UInt32Array::from_iter_values(
                feats.iter().map(|x| x.n_notes),
            )),
        ),
        (
            "pitch_min",
            Arc::new(UInt8Array::from(
                feats
                    .iter()
                    .map(|x| x.pitch_range.map(|r| r.0))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "pitch_max",
            Arc::new(UInt8Array::from(
                feats
                    .iter()
                    .map(|x| x.pitch_range.map(|r| r.1))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "velocity_mean",
            Arc::new(Float64Array::from(
                feats
                    .iter()
                    .map(|x| x.velocity.map(|v| v.0))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "velocity_std",
            Arc::new(Float64Array::from(
                feats
                    .iter()
                    .map(|x| x.velocity.map(|v| v.1))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "note_density",
            Arc::new(Float64Array::from(
                feats.iter().map(|x| x.note_density).collect::<Vec<_>>(),
            )),
        ),
        (
            "drum_seconds",
            Arc::new(Float64Array::from_iter_values(
                feats.iter().map(|x| x.drum_seconds),
            )),
        ),
        (
            "estimated_key",
            Arc::new(StringArray::from(
                feats
                    .iter()
                    .map(|x| x.estimated_key.map(|k| k.0.name()))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "key_correlation",
            Arc::new(Float64Array::from(
                feats
                    .iter()
                    .map(|x| x.estimated_key.map(|k| k.1))
                    .collect::<Vec<_>>(),
            )),
        ),
        (
            "unmatched_note_offs",
            Arc::new(UInt32Array::from_iter_values(
                feats.iter().map(|x| x.pairing.unmatched_note_offs),
            )),
        ),
        (
            "unclosed_note_ons",
            Arc::new(UInt32Array::from_iter_values(
                feats.iter().map(|x| x.pairing.unclosed_note_ons),
            )),
        ),
        (
            "zero_length_notes",
            Arc::new(UInt32Array::from_iter_values(
                feats.iter().map(|x| x.pairing.zero_length_notes),
            )),
        ),
    ];
    // Every column is declared nullable, whatever this batch holds, so that
    // the batches of one table share a schema.
    Ok(RecordBatch::try_from_iter_with_nullable(
        columns.into_iter().map(|(name, array)| (name, array, true)),
    )?)
}

/// Writes one row per rejected file.
pub fn write_rejects(path: &Path, rejects: &[Reject]) -> anyhow::Result<()> {
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "path",
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| &r.path),
            )),
        ),
        (
            "file_bytes",
            Arc::new(UInt64Array::from_iter_values(
                rejects.iter().map(|r| r.file_bytes),
            )),
        ),
        (
            "kind",
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| &r.kind),
            )),
        ),
        (
            "reason",
            Arc::new(StringArray::from_iter_values(
                rejects.iter().map(|r| &r.reason),
            )),
        ),
    ];
    write_parquet(path, RecordBatch::try_from_iter(columns)?)
}

/// A read-back row of `midi.parquet`, with the fields later stages use.
#[derive(Clone, Debug, PartialEq)]
pub struct PieceRow {
    pub path: String,
    pub artist: Option<String>,
    pub title: String,
    pub duration_s: f64,
    pub first_tempo_bpm: f64,
    pub mean_tempo_bpm: f64,
    pub time_signatures: Vec<String>,
    pub key_signatures: Vec<String>,
    pub instruments: Vec<String>,
    pub has_drums: bool,
    pub n_notes: u32,
    pub velocity_mean: Option<f64>,
    pub note_density: Option<f64>,
    pub estimated_key: Option<String>,
}

/// Reads `midi.parquet`.
pub fn read_pieces(path: &Path) -> anyhow::Result<Vec<PieceRow>> {
    let mut rows = Vec::new();
    for_each_piece_batch(path, |batch| {
        rows.extend(batch);
        Ok(())
    })?;
    Ok(rows)
}

/// Hands the rows of `midi.parquet` to `f` a record batch at a time, so that
/// a reader that keeps less than the table holds less than the table.
pub fn for_each_piece_batch(
    path: &Path,
    mut f: impl FnMut(Vec<PieceRow>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use crate::table::{column, for_each_batch, list_of_strings};
    for_each_batch(path, |batch| {
        let s = |name| column::<StringArray>(&batch, name, path);
        let f64s = |name| column::<Float64Array>(&batch, name, path);
        let (paths, artists, titles) = (s("path")?, s("artist")?, s("title")?);
        let (dur, first, mean, vel, dens) = (
            f64s("duration_s")?,
            f64s("first_tempo_bpm")?,
            f64s("mean_tempo_bpm")?,
            f64s("velocity_mean")?,
            f64s("note_density")?,
        );
        let keys = s("estimated_key")?;
        let drums = column::<BooleanArray>(&batch, "has_drums", path)?;
        let notes = column::<UInt32Array>(&batch, "n_notes", path)?;
        let mut ts = list_of_strings(&batch, "time_signatures", path)?;
        let mut ks = list_of_strings(&batch, "key_signatures", path)?;
        let mut inst = list_of_strings(&batch, "instruments", path)?;
        let opt = |a: &Float64Array, i| (!a.is_null(i)).then(|| a.value(i));
        let opt_s = |a: &StringArray, i| (!a.is_null(i)).then(|| a.value(i).to_owned());
        let rows = (0..batch.num_rows())
            .map(|i| PieceRow {
                path: paths.value(i).to_owned(),
                artist: opt_s(artists, i),
                title: titles.value(i).to_owned(),
                duration_s: dur.value(i),
                first_tempo_bpm: first.value(i),
                mean_tempo_bpm: mean.value(i),
                time_signatures: std::mem::take(&mut ts[i]),
                key_signatures: std::mem::take(&mut ks[i]),
                instruments: std::mem::take(&mut inst[i]),
                has_drums: drums.value(i),
                n_notes: notes.value(i),
                velocity_mean: opt(vel, i),
                note_density: opt(dens, i),
                estimated_key: opt_s(keys, i),
            })
            .collect();
        f(rows)
    })
}
