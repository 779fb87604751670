//! The music transformer against Hugging Face transformers (GPT2LMHeadModel):
//! training tokens/s (AdamW, clipping, batch 16 × 256) and sampling tokens/s
//! (KV cache, top-p 0.95), the same config, weights and threads, measured in
//! the same run. The exported weights are also loaded into transformers and
//! their logits compared with ours, which checks the export end to end.
//!
//! Run with `scripts/bench.sh model` (it provides `AMT_BENCH_REF_PYTHON`).
//! `AMT_BENCH_THREADS` sets the threads (default 2); `AMT_BENCH_PRESET`
//! the model (default `tiny`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use amt_stages::atomic::write_json;
use amt_stages::cluster::Centroids;
use amt_stages::embed::Pooling;
use amt_stages::generate::{Generator, SampleOptions};
use amt_stages::model::{Gpt, ModelParams, hf};
use amt_stages::tokenizer::{Config, Tokenizer, prefix_len};
use amt_stages::train::{TrainData, TrainParams, Windows, train};
use rand::{Rng, SeedableRng};
use tch::{Device, Tensor};

const RUNS: usize = 3;
const TRAIN_STEPS: u64 = 10;
const BATCH: usize = 16;
const GENERATE: usize = 240;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const HF: &str = r#"
import sys, time, json, statistics, torch
from transformers import GPT2LMHeadModel
hf_dir, threads, steps, batch, width, runs, gen, prefix_json, probe_json = sys.argv[1:10]
torch.set_num_threads(int(threads))
torch.manual_seed(0)
model = GPT2LMHeadModel.from_pretrained(hf_dir, attn_implementation="sdpa")
probe = json.load(open(probe_json))
with torch.no_grad():
    model.eval()
    logits = model(torch.tensor([probe["ids"]])).logits[0]
    diff = (logits - torch.tensor(probe["logits"])).abs().max().item()
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
x = torch.randint(5, model.config.vocab_size, (int(batch), int(width)))
def step():
    loss = model(x, labels=x).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
step()
train = []
for _ in range(int(runs)):
    t = time.perf_counter()
    for _ in range(int(steps)):
        step()
    train.append(time.perf_counter() - t)
model.eval()
prefix = torch.tensor([json.load(open(prefix_json))])
n = int(gen)
gens = []
for r in range(int(runs)):
    torch.manual_seed(r)
    t = time.perf_counter()
    out = model.generate(prefix, do_sample=True, top_p=0.95, top_k=0, max_new_tokens=n, min_new_tokens=n, pad_token_id=0, attention_mask=torch.ones_like(prefix))
    gens.append(time.perf_counter() - t)
    assert out.shape[1] - prefix.shape[1] == n
print(json.dumps({"train_s": statistics.median(train), "generate_s": statistics.median(gens), "max_logit_diff": diff}))
"#;

fn python(args: &[String]) -> Option<serde_json::Value> {
    let py = std::env::var_os("AMT_BENCH_REF_PYTHON").map(PathBuf::from)?;
    let out = Command::new(py)
        .arg("-c")
        .arg(HF)
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// A model directory as train writes it (fresh weights: speed does not depend on them).
fn model_dir(dir: &Path, model: &Gpt, tok: &Tokenizer) {
    model.save(&dir.join("model")).unwrap();
    hf::export(model, &dir.join("hf")).unwrap();
    write_json(&dir.join("vocab.json"), &tok.vocab.file()).unwrap();
    let centroids = Centroids {
        model: "bench".into(),
        dim: 384,
        pooling: Pooling::Mean,
        normalize: true,
        seed: 0,
        centroids: vec![vec![0.0; 384]],
    };
    write_json(&dir.join("centroids.json"), &centroids).unwrap();
    let encoder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/all-MiniLM-L6-v2")
        .canonicalize()
        .expect("models/all-MiniLM-L6-v2");
    amt_stages::bundle::copy_encoder(&encoder, dir).unwrap();
}

fn main() {
    let threads: usize = std::env::var("AMT_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let preset = std::env::var("AMT_BENCH_PRESET").unwrap_or_else(|_| "tiny".into());
    tch::set_num_threads(threads as i32);
    let tok = Tokenizer::new(Config::default());
    let config = ModelParams {
        preset: Some(preset.clone()),
        dropout: Some(0.0),
        ..Default::default()
    }
    .resolve(tok.vocab.len(), 384)
    .unwrap();
    let width = config.context.min(256);
    tch::manual_seed(0);
    let model = Gpt::new(config.clone(), Device::Cpu);
    let dir = tempfile::tempdir().unwrap();
    model_dir(dir.path(), &model, &tok);

    // Logits on a probe sequence, for the export check.
    let ids: Vec<i64> = (0..64).map(|i| 5 + (i * 37) % 600).collect();
    let logits =
        tch::no_grad(|| model.forward(&Tensor::from_slice(&ids).view([1, -1]), None, false, None));
    let logits: Vec<Vec<f32>> = (0..64)
        .map(|i| Vec::<f32>::try_from(logits.get(0).get(i)).unwrap())
        .collect();
    let probe = dir.path().join("probe.json");
    std::fs::write(
        &probe,
        serde_json::to_vec(&serde_json::json!({ "ids": ids, "logits": logits })).unwrap(),
    )
    .unwrap();

    // Training: the real loop (AdamW, clipping) on random windows.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let rows = 64;
    let windows = Windows {
        tokens: (0..rows * width)
            .map(|_| rng.random_range(5..tok.vocab.len() as u16))
            .collect(),
        width,
        paths: vec!["bench".into(); rows],
    };
    let val = Windows {
        tokens: windows.tokens[..width].to_vec(),
        width,
        paths: vec!["bench".into()],
    };
    let data = TrainData {
        train: windows,
        val,
        embeddings: None,
    };
    let mut ours_train = Vec::new();
    for r in 0..=RUNS {
        let p = TrainParams {
            steps: if r == 0 { 1 } else { TRAIN_STEPS },
            batch_size: BATCH,
            eval_every: 1_000_000,
            checkpoint_every: 1_000_000,
            device: "cpu".into(),
            threads,
            ..TrainParams::default()
        };
        let ckpt = tempfile::tempdir().unwrap();
        let t = Instant::now();
        train(
            config.clone(),
            &p,
            &data,
            &tok.vocab,
            Device::Cpu,
            ckpt.path(),
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
        if r > 0 {
            ours_train.push(t.elapsed().as_secs_f64());
        }
    }
    let train_tokens = (TRAIN_STEPS as usize * BATCH * (width - 1)) as f64;

    // Sampling with the KV cache.
    let generator = Generator::load_on(dir.path(), Device::Cpu).unwrap();
    let prefix = amt_stages::tokenizer::Conditioning::default().tokens(&tok.vocab);
    let budget = GENERATE.min(config.context - prefix_len(&tok.vocab) - 1);
    let mut ours_gen = Vec::new();
    let mut produced = 0;
    for r in 0..=RUNS {
        // Unguided: one forward pass per token, as transformers' generate.
        let opts = SampleOptions {
            seed: r as u64,
            max_tokens: budget,
            guidance: 1.0,
            ..SampleOptions::default()
        };
        let t = Instant::now();
        let (tokens, _) = generator.sample(&prefix, None, &opts, true);
        if r > 0 {
            ours_gen.push(t.elapsed().as_secs_f64() / (tokens.len() - prefix.len()) as f64);
            produced = tokens.len() - prefix.len();
        }
    }
    let ours_train = median(ours_train);
    let ours_gen_per_token = median(ours_gen);
    let prefix_json = dir.path().join("prefix.json");
    std::fs::write(&prefix_json, serde_json::to_vec(&prefix).unwrap()).unwrap();
    let args: Vec<String> = [
        dir.path().join("hf").display().to_string(),
        threads.to_string(),
        TRAIN_STEPS.to_string(),
        BATCH.to_string(),
        width.to_string(),
        RUNS.to_string(),
        produced.max(1).to_string(),
        prefix_json.display().to_string(),
        probe.display().to_string(),
    ]
    .to_vec();
    let theirs = python(&args);

    println!(
        "GPT-2 `{preset}` ({} layers × {} heads × {} wide, {} parameters), CPU, {threads} threads, medians of {RUNS}",
        config.layers,
        config.heads,
        config.width,
        model.parameters()
    );
    println!();
    println!("| | training tokens/s | sampling tokens/s |");
    println!("|---|---:|---:|");
    println!(
        "| amt (tch) | {:.0} | {:.0} |",
        train_tokens / ours_train,
        1.0 / ours_gen_per_token
    );
    match theirs {
        Some(t) => {
            let (ts, gs) = (
                t["train_s"].as_f64().unwrap(),
                t["generate_s"].as_f64().unwrap() / produced.max(1) as f64,
            );
            println!(
                "| transformers GPT2LMHeadModel | {:.0} | {:.0} |",
                train_tokens / ts,
                1.0 / gs
            );
            println!();
            println!(
                "amt / transformers: training {:.2}×, sampling {:.2}×",
                ts / ours_train,
                gs / ours_gen_per_token
            );
            println!(
                "exported weights in transformers: max |logit difference| = {:.2e}",
                t["max_logit_diff"].as_f64().unwrap()
            );
        }
        None => println!("| transformers | not measured (set AMT_BENCH_REF_PYTHON) |"),
    }
}
