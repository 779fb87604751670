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
use crate::describe::captions::{HeldOutCaption, read_heldout};
use crate::plot::lines;
use crate::generate::{Generator, SampleOptions, prompt};
use crate::midi::{self, Features};

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

/// The mean of `values` and its 95 % bootstrap interval (seeded, so reruns agree).
pub fn bootstrap(values: &[f64], seed: u64) -> Option<Interval> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * RESAMPLES as f64) as usize).min(RESAMPLES - 1)];
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
    /// The scores of a system's pieces, one [`Adherence`] per prompt.
    pub fn of(pieces: &[Adherence]) -> Self {
        let rate = |f: fn(&Adherence) -> Option<bool>| {
            pieces
                .iter()
                .filter_map(f)
                .map(|b| f64::from(u8::from(b)))
                .collect::<Vec<_>>()
        };
        let real =
            |f: fn(&Adherence) -> Option<f64>| pieces.iter().filter_map(f).collect::<Vec<_>>();
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

/// A system's name and scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct System {
    pub system: String,
    /// The guidance scale, for the model's guided rows.
    pub guidance: Option<f64>,
    pub scores: Scores,
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
    let share = captions.len().div_ceil(workers.len().max(1)).max(1);
    let scored: Vec<Vec<(String, Option<f64>, Adherence)>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .into_iter()
            .zip(captions.chunks(share).enumerate())
            .map(|(w, (chunk, part))| {
                s.spawn(move || -> anyhow::Result<Vec<_>> {
                    let mut out = Vec::new();
                    for (j, c) in part.iter().enumerate() {
                        out.extend(sample_one(&w, c, (chunk * share + j) as u64, test, plan)?);
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
    let mut rows: Vec<(String, Option<f64>, Vec<Adherence>)> = Vec::new();
    for (name, guidance, a) in scored.into_iter().flatten() {
        match rows.iter_mut().find(|r| r.0 == name) {
            Some(r) => r.2.push(a),
            None => rows.push((name, guidance, vec![a])),
        }
    }
    let mut pieces: Vec<&str> = captions.iter().map(|c| c.path.as_str()).collect();
    pieces.sort_unstable();
    pieces.dedup();
    Ok(HeldOut {
        prompts: captions.len(),
        pieces: pieces.len(),
        tokens: plan.tokens,
        systems: rows
            .into_iter()
            .map(|(system, guidance, a)| System {
                system,
                guidance,
                scores: Scores::of(&a),
            })
            .collect(),
    })
}

/// One caption sampled by every system: `(system, guidance, adherence)` rows.
fn sample_one(
    w: &Worker,
    c: &HeldOutCaption,
    seed: u64,
    test: &HashMap<String, Features>,
    plan: &Plan,
) -> anyhow::Result<Vec<(String, Option<f64>, Adherence)>> {
    let generator = &w.model;
    let vocab = &generator.tokenizer().vocab;
    let score = |midi: &[u8], req: &Request| -> anyhow::Result<Adherence> {
        let f = midi::features(&midi::parse(midi)?);
        Ok(adherence(req, &f))
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
    let mut out = Vec::new();
    for &g in plan.guidance {
        let piece = generator.generate(
            &c.text,
            &SampleOptions {
                guidance: g,
                ..base.clone()
            },
        )?;
        let req = Request::new(&piece.conditioning, bpm);
        let name = if g == 1.0 {
            "model".to_owned()
        } else {
            format!("model, guidance {g}")
        };
        out.push((name, Some(g), score(&piece.midi, &req)?));
    }
    // Strict, as `amt generate --strict` samples: at the default guidance.
    let strict_guidance = SampleOptions::default().guidance;
    let piece = generator.generate(
        &c.text,
        &SampleOptions {
            strict: true,
            guidance: strict_guidance,
            ..base.clone()
        },
    )?;
    let req = Request::new(&piece.conditioning, bpm);
    out.push((
        format!("model, strict, guidance {strict_guidance}"),
        None,
        score(&piece.midi, &req)?,
    ));
    let prefix = piece.conditioning.tokens(vocab);
    if let Some(u) = &w.untrained {
        let (tokens, _) = u.sample(&prefix, None, &base, true);
        out.push((
            "untrained model".to_owned(),
            None,
            score(&u.tokenizer().to_midi(&tokens), &req)?,
        ));
    }
    let (tokens, _) = generator.sample_uniform(&prefix, &base);
    out.push((
        "random tokens".to_owned(),
        None,
        score(&generator.tokenizer().to_midi(&tokens), &req)?,
    ));
    if let Some(f) = test.get(&c.path) {
        out.push(("captioned pieces".to_owned(), None, adherence(&req, f)));
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
    scales.extend(params.guidance.iter().copied().filter(|&g| g != 1.0));
    for &g in &scales {
        anyhow::ensure!(
            (0.0..=20.0).contains(&g),
            "[params] evaluate.guidance: {g} is not in [0, 20]"
        );
    }
    let plan = Plan { guidance: &scales, tokens: params.heldout_tokens.max(1) };
    // Sampling one token is too small to spread over cores: one torch
    // thread per worker, and as many workers as the stage has threads.
    let threads = tch::get_num_threads().max(1);
    let workers = if device.is_cuda() { 1 } else { threads as usize };
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
        "{} MidiCaps-style captions of the {} test-split pieces (describe's `captions.parquet`; none is a training text), {} music tokens each, the same seed for every system. Mean [95 % bootstrap interval] over the prompts that asked for the attribute (n). text2midi reports TB 39.7 %, TBT 65.8 %, CK 33.6 %, CKD 35.5 % on MidiCaps' own test captions, not these. *Strict* writes what the caption names (see `amt generate --strict`): its tempo, meter and instrument rates are by construction and are never the model's free numbers. *Captioned pieces* scores each test piece against its own captions: the ceiling where a caption and the measures disagree.\n",
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
                    format!("{} [{}, {}] ({})", pct(&v["mean"]), pct(&v["low"]), pct(&v["high"]), v["n"])
                }
            })
            .collect();
        let _ = writeln!(md, "| {} | {} |", s["system"].as_str().unwrap_or("?"), cells.join(" | "));
    }
    let guided: Vec<&Value> = systems.iter().filter(|s| s["guidance"].is_number()).collect();
    if guided.len() > 1 {
        let curve = |key: &str| -> Vec<(f64, f64)> {
            guided
                .iter()
                .filter_map(|s| Some((s["guidance"].as_f64()?, s["scores"][key]["mean"].as_f64()? * 100.0)))
                .collect()
        };
        let series: Vec<(&str, Vec<(f64, f64)>)> = [
            ("tempo bin", "tempo_bin_match"),
            ("key", "key_match"),
            ("meter", "time_signature_match"),
            ("instrument F1", "instrument_f1"),
        ]
        .into_iter()
        .map(|(name, key)| (name, curve(key)))
        .collect();
        let refs: Vec<(&str, &[(f64, f64)])> = series.iter().map(|(n, p)| (*n, p.as_slice())).collect();
        lines(&out.join("guidance.png"), "held-out adherence by guidance scale", "guidance scale", "%", &refs)?;
        let _ = writeln!(md, "\n![adherence by guidance scale](guidance.png)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_interval_holds_the_mean_and_narrows_with_more_prompts() {
        let few: Vec<f64> = (0..20).map(|i| f64::from(u8::from(i % 4 == 0))).collect();
        let many: Vec<f64> = (0..400).map(|i| f64::from(u8::from(i % 4 == 0))).collect();
        let a = bootstrap(&few, 1).unwrap();
        let b = bootstrap(&many, 1).unwrap();
        assert_eq!((a.mean, b.mean, a.n, b.n), (0.25, 0.25, 20, 400));
        assert!(a.low < 0.25 && 0.25 < a.high, "{a:?}");
        assert!(b.low < 0.25 && 0.25 < b.high, "{b:?}");
        assert!(b.high - b.low < (a.high - a.low) / 2.0, "{a:?} {b:?}");
        // The binomial standard error at n = 400 is 0.0217: the interval is about ±0.042.
        assert!(((b.high - b.low) / 2.0 - 0.042).abs() < 0.01, "{b:?}");
        assert_eq!(bootstrap(&[], 1), None);
        assert_eq!(bootstrap(&many, 1), Some(b), "seeded");
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
