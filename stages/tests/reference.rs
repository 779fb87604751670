//! collect's features against the reference features (see `common`), which
//! pretty_midi, mido and muspy computed on the same files: the repository's
//! 320, or with `scripts/parity.sh` the shared corpus's 3,913.
//!
//! It requires ≥ 99 % agreement on note counts, durations, tempi, and time and
//! key signatures; on both corpora every field below agrees on 100 %.
//! Each field is compared with the library whose definition we follow:
//! - note counts: the original AMT pairing (LIFO per track and pitch, which
//!   symusic shares), so `amt_n_paired_notes`. pretty_midi differs from it on
//!   113 files by design: it closes every open note on a note-off and drops
//!   zero-length notes.
//! - duration: mido's `length` (to the last event, tempo from any track). It is
//!   longer than pretty_midi's end time by the End-of-Track delta.
//! - first tempo: pretty_midi stores tempo as a tick scale, so its BPM carries
//!   float noise (143.999885 for 144); hence a 1e-5 relative tolerance.
//! - key names: pretty_midi's spelling (`Gb Major`, `C# minor`).
//! - pitch range: non-drum notes, as pretty_midi. On files whose notes stay open
//!   at the end of a track, muspy (which keeps them) would differ; we drop them.

mod common;

use std::collections::HashMap;
use std::path::Path;

use amt_stages::collect::{self, Params};
use amt_stages::table::{column, list_of_strings, read_parquet};
use arrow::array::{
    Array, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
};

struct Reference {
    amt_notes: i64,
    amt_length: f64,
    pm_first_tempo: f64,
    amt_n_set_tempo: i64,
    amt_time_signatures: Vec<String>,
    pm_key_signatures: Vec<String>,
    amt_velocity_mean: Option<f64>,
    pm_pitch: Option<(i64, i64)>,
    pm_programs: Vec<i64>,
    pm_has_drums: bool,
}

fn reference(path: &Path) -> HashMap<String, Reference> {
    let mut out = HashMap::new();
    for b in read_parquet(path).unwrap() {
        let i64c = |n| column::<Int64Array>(&b, n, path).unwrap();
        let f64c = |n| column::<Float64Array>(&b, n, path).unwrap();
        let paths = column::<StringArray>(&b, "path", path).unwrap();
        let ts = list_of_strings(&b, "amt_time_signatures", path).unwrap();
        let ks = list_of_strings(&b, "pm_key_signatures", path).unwrap();
        let programs = column::<ListArray>(&b, "pm_programs", path).unwrap();
        let drums = column::<BooleanArray>(&b, "pm_has_drums", path).unwrap();
        let (notes, set_tempo, pmin, pmax) = (
            i64c("amt_n_paired_notes"),
            i64c("amt_n_set_tempo"),
            i64c("pm_pitch_min"),
            i64c("pm_pitch_max"),
        );
        let (length, first, vel) = (
            f64c("amt_length_s"),
            f64c("pm_first_tempo_bpm"),
            f64c("amt_velocity_mean"),
        );
        for i in 0..b.num_rows() {
            let progs = programs.value(i);
            out.insert(
                paths.value(i).to_owned(),
                Reference {
                    amt_notes: notes.value(i),
                    amt_length: length.value(i),
                    pm_first_tempo: first.value(i),
                    amt_n_set_tempo: set_tempo.value(i),
                    amt_time_signatures: ts[i].clone(),
                    pm_key_signatures: ks[i].clone(),
                    amt_velocity_mean: (!vel.is_null(i)).then(|| vel.value(i)),
                    pm_pitch: (!pmin.is_null(i)).then(|| (pmin.value(i), pmax.value(i))),
                    pm_programs: progs
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec(),
                    pm_has_drums: drums.value(i),
                },
            );
        }
    }
    out
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn features_agree_with_pretty_midi_mido_and_muspy() {
    let reference = reference(&common::reference());
    let collected = collect::scan(&common::corpus(), &Params::default()).unwrap();
    assert_eq!(collected.rejects, vec![], "every file of the corpus parses");
    assert_eq!(collected.pieces.len(), reference.len());

    let mut agree: Vec<(&str, f64, usize, Vec<String>)> = Vec::new();
    let mut check =
        |name: &'static str, required: f64, same: &dyn Fn(&collect::Piece, &Reference) -> bool| {
            let mut misses = Vec::new();
            for p in &collected.pieces {
                if !same(p, &reference[&p.path]) {
                    misses.push(p.path.clone());
                }
            }
            let share = 1.0 - misses.len() as f64 / collected.pieces.len() as f64;
            agree.push((
                name,
                share,
                misses.len(),
                misses.iter().take(3).cloned().collect(),
            ));
            assert!(
                share >= required,
                "{name}: {:.2} % agree, {} differ, e.g. {:?}",
                share * 100.0,
                misses.len(),
                &misses[..misses.len().min(5)]
            );
        };
    check("note count", 0.99, &|p, r| {
        i64::from(p.features.n_notes) == r.amt_notes
    });
    check("duration", 0.99, &|p, r| {
        close(p.features.duration_s, r.amt_length, 1e-9)
    });
    check("first tempo", 0.99, &|p, r| {
        close(p.features.first_tempo_bpm, r.pm_first_tempo, 1e-5)
    });
    check("tempo events", 0.99, &|p, r| {
        i64::from(p.features.n_tempo_changes) == r.amt_n_set_tempo
    });
    check("time signatures", 0.99, &|p, r| {
        p.features.time_signatures == r.amt_time_signatures
    });
    check("key signatures", 0.99, &|p, r| {
        p.features.key_signatures == r.pm_key_signatures
    });
    check(
        "velocity mean",
        0.99,
        &|p, r| match (p.features.velocity, r.amt_velocity_mean) {
            (Some((m, _)), Some(rm)) => close(m, rm, 1e-9),
            (None, None) => true,
            _ => false,
        },
    );
    check("pitch range", 0.99, &|p, r| {
        p.features
            .pitch_range
            .map(|(a, b)| (i64::from(a), i64::from(b)))
            == r.pm_pitch
    });
    check("programs", 0.99, &|p, r| {
        p.features
            .programs
            .iter()
            .map(|&x| i64::from(x))
            .collect::<Vec<_>>()
            == r.pm_programs
    });
    check("drums", 0.99, &|p, r| {
        p.features.has_drums == r.pm_has_drums
    });

    for (name, share, n, examples) in &agree {
        eprintln!(
            "{name:>16}: {:6.2} % agree ({n} differ) {examples:?}",
            share * 100.0
        );
    }
}
