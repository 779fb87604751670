//! generate: the KV cache changes nothing, seeds reproduce, files parse,
//! and the stage writes a piece per prompt. The model is a briefly trained
//! tiny GPT-2 with the real MiniLM encoder and real k-means centroids.

mod common;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use amt_stages::StageContext;
use amt_stages::generate::{GeneratedFile, Generator, SampleOptions};
use amt_stages::model::{Conditioning, GptConfig};
use amt_stages::prepare::windows;
use amt_stages::tokenizer::{self, Config, Tokenizer, prefix_len};
use amt_stages::train::{TrainData, TrainParams, Windows, train};
use amt_stages::midi::key::Key;
use amt_stages::midi;
use serde_json::json;
use tch::Device;

static TORCH: Mutex<()> = Mutex::new(());

/// A model directory as the train stage writes it, built once per test run.
fn model_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let _g = TORCH.lock().unwrap_or_else(|e| e.into_inner());
        tch::set_num_threads(1);
        let tok = Tokenizer::new(Config::default());
        let prefix = prefix_len(&tok.vocab);
        let mut w = Windows {
            tokens: Vec::new(),
            width: 64,
            paths: Vec::new(),
        };
        for (rel, abs) in amt_stages::collect::find_midi_files(&common::corpus())
            .unwrap()
            .iter()
            .step_by(211)
        {
            let score = midi::parse(&std::fs::read(abs).unwrap()).unwrap();
            let cond = tokenizer::Conditioning::from_features(
                &midi::features(&score),
                Some(1),
                tok.vocab.config.prefix_instruments,
            );
            for win in windows(&tok.vocab, &tok.encode(&score, &cond), prefix, 64)
                .into_iter()
                .take(2)
            {
                w.tokens.extend_from_slice(&win);
                w.paths.push(rel.clone());
            }
        }
        let config = GptConfig {
            vocab_size: tok.vocab.len(),
            context: 64,
            layers: 2,
            heads: 2,
            width: 64,
            dropout: 0.0,
            conditioning: Conditioning::Tokens,
            embedding_dim: 384,
        };
        let params = TrainParams {
            steps: 30,
            batch_size: 8,
            lr: 3e-3,
            eval_every: 30,
            checkpoint_every: 100,
            device: "cpu".into(),
            // The checks below are about sampling; this fixture's 30 steps
            // see every prefix whole, as it was made before conditioning dropout.
            condition_drop: 0.0,
            uncondition: 0.0,
            ..TrainParams::default()
        };
        let data = TrainData {
            train: w.clone(),
            val: w,
            embeddings: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let t = train(
            config,
            &params,
            &data,
            &tok.vocab,
            Device::Cpu,
            &dir.path().join("ckpt"),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
        common::write_bundle(dir.path(), &t.model, &tok.vocab);
        dir
    })
    .path()
}

fn generator() -> (Generator, std::sync::MutexGuard<'static, ()>) {
    let dir = model_dir();
    let g = TORCH.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    (Generator::load_on(dir, Device::Cpu).unwrap(), g)
}

#[test]
fn sampling_with_the_kv_cache_equals_sampling_without_it() {
    let (model, _g) = generator();
    let (_, cond, _) = model.condition("a cheerful jig in D major").unwrap();
    let prefix = cond.tokens(&model.tokenizer().vocab);
    // 150 tokens overflow the 64-token context, so the window slides twice or more.
    for seed in 0..3 {
        // Guided (the default), so both streams' caches are checked.
        let opts = SampleOptions {
            max_tokens: 150,
            seed,
            top_p: 1.0,
            ..SampleOptions::default()
        };
        assert_ne!(opts.guidance, 1.0);
        let cached = model.sample(&prefix, None, &opts, true);
        let plain = model.sample(&prefix, None, &opts, false);
        assert_eq!(cached, plain, "seed {seed}");
    }
}

#[test]
fn the_text_picks_the_centroid_and_the_attributes() {
    let (model, _g) = generator();
    let (_, c, _) = model
        .condition("a Bach chorale for choir in G major, 4/4, Adagio")
        .unwrap();
    assert_eq!(c.semantic, Some(1), "nearest to the chorale caption");
    assert_eq!(
        (c.key, c.time_signature, c.tempo_class),
        (Key::parse("G major"), Some((4, 4)), Some(3))
    );
    assert_eq!(c.instruments, vec![6]);
    let (_, c, _) = model.condition("an Irish jig for fiddle").unwrap();
    assert_eq!(c.semantic, Some(0));
    assert_eq!(
        (c.key, c.time_signature, c.tempo_class),
        (None, None, None),
        "unnamed attributes are N/A"
    );
}

#[test]
fn the_same_seed_gives_the_same_file_and_files_parse() {
    let (model, _g) = generator();
    // Unguided: this fixture never trained unconditioned windows.
    let opts = SampleOptions {
        max_tokens: 200,
        guidance: 1.0,
        ..SampleOptions::default()
    };
    let a = model.generate("a lively reel in G major", &opts).unwrap();
    let b = model.generate("a lively reel in G major", &opts).unwrap();
    assert_eq!(a.midi, b.midi);
    let c = model
        .generate(
            "a lively reel in G major",
            &SampleOptions {
                seed: 1,
                ..opts.clone()
            },
        )
        .unwrap();
    assert_ne!(a.tokens, c.tokens);
    // Thirty steps of training make a weak model: some seeds end a piece
    // before its first note, but most write notes.
    let mut with_notes = 0;
    for seed in 0..8 {
        let g = model
            .generate("a lively reel in G major", &SampleOptions { seed, ..opts.clone() })
            .unwrap();
        let score = midi::parse(&g.midi).expect("generated MIDI parses strictly");
        with_notes += usize::from(!score.notes.is_empty());
        assert!(g.tokens.len() <= prefix_len(&model.tokenizer().vocab) + 200);
    }
    assert!(with_notes >= 6, "{with_notes} of 8 seeds wrote notes");
}

#[test]
fn the_stage_writes_a_piece_per_prompt_and_a_summary() {
    let dir = model_dir();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(
        root.path().join("prompts.txt"),
        "# demo\na jig in D major\n\na chorale for choir, 4/4\n",
    )
    .unwrap();
    let ctx = StageContext::new(
        root.path().to_owned(),
        root.path().join("scratch"),
        json!({ "generate": { "num": 2, "max_tokens": 64, "threads": 1, "device": "cpu" } }),
        json!({ "model": dir.to_str().unwrap(), "prompts": "prompts.txt" }),
        json!({ "dir": "out" }),
    );
    {
        let _g = TORCH.lock().unwrap_or_else(|e| e.into_inner());
        amt_stages::generate::run(&ctx).unwrap();
    }
    let rows: Vec<GeneratedFile> =
        serde_json::from_slice(&std::fs::read(root.path().join("out/generations.json")).unwrap())
            .unwrap();
    let files: Vec<&str> = rows.iter().map(|r| r.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "01-a-jig-in-d-major-0.mid",
            "01-a-jig-in-d-major-1.mid",
            "02-a-chorale-for-choir-4-4-0.mid",
            "02-a-chorale-for-choir-4-4-1.mid"
        ]
    );
    assert_eq!(
        rows.iter().map(|r| r.seed).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(rows[2].conditioning.time_signature, Some((4, 4)));
    for r in &rows {
        midi::parse(&std::fs::read(root.path().join("out").join(&r.file)).unwrap()).unwrap();
    }

    std::fs::write(root.path().join("prompts.txt"), "# nothing\n").unwrap();
    let e = amt_stages::generate::run(&ctx).unwrap_err();
    assert!(e.to_string().contains("prompts.txt: no prompts"), "{e}");
}

#[test]
fn a_model_trained_without_unconditioned_windows_is_not_guided() {
    let (model, _g) = generator();
    let summary = |uncondition: f64| amt_stages::bundle::Summary {
        micro_batch: 8,
        parameters: model.model().parameters(),
        config: model.model().config.clone(),
        steps: 30,
        stopped_early: false,
        train_windows: 1,
        tokens_seen: 1,
        final_train_loss: 1.0,
        val: Default::default(),
        uncondition: Some(uncondition),
    };
    // The fixture's bundle, with a summary that says how it was trained.
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(model_dir()).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let opts = SampleOptions { max_tokens: 20, ..SampleOptions::default() };
    for (uncondition, guided_ok) in [(0.0, false), (0.1, true)] {
        amt_stages::atomic::write_json(&dir.path().join("train.json"), &summary(uncondition)).unwrap();
        let g = Generator::load_on(dir.path(), Device::Cpu).unwrap();
        assert_eq!(g.guidable(), guided_ok);
        let guided = g.generate("a reel", &opts);
        assert_eq!(guided.is_ok(), guided_ok, "{:?}", guided.err());
        if let Err(e) = guided {
            assert!(e.to_string().contains("train.uncondition = 0"), "{e}");
        }
        let unguided = g.generate("a reel", &SampleOptions { guidance: 1.0, ..opts.clone() });
        assert!(unguided.is_ok(), "guidance 1 always works");
    }
}
