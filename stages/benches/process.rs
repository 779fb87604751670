//! Embedding throughput against sentence-transformers, and k-means time and
//! inertia against scikit-learn: the same 1024 texts, the same model files,
//! the same thread count, measured in the same run.
//!
//! Run with `scripts/bench.sh process`, which provides the reference venv
//! (`AMT_BENCH_REF_PYTHON`). `AMT_BENCH_THREADS` sets the threads (default 2).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use amt_stages::cluster::{ClusterParams, cluster};
use amt_stages::device::pick as device;
use amt_stages::embed::{Encoder, Pooling};

const RUNS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// 1024 distinct captions of varied length.
fn texts() -> Vec<String> {
    let moods = [
        "calm",
        "melancholic",
        "joyful",
        "dark",
        "lively",
        "wistful",
        "gentle",
        "driving",
    ];
    let forms = [
        "waltz", "reel", "jig", "chorale", "march", "tango", "ballad", "nocturne",
    ];
    let keys = ["C major", "A minor", "D major", "B minor"];
    let tails = [
        "",
        " with a slow introduction",
        " for strings, woodwinds and a soft rhythm section, building to a loud final chorus",
        ", played at a steady 120 BPM in 4/4 time by a small ensemble of fiddle, flute, guitar and bodhran",
    ];
    let mut out = Vec::new();
    for (i, m) in moods.iter().enumerate() {
        for f in forms {
            for k in keys {
                for t in tails {
                    out.push(format!("A {m} {f} in {k}{t}, take {i}."));
                }
            }
        }
    }
    out.truncate(1024);
    out
}

fn python(script: &str, args: &[String]) -> Option<String> {
    let py = std::env::var_os("AMT_BENCH_REF_PYTHON").map(PathBuf::from)?;
    let out = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

const ST: &str = r#"
import sys, time, json, statistics, torch
from sentence_transformers import SentenceTransformer
torch.set_num_threads(int(sys.argv[2]))
texts = json.load(open(sys.argv[3]))
model = SentenceTransformer(sys.argv[1], device="cpu")
model.encode(texts[:32], batch_size=32)
runs = []
for _ in range(int(sys.argv[4])):
    t = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    runs.append(time.perf_counter() - t)
print(statistics.median(runs))
"#;

const SKLEARN: &str = r#"
import sys, time, statistics, numpy as np, threadpoolctl
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
x = np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1, int(sys.argv[2]))
runs, inertia = [], None
with threadpoolctl.threadpool_limits(int(sys.argv[4])):
    for _ in range(int(sys.argv[5])):
        t = time.perf_counter()
        km = KMeans(n_clusters=int(sys.argv[3]), n_init=10, max_iter=300, tol=1e-4, random_state=0, algorithm="lloyd").fit(x)
        # amt's cluster also reports the silhouette (of all points, at this size)
        silhouette_score(x, km.labels_)
        runs.append(time.perf_counter() - t)
        inertia = km.inertia_
    # Untimed: the best of 10 inits is a draw, so compare its mean over seeds.
    seeds = [KMeans(n_clusters=int(sys.argv[3]), n_init=10, max_iter=300, tol=1e-4, random_state=s, algorithm="lloyd").fit(x).inertia_ for s in range(10)]
print(statistics.median(runs), inertia, statistics.mean(seeds))
"#;

/// linfa-clustering's k-means (cluster's before it had its own), same settings: its inertia.
fn linfa_kmeans(data: &ndarray::Array2<f64>, k: usize) -> f64 {
    use linfa::prelude::*;
    let rng = <rand_xoshiro::Xoshiro256Plus as rand_xoshiro::rand_core::SeedableRng>::seed_from_u64(0);
    let model = linfa_clustering::KMeans::params_with_rng(k, rng)
        .n_runs(10)
        .max_n_iterations(300)
        .tolerance(1e-4)
        .fit(&DatasetBase::from(data.clone()))
        .expect("linfa k-means");
    let labels = model.predict(data);
    data.rows()
        .into_iter()
        .zip(labels.iter())
        .map(|(row, &l)| {
            row.iter()
                .zip(model.centroids().row(l))
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
        })
        .sum()
}

fn main() {
    let threads: usize = std::env::var("AMT_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().expect("temp dir");

    println!(
        "# process benchmark: {} texts, {threads} threads, median of {RUNS} runs",
        texts.len()
    );
    println!();
    let encoder = Encoder::load(
        &model,
        device("cpu", threads).expect("cpu"),
        Pooling::Mean,
        true,
    )
    .expect("model");
    encoder.encode(&refs[..32], 32).expect("warm-up");
    let mut vectors = Vec::new();
    let ours = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                vectors = encoder.encode(&refs, 32).expect("encode").vectors;
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let texts_file = dir.path().join("texts.json");
    std::fs::write(&texts_file, serde_json::to_vec(&texts).expect("json")).expect("write");
    let theirs = python(
        ST,
        &[
            model.display().to_string(),
            threads.to_string(),
            texts_file.display().to_string(),
            RUNS.to_string(),
        ],
    )
    .and_then(|s| s.parse::<f64>().ok());
    let n = texts.len() as f64;
    println!("| embedding (all-MiniLM-L6-v2, CPU) | sentences/s |");
    println!("|---|---:|");
    println!("| amt (tch) | {:.0} |", n / ours);
    match theirs {
        Some(t) => {
            println!("| sentence-transformers | {:.0} |", n / t);
            println!();
            println!("amt / sentence-transformers: {:.2}×", t / ours);
        }
        None => println!("| sentence-transformers | not measured (set AMT_BENCH_REF_PYTHON) |"),
    }

    println!();
    println!(
        "| k-means, k = 16, 10 inits, on these {} × {} embeddings | seconds | inertia |",
        vectors.len(),
        vectors[0].len()
    );
    println!("|---|---:|---:|");
    let params = ClusterParams {
        k: Some(16),
        seed: 0,
        n_init: 10,
        max_iter: 300,
        ..ClusterParams::default()
    };
    // amt and linfa on the bench's threads, as scikit-learn is.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let mut inertia = 0.0;
    let ours = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                inertia = pool.install(|| cluster(&vectors, &params).expect("cluster").inertia);
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    println!("| amt (k-means and silhouette) | {:.3} | {inertia:.4} |", ours);
    let data = ndarray::Array2::from_shape_fn((vectors.len(), vectors[0].len()), |(i, j)| {
        f64::from(vectors[i][j])
    });
    let mut linfa_inertia = 0.0;
    let linfa = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                linfa_inertia = pool.install(|| linfa_kmeans(&data, 16));
                t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    println!("| linfa-clustering 0.8.1 (k-means, predict and inertia; float64) | {linfa:.3} | {linfa_inertia:.4} |");
    let raw = dir.path().join("x.f32");
    let mut f = std::fs::File::create(&raw).expect("create");
    for v in &vectors {
        for x in v {
            f.write_all(&x.to_le_bytes()).expect("write");
        }
    }
    drop(f);
    let sk = python(
        SKLEARN,
        &[
            raw.display().to_string(),
            vectors[0].len().to_string(),
            "16".into(),
            threads.to_string(),
            RUNS.to_string(),
        ],
    );
    match sk.as_deref().map(|s| {
        s.split_whitespace()
            .map(|x| x.parse::<f64>().unwrap_or(f64::NAN))
            .collect::<Vec<_>>()
    }) {
        Some(v) if v.len() == 3 => {
            println!(
                "| scikit-learn KMeans (lloyd) and silhouette_score, float32 | {:.3} | {:.4} |",
                v[0], v[1]
            );
            println!();
            println!(
                "amt is {:.2}× as fast as scikit-learn; inertia amt / scikit-learn: {:.4} (seed 0 each)",
                v[0] / ours,
                inertia / v[1]
            );
            let seeds: Vec<f64> = (0..10)
                .map(|seed| {
                    let p = ClusterParams { seed, ..params.clone() };
                    pool.install(|| cluster(&vectors, &p).expect("cluster").inertia)
                })
                .collect();
            let ours_mean = seeds.iter().sum::<f64>() / seeds.len() as f64;
            println!(
                "mean inertia over seeds 0-9 (best of 10 inits each): amt {ours_mean:.4}, \
                 scikit-learn {:.4}, amt / scikit-learn {:.4}",
                v[2],
                ours_mean / v[2]
            );
        }
        _ => println!("| scikit-learn KMeans | not measured (set AMT_BENCH_REF_PYTHON) | |"),
    }
}
