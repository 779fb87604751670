//! Held-out adherence. The prompts are describe's held-out captions of the
//! test split's pieces: MidiCaps-style, none of them a text the model trained
//! with, of pieces it never trained on. Each prompt is sampled by the model
//! as trained, with classifier-free guidance at each scale of
//! `evaluate.guidance`, in strict mode (at the default guidance, as
//! `amt generate --strict`), by the untrained model and as random tokens,
//! with the same seed. The captioned pieces are scored against their
//! own captions too: the most any system can reach where a caption and the
//! measures disagree. Every rate comes with a 95 % bootstrap interval over prompts.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use serde_json::Value;
use tch::Device;

use super::adherence::{Adherence, Request, adherence};
use super::report::pct;
use super::{EvaluateParams, TestPiece};
use crate::describe::heldout::{HeldOutCaption, read_heldout};
use crate::generate::{Generator, SampleOptions, prompt};
use crate::midi::{self, Features};
use crate::plot::lines;

/// Bootstrap resamples per interval.
const RESAMPLES: usize = 2000;

/// A mean over prompts with its 95 % percentile-bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
    /// Prompts that asked for the attribute.
    pub n: usize,
}

/// The mean of `values` (each with its group: the piece a caption
/// describes) and its 95 % bootstrap interval. Groups are resampled whole,
/// since one piece's captions are not independent of each other. Seeded,
/// so reruns agree.
pub fn bootstrap(values: &[(usize, f64)], seed: u64) -> Option<Interval> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mut groups: std::collections::BTreeMap<usize, (f64, usize)> = Default::default();
    for &(g, v) in values {
        let e = groups.entry(g).or_default();
        e.0 += v;
        e.1 += 1;
    }
    let groups: Vec<(f64, usize)> = groups.into_values().collect();
    let mean = values.iter().map(|v| v.1).sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let (sum, count) = (0..groups.len())
                .map(|_| groups[rng.random_range(0..groups.len())])
                .fold((0.0, 0), |(s, c), (gs, gc)| (s + gs, c + gc));
            sum / count as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    // The q-quantile of the resampled means: the ⌈qR⌉-th smallest.
    let at = |q: f64| means[((q * RESAMPLES as f64).ceil() as usize).clamp(1, RESAMPLES) - 1];
    Some(Interval {
        mean,
        low: at(0.025),
        high: at(0.975),
        n,
    })
}

/// One system's held-out adherence: text2midi's measures where the prompt asked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// TB: the MidiCaps tempo bin asked for.
    pub tempo_bin_match: Option<Interval>,
    /// TBT: within one bin.
    pub tempo_bin_within_one: Option<Interval>,
    /// CK: the key asked for (Krumhansl–Schmuckler estimate).
    pub key_match: Option<Interval>,
    /// CKD: that key or its relative.
    pub key_match_relaxed: Option<Interval>,
    pub time_signature_match: Option<Interval>,
    pub instrument_precision: Option<Interval>,
    pub instrument_recall: Option<Interval>,
    pub instrument_f1: Option<Interval>,
    pub attributes_satisfied: Option<Interval>,
}

impl Scores {
    /// The scores of a system's pieces: one [`Adherence`] per prompt, with
    /// the group (test piece) its caption describes.
    pub fn of(pieces: &[(usize, Adherence)]) -> Self {
        let rate = |f: fn(&Adherence) -> Option<bool>| {
            pieces
                .iter()
                .filter_map(|(g, a)| f(a).map(|b| (*g, f64::from(u8::from(b)))))
                .collect::<Vec<_>>()
        };
        let real = |f: fn(&Adherence) -> Option<f64>| {
            pieces
                .iter()
                .filter_map(|(g, a)| f(a).map(|v| (*g, v)))
                .collect::<Vec<_>>()
        };
        // One seed per measure, the same for every system: intervals are comparable.
        Self {
            tempo_bin_match: bootstrap(&rate(|a| a.tempo_bin_match), 1),
            tempo_bin_within_one: bootstrap(&rate(|a| a.tempo_bin_within_one), 2),
            key_match: bootstrap(&rate(|a| a.key_match), 3),
            key_match_relaxed: bootstrap(&rate(|a| a.key_match_relaxed), 4),
            time_signature_match: bootstrap(&rate(|a| a.time_signature_match), 5),
            instrument_precision: bootstrap(&real(|a| a.instrument_precision), 6),
            instrument_recall: bootstrap(&real(|a| a.instrument_recall), 7),
            instrument_f1: bootstrap(&real(|a| a.instrument_f1), 8),
            attributes_satisfied: bootstrap(&real(|a| a.attributes_satisfied), 9),
        }
    }
}

/// What a row of the held-out table samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The trained model, free, at one guidance scale.
    Model,
    /// The trained model in strict mode.
    Strict,
    Untrained,
    Random,
    /// The captioned test pieces themselves.
    Captioned,
}

/// A system's name, kind and scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct System {
    pub system: String,
    pub kind: Kind,
    /// The guidance scale it sampled with (none for random tokens and the captioned pieces).
    pub guidance: Option<f64>,
    pub scores: Scores,
}

/// One caption's score by one system.
struct Row {
    system: String,
    kind: Kind,
    guidance: Option<f64>,
    /// The caption's piece, as a group for the bootstrap.
    piece: usize,
    adherence: Adherence,
}

/// The held-out evaluation: how many prompts over how many pieces, and each system's scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    pub prompts: usize,
    pub pieces: usize,
    /// Music tokens sampled per prompt.
    pub tokens: usize,
    pub systems: Vec<System>,
}

/// What the held-out evaluation samples.
pub struct Plan<'a> {
    /// Guidance scales for the model (1: as trained).
    pub guidance: &'a [f64],
    /// The guidance of the strict row (as `amt generate --strict`).
    pub strict_guidance: f64,
    /// Music tokens per prompt.
    pub tokens: usize,
}

/// One sampler of the held-out prompts: the trained model and, if it is
/// measured, the untrained baseline. Each worker thread owns one.
pub struct Worker {
    pub model: Generator,
    pub untrained: Option<Generator>,
}

/// Samples every caption with every system and scores it; `test` holds the
/// features of the test split's pieces by path. The captions are shared out
/// among the workers, one thread each; a caption's seed is its place in the
/// list, so the result does not depend on how many workers there are.
pub fn evaluate(
    workers: Vec<Worker>,
    captions: &[HeldOutCaption],
    test: &HashMap<String, Features>,
    plan: &Plan,
) -> anyhow::Result<HeldOut> {
    let mut paths: Vec<&str> = captions.iter().map(|c| c.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    let piece = |c: &HeldOutCaption| paths.binary_search(&c.path.as_str()).unwrap_or_default();
    let share = captions.len().div_ceil(workers.len().max(1)).max(1);
    let scored: Vec<Vec<Row>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .into_iter()
            .zip(captions.chunks(share).enumerate())
            .map(|(w, (chunk, part))| {
                s.spawn(move || -> anyhow::Result<Vec<_>> {
                    let mut out = Vec::new();
                    for (j, c) in part.iter().enumerate() {
                        let seed = (chunk * share + j) as u64;
                        out.extend(sample_one(&w, c, seed, piece(c), test, plan)?);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect::<anyhow::Result<_>>()
    })?;
    // Rows in the order the first caption met them.
    let mut systems: Vec<(Row, Vec<(usize, Adherence)>)> = Vec::new();
    for row in scored.into_iter().flatten() {
        match systems.iter_mut().find(|(r, _)| r.system == row.system) {
            Some((_, all)) => all.push((row.piece, row.adherence)),
            None => {
                let first = (row.piece, row.adherence.clone());
                systems.push((row, vec![first]));
            }
        }
    }
    Ok(HeldOut {
        prompts: captions.len(),
        pieces: paths.len(),
        tokens: plan.tokens,
        systems: systems
            .into_iter()
            .map(|(r, all)| System {
                system: r.system,
                kind: r.kind,
                guidance: r.guidance,
                scores: Scores::of(&all),
            })
            .collect(),
    })
}

/// One caption (of test piece `piece`) sampled by every system.
fn sample_one(
    w: &Worker,
    c: &HeldOutCaption,
    seed: u64,
    piece: usize,
    test: &HashMap<String, Features>,
    plan: &Plan,
) -> anyhow::Result<Vec<Row>> {
    let generator = &w.model;
    let vocab = &generator.tokenizer().vocab;
    let score = |midi: &[u8], req: &Request| -> anyhow::Result<Adherence> {
        let f = midi::features(&midi::parse(midi)?);
        Ok(adherence(req, &f))
    };
    let mut out = Vec::new();
    let mut row = |system: String, kind, guidance, adherence| {
        out.push(Row {
            system,
            kind,
            guidance,
            piece,
            adherence,
        });
    };
    // Unguided unless a row says otherwise: the untrained model never
    // learned an unconditioned prefix for guidance to compare against.
    let base = SampleOptions {
        seed,
        max_tokens: plan.tokens,
        guidance: 1.0,
        ..SampleOptions::default()
    };
    let bpm = prompt::parse(&c.text, vocab.config.prefix_instruments).bpm;
    for &g in plan.guidance {
        let written = generator.generate(
            &c.text,
            &SampleOptions {
                guidance: g,
                ..base.clone()
            },
        )?;
        let req = Request::new(&written.conditioning, bpm);
        let name = if g == 1.0 {
            "model".to_owned()
        } else {
            format!("model, guidance {g}")
        };
        row(name, Kind::Model, Some(g), score(&written.midi, &req)?);
    }
    let g = plan.strict_guidance;
    let written = generator.generate(
        &c.text,
        &SampleOptions {
            strict: true,
            guidance: g,
            ..base.clone()
        },
    )?;
    let req = Request::new(&written.conditioning, bpm);
    row(
        format!("model, strict, guidance {g}"),
        Kind::Strict,
        Some(g),
        score(&written.midi, &req)?,
    );
    let prefix = written.conditioning.tokens(vocab);
    if let Some(u) = &w.untrained {
        let (tokens, _) = u.sample(&prefix, None, &base, true);
        let a = score(&u.tokenizer().to_midi(&tokens), &req)?;
        row("untrained model".to_owned(), Kind::Untrained, Some(1.0), a);
    }
    let (tokens, _) = generator.sample_uniform(&prefix, &base);
    let a = score(&generator.tokenizer().to_midi(&tokens), &req)?;
    row("random tokens".to_owned(), Kind::Random, None, a);
    if let Some(f) = test.get(&c.path) {
        row(
            "captioned pieces".to_owned(),
            Kind::Captioned,
            None,
            adherence(&req, f),
        );
    }
    Ok(out)
}

/// The held-out evaluation of the model bundle in `model_dir` on describe's
/// `captions.parquet` (its captions of the `test` pieces).
pub fn run(
    captions: &Path,
    model_dir: &Path,
    device: Device,
    test: &[TestPiece],
    params: &EvaluateParams,
) -> anyhow::Result<HeldOut> {
    let captions = read_heldout(captions, |p| test.iter().any(|t| t.path == p))?;
    let captions = choose(captions, params.heldout_prompts);
    let features: HashMap<String, Features> = test
        .iter()
        .map(|t| (t.path.clone(), t.measured.features.clone()))
        .collect();
    let mut scales = vec![1.0];
    for &g in &params.guidance {
        anyhow::ensure!(
            (0.0..=20.0).contains(&g),
            "[params] evaluate.guidance: {g} is not in [0, 20]"
        );
        if !scales.contains(&g) {
            scales.push(g);
        }
    }
    // Sampling one token is too small to spread over cores: one torch
    // thread per worker, and as many workers as the stage has threads.
    let threads = tch::get_num_threads().max(1);
    let workers = if device.is_cuda() {
        1
    } else {
        threads as usize
    };
    let workers = (0..workers.min(captions.len()).max(1))
        .map(|_| {
            Ok(Worker {
                model: Generator::load_on(model_dir, device)?,
                untrained: if params.baselines {
                    Some(Generator::load_on(model_dir, device)?.untrained(params.seed))
                } else {
                    None
                },
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // A model that never trained unconditioned is measured unguided only.
    let guidable = workers[0].model.guidable();
    if !guidable {
        scales.truncate(1);
    }
    let plan = Plan {
        guidance: &scales,
        strict_guidance: if guidable {
            SampleOptions::default().guidance
        } else {
            1.0
        },
        tokens: params.heldout_tokens.max(1),
    };
    tch::set_num_threads(1);
    let result = evaluate(workers, &captions, &features, &plan);
    tch::set_num_threads(threads);
    result
}

/// At most `most` captions (0: all), spread over the pieces: every piece's
/// first caption before any piece's second.
pub fn choose(mut captions: Vec<HeldOutCaption>, most: usize) -> Vec<HeldOutCaption> {
    captions.sort_by(|a, b| (a.variant, &a.path).cmp(&(b.variant, &b.path)));
    if most > 0 {
        captions.truncate(most);
    }
    captions
}

/// The report's held-out section, from `metrics.json`'s `heldout`: the
/// table and the guidance plot (`guidance.png`, when more than one scale was measured).
pub fn write_section(md: &mut String, out: &Path, h: &Value) -> anyhow::Result<()> {
    let Some(systems) = h["systems"].as_array() else {
        return Ok(());
    };
    let _ = writeln!(md, "\n## Held-out captions\n");
    let _ = writeln!(
        md,
        "{} MidiCaps-style captions of the {} test-split pieces (describe's `captions.parquet`; none is a training text), {} music tokens each, the same seed for every system. Mean [95 % bootstrap interval] over the prompts that asked for the attribute (n). text2midi reports TB 39.7 %, TBT 65.8 %, CK 33.6 %, CKD 35.5 % on MidiCaps' own test captions, not these. *Strict* writes what the caption names (see `amt generate --strict`): its tempo-bin and meter rates, and the instrument precision of every piece with notes, are met by construction and are never the model's free numbers. *Captioned pieces* scores each test piece against its own captions: the ceiling where a caption and the measures disagree.\n",
        h["prompts"], h["pieces"], h["tokens"]
    );
    let measures = [
        ("TB", "tempo_bin_match"),
        ("TBT", "tempo_bin_within_one"),
        ("CK", "key_match"),
        ("CKD", "key_match_relaxed"),
        ("meter", "time_signature_match"),
        ("instr. P", "instrument_precision"),
        ("instr. R", "instrument_recall"),
        ("instr. F1", "instrument_f1"),
        ("all asked", "attributes_satisfied"),
    ];
    let names: Vec<&str> = measures.iter().map(|m| m.0).collect();
    let _ = writeln!(md, "| system | {} |", names.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(measures.len()));
    for s in systems {
        let cells: Vec<String> = measures
            .iter()
            .map(|(_, key)| {
                let v = &s["scores"][key];
                if v.is_null() {
                    "n/a".to_owned()
                } else {
                    format!(
                        "{} [{}, {}] ({})",
                        pct(&v["mean"]),
                        pct(&v["low"]),
                        pct(&v["high"]),
                        v["n"]
                    )
                }
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} |",
            s["system"].as_str().unwrap_or("?"),
            cells.join(" | ")
        );
    }
    let series = guidance_curves(systems);
    if series.iter().any(|(_, points)| points.len() > 1) {
        let refs: Vec<(&str, &[(f64, f64)])> =
            series.iter().map(|(n, p)| (*n, p.as_slice())).collect();
        lines(
            &out.join("guidance.png"),
            "held-out adherence by guidance scale",
            "guidance scale",
            "%",
            &refs,
        )?;
        let _ = writeln!(md, "\n![adherence by guidance scale](guidance.png)");
    }
    Ok(())
}

/// Each rate of the free model's rows against their guidance scale, in
/// percent (strict and the baselines are other systems, not points on it).
fn guidance_curves(systems: &[Value]) -> Vec<(&'static str, Vec<(f64, f64)>)> {
    let free: Vec<&Value> = systems.iter().filter(|s| s["kind"] == "model").collect();
    [
        ("tempo bin", "tempo_bin_match"),
        ("key", "key_match"),
        ("meter", "time_signature_match"),
        ("instrument F1", "instrument_f1"),
    ]
    .into_iter()
    .map(|(name, key)| {
        let points = free
            .iter()
            .filter_map(|s| {
                Some((
                    s["guidance"].as_f64()?,
                    s["scores"][key]["mean"].as_f64()? * 100.0,
                ))
            })
            .collect();
        (name, points)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_interval_holds_the_mean_and_narrows_with_more_prompts() {
        // Every prompt its own group: the plain bootstrap.
        let own = |n: usize| -> Vec<(usize, f64)> {
            (0..n)
                .map(|i| (i, f64::from(u8::from(i % 4 == 0))))
                .collect()
        };
        let a = bootstrap(&own(20), 1).unwrap();
        let b = bootstrap(&own(400), 1).unwrap();
        assert_eq!((a.mean, b.mean, a.n, b.n), (0.25, 0.25, 20, 400));
        assert!(a.low < 0.25 && 0.25 < a.high, "{a:?}");
        assert!(b.low < 0.25 && 0.25 < b.high, "{b:?}");
        assert!(b.high - b.low < (a.high - a.low) / 2.0, "{a:?} {b:?}");
        // The binomial standard error at n = 400 is 0.0217: the interval is about ±0.042.
        assert!(((b.high - b.low) / 2.0 - 0.042).abs() < 0.01, "{b:?}");
        assert_eq!(bootstrap(&[], 1), None);
        assert_eq!(bootstrap(&own(400), 1), Some(b), "seeded");
        // The same 400 values as 20 pieces of 20 captions that agree within
        // a piece: only 20 independent draws, so the interval is as wide as
        // 20 prompts' rather than 400's.
        let grouped: Vec<(usize, f64)> = (0..400)
            .map(|i| (i / 20, f64::from(u8::from(i / 20 % 4 == 0))))
            .collect();
        let c = bootstrap(&grouped, 1).unwrap();
        assert_eq!((c.mean, c.n), (0.25, 400));
        assert!(
            c.high - c.low > 3.0 * (b.high - b.low),
            "{c:?} against {b:?}"
        );
    }

    #[test]
    fn the_guidance_plot_shows_the_free_model_only() {
        let row = |kind: &str, g: Option<f64>, tb: f64| serde_json::json!({"kind": kind, "guidance": g, "scores": {"tempo_bin_match": {"mean": tb}}});
        let rows = [
            row("model", Some(1.0), 0.3),
            row("model", Some(2.0), 0.4),
            row("strict", Some(2.0), 1.0),
            row("untrained", Some(1.0), 0.1),
            row("random", None, 0.1),
        ];
        let curves = guidance_curves(&rows);
        assert_eq!(curves[0], ("tempo bin", vec![(1.0, 30.0), (2.0, 40.0)]));
        assert!(curves[1].1.is_empty(), "no key rates given");
    }

    #[test]
    fn captions_are_chosen_across_pieces_first() {
        let c = |path: &str, variant| HeldOutCaption {
            path: path.into(),
            variant,
            text: String::new(),
        };
        let all = vec![c("b", 0), c("a", 1), c("a", 0), c("b", 1)];
        let got: Vec<(String, u32)> = choose(all.clone(), 3)
            .into_iter()
            .map(|c| (c.path, c.variant))
            .collect();
        assert_eq!(got, [("a".into(), 0), ("b".into(), 0), ("a".into(), 1)]);
        assert_eq!(choose(all, 0).len(), 4);
    }
}
