//! Held-out adherence. The prompts are describe's held-out captions of the
//! test split's pieces: MidiCaps-style, none of them a text the model trained
//! with, of pieces it never trained on. Each prompt is sampled by the model
//! as trained, with classifier-free guidance at each scale of
//! `evaluate.guidance`, in strict mode, by the untrained model and as random
//! tokens, with the same seed. The captioned pieces are scored against their
//! own captions too: the most any system can reach where a caption and the
//! measures disagree. Every rate comes with a 95 % bootstrap interval over prompts.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adherence::{Adherence, Request, adherence};
use crate::describe::captions::HeldOutCaption;
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
    let base = SampleOptions {
        seed,
        max_tokens: plan.tokens,
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
    let piece = generator.generate(
        &c.text,
        &SampleOptions {
            strict: true,
            ..base.clone()
        },
    )?;
    let req = Request::new(&piece.conditioning, bpm);
    out.push(("model, strict".to_owned(), None, score(&piece.midi, &req)?));
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

/// At most `most` captions (0: all), spread over the pieces: every piece's
/// first caption before any piece's second.
pub fn choose(mut captions: Vec<HeldOutCaption>, most: usize) -> Vec<HeldOutCaption> {
    captions.sort_by(|a, b| (a.variant, &a.path).cmp(&(b.variant, &b.path)));
    if most > 0 {
        captions.truncate(most);
    }
    captions
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
