//! The Slurm executor against local execution, on the single-node test
//! cluster (`tests/common/slurm.rs` starts it on 127.0.0.1):
//!
//! - per-stage overhead: a chain of ten stages that each append a line, run
//!   with `--force` locally and as Slurm jobs, at two poll settings (each job
//!   must be submitted, scheduled, run by slurmd, and seen finished by the
//!   next `squeue` before its successor can be submitted);
//! - a 50-point sweep whose stage sleeps one second, with 1 and 4 points
//!   (hence jobs) in flight, as Slurm jobs and locally.
//!
//! Run with `scripts/bench.sh slurm` (a release build; needs slurm-wlm and
//! munge, which `scripts/test.sh` installs).

#[path = "../tests/common/slurm.rs"]
#[allow(dead_code)]
mod slurm;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn amt() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amt"))
}

/// Runs amt in `dir` against the test cluster; the wall time.
fn time(dir: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(amt())
        .args(args)
        .current_dir(dir)
        .envs(slurm::Cluster::get().env())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("spawn amt");
    assert!(out.status.success(), "amt {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    start.elapsed()
}

fn executor(poll: &str, poll_max: &str) -> String {
    format!("[executor.slurm]\npoll = \"{poll}\"\npoll_max = \"{poll_max}\"\n")
}

/// Ten stages in a line, each appending to its predecessor's output.
fn chain(executor: &str) -> String {
    let mut m = executor.to_owned();
    m.push_str("[stages.s0]\ncmd = \"echo 0 > s0.txt\"\nouts = [\"s0.txt\"]\n");
    for i in 1..CHAIN {
        m.push_str(&format!(
            "[stages.s{i}]\ncmd = \"cat s{p}.txt > s{i}.txt; echo {i} >> s{i}.txt\"\ndeps = [\"s{p}.txt\"]\nouts = [\"s{i}.txt\"]\n",
            p = i - 1
        ));
    }
    m
}

const CHAIN: usize = 10;
const POINTS: usize = 50;
const REPEATS: usize = 3;

/// One stage that sleeps a second per point of a 50-point sweep.
fn sweep(executor: &str) -> String {
    let values: Vec<String> = (0..POINTS).map(|i| i.to_string()).collect();
    format!(
        "{executor}[params]\np.x = 0\n\
         [stages.work]\ncmd = \"sleep 1; echo $AMT_PARAM_P_X > out.txt\"\nparams = [\"p\"]\nouts = [\"out.txt\"]\n\
         [sweeps.fifty]\ngrid = {{ \"p.x\" = [{}] }}\n",
        values.join(", ")
    )
}

fn project(manifest: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("amt.toml"), manifest).unwrap();
    dir
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    eprintln!("starting the test cluster …");
    slurm::Cluster::get();

    println!("## per-stage overhead: a chain of {CHAIN} stages, --force, median of {REPEATS}");
    println!("| executor | poll / poll_max | wall | per stage | overhead per stage |");
    println!("|---|---|---:|---:|---:|");
    let chain_wall = |exec: &str, kind: &str| {
        let p = project(&chain(exec));
        time(p.path(), &["run", "-q", "--executor", kind]);
        median((0..REPEATS).map(|_| time(p.path(), &["run", "-q", "--force", "--executor", kind]).as_secs_f64()).collect())
    };
    let local = chain_wall("", "local");
    println!("| local | – | {local:.2} s | {:.0} ms | – |", local * 1e3 / CHAIN as f64);
    for (poll, poll_max) in [("200ms", "1s"), ("1s", "5s")] {
        let wall = chain_wall(&executor(poll, poll_max), "slurm");
        println!(
            "| slurm | {poll} / {poll_max} | {wall:.2} s | {:.0} ms | {:.0} ms |",
            wall * 1e3 / CHAIN as f64,
            (wall - local) * 1e3 / CHAIN as f64
        );
    }

    println!();
    println!("## a {POINTS}-point sweep, one stage that sleeps 1 s per point (poll 200ms / 1s)");
    println!("| executor | points in flight | wall | vs 1 in flight |");
    println!("|---|---:|---:|---:|");
    for kind in ["slurm", "local"] {
        let mut one = 0.0;
        for jobs in [1, 4] {
            // A fresh project each time: the cache would otherwise restore every point.
            let p = project(&sweep(&executor("200ms", "1s")));
            let wall = time(p.path(), &["sweep", "-q", "--name", "fifty", "-j", &jobs.to_string(), "--executor", kind])
                .as_secs_f64();
            if jobs == 1 {
                one = wall;
            }
            println!("| {kind} | {jobs} | {wall:.1} s | {:.2}× faster |", one / wall);
        }
    }
}
