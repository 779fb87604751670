//! evaluate's metrics: muspy's definitions checked against muspy itself on
//! the whole corpus (see `common`), and snapshots of every metric on fixed pairs of
//! real pieces, so a change in how any metric behaves shows in review.

mod common;

use std::collections::HashMap;
use std::path::Path;

use amt_stages::evaluate::{Measured, Request, adherence, compare, quality_level};
use amt_stages::midi::key::Key;
use amt_stages::midi::tempo::Division;
use amt_stages::table::{column, read_parquet};
use amt_stages::tokenizer::Conditioning;
use arrow::array::{Array, Float64Array, StringArray};
use arrow::datatypes::DataType;

/// muspy's columns in the reference, by our metric name.
const MUSPY: [(&str, &str); 10] = [
    ("pitch_range", "muspy_pitch_range"),
    ("n_pitches_used", "muspy_n_pitches_used"),
    ("n_pitch_classes_used", "muspy_n_pitch_classes_used"),
    ("polyphony", "muspy_polyphony"),
    ("polyphony_rate", "muspy_polyphony_rate"),
    ("scale_consistency", "muspy_scale_consistency"),
    ("pitch_entropy", "muspy_pitch_entropy"),
    ("pitch_class_entropy", "muspy_pitch_class_entropy"),
    ("empty_beat_rate", "muspy_empty_beat_rate"),
    ("groove_consistency", "muspy_groove_consistency"),
];

/// path → muspy value per metric (None where the reference has null).
fn muspy_reference() -> HashMap<String, Vec<Option<f64>>> {
    let path = common::reference();
    let mut out = HashMap::new();
    for b in read_parquet(&path).unwrap() {
        let paths = column::<StringArray>(&b, "path", &path).unwrap();
        let status = column::<StringArray>(&b, "muspy_status", &path).unwrap();
        let cols: Vec<Float64Array> = MUSPY
            .iter()
            .map(|(_, c)| {
                let a = b
                    .column_by_name(c)
                    .unwrap_or_else(|| panic!("no column {c}"));
                let a = arrow::compute::cast(a, &DataType::Float64).unwrap();
                a.as_any().downcast_ref::<Float64Array>().unwrap().clone()
            })
            .collect();
        for i in 0..b.num_rows() {
            if status.is_null(i) || status.value(i) != "ok" {
                continue;
            }
            let values = cols
                .iter()
                .map(|c| (!c.is_null(i)).then(|| c.value(i)))
                .collect();
            out.insert(paths.value(i).to_owned(), values);
        }
    }
    out
}

fn agree(ours: f64, theirs: f64) -> bool {
    (ours.is_nan() && theirs.is_nan())
        || (ours - theirs).abs() <= 1e-9 * ours.abs().max(theirs.abs()).max(1.0)
}

#[test]
fn quality_metrics_agree_with_muspy_on_the_corpus() {
    let reference = muspy_reference();
    let corpus = common::corpus();
    let mut agreed = [0usize; 10];
    let mut compared = [0usize; 10];
    for (rel, abs) in amt_stages::collect::find_midi_files(&corpus).unwrap() {
        let Some(theirs) = reference.get(&rel) else {
            continue;
        };
        let Ok(m) = Measured::parse(&std::fs::read(&abs).unwrap(), &rel) else {
            continue;
        };
        if !matches!(m.score.division, Division::Metrical(_)) {
            continue;
        }
        let ours = m.quality(None);
        let values = [
            ours.pitch_range,
            ours.n_pitches_used,
            ours.n_pitch_classes_used,
            ours.polyphony,
            ours.polyphony_rate,
            ours.scale_consistency,
            ours.pitch_entropy,
            ours.pitch_class_entropy,
            ours.empty_beat_rate,
            ours.groove_consistency,
        ];
        for (i, (v, t)) in values.iter().zip(theirs).enumerate() {
            if let Some(t) = t {
                compared[i] += 1;
                agreed[i] += usize::from(agree(*v, *t));
            }
        }
    }
    let mut report = String::new();
    for (i, (name, _)) in MUSPY.iter().enumerate() {
        let share = agreed[i] as f64 / compared[i] as f64;
        report += &format!(
            "{name}: {}/{} ({:.2} %)\n",
            agreed[i],
            compared[i],
            share * 100.0
        );
    }
    println!("{report}");
    for (i, (name, _)) in MUSPY.iter().enumerate() {
        // muspy leaves a value out only where it is undefined; nearly every file counts.
        assert!(
            compared[i] as f64 >= 0.9 * reference.len() as f64,
            "{name}: only {} of {} files compared",
            compared[i],
            reference.len()
        );
        // The misses are files where muspy pairs notes differently (FIFO, and it
        // keeps notes left open at the end of a track; see the reference README).
        assert!(
            agreed[i] as f64 >= 0.97 * compared[i] as f64,
            "{name} agrees on too few files:\n{report}"
        );
    }
}

fn piece(rel: &str) -> Measured {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../data/corpus")
        .join(rel);
    Measured::parse(&std::fs::read(&path).unwrap(), rel).unwrap()
}

const JIG: &str = "folk/Traditional (Ireland)/A Blast of Wind.mid";
const REEL: &str = "folk/Traditional (Ireland)/The Milliner's Daughter.mid";
const CHORALE: &str = "classical/Johann Sebastian Bach/Chorale BWV 1.6.mid";
const ROCK: &str = "mma/MMA 50sRock/50sRock in D major - 136 BPM - I-bVII-IV-I - 12 bars.mid";

/// Every metric of a (reference, generated) pair, rounded for a stable snapshot.
fn all_metrics(reference: &str, generated: &str, request: &Request) -> serde_json::Value {
    let (r, g) = (piece(reference), piece(generated));
    let original = compare(&r.original, &g.original);
    let r6 = |x: f64| {
        if x.is_finite() {
            serde_json::json!((x * 1e6).round() / 1e6)
        } else {
            serde_json::Value::Null
        }
    };
    let q = g.quality(request.key);
    let quality: serde_json::Map<String, serde_json::Value> = amt_stages::evaluate::quality::NAMES
        .iter()
        .zip(q.values())
        .map(|(n, v)| ((*n).to_owned(), r6(v)))
        .collect();
    let o = serde_json::json!({
        "note_density_ratio": r6(original.note_density_ratio),
        "velocity_similarity": r6(original.velocity_similarity),
        "note_range_similarity": r6(original.note_range_similarity),
        "time_signature_match": r6(original.time_signature_match),
        "tempo_similarity": r6(original.tempo_similarity),
        "overall_score": r6(original.overall_score),
        "quality_level": quality_level(original.overall_score),
    });
    serde_json::json!({
        "reference": reference,
        "generated": generated,
        "original": o,
        "quality": quality,
        "adherence": adherence(request, &g.features),
    })
}

fn request(
    bpm: Option<f64>,
    key: Option<&str>,
    ts: Option<(u8, u32)>,
    instruments: &[u8],
) -> Request {
    let c = Conditioning {
        semantic: None,
        tempo_class: None,
        key: key.map(|k| Key::parse(k).expect("a key")),
        time_signature: ts,
        instruments: instruments.to_vec(),
    };
    Request::new(&c, bpm)
}

#[test]
fn metrics_of_a_piece_against_itself() {
    insta::assert_json_snapshot!(all_metrics(
        JIG,
        JIG,
        &request(Some(120.0), Some("D major"), Some((6, 8)), &[0])
    ));
}

#[test]
fn metrics_of_two_irish_tunes() {
    insta::assert_json_snapshot!(all_metrics(
        JIG,
        REEL,
        &request(Some(100.0), Some("G major"), Some((4, 4)), &[5, 0])
    ));
}

#[test]
fn metrics_of_a_chorale_against_a_rock_groove() {
    insta::assert_json_snapshot!(all_metrics(
        CHORALE,
        ROCK,
        &request(Some(136.0), Some("D major"), Some((4, 4)), &[3, 4, 16])
    ));
}
