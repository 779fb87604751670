//! Held-out adherence. The prompts are describe's held-out captions of the
//! test split's pieces: MidiCaps-style, none of them a text the model trained
//! with, of pieces it never trained on. Each prompt is sampled by the model
//! as trained, with classifier-free guidance at each scale of
//! `evaluate.guidance`, in strict mode (at the default guidance, as
//! `amt generate --strict`), by the untrained model and as random tokens,
//! with the same seed. The captioned pieces are scored against their
//! own captions too: the most any system can reach where a caption and the
//! measures disagree. Every rate comes with a 95 % bootstrap interval over
//! prompts. `section.rs` writes the report's held-out section.

mod section;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::Device;

use super::adherence::{Adherence, Request, adherence};
use super::stats::{Interval, bootstrap};
use super::{EvaluateParams, TestPiece};
use crate::describe::heldout::{HeldOutCaption, read_heldout};
use crate::generate::{Generator, SampleOptions, prompt};
use crate::midi::{self, Features};
pub use section::write_section;

/// One system's held-out adherence: text2midi's measures where the prompt
/// asked (TB `tempo_bin_match`, TBT `tempo_bin_within_one`, CK `key_match`,
/// CKD `key_match_relaxed`, meter, instrument P/R/F1, attributes met), each named as
/// [`Adherence::measures`] names it, with its interval (none where no
/// prompt asked).
pub type Scores = BTreeMap<String, Option<Interval>>;

/// The scores of a system's pieces: one [`Adherence`] per prompt, with the
/// group (test piece) its caption describes.
pub fn scores(pieces: &[(usize, Adherence)]) -> Scores {
    let names = Adherence::default().measures().map(|(name, _)| name);
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let values: Vec<(usize, f64)> = pieces
                .iter()
                .filter_map(|(g, a)| a.measures()[i].1.map(|v| (*g, v)))
                .collect();
            // One seed per measure, the same for every system: intervals are comparable.
            ((*name).to_owned(), bootstrap(&values, i as u64 + 1))
        })
        .collect()
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
                scores: scores(&all),
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
        let a = score(&u.midi(&tokens, base.seed), &req)?;
        row("untrained model".to_owned(), Kind::Untrained, Some(1.0), a);
    }
    let (tokens, _) = generator.sample_uniform(&prefix, &base);
    let a = score(&generator.midi(&tokens, base.seed), &req)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
