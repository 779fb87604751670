//! CPU shares: two libtorch jobs side by side on this machine, with each
//! sized to its share (`cpus = 1`, one thread each: what amt does now),
//! without shares (each sized to the whole machine: what amt did before),
//! and one after the other with the whole machine each. The pairs are the
//! demo's train stage twice (two seeds, as two sweep points would be) and
//! two `amt generate` samplers.
//!
//! Run with `scripts/bench.sh shares` (a release build of amt and amt-stage;
//! it prepares the demo's data and a model once, about two minutes).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn amt() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amt"))
}

fn run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().expect("spawn");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    start.elapsed()
}

/// Training steps per run: about 15 s alone with both cores.
const STEPS: u32 = 40;
const CORES: usize = 2;

/// The demo project with two more train stages (the same work, into other
/// outputs), each with `cpus` as given, all with `train.threads` as given.
fn manifest(repo: &Path, cpus: u32, threads: u32) -> String {
    let base = std::fs::read_to_string(repo.join("amt.toml")).unwrap();
    assert!(base.contains("train.steps = 600"), "the demo's train.steps changed; update this bench");
    let train = base
        .split("[stages.train]")
        .nth(1)
        .and_then(|t| t.split("\n[").next())
        .expect("the demo has a train stage")
        .to_owned();
    let mut m = base
        .replacen("train.steps = 600", &format!("train.steps = {STEPS}"), 1)
        .replacen("[params]\n", &format!("[params]\ntrain.threads = {threads}\n"), 1);
    for name in ["train_a", "train_b"] {
        let stage = train
            .replace("artifacts/train", &format!("artifacts/{name}"))
            .replace("metrics = [\"artifacts/metrics/train.json\"]", "")
            .replace("cpus = 2", &format!("cpus = {cpus}"));
        m.push_str(&format!("\n[stages.{name}]{stage}\n"));
    }
    m
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    for sub in ["data/corpus", "demo"] {
        let parent = p.join(sub).parent().unwrap().to_owned();
        std::fs::create_dir_all(&parent).unwrap();
        let status = Command::new("cp").arg("-r").arg(repo.join(sub)).arg(&parent).status().unwrap();
        assert!(status.success());
    }
    std::fs::create_dir_all(p.join("models")).unwrap();
    std::os::unix::fs::symlink(
        repo.join("models/all-MiniLM-L6-v2").canonicalize().expect("scripts/setup.sh links the encoder"),
        p.join("models/all-MiniLM-L6-v2"),
    )
    .unwrap();
    std::fs::write(p.join("amt.toml"), manifest(repo, 2, 0)).unwrap();
    eprintln!("preparing the demo's data and a model …");
    run(Command::new(amt()).args(["run", "-q", "train"]).current_dir(p));

    // Two training runs of the same work: what differs is only how they
    // share the cores. `threads = 0` means the stage's share (`cpus`).
    let pair = |cpus: u32, threads: u32, jobs: usize| {
        std::fs::write(p.join("amt.toml"), manifest(repo, cpus, threads)).unwrap();
        run(Command::new(amt())
            .args(["run", "-q", "--force", "-j", &jobs.to_string(), "train_a", "train_b"])
            .current_dir(p))
        .as_secs_f64()
    };
    let shares = pair(1, 0, CORES);
    let without = pair(1, CORES as u32, CORES);
    let sequential = pair(CORES as u32, 0, CORES);

    // Two samplers side by side, as two `amt generate` calls (or two studio
    // requests) would be.
    let sample = |threads: usize, together: bool| {
        let sampler = |seed: usize| {
            let mut c = Command::new(amt());
            c.args(["generate", "--text", "a lively reel in D major", "--num", "4", "--max-tokens", "512"])
                .args(["--seed", &seed.to_string(), "--threads", &threads.to_string()])
                .args(["--out", &format!("g{seed}.mid"), "--model", "artifacts/train"])
                .current_dir(p)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            c
        };
        let start = Instant::now();
        if together {
            let children: Vec<_> = (0..2).map(|s| sampler(s).spawn().unwrap()).collect();
            for c in children {
                let out = c.wait_with_output().unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            }
        } else {
            for s in 0..2 {
                run(&mut sampler(s));
            }
        }
        start.elapsed().as_secs_f64()
    };
    let gen_shares = sample(1, true);
    let gen_without = sample(CORES, true);
    let gen_sequential = sample(CORES, false);

    println!("| pair on {CORES} cores | with shares | without (each sized to the machine) | one after the other | without / with | sequential / with |");
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| two train stages, {STEPS} steps each (`-j {CORES}`) | {shares:.1} s | {without:.1} s | {sequential:.1} s | {:.2}× | {:.2}× |",
        without / shares,
        sequential / shares
    );
    println!(
        "| two `amt generate`, 4 × 512 tokens each | {gen_shares:.1} s | {gen_without:.1} s | {gen_sequential:.1} s | {:.2}× | {:.2}× |",
        gen_without / gen_shares,
        gen_sequential / gen_shares
    );
}
