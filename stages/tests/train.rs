//! train: the loop learns, checkpoints round-trip and resume exactly, runs
//! are deterministic, and the Hugging Face export has GPT-2's names.

mod common;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Mutex;

use amt_stages::midi;
use amt_stages::model::{Conditioning, Gpt, GptConfig, hf};
use amt_stages::prepare::windows;
use amt_stages::tokenizer::{self, Config, Tokenizer, prefix_len};
use amt_stages::train::{TrainData, TrainParams, Windows, evaluate, train};
use tch::{Device, Tensor};

/// torch's generator is global: tests that seed it must not interleave.
static TORCH: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    tch::set_num_threads(1);
    TORCH.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` windows of `width` tokens cut from real corpus pieces.
fn real_windows(n: usize, width: usize) -> (Windows, Tokenizer) {
    let tok = Tokenizer::new(Config::default());
    let prefix = prefix_len(&tok.vocab);
    let mut out = Windows {
        tokens: Vec::new(),
        width,
        paths: Vec::new(),
    };
    for (rel, abs) in amt_stages::collect::find_midi_files(&common::corpus())
        .unwrap()
        .iter()
        .step_by(97)
    {
        let score = midi::parse(&std::fs::read(abs).unwrap()).unwrap();
        let f = midi::features(&score);
        let cond = tokenizer::Conditioning::from_features(&f, Some(3), tok.vocab.config.prefix_instruments);
        for w in windows(&tok.vocab, &tok.encode(&score, &cond), prefix, width)
            .into_iter()
            .take(2)
        {
            out.tokens.extend_from_slice(&w);
            out.paths.push(rel.clone());
        }
        if out.len() >= n {
            break;
        }
    }
    out.tokens.truncate(n * width);
    out.paths.truncate(n);
    (out, tok)
}

/// Windows to learn by heart: the validation split is the training split.
fn memorise(n: usize, width: usize) -> (TrainData, Tokenizer) {
    let (w, tok) = real_windows(n, width);
    (
        TrainData {
            train: w.clone(),
            val: w,
            embeddings: None,
        },
        tok,
    )
}

fn config(vocab: usize, context: usize, dropout: f64) -> GptConfig {
    GptConfig {
        vocab_size: vocab,
        context,
        layers: 2,
        heads: 2,
        width: 64,
        dropout,
        conditioning: Conditioning::Tokens,
        embedding_dim: 384,
    }
}

fn params(steps: u64) -> TrainParams {
    TrainParams {
        steps,
        batch_size: 4,
        lr: 3e-3,
        warmup_steps: 5,
        eval_every: 5,
        checkpoint_every: 5,
        device: "cpu".into(),
        ..TrainParams::default()
    }
}

fn weights_equal(a: &Gpt, b: &Gpt) -> bool {
    a.named_weights()
        .iter()
        .zip(b.named_weights())
        .all(|((na, ta), (nb, tb))| na == &nb && ta.equal(&tb))
}

fn run(
    config: GptConfig,
    p: &TrainParams,
    data: &TrainData,
    tok: &Tokenizer,
    dir: &Path,
    stop_at: Option<u64>,
) -> amt_stages::train::Trained {
    let mut stop = |row: &amt_stages::train::LogRow| {
        if Some(row.step) == stop_at {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    train(config, p, data, &tok.vocab, Device::Cpu, dir, &mut stop).unwrap()
}

#[test]
fn a_tiny_model_overfits_a_handful_of_windows() {
    let _g = lock();
    let (data, tok) = memorise(8, 64);
    let p = TrainParams {
        steps: 150,
        batch_size: 8,
        eval_every: 50,
        checkpoint_every: 1000,
        ..params(150)
    };
    let dir = tempfile::tempdir().unwrap();
    let t = run(
        config(tok.vocab.len(), 64, 0.0),
        &p,
        &data,
        &tok,
        dir.path(),
        None,
    );
    let first = t.state.log[0].train_loss;
    let last = t.state.log.last().unwrap().train_loss;
    assert!(
        first > 5.0,
        "an untrained model is near uniform over 699 tokens: {first}"
    );
    assert!(
        last < 0.5,
        "the loss must fall below 0.5 nats on 8 memorised windows, got {last} (from {first})"
    );
    assert!(
        t.val.by_type.contains_key("Pitch") && t.val.by_type.contains_key("Position"),
        "{:?}",
        t.val.by_type.keys()
    );
    assert!(
        !t.val.by_type.contains_key("conditioning"),
        "prefix targets are not scored"
    );
}

#[test]
fn saving_then_loading_gives_an_identical_model() {
    let _g = lock();
    tch::manual_seed(1);
    let model = Gpt::new(config(699, 32, 0.1), Device::Cpu);
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = Gpt::load(dir.path(), Device::Cpu).unwrap();
    assert!(weights_equal(&model, &loaded));
    let ids = Tensor::from_slice(&[1i64, 5, 9, 200, 300]).view([1, 5]);
    assert!(
        model
            .forward(&ids, None, false, None)
            .equal(&loaded.forward(&ids, None, false, None))
    );

    // A file with another shape is refused with the tensor's name.
    let other = Gpt::new(
        GptConfig {
            width: 32,
            ..config(699, 32, 0.1)
        },
        Device::Cpu,
    );
    let e = amt_stages::model::weights::load_into(
        &dir.path().join("model.safetensors"),
        &other.named_weights(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("has shape"), "{e}");
}

#[test]
fn an_interrupted_run_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_one() {
    let _g = lock();
    let (data, tok) = memorise(12, 48);
    let p = params(12);
    let cfg = config(tok.vocab.len(), 48, 0.1);
    let whole = run(
        cfg.clone(),
        &p,
        &data,
        &tok,
        tempfile::tempdir().unwrap().path(),
        None,
    );

    let dir = tempfile::tempdir().unwrap();
    let killed = run(cfg.clone(), &p, &data, &tok, dir.path(), Some(8));
    assert_eq!(killed.state.step, 8);
    let resumed = run(cfg.clone(), &p, &data, &tok, dir.path(), None);
    assert_eq!(
        resumed.resumed_from,
        Some(5),
        "the last checkpoint before the interruption was at step 5"
    );
    assert_eq!(resumed.state.step, 12);
    assert_eq!(
        resumed.state.log.iter().map(|r| r.step).collect::<Vec<_>>(),
        (1..=12).collect::<Vec<_>>()
    );
    assert!(
        weights_equal(&whole.model, &resumed.model),
        "resuming must reproduce the uninterrupted run bit for bit"
    );
    assert_eq!(whole.state.log, resumed.state.log);

    // Other params do not resume this checkpoint.
    let fresh = run(
        cfg,
        &TrainParams { lr: 1e-3, ..p },
        &data,
        &tok,
        dir.path(),
        None,
    );
    assert_eq!(fresh.resumed_from, None);
}

#[test]
fn the_same_seed_gives_the_same_weights_and_another_seed_does_not() {
    let _g = lock();
    let (data, tok) = memorise(8, 48);
    let cfg = config(tok.vocab.len(), 48, 0.1);
    let a = run(
        cfg.clone(),
        &params(6),
        &data,
        &tok,
        tempfile::tempdir().unwrap().path(),
        None,
    );
    let b = run(
        cfg.clone(),
        &params(6),
        &data,
        &tok,
        tempfile::tempdir().unwrap().path(),
        None,
    );
    assert!(weights_equal(&a.model, &b.model));
    let c = run(
        cfg,
        &TrainParams {
            seed: 1,
            ..params(6)
        },
        &data,
        &tok,
        tempfile::tempdir().unwrap().path(),
        None,
    );
    assert!(!weights_equal(&a.model, &c.model));
}

#[test]
fn a_model_conditioned_on_embeddings_trains_with_them() {
    let _g = lock();
    let (w, tok) = real_windows(8, 48);
    let table = w
        .paths
        .iter()
        .enumerate()
        .map(|(i, p)| (p.clone(), vec![i as f32 / 8.0; 16]))
        .collect();
    let data = TrainData {
        train: w.clone(),
        val: w,
        embeddings: Some((table, 16)),
    };
    let cfg = GptConfig {
        conditioning: Conditioning::TokensAndEmbedding,
        embedding_dim: 16,
        ..config(tok.vocab.len(), 48, 0.0)
    };
    let t = run(
        cfg,
        &params(10),
        &data,
        &tok,
        tempfile::tempdir().unwrap().path(),
        None,
    );
    assert!(
        t.model
            .named_weights()
            .iter()
            .any(|(n, _)| n == "cond_proj.weight")
    );
    assert!(t.state.log.last().unwrap().train_loss < t.state.log[0].train_loss);

    // Its perplexity is the one training saw only with the embeddings it was
    // trained with (evaluate scored such models without them).
    let (prefix, batch) = (prefix_len(&tok.vocab), params(10).eval_batch);
    let val = &data.val;
    let with = evaluate(&t.model, val, &tok.vocab, prefix, batch, data.embeddings.as_ref());
    let without = evaluate(&t.model, val, &tok.vocab, prefix, batch, None);
    assert_eq!(with.overall, t.val.overall);
    assert_ne!(without.overall.loss, with.overall.loss);
}

#[test]
fn the_hugging_face_export_has_gpt2_names_and_shapes() {
    let _g = lock();
    let cfg = GptConfig {
        conditioning: Conditioning::TokensAndEmbedding,
        ..config(699, 256, 0.1)
    };
    let model = Gpt::new(cfg, Device::Cpu);
    let dir = tempfile::tempdir().unwrap();
    hf::export(&model, dir.path()).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model_type"], "gpt2");
    assert_eq!(config["architectures"][0], "GPT2LMHeadModel");
    assert_eq!(
        (
            config["n_layer"].as_u64(),
            config["n_head"].as_u64(),
            config["n_embd"].as_u64()
        ),
        (Some(2), Some(2), Some(64))
    );
    assert_eq!(
        (
            config["vocab_size"].as_u64(),
            config["n_positions"].as_u64()
        ),
        (Some(699), Some(256))
    );

    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get("format"))
            .map(String::as_str),
        Some("pt")
    );
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut shapes: Vec<(String, Vec<usize>)> = file
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.shape().to_vec()))
        .collect();
    shapes.sort();
    let mut expected = vec![
        ("transformer.wte.weight".to_owned(), vec![699, 64]),
        ("transformer.wpe.weight".to_owned(), vec![256, 64]),
        ("transformer.ln_f.weight".to_owned(), vec![64]),
        ("transformer.ln_f.bias".to_owned(), vec![64]),
    ];
    for i in 0..2 {
        let h = |s: &str| format!("transformer.h.{i}.{s}");
        expected.extend([
            (h("ln_1.weight"), vec![64]),
            (h("ln_1.bias"), vec![64]),
            (h("attn.c_attn.weight"), vec![64, 192]),
            (h("attn.c_attn.bias"), vec![192]),
            (h("attn.c_proj.weight"), vec![64, 64]),
            (h("attn.c_proj.bias"), vec![64]),
            (h("ln_2.weight"), vec![64]),
            (h("ln_2.bias"), vec![64]),
            (h("mlp.c_fc.weight"), vec![64, 256]),
            (h("mlp.c_fc.bias"), vec![256]),
            (h("mlp.c_proj.weight"), vec![256, 64]),
            (h("mlp.c_proj.bias"), vec![64]),
        ]);
    }
    expected.sort();
    assert_eq!(
        shapes, expected,
        "GPT2LMHeadModel's names and Conv1D shapes; no cond_proj, the head is tied"
    );
}

#[test]
fn early_stopping_ends_training_when_validation_stops_improving() {
    let _g = lock();
    let (data, tok) = memorise(8, 48);
    // A zero learning rate never improves the validation loss.
    let p = TrainParams {
        lr: 0.0,
        patience: 2,
        checkpoint_every: 1000,
        ..params(100)
    };
    let t = run(
        config(tok.vocab.len(), 48, 0.0),
        &p,
        &data,
        &tok,
        tempfile::tempdir().unwrap().path(),
        None,
    );
    assert!(t.stopped_early);
    assert_eq!(t.state.step, 15, "best at 5, no better at 10 and 15");
}
