//! The evaluate stage: how good the generated pieces are, and how well they
//! follow their prompts, against the test split and two baselines.
//!
//! Each generated piece is compared with a reference: the test-split piece
//! with the same semantic token whose text embedding is nearest the prompt's
//! (or, when no test piece has that token, the nearest test piece overall).
//! Metrics: the original system's five and its overall score, muspy's
//! quality metrics (per piece, and as the distance between the generated and
//! the test distributions), text adherence, and held-out perplexity per token
//! type. The same prompts are also sampled from an untrained model and as
//! uniformly random tokens, so the report shows what training bought.

pub mod adherence;
pub mod heldout;
pub mod original;
pub mod params;
pub mod quality;
pub mod report;
pub mod stats;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::generate::{GeneratedFile, Generator, SampleOptions, prompt};
use crate::midi::key::Key;
use crate::model::Conditioning as ModelConditioning;
use crate::midi::{self, Features, Score};
use crate::tokenizer::prefix_len;
use crate::train::data::Windows;
use crate::train::eval::evaluate;
use crate::train::scores::Evaluation;
pub use adherence::{Adherence, Request, adherence};
pub use original::{OriginalFeatures, OriginalScores, compare, quality_level};
pub use params::EvaluateParams;
pub use quality::{Quality, quality};

/// A parsed piece and what evaluate measures of it.
pub struct Measured {
    pub score: Score,
    pub features: Features,
    pub original: OriginalFeatures,
}

impl Measured {
    /// Parses MIDI bytes; `what` names the file in errors.
    pub fn parse(bytes: &[u8], what: &str) -> anyhow::Result<Self> {
        let score = midi::parse(bytes).with_context(|| format!("parsing {what}"))?;
        Ok(Self {
            features: midi::features(&score),
            original: OriginalFeatures::of(&score),
            score,
        })
    }

    /// Quality with the pitch-in-scale rate taken in `key`, or the estimated key.
    pub fn quality(&self, key: Option<Key>) -> Quality {
        let key = key.or(self.features.estimated_key.map(|(k, _)| k));
        quality(&self.score, key)
    }
}

/// One generated piece's evaluation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PieceReport {
    pub file: String,
    pub prompt: String,
    pub semantic: Option<u32>,
    /// The reference piece (corpus path) and how it was chosen.
    pub reference: String,
    pub reference_rule: String,
    pub original: OriginalScores,
    pub quality: Quality,
    pub adherence: Adherence,
}

/// A system's headline numbers, for the comparison with the baselines.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Headline {
    pub overall_score: f64,
    pub tempo_bin_match: Option<f64>,
    pub key_match: Option<f64>,
    pub attributes_satisfied: Option<f64>,
    /// Mean over the quality metrics of the KS statistic between generated and test.
    pub quality_distance: f64,
    pub test_perplexity: f64,
}

/// A test-split piece: its path, semantic token, text embedding and measurements.
pub struct TestPiece {
    pub path: String,
    pub semantic: Option<u32>,
    pub embedding: Option<Vec<f32>>,
    pub measured: Measured,
    pub quality: Quality,
}

/// The reference for a prompt: the nearest test piece (by text embedding) with
/// the same semantic token, else the nearest overall. Returns its index and the rule used.
pub fn pick_reference(
    test: &[TestPiece],
    semantic: Option<u32>,
    prompt: &[f32],
) -> Option<(usize, &'static str)> {
    let distance = |p: &TestPiece| {
        p.embedding.as_ref().map_or(f64::INFINITY, |e| {
            e.iter()
                .zip(prompt)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>()
        })
    };
    let nearest = |same: bool| {
        test.iter()
            .enumerate()
            .filter(|(_, p)| !same || (p.semantic.is_some() && p.semantic == semantic))
            .min_by(|a, b| {
                distance(a.1)
                    .total_cmp(&distance(b.1))
                    .then(a.1.path.cmp(&b.1.path))
            })
            .map(|(i, _)| i)
    };
    nearest(true)
        .map(|i| (i, "same semantic token, nearest text"))
        .or_else(|| nearest(false).map(|i| (i, "nearest text (no test piece has its token)")))
}

/// Evaluates generated pieces (`(file, MIDI bytes, generation record)`) against the test split.
pub fn evaluate_pieces(
    pieces: &[(String, Vec<u8>, GeneratedFile)],
    generator: &Generator,
    test: &[TestPiece],
) -> anyhow::Result<Vec<PieceReport>> {
    let mut out = Vec::with_capacity(pieces.len());
    for (file, bytes, g) in pieces {
        let m = Measured::parse(bytes, file)?;
        let (vector, _, _) = generator.condition(&g.prompt)?;
        let semantic = g.conditioning.semantic;
        let (reference, rule) = pick_reference(test, semantic, &vector)
            .context("the test split has no pieces to compare with")?;
        let bpm = prompt::parse(&g.prompt, generator.tokenizer().vocab.config.prefix_instruments).bpm;
        out.push(PieceReport {
            file: file.clone(),
            prompt: g.prompt.clone(),
            semantic,
            reference: test[reference].path.clone(),
            reference_rule: rule.to_owned(),
            original: compare(&test[reference].measured.original, &m.original),
            quality: m.quality(g.conditioning.key),
            adherence: adherence(&Request::new(&g.conditioning, bpm), &m.features),
        });
    }
    Ok(out)
}

/// The mean of the values that are present.
fn mean_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let v: Vec<f64> = values.flatten().filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn as_rate(b: Option<bool>) -> Option<f64> {
    b.map(|b| if b { 1.0 } else { 0.0 })
}

/// The headline numbers of a set of piece reports.
pub fn headline(pieces: &[PieceReport], test: &[TestPiece], perplexity: f64) -> Headline {
    Headline {
        overall_score: mean_of(pieces.iter().map(|p| Some(p.original.overall_score)))
            .unwrap_or(0.0),
        tempo_bin_match: mean_of(pieces.iter().map(|p| as_rate(p.adherence.tempo_bin_match))),
        key_match: mean_of(pieces.iter().map(|p| as_rate(p.adherence.key_match))),
        attributes_satisfied: mean_of(pieces.iter().map(|p| p.adherence.attributes_satisfied)),
        quality_distance: stats::quality_distance(
            pieces.iter().map(|p| &p.quality),
            test.iter().map(|t| &t.quality),
        ),
        test_perplexity: perplexity,
    }
}

fn read_generations(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>, GeneratedFile)>> {
    let path = dir.join("generations.json");
    let rows: Vec<GeneratedFile> = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    rows.into_iter()
        .map(|r| {
            let file = dir.join(&r.file);
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            Ok((r.file.clone(), bytes, r))
        })
        .collect()
}

fn read_test_pieces(
    ctx: &crate::StageContext,
    test: &Windows,
    embeddings: &HashMap<String, Vec<f32>>,
) -> anyhow::Result<Vec<TestPiece>> {
    let semantic = crate::cluster::tokens::read(&ctx.dep("tokens")?)?;
    let corpus = ctx.dep("corpus")?;
    let mut paths: Vec<&String> = test.paths.iter().collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .map(|p| {
            let file = corpus.join(p);
            let measured = Measured::parse(
                &std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?,
                p,
            )?;
            let quality = measured.quality(None);
            Ok(TestPiece {
                path: p.clone(),
                semantic: semantic.get(p).copied(),
                embedding: embeddings.get(p).cloned(),
                measured,
                quality,
            })
        })
        .collect()
}

/// Samples every generation's prompt again from a baseline, with the same seed and length budget.
fn baseline_pieces(
    generations: &[(String, Vec<u8>, GeneratedFile)],
    generator: &Generator,
    uniform: bool,
) -> anyhow::Result<Vec<(String, Vec<u8>, GeneratedFile)>> {
    let prefix = prefix_len(&generator.tokenizer().vocab);
    generations
        .iter()
        .map(|(file, _, g)| {
            // The generation record holds the prefix it used; no need to embed the prompt again.
            let ids = g.conditioning.tokens(&generator.tokenizer().vocab);
            // Unguided: an untrained model has no unconditioned prefix to
            // guide against, and random tokens have no logits.
            let opts = SampleOptions {
                seed: g.seed,
                max_tokens: g.tokens.saturating_sub(prefix).max(1),
                guidance: 1.0,
                ..SampleOptions::default()
            };
            let (tokens, _) = if uniform {
                generator.sample_uniform(&ids, &opts)
            } else {
                generator.sample(&ids, None, &opts, true)
            };
            Ok((
                file.clone(),
                generator.midi(&tokens, g.seed),
                g.clone(),
            ))
        })
        .collect()
}

/// The stage: `deps = { generated, model, data, corpus, tokens, embeddings,
/// captions (describe's captions.parquet; optional) }`, `outs = { dir }`.
pub fn run(ctx: &crate::StageContext) -> anyhow::Result<()> {
    let params: EvaluateParams = ctx.params("evaluate")?;
    let device = crate::device::pick(&params.device, params.threads)?;
    let model_dir = ctx.dep("model")?;
    let generator = Generator::load_on(&model_dir, device)?;
    let generations = read_generations(&ctx.dep("generated")?)?;
    anyhow::ensure!(!generations.is_empty(), "generations.json lists no pieces");
    let test_windows = Windows::read(&ctx.dep("data")?.join("test.parquet"))?;
    let embeddings: HashMap<String, Vec<f32>> =
        crate::embed::vectors::read_embeddings(&ctx.dep("embeddings")?)?
            .into_iter()
            .collect();
    let test = read_test_pieces(ctx, &test_windows, &embeddings)?;
    let vocab = &generator.tokenizer().vocab;
    let prefix = prefix_len(vocab);
    // A tokens+embedding model is scored as it was trained: each window
    // with its piece's sentence embedding.
    let config = &generator.model().config;
    let conditioned = if config.conditioning == ModelConditioning::TokensAndEmbedding {
        if let Some((path, v)) = embeddings.iter().find(|(_, v)| v.len() != config.embedding_dim) {
            anyhow::bail!(
                "the model was trained on {}-wide sentence embeddings, but {} holds {}-wide ones \
                 ({path}): evaluate with the embed stage the model was trained with",
                config.embedding_dim,
                ctx.dep("embeddings")?.display(),
                v.len()
            );
        }
        Some((embeddings, config.embedding_dim))
    } else {
        None
    };
    let ppl = |g: &Generator| {
        evaluate(
            g.model(),
            &test_windows,
            vocab,
            prefix,
            params.eval_batch,
            conditioned.as_ref(),
        )
    };

    let pieces = evaluate_pieces(&generations, &generator, &test)?;
    let perplexity: Evaluation = ppl(&generator);
    let mut systems = BTreeMap::new();
    systems.insert(
        "model".to_owned(),
        headline(&pieces, &test, perplexity.overall.perplexity),
    );
    if params.baselines {
        let random = evaluate_pieces(
            &baseline_pieces(&generations, &generator, true)?,
            &generator,
            &test,
        )?;
        systems.insert(
            "random tokens".to_owned(),
            headline(&random, &test, generator.choices() as f64),
        );
        let untrained = Generator::load_on(&model_dir, device)?.untrained(params.seed);
        let pieces_u = evaluate_pieces(
            &baseline_pieces(&generations, &untrained, false)?,
            &untrained,
            &test,
        )?;
        let ppl_u = ppl(&untrained).overall.perplexity;
        systems.insert(
            "untrained model".to_owned(),
            headline(&pieces_u, &test, ppl_u),
        );
    }
    let held_out = match ctx.optional_dep("captions")? {
        Some(captions) => Some(heldout::run(&captions, &model_dir, device, &test, &params)?),
        None => None,
    };

    let out = ctx.out("dir")?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let metrics = report::metrics(&pieces, &test, &perplexity, &systems, held_out.as_ref());
    crate::atomic::write(&out.join("metrics.json"), &report::to_json_bytes(&metrics))?;
    report::write_pieces(&out.join("pieces.parquet"), &pieces)?;
    ctx.write_metrics(&report::tracked(&systems["model"], held_out.as_ref()))?;
    let loss = model_dir.join("loss.png");
    if loss.exists() {
        std::fs::copy(&loss, out.join("loss.png")).context("copying loss.png")?;
    }
    report::write_markdown(
        &out,
        &ctx.dep("generated")?,
        &generations,
        &pieces,
        &test,
        &metrics,
    )?;
    let model = &systems["model"];
    println!(
        "evaluate: {} pieces; overall {:.3} ({}), tempo bin {}, key {}, test perplexity {:.2}; report in {}",
        pieces.len(),
        model.overall_score,
        quality_level(model.overall_score),
        model
            .tempo_bin_match
            .map_or("n/a".into(), |v| format!("{:.0} %", v * 100.0)),
        model
            .key_match
            .map_or("n/a".into(), |v| format!("{:.0} %", v * 100.0)),
        model.test_perplexity,
        out.join("report.md").display()
    );
    Ok(())
}
