//! evaluate's outputs: `metrics.json` (sorted keys, six decimals, so its
//! bytes are deterministic), `pieces.parquet`, and `report.md` with piano
//! rolls, metric distributions and the loss curve.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt32Array};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};

use super::quality::NAMES;
use super::stats::{columns, kolmogorov_smirnov, mean_std, quality_distance, wasserstein};
use super::adherence::TRACKED;
use super::heldout::{HeldOut, Kind};
use super::{Adherence, Headline, OriginalScores, PieceReport, TestPiece, quality_level};
use crate::generate::GeneratedFile;
use crate::plot::{RollNote, histograms, piano_roll};
use crate::train::scores::Evaluation;

/// Rounds every number to six decimals; NaN and infinities become null.
fn rounded(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => {
                let r = (f * 1e6).round() / 1e6;
                serde_json::Number::from_f64(if r == 0.0 { 0.0 } else { r })
                    .map_or(Value::Null, Value::Number)
            }
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(rounded).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, rounded(v))).collect()),
        other => other,
    }
}

fn rate(values: impl Iterator<Item = Option<f64>>) -> Value {
    let v: Vec<f64> = values.flatten().filter(|x| x.is_finite()).collect();
    let mean = (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    json!({ "mean": mean, "pieces": v.len() })
}

/// The contents of `metrics.json`.
pub fn metrics(
    pieces: &[PieceReport],
    test: &[TestPiece],
    perplexity: &Evaluation,
    systems: &BTreeMap<String, Headline>,
    heldout: Option<&HeldOut>,
) -> Value {
    let mean = |f: &dyn Fn(&PieceReport) -> f64| {
        pieces.iter().map(f).sum::<f64>() / pieces.len().max(1) as f64
    };
    let mut original = serde_json::Map::new();
    for (i, (name, _)) in OriginalScores::default().named().into_iter().enumerate() {
        original.insert(name.into(), json!(mean(&|p| p.original.named()[i].1)));
    }
    let overall = mean(&|p| p.original.overall_score);
    original.insert("quality_level".into(), json!(quality_level(overall)));
    let (g, t) = (
        columns(pieces.iter().map(|p| &p.quality)),
        columns(test.iter().map(|t| &t.quality)),
    );
    let mut quality = serde_json::Map::new();
    for (i, name) in NAMES.iter().enumerate() {
        let ((gm, _), (tm, ts)) = (mean_std(&g[i]), mean_std(&t[i]));
        quality.insert(
            (*name).to_owned(),
            json!({
                "generated_mean": gm,
                "test_mean": tm,
                "test_std": ts,
                "wasserstein": wasserstein(&g[i], &t[i]),
                "kolmogorov_smirnov": kolmogorov_smirnov(&g[i], &t[i]),
            }),
        );
    }
    let mut adherence = serde_json::Map::new();
    for (i, (name, _)) in Adherence::default().measures().into_iter().enumerate() {
        let values = pieces.iter().map(|p| p.adherence.measures()[i].1);
        adherence.insert(name.into(), rate(values));
    }
    let mut rules: BTreeMap<&str, usize> = BTreeMap::new();
    pieces
        .iter()
        .for_each(|p| *rules.entry(&p.reference_rule).or_default() += 1);
    rounded(json!({
        "pieces": pieces.len(),
        "test_pieces": test.len(),
        "original": original,
        "quality": quality,
        "quality_distance": quality_distance(pieces.iter().map(|p| &p.quality), test.iter().map(|t| &t.quality)),
        "adherence": adherence,
        "perplexity": perplexity,
        "systems": systems,
        "references": rules,
        "heldout": heldout,
    }))
}

/// The metrics the ledger tracks (`amt runs`): the model's headline, and its
/// held-out [`TRACKED`] rates, as trained (`heldout_*`, guidance 1) and
/// strict (`heldout_strict_*`), rounded as in `metrics.json`.
pub fn tracked(model: &Headline, heldout: Option<&HeldOut>) -> Value {
    let mut t = serde_json::to_value(model).expect("a headline serializes");
    let systems = heldout.map_or(&[][..], |h| &h.systems[..]);
    let as_trained = systems.iter().find(|s| s.kind == Kind::Model && s.guidance == Some(1.0));
    let strict = systems.iter().find(|s| s.kind == Kind::Strict);
    if let Some(obj) = t.as_object_mut() {
        for (system, prefix) in [(as_trained, "heldout"), (strict, "heldout_strict")] {
            let Some(system) = system else { continue };
            for (measure, name) in TRACKED {
                let mean = system.scores.get(measure).and_then(|s| s.as_ref()).map(|i| i.mean);
                obj.insert(format!("{prefix}_{name}"), json!(mean));
            }
        }
    }
    rounded(t)
}

/// Pretty JSON with a trailing newline.
pub fn to_json_bytes(v: &Value) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("a JSON value serializes");
    b.push(b'\n');
    b
}

/// `pieces.parquet`: one row per generated piece with every metric.
pub fn write_pieces(path: &Path, pieces: &[PieceReport]) -> anyhow::Result<()> {
    let text = |f: &dyn Fn(&PieceReport) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(pieces.iter().map(f)))
    };
    let num = |f: &dyn Fn(&PieceReport) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(pieces.iter().map(f)))
    };
    let mut columns: Vec<(String, ArrayRef)> = vec![
        ("file".into(), text(&|p| &p.file)),
        ("prompt".into(), text(&|p| &p.prompt)),
        (
            "semantic".into(),
            Arc::new(UInt32Array::from_iter(pieces.iter().map(|p| p.semantic))),
        ),
        ("reference".into(), text(&|p| &p.reference)),
        ("reference_rule".into(), text(&|p| &p.reference_rule)),
    ];
    for (i, (name, _)) in OriginalScores::default().named().into_iter().enumerate() {
        columns.push((name.into(), num(&|p| Some(p.original.named()[i].1))));
    }
    for (i, name) in NAMES.iter().enumerate() {
        columns.push((
            format!("quality_{name}"),
            num(&|p| Some(p.quality.values()[i])),
        ));
    }
    // What was asked, beside how the piece compares with its reference: a
    // measure named like an original score (`time_signature_match`) ends in
    // `_requested`.
    for (i, (name, _)) in Adherence::default().measures().into_iter().enumerate() {
        let taken = columns.iter().any(|(c, _)| c == name);
        let column = if taken { format!("{name}_requested") } else { name.to_owned() };
        columns.push((column, num(&|p| p.adherence.measures()[i].1)));
    }
    crate::table::write_parquet(path, RecordBatch::try_from_iter(columns)?)
}

/// A rate in JSON as a percentage with one decimal ("n/a" when absent).
pub(super) fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "n/a".into(), |x| format!("{:.1} %", x * 100.0))
}

fn num(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "n/a".into(), |x| format!("{x:.3}"))
}

/// Writes `report.md` and its images into `out`.
pub fn write_markdown(
    out: &Path,
    generated_dir: &Path,
    generations: &[(String, Vec<u8>, GeneratedFile)],
    pieces: &[PieceReport],
    test: &[TestPiece],
    metrics: &Value,
) -> anyhow::Result<()> {
    let mut md = String::new();
    let o = &metrics["original"];
    let _ = writeln!(md, "# amt evaluation\n");
    let _ = writeln!(
        md,
        "{} generated pieces, each compared with a reference from the test split ({} pieces). Overall score **{}**: quality level **{}**.\n",
        pieces.len(),
        test.len(),
        num(&o["overall_score"]),
        o["quality_level"].as_str().unwrap_or("?")
    );
    let _ = writeln!(md, "## Against the baselines\n");
    let _ = writeln!(
        md,
        "The same prompts, seeds and lengths, sampled from an untrained model of the same shape and as uniformly random tokens.\n"
    );
    let _ = writeln!(
        md,
        "| system | overall score ↑ | tempo bin ↑ | key ↑ | attributes satisfied ↑ | quality distance ↓ | test perplexity ↓ |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    if let Some(systems) = metrics["systems"].as_object() {
        for (name, s) in systems {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} |",
                num(&s["overall_score"]),
                pct(&s["tempo_bin_match"]),
                pct(&s["key_match"]),
                pct(&s["attributes_satisfied"]),
                num(&s["quality_distance"]),
                num(&s["test_perplexity"])
            );
        }
    }
    let _ = writeln!(
        md,
        "\nQuality distance: the mean over the quality metrics of the Kolmogorov–Smirnov statistic between the generated and the test-split distributions (0: the same, 1: disjoint).\n"
    );

    let _ = writeln!(md, "## The original system's metrics\n");
    let _ = writeln!(md, "| metric | weight | mean |\n|---|---:|---:|");
    for (name, w) in [
        "note_density_ratio",
        "velocity_similarity",
        "note_range_similarity",
        "time_signature_match",
        "tempo_similarity",
    ]
    .iter()
    .zip(super::original::WEIGHTS)
    {
        let _ = writeln!(md, "| {name} | {w:.2} | {} |", num(&o[name]));
    }
    let _ = writeln!(
        md,
        "| **overall_score** | | **{}** |\n",
        num(&o["overall_score"])
    );
    let _ = writeln!(
        md,
        "Levels: Excellent > 0.8, Good 0.6–0.8, Acceptable 0.4–0.6, Poor < 0.4.\n"
    );

    let _ = writeln!(md, "## Text adherence\n");
    let _ = writeln!(
        md,
        "Scored only where the prompt asked (n = pieces whose prompt named the attribute). text2midi reports TB 39.7 %, TBT 65.8 %, CK 33.6 % on MidiCaps.\n"
    );
    let _ = writeln!(md, "| measure | value | n |\n|---|---:|---:|");
    if let Some(a) = metrics["adherence"].as_object() {
        for (name, v) in a {
            let _ = writeln!(md, "| {name} | {} | {} |", pct(&v["mean"]), v["pieces"]);
        }
    }

    super::heldout::write_section(&mut md, out, &metrics["heldout"])?;

    let _ = writeln!(md, "\n## Held-out perplexity (test split)\n");
    let p = &metrics["perplexity"];
    let _ = writeln!(
        md,
        "Overall **{}** over {} tokens.\n",
        num(&p["overall"]["perplexity"]),
        p["overall"]["tokens"]
    );
    let _ = writeln!(md, "| token type | tokens | perplexity |\n|---|---:|---:|");
    if let Some(by) = p["by_type"].as_object() {
        for (kind, v) in by {
            let _ = writeln!(
                md,
                "| {kind} | {} | {} |",
                v["tokens"],
                num(&v["perplexity"])
            );
        }
    }

    let _ = writeln!(md, "\n## Music quality (muspy's definitions)\n");
    let _ = writeln!(
        md,
        "| metric | generated mean | test mean | Wasserstein | Kolmogorov–Smirnov |\n|---|---:|---:|---:|---:|"
    );
    if let Some(q) = metrics["quality"].as_object() {
        for (name, v) in q {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} |",
                num(&v["generated_mean"]),
                num(&v["test_mean"]),
                num(&v["wasserstein"]),
                num(&v["kolmogorov_smirnov"])
            );
        }
    }
    let (g, t) = (
        columns(pieces.iter().map(|p| &p.quality)),
        columns(test.iter().map(|t| &t.quality)),
    );
    let _ = writeln!(md);
    for name in [
        "pitch_class_entropy",
        "polyphony",
        "scale_consistency",
        "groove_consistency",
    ] {
        let i = NAMES
            .iter()
            .position(|n| *n == name)
            .expect("a quality metric");
        let file = format!("dist-{name}.png");
        histograms(
            &out.join(&file),
            name,
            name,
            &[("generated", &g[i]), ("test split", &t[i])],
            12,
        )?;
        let _ = writeln!(md, "![{name}]({file})");
    }
    if out.join("loss.png").exists() {
        let _ = writeln!(md, "\n## Training\n\n![loss curve](loss.png)");
    }

    let _ = writeln!(md, "\n## The pieces\n");
    let rolls = out.join("rolls");
    std::fs::create_dir_all(&rolls)?;
    let midi_dir = crate::context::relative_path(out, generated_dir);
    for ((file, bytes, _), p) in generations.iter().zip(pieces) {
        let score = crate::midi::parse(bytes)?;
        let notes: Vec<RollNote> = score
            .notes
            .iter()
            .map(|n| RollNote {
                start: score.tempo.seconds(n.start),
                end: score.tempo.seconds(n.end),
                pitch: n.pitch,
                track: if n.is_drum() {
                    3
                } else {
                    usize::from(n.program / 8)
                },
            })
            .collect();
        let png = format!("rolls/{}.png", file.trim_end_matches(".mid"));
        piano_roll(&out.join(&png), &p.prompt, &notes)?;
        let _ = writeln!(
            md,
            "### {file}\n\n> {}\n\n[MIDI]({}) · reference `{}` ({}) · overall {:.3} · attributes satisfied {}\n\n![piano roll]({png})\n",
            p.prompt,
            midi_dir.join(file).display(),
            p.reference,
            p.reference_rule,
            p.original.overall_score,
            p.adherence
                .attributes_satisfied
                .map_or("n/a".into(), |v| format!("{:.0} %", v * 100.0)),
        );
    }
    crate::atomic::write(&out.join("report.md"), md.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_tracks_the_free_and_the_strict_held_out_rates() {
        use super::super::heldout::System;
        use super::super::stats::Interval;
        let system = |name: &str, kind, guidance, tb: f64| System {
            system: name.into(),
            kind,
            guidance,
            scores: [("tempo_bin_match", tb), ("key_match", 0.2), ("time_signature_match", 0.9), ("instrument_f1", 0.5)]
                .into_iter()
                .map(|(m, mean)| (m.to_string(), Some(Interval { mean, low: 0.0, high: 1.0, n: 9 })))
                .chain([("attributes_satisfied".to_string(), None)])
                .collect(),
        };
        let mut strict = system("model, strict, guidance 2", Kind::Strict, Some(2.0), 1.0);
        // No prompt asked for an instrument: no interval, so a null rate.
        strict.scores.insert("instrument_f1".into(), None);
        let heldout = HeldOut {
            prompts: 9,
            pieces: 3,
            tokens: 16,
            systems: vec![
                system("model, guidance 2", Kind::Model, Some(2.0), 0.45),
                system("model", Kind::Model, Some(1.0), 0.37),
                strict,
                system("untrained model", Kind::Untrained, Some(1.0), 0.1),
            ],
        };
        let model = Headline {
            overall_score: 0.7,
            test_perplexity: 12.345_678_9,
            ..Headline::default()
        };
        let t = tracked(&model, Some(&heldout));
        assert_eq!(t["overall_score"], 0.7);
        assert_eq!(t["test_perplexity"], 12.345679, "rounded as in metrics.json");
        assert_eq!(t["heldout_tempo_bin"], 0.37, "the model as trained, not guided");
        assert_eq!(t["heldout_key"], 0.2);
        assert_eq!(t["heldout_meter"], 0.9);
        assert_eq!(t["heldout_instrument_f1"], 0.5);
        assert_eq!(t["heldout_strict_tempo_bin"], 1.0);
        assert_eq!(t["heldout_strict_key"], 0.2);
        assert_eq!(
            t.get("heldout_strict_instrument_f1"),
            Some(&Value::Null),
            "a rate no prompt asked for is written, as null"
        );
        let without = tracked(&model, None);
        assert!(
            without.as_object().unwrap().keys().all(|k| !k.starts_with("heldout")),
            "no held-out captions, no held-out rates: {without}"
        );
    }

    #[test]
    fn every_tracked_measure_is_a_measure() {
        let names = Adherence::default().measures().map(|(name, _)| name);
        for (measure, _) in TRACKED {
            assert!(names.contains(&measure), "{measure} is not among {names:?}");
        }
    }
}
