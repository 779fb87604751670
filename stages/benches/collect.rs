//! collect's throughput on the shared corpus (3913 files, 8.6 MB), in files/s
//! and MB/s, beside symusic measured in the same run on the same files.
//!
//! Run with `scripts/bench.sh collect`. symusic comes from the venv
//! (`AMT_BENCH_PYTHON`); without it only amt is measured, and the reference
//! README's figure (16,035 files/s for `symusic.Score(path)`) is shown instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use amt_stages::collect::{self, Params};

const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(f: impl Fn() -> T) -> Duration {
    let _ = f(); // warm-up, as the reference benchmark does
    median(
        (0..RUNS)
            .map(|_| {
                let s = Instant::now();
                std::hint::black_box(f());
                s.elapsed()
            })
            .collect(),
    )
}

fn symusic_seconds(python: &Path, corpus: &Path) -> Option<f64> {
    let script = r#"
import sys, time, pathlib, statistics, symusic
files = sorted(str(p) for p in pathlib.Path(sys.argv[1]).rglob('*') if p.suffix.lower() in ('.mid', '.midi'))
for f in files: symusic.Score(f)
runs = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    for f in files: symusic.Score(f)
    runs.append(time.perf_counter() - t)
print(statistics.median(runs))
"#;
    let out = Command::new(python)
        .args(["-c", script])
        .arg(corpus)
        .arg(RUNS.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn main() {
    let corpus = std::env::var_os("AMT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("corpus");
    let files = collect::find_midi_files(&corpus).expect("the shared corpus");
    let bytes: u64 = files
        .iter()
        .map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    let n = files.len() as f64;
    let mb = bytes as f64 / 1e6;
    let params = Params::default();

    let all_cores = time(|| collect::scan(&corpus, &params).expect("scan"));
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    let one_core = one.install(|| time(|| collect::scan(&corpus, &params).expect("scan")));

    println!(
        "# collect throughput: {} files, {:.2} MB, median of {RUNS} warm runs",
        files.len(),
        mb
    );
    println!();
    println!("| what | files/s | MB/s |");
    println!("|---|---:|---:|");
    let row = |what: &str, d: Duration| {
        println!(
            "| {what} | {:.0} | {:.1} |",
            n / d.as_secs_f64(),
            mb / d.as_secs_f64()
        );
    };
    row(
        &format!(
            "amt collect::scan, {} threads (walk, read, blake3, parse, features)",
            rayon::current_num_threads()
        ),
        all_cores,
    );
    row("amt collect::scan, 1 thread", one_core);
    let python = std::env::var_os("AMT_BENCH_PYTHON").map(PathBuf::from);
    match python.as_deref().and_then(|p| symusic_seconds(p, &corpus)) {
        Some(s) => {
            row(
                "symusic.Score(path), 1 thread, same run",
                Duration::from_secs_f64(s),
            );
            println!();
            println!(
                "amt/symusic: {:.2}× on 1 thread, {:.2}× on all threads",
                s / one_core.as_secs_f64(),
                s / all_cores.as_secs_f64()
            );
        }
        None => println!(
            "| symusic.Score(path), 1 thread, from shared/reference/README.md | 16035 | 35.0 |"
        ),
    }
}
