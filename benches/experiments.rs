//! Sweeps and the remote cache: the overhead amt adds per sweep point (target
//! ≤ 100 ms; DVC's `dvc exp run` is measured on the same pipeline in the same
//! run when it is installed), and push/pull throughput for many small objects
//! through a directory remote and, when `AMT_MOTO_SERVER` names moto's server,
//! through S3.
//!
//! Run with `scripts/bench.sh experiments`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/common/moto.rs"]
#[allow(dead_code)]
mod moto;

const POINTS: usize = 20;
const OBJECTS: usize = 2000;

fn amt() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amt"))
}

fn run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    start.elapsed()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

const SWEEP: &str = r#"
[params]
x = 0

[stages.shared]
cmd = "mkdir -p out && cat data/*.txt > out/shared.txt"
deps = ["data"]
outs = ["out/shared.txt"]

[stages.point]
cmd = "echo $AMT_PARAM_X >> out/point.txt && cat out/shared.txt >> out/point.txt"
deps = ["out/shared.txt"]
params = ["x"]
outs = ["out/point.txt"]
"#;

fn sweep_project(dir: &Path) {
    std::fs::write(dir.join("amt.toml"), SWEEP).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for i in 0..50 {
        std::fs::write(dir.join(format!("data/{i}.txt")), format!("row {i}\n")).unwrap();
    }
}

/// Seconds per point of `amt sweep` with POINTS fresh points, run one at a time.
fn amt_sweep() -> f64 {
    let values: Vec<String> = (1..=POINTS).map(|i| i.to_string()).collect();
    let times: Vec<f64> = (0..3)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            sweep_project(dir.path());
            run(Command::new(amt())
                .args(["run", "-q", "shared"])
                .current_dir(dir.path()));
            let t = run(Command::new(amt())
                .args([
                    "sweep",
                    "-q",
                    "--jobs",
                    "1",
                    "-S",
                    &format!("x={}", values.join(",")),
                ])
                .current_dir(dir.path()));
            t.as_secs_f64() / POINTS as f64
        })
        .collect();
    median(times)
}

/// Seconds per `dvc exp run -S x=N` on the same pipeline, if DVC is installed.
fn dvc_exp() -> Option<f64> {
    let dvc = std::env::var_os("AMT_BENCH_DVC")
        .map(PathBuf::from)
        .filter(|p| p.exists())?;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sweep_project(d);
    std::fs::write(d.join("params.yaml"), "x: 0\n").unwrap();
    std::fs::write(
        d.join("dvc.yaml"),
        "stages:\n  shared:\n    cmd: mkdir -p out && cat data/*.txt > out/shared.txt\n    deps: [data]\n    outs: [out/shared.txt]\n  point:\n    cmd: echo ${x} >> out/point.txt && cat out/shared.txt >> out/point.txt\n    deps: [out/shared.txt]\n    params: [x]\n    outs: [out/point.txt]\n",
    )
    .unwrap();
    let git = |args: &[&str]| run(Command::new("git").args(args).current_dir(d));
    git(&["init", "-q"]);
    git(&["config", "user.email", "bench@example.com"]);
    git(&["config", "user.name", "bench"]);
    run(Command::new(&dvc).args(["init", "-q"]).current_dir(d));
    run(Command::new(&dvc)
        .args(["config", "core.analytics", "false"])
        .current_dir(d));
    run(Command::new(&dvc).args(["repro", "-q"]).current_dir(d));
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "init"]);
    let times: Vec<f64> = (1..=3)
        .map(|x| {
            run(Command::new(&dvc)
                .args(["exp", "run", "-q", "-S", &format!("x={x}")])
                .current_dir(d))
            .as_secs_f64()
        })
        .collect();
    Some(median(times))
}

const OBJECTS_PIPELINE: &str = r#"
[stages.many]
cmd = "mkdir -p out/many && for i in $(seq 1 2000); do head -c 1024 /dev/urandom > out/many/$i.bin; done"
outs = ["out/many"]
"#;

/// (push, pull) objects per second through `url`.
fn transfer(url: &str, env: &[(String, String)]) -> (f64, f64) {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("amt.toml"), OBJECTS_PIPELINE).unwrap();
    run(Command::new(amt())
        .args(["run", "-q"])
        .current_dir(src.path()));
    let push = run(Command::new(amt())
        .args(["push", "-q", "--remote", url])
        .envs(env.iter().cloned())
        .current_dir(src.path()));
    let dst = tempfile::tempdir().unwrap();
    std::fs::write(dst.path().join("amt.toml"), OBJECTS_PIPELINE).unwrap();
    let pull = run(Command::new(amt())
        .args(["pull", "-q", "--remote", url])
        .envs(env.iter().cloned())
        .current_dir(dst.path()));
    let n = (OBJECTS + 1) as f64; // the files and the directory's manifest
    (n / push.as_secs_f64(), n / pull.as_secs_f64())
}

fn main() {
    println!("# sweeps and the remote cache\n");
    let per_point = amt_sweep();
    println!(
        "| sweep ({POINTS} points, a shared stage and a per-point stage) | seconds per point |"
    );
    println!("|---|---:|");
    println!("| amt sweep --jobs 1 | {:.3} (target ≤ 0.100) |", per_point);
    match dvc_exp() {
        Some(d) => {
            println!("| dvc exp run -S | {d:.3} |");
            println!("\nDVC / amt per point: {:.0}×", d / per_point);
        }
        None => println!("| dvc exp run -S | not measured (set AMT_BENCH_DVC) |"),
    }

    println!("\n| remote ({OBJECTS} objects of 1 KiB) | push objects/s | pull objects/s |");
    println!("|---|---:|---:|");
    let dir = tempfile::tempdir().unwrap();
    let (push, pull) = transfer(&dir.path().display().to_string(), &[]);
    println!("| directory | {push:.0} | {pull:.0} |");
    match moto::Moto::from_env("bench") {
        Some(server) => {
            let (push, pull) = transfer("s3://bench/cache", &server.env());
            println!("| S3 (moto on 127.0.0.1) | {push:.0} | {pull:.0} |");
        }
        None => println!("| S3 (moto) | not measured (set AMT_MOTO_SERVER) |"),
    }
}
