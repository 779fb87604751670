//! The generate stage: MIDI for every prompt in a file, so evaluate has
//! something to measure; and the `Generator` library API behind it and
//! behind `amt generate`.

pub mod generator;
mod grammar;
pub mod prompt;
pub mod sample;
mod stream;
pub mod strict;

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub use generator::{Generation, Generator, Stopped, tonic_shift};
pub use sample::SampleOptions;

use crate::atomic::write_json;
use crate::tokenizer::Conditioning;

/// `[params] generate.*`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateParams {
    /// Pieces per prompt.
    pub num: usize,
    #[serde(flatten)]
    pub sampling: SampleOptions,
    /// Torch threads on CPU (0: the stage's CPU share, `cpus` in amt.toml).
    pub threads: usize,
    /// `auto` (CUDA when present), `cpu` or `cuda`.
    pub device: String,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            num: 1,
            sampling: SampleOptions::default(),
            threads: 0,
            device: "auto".into(),
        }
    }
}

/// Reads a prompts file: one prompt per line; blank lines and `#` comments are skipped.
pub fn read_prompts(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let prompts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(
        !prompts.is_empty(),
        "{}: no prompts (one per line; # starts a comment)",
        path.display()
    );
    Ok(prompts)
}

/// A file-name-safe slug of a prompt's first words.
pub fn slug(text: &str) -> String {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(6)
        .map(str::to_lowercase)
        .collect();
    if words.is_empty() {
        "piece".into()
    } else {
        words.join("-")
    }
}

/// One row of `generations.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GeneratedFile {
    /// The MIDI file, relative to the stage's output directory.
    pub file: String,
    pub prompt: String,
    pub seed: u64,
    pub conditioning: Conditioning,
    pub semantic_distance: f64,
    pub tokens: usize,
    pub ended: bool,
}

/// The stage: `deps = { model = "<train's dir>", prompts = "….txt" }`, `outs = { dir = "…" }`.
pub fn run(ctx: &crate::StageContext) -> anyhow::Result<()> {
    let params: GenerateParams = ctx.params("generate")?;
    params
        .sampling
        .validate()
        .context("invalid [params] generate")?;
    let prompts = read_prompts(&ctx.dep("prompts")?)?;
    let device = crate::device::pick(&params.device, params.threads)?;
    let generator = Generator::load_on(&ctx.dep("model")?, device)?;
    let out = ctx.out("dir")?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    let mut tokens = 0;
    let mut meter = ctx.meter("pieces", Some((prompts.len() * params.num) as u64));
    for (i, prompt) in prompts.iter().enumerate() {
        for k in 0..params.num {
            meter.update((i * params.num + k) as u64, || {
                format!("{:.0} tokens/s", tokens as f64 / started.elapsed().as_secs_f64().max(1e-9))
            });
            let seed = params.sampling.seed + (i * params.num + k) as u64;
            let g = generator.generate(
                prompt,
                &SampleOptions {
                    seed,
                    ..params.sampling.clone()
                },
            )?;
            let file = format!("{:02}-{}-{k}.mid", i + 1, slug(prompt));
            crate::atomic::write(&out.join(&file), &g.midi)?;
            tokens += g.tokens.len();
            rows.push(GeneratedFile {
                file,
                prompt: prompt.clone(),
                seed,
                conditioning: g.conditioning,
                semantic_distance: g.semantic_distance,
                tokens: g.tokens.len(),
                ended: g.ended,
            });
        }
    }
    meter.update(rows.len() as u64, String::new);
    write_json(&out.join("generations.json"), &rows)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generate: {} pieces for {} prompts, {tokens} tokens in {secs:.1}s ({:.0} tokens/s)",
        rows.len(),
        prompts.len(),
        tokens as f64 / secs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_and_safe() {
        assert_eq!(
            slug("A cheerful jig in D major, 6/8!"),
            "a-cheerful-jig-in-d-major"
        );
        assert_eq!(slug("…"), "piece");
    }
}
