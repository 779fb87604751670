//! The train stage: fits the GPT-2 to prepare's windows and leaves a model
//! directory that generate (and Hugging Face) can load.
//!
//! AdamW, linear warmup then cosine decay, gradient clipping and
//! accumulation, dropout, bf16 autocast on CUDA. Validation loss and
//! per-token-type perplexity every `eval_every` steps, optional early
//! stopping, and resumable checkpoints in the stage's scratch directory. On
//! CPU the same data and params give the same weights, bit for bit.

pub mod checkpoint;
pub mod data;
pub mod eval;
pub mod log;
pub mod oom;
pub mod optim;
pub mod params;
pub mod scores;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use tch::{Device, Kind};

use crate::atomic::write_json;
use crate::bundle;
use crate::cluster::centroids::Centroids;
use crate::model::{Conditioning, Gpt, GptConfig, ModelParams};
use crate::tokenizer::{Token, Tokenizer, Vocab, prefix_len};
pub use checkpoint::TrainState;
pub use data::Windows;
pub use eval::evaluate;
pub use scores::Evaluation;
pub use log::LogRow;
pub use params::TrainParams;
use optim::{AdamW, learning_rate};

/// What training reads.
pub struct TrainData {
    pub train: Windows,
    pub val: Windows,
    /// Sentence embeddings by piece, and their size, for `tokens+embedding` models.
    pub embeddings: Option<(HashMap<String, Vec<f32>>, usize)>,
}

/// How training ended.
pub struct Trained {
    pub model: Gpt,
    pub state: TrainState,
    pub optim: AdamW,
    /// The final validation.
    pub val: Evaluation,
    /// The step a checkpoint resumed from, if one did.
    pub resumed_from: Option<u64>,
    /// True when early stopping ended it before `steps`.
    pub stopped_early: bool,
}

/// Each token's weight in the training loss: `condition_weight` for the
/// music tokens a prompt names (`Tempo`, `TimeSig`, `Program`), 1 for the rest.
fn loss_weights(vocab: &Vocab, condition_weight: f64) -> Vec<f32> {
    (0..vocab.len() as u16)
        .map(|id| match vocab.token(id) {
            Some(Token::Tempo(_) | Token::TimeSig(..) | Token::Program(_)) => condition_weight as f32,
            _ => 1.0,
        })
        .collect()
}

/// Trains (or resumes) a model. `checkpoints` holds resumable checkpoints;
/// `on_step` sees every update's log row and may stop training early (as a
/// kill would: the last checkpoint stays).
pub fn train(
    config: GptConfig,
    params: &TrainParams,
    data: &TrainData,
    vocab: &Vocab,
    device: Device,
    checkpoints: &Path,
    on_step: &mut dyn FnMut(&LogRow) -> ControlFlow<()>,
) -> anyhow::Result<Trained> {
    anyhow::ensure!(!data.train.is_empty(), "the training split has no windows");
    anyhow::ensure!(
        data.train.width <= config.context,
        "prepare's windows have {} tokens but [params] model.context is {}",
        data.train.width,
        config.context
    );
    anyhow::ensure!(
        params.batch_size > 0 && params.grad_accum > 0,
        "[params] train.batch_size and train.grad_accum must be at least 1"
    );
    for (name, p) in [("condition_drop", params.condition_drop), ("uncondition", params.uncondition)] {
        anyhow::ensure!((0.0..=1.0).contains(&p), "[params] train.{name} must be in [0, 1], not {p}");
    }
    anyhow::ensure!(
        params.condition_weight.is_finite() && params.condition_weight > 0.0,
        "[params] train.condition_weight must be a positive number, not {}",
        params.condition_weight
    );
    let drop = data::ConditionDrop::new(vocab, params.condition_drop, params.uncondition, params.seed);
    let fingerprint = checkpoint::fingerprint(&config, params, data, device);
    tch::manual_seed(params.seed as i64);
    let model = Gpt::new(config, device);
    let mut optim = AdamW::new(model.named_weights(), params);
    let mut state = TrainState {
        step: 0,
        fingerprint: fingerprint.clone(),
        log: Vec::new(),
        best_val: None,
        evals_since_best: 0,
    };
    let mut resumed_from = None;
    if let Some((dir, saved)) = checkpoint::latest(checkpoints, &fingerprint)? {
        checkpoint::restore(&dir, &model, &mut optim, &saved)
            .with_context(|| format!("resuming from {}", dir.display()))?;
        resumed_from = Some(saved.step);
        state = saved;
        println!("train: resuming from the checkpoint at step {}", state.step);
    }
    let prefix = prefix_len(vocab);
    let pad = i64::from(vocab.id(Token::Pad));
    let cuda = device.is_cuda();
    let eval = |model: &Gpt| {
        evaluate(
            model,
            &data.val,
            vocab,
            prefix,
            params.eval_batch,
            data.embeddings.as_ref(),
        )
    };
    let weights = (params.condition_weight != 1.0)
        .then(|| tch::Tensor::from_slice(&loss_weights(vocab, params.condition_weight)).to_device(device));
    let started = Instant::now();
    let start_step = state.step;
    let mut order = data::BatchOrder::new(data.train.len(), params.batch_size, params.seed);
    let mut stopped_early = false;
    let mut last_val = None;
    while state.step < params.steps {
        let step = state.step;
        // Dropout draws from torch's generator: seeding it per step makes a
        // resumed run draw what an uninterrupted one would have.
        tch::manual_seed(
            (params.seed as i64)
                .wrapping_mul(1_000_003)
                .wrapping_add(step as i64),
        );
        // An allocation that fails inside libtorch panics in tch; out of
        // memory is caught here so the caller can retry with smaller batches.
        let loss_sum = oom::catch(step, params.batch_size, || {
            let mut loss_sum = 0.0;
            for micro in 0..params.grad_accum {
                let index = step * params.grad_accum as u64 + micro as u64;
                let rows = order.rows(index);
                let (x, y) = data.train.batch(&rows, prefix, pad, device, Some((&drop, step)));
                let e = data
                    .embeddings
                    .as_ref()
                    .map(|(t, dim)| data.train.embeddings(&rows, t, *dim, device, Some((&drop, step))));
                let logits =
                    crate::device::autocast(cuda, || model.forward(&x, e.as_ref(), true, None));
                let loss = logits
                    .to_kind(Kind::Float)
                    .view([-1, model.config.vocab_size as i64])
                    .cross_entropy_loss::<tch::Tensor>(
                        &y.view(-1),
                        weights.as_ref().map(tch::Tensor::shallow_clone),
                        tch::Reduction::Mean,
                        data::IGNORE,
                        0.0,
                    )
                    / params.grad_accum as f64;
                loss.backward();
                loss_sum += loss.double_value(&[]);
            }
            loss_sum
        })?;
        let grad_norm = optim.clip_grad_norm(params.grad_clip);
        let lr = learning_rate(params, step);
        optim.step(lr);
        state.step += 1;
        let mut row = LogRow {
            step: state.step,
            lr,
            train_loss: loss_sum,
            grad_norm,
            val_loss: None,
        };
        let last = state.step == params.steps;
        if state.step.is_multiple_of(params.eval_every.max(1)) || last {
            let v = eval(&model);
            row.val_loss = Some(v.overall.loss);
            if state.best_val.is_none_or(|b| v.overall.loss < b) {
                (state.best_val, state.evals_since_best) = (Some(v.overall.loss), 0);
            } else {
                state.evals_since_best += 1;
            }
            let tokens = (state.step - start_step) as f64
                * (params.batch_size * params.grad_accum * (data.train.width - 1)) as f64;
            println!(
                "train: step {}/{}  loss {:.4}  val {:.4}  lr {:.2e}  {:.0} tokens/s",
                state.step,
                params.steps,
                loss_sum,
                v.overall.loss,
                lr,
                tokens / started.elapsed().as_secs_f64()
            );
            stopped_early = params.patience > 0 && state.evals_since_best >= params.patience;
            last_val = Some(v);
        }
        state.log.push(row.clone());
        if state.step.is_multiple_of(params.checkpoint_every.max(1)) || last || stopped_early {
            checkpoint::save(checkpoints, &model, &optim, &state)?;
        }
        if on_step(&row).is_break() {
            break;
        }
        if stopped_early {
            println!(
                "train: stopping early: validation loss has not improved for {} evaluations",
                params.patience
            );
            break;
        }
    }
    let val = match last_val {
        Some(v) => v,
        None => eval(&model),
    };
    Ok(Trained {
        model,
        state,
        optim,
        val,
        resumed_from,
        stopped_early,
    })
}

/// The stage: `deps = { data = "<prepare's dir>", centroids = "…/centroids.json",
/// encoder = "models/…", embeddings = "…/embeddings.parquet" (for tokens+embedding) }`,
/// `outs = { dir = "…" }`.
pub fn run(ctx: &crate::StageContext) -> anyhow::Result<()> {
    let model_params: ModelParams = ctx.params("model")?;
    let params: TrainParams = ctx.params("train")?;
    let data_dir = ctx.dep("data")?;
    let tok = Tokenizer::read(&data_dir, "rerun prepare")?;
    let centroids_path = ctx.dep("centroids")?;
    let centroids = Centroids::load(&centroids_path)?;
    let config = model_params.resolve(tok.vocab.len(), centroids.dim)?;
    let embeddings = match (config.conditioning, ctx.optional_dep("embeddings")?) {
        (Conditioning::Tokens, _) => None,
        (Conditioning::TokensAndEmbedding, Some(p)) => Some((
            crate::embed::vectors::read_embeddings(&p)?.into_iter().collect(),
            centroids.dim,
        )),
        (Conditioning::TokensAndEmbedding, None) => {
            anyhow::bail!(
                "[params] model.conditioning = \"tokens+embedding\" needs `deps = {{ embeddings = \"…/embeddings.parquet\" }}`"
            )
        }
    };
    let data = TrainData {
        train: Windows::read(&data_dir.join("train.parquet"))?,
        val: Windows::read(&data_dir.join("val.parquet"))?,
        embeddings,
    };
    let device = crate::device::pick(&params.device, params.threads)?;
    println!(
        "train: {} layers × {} heads × {} wide on {:?}, {} training windows of {} tokens",
        config.layers,
        config.heads,
        config.width,
        device,
        data.train.len(),
        data.train.width
    );
    let mut meter = ctx.meter("steps", Some(params.steps));
    let tokens_per_step = (params.batch_size * params.grad_accum * (data.train.width - 1)) as f64;
    let (started, mut first_step) = (std::time::Instant::now(), None);
    // Out of memory: halve the micro-batch, double the accumulation (the
    // effective batch stays), and resume from the last checkpoint. The panic
    // tch raises for it is expected, so it is not printed.
    oom::quiet_when_caught();
    let mut run_params = params.clone();
    let mut recoveries = Vec::new();
    let trained = loop {
        let attempt = train(
            config.clone(),
            &run_params,
            &data,
            &tok.vocab,
            device,
            &ctx.scratch.join("checkpoints"),
            &mut |row| {
                // A resumed run counts its speed from where it resumed.
                let first = *first_step.get_or_insert(row.step.saturating_sub(1));
                meter.update(row.step, || {
                    let rate = (row.step - first) as f64 * tokens_per_step
                        / started.elapsed().as_secs_f64();
                    format!("loss {:.3}, {rate:.0} tokens/s", row.train_loss)
                });
                ControlFlow::Continue(())
            },
        );
        match attempt {
            Ok(t) => break t,
            Err(e) => {
                let Some(oom) = e.downcast_ref::<oom::OutOfMemory>() else {
                    return Err(e);
                };
                let Some((batch, accum)) =
                    oom::smaller(run_params.batch_size, run_params.grad_accum)
                else {
                    anyhow::bail!(
                        "{oom}; even one window per micro-batch does not fit: give the stage more \
                         memory (stages.train.mem), or shrink the model or prepare.context"
                    );
                };
                (run_params.batch_size, run_params.grad_accum) = (batch, accum);
                println!(
                    "train: out of memory at step {} with micro-batches of {}: resuming from the \
                     last checkpoint with micro-batches of {} × {} accumulated (the same effective batch)",
                    oom.step,
                    oom.micro_batch,
                    run_params.batch_size,
                    run_params.grad_accum
                );
                recoveries.push(serde_json::json!({
                    "step": oom.step,
                    "micro_batch": oom.micro_batch,
                    "retried_with": run_params.batch_size,
                }));
            }
        }
    };

    let out = ctx.out("dir")?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    checkpoint::write(
        &out.join(bundle::MODEL),
        &trained.model,
        &trained.optim,
        &trained.state,
    )?;
    crate::model::hf::export(&trained.model, &out.join(bundle::HF))?;
    std::fs::copy(data_dir.join(bundle::VOCAB), out.join(bundle::VOCAB))
        .context("copying vocab.json")?;
    std::fs::copy(&centroids_path, out.join(bundle::CENTROIDS))
        .context("copying centroids.json")?;
    bundle::copy_encoder(&ctx.dep("encoder")?, &out)?;
    log::write_csv(&out.join("loss.csv"), &trained.state.log)?;
    log::plot(&out.join("loss.png"), &trained.state.log, params.condition_weight != 1.0)?;
    let per_update = (params.batch_size * params.grad_accum * (data.train.width - 1)) as u64;
    let summary = bundle::Summary {
        micro_batch: run_params.batch_size,
        parameters: trained.model.parameters(),
        config: trained.model.config.clone(),
        steps: trained.state.step,
        stopped_early: trained.stopped_early,
        train_windows: data.train.len(),
        tokens_seen: trained.state.step * per_update,
        final_train_loss: trained.state.log.last().map_or(f64::NAN, |r| r.train_loss),
        val: trained.val,
        uncondition: Some(params.uncondition),
    };
    write_json(&out.join(bundle::SUMMARY), &summary)?;
    // The ledger records the metrics, so a recovery shows there too.
    ctx.write_metrics(&serde_json::json!({
        "steps": summary.steps,
        "final_train_loss": summary.final_train_loss,
        "val_loss": summary.val.overall.loss,
        "val_perplexity": summary.val.overall.perplexity,
        "micro_batch": summary.micro_batch,
        "out_of_memory": recoveries,
    }))?;
    println!(
        "train: {} parameters, {} steps, validation loss {:.4}",
        summary.parameters, summary.steps, summary.val.overall.loss
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Config;

    #[test]
    fn only_the_tokens_a_prompt_names_weigh_more() {
        let v = Tokenizer::new(Config::default()).vocab;
        let w = loss_weights(&v, 4.0);
        assert_eq!(w.len(), v.len());
        let at = |t| w[usize::from(v.id(t))];
        for named in [Token::Tempo(3), Token::TimeSig(3, 4), Token::Program(Some(40)), Token::Program(None)] {
            assert_eq!(at(named), 4.0, "{named:?}");
        }
        for other in [Token::Pitch(60), Token::Bar, Token::Duration(8), Token::CondTempo(Some(3)), Token::Eos] {
            assert_eq!(at(other), 1.0, "{other:?}");
        }
    }
}
