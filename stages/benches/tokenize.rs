//! Tokenizer throughput (pieces/s) on the shared corpus, beside miditok's REMI
//! on the same files in the same run (from the bench venv, `AMT_BENCH_PYTHON`).
//! Both read the file, parse it and tokenize it, on one thread.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use amt_stages::collect::find_midi_files;
use amt_stages::midi::{self, features};
use amt_stages::tokenizer::{Conditioning, Config, Tokenizer};

const RUNS: usize = 3;

const MIDITOK: &str = r#"
import sys, time, pathlib, statistics
from miditok import REMI, TokenizerConfig
from symusic import Score
files = sorted(str(p) for p in pathlib.Path(sys.argv[1]).rglob('*') if p.suffix.lower() in ('.mid', '.midi'))
tok = REMI(TokenizerConfig(use_programs=True, use_tempos=True, use_time_signatures=True))
for f in files[:50]: tok.encode(Score(f))
runs = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    for f in files: tok.encode(Score(f))
    runs.append(time.perf_counter() - t)
print(statistics.median(runs))
"#;

fn main() {
    let corpus = std::env::var_os("AMT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("corpus");
    let files = find_midi_files(&corpus).expect("the shared corpus");
    let tok = Tokenizer::new(Config::default());
    let run = || {
        let mut tokens = 0usize;
        for (_, path) in &files {
            let score = midi::parse(&std::fs::read(path).expect("read")).expect("parse");
            let cond = Conditioning::from_features(
                &features(&score),
                None,
                tok.vocab.config.prefix_instruments,
            );
            tokens += tok.encode(&score, &cond).len();
        }
        tokens
    };
    let tokens = run();
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(run());
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let ours = times[RUNS / 2];
    let n = files.len() as f64;
    println!(
        "# tokenizer throughput: {} pieces, {tokens} tokens, 1 thread, median of {RUNS} runs",
        files.len()
    );
    println!();
    println!("| tokenizer (read + parse + tokenize) | pieces/s |");
    println!("|---|---:|");
    println!("| amt REMI+ | {:.0} |", n / ours);
    let theirs = std::env::var_os("AMT_BENCH_PYTHON").and_then(|py| {
        let out = Command::new(py)
            .args(["-c", MIDITOK])
            .arg(&corpus)
            .arg(RUNS.to_string())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("miditok failed: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<f64>()
            .ok()
    });
    match theirs {
        Some(t) => {
            println!(
                "| miditok 3.1.0 REMI (symusic), same files | {:.0} |",
                n / t
            );
            println!();
            println!("amt / miditok: {:.1}×", t / ours);
        }
        None => println!("| miditok REMI | not measured (set AMT_BENCH_PYTHON) |"),
    }
}
