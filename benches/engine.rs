//! The engine benchmark: no-op and incremental runs of synthetic pipelines,
//! timed for `amt run` and, in the same process, for DVC's `dvc repro` on the
//! very same files. It prints medians and the DVC/amt ratio for each case.
//!
//! Run it with `scripts/bench.sh`, which installs DVC into the venv. Without
//! DVC (`AMT_BENCH_DVC` unset and no `dvc` on PATH) only amt is measured.
//! `AMT_BENCH_RUNS` (default 10) and `AMT_BENCH_DVC_RUNS` (default 3) set the
//! repetitions; a case name given as an argument runs only matching cases.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use amt::digest::Digest;

/// One synthetic project, shared by both tools: amt writes `amt-out/`, DVC `dvc-out/`.
struct Case {
    name: &'static str,
    /// Target for amt from the issue, for the report.
    target: Duration,
    /// Creates the data and both pipeline files.
    build: fn(&Path),
    /// Changes something before each timed run, or nothing for a no-op.
    change: Option<fn(&Path, usize)>,
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let amt = PathBuf::from(env!("CARGO_BIN_EXE_amt"));
    let dvc = find_dvc();
    let runs = env_usize("AMT_BENCH_RUNS", 10);
    let dvc_runs = env_usize("AMT_BENCH_DVC_RUNS", 3);

    println!("# amt engine benchmark");
    println!();
    println!("machine: {} cores, load average {}", cores(), loadavg());
    match &dvc {
        Some(d) => println!("peer: {} ({})", version(d), d.display()),
        None => println!("peer: DVC not found (run scripts/bench.sh); measuring amt only"),
    }
    println!(
        "runs per case: amt {runs}, dvc {dvc_runs}; times are medians of wall-clock time per command"
    );
    println!();

    let cases = [
        Case {
            name: "no-op, small pipeline",
            target: ms(20),
            build: small_pipeline,
            change: None,
        },
        Case {
            name: "no-op, 10k-file dep",
            target: ms(50),
            build: |d| big_dep(d, 10_000),
            change: None,
        },
        Case {
            name: "no-op, 100k-file dep",
            target: ms(500),
            build: |d| big_dep(d, 100_000),
            change: None,
        },
        Case {
            name: "one changed file in a 100k-file dep",
            target: ms(1000),
            build: |d| big_dep(d, 100_000),
            change: Some(|d, i| {
                fs::write(d.join("data/d0000/f0000.txt"), format!("changed {i}\n")).expect("write")
            }),
        },
        Case {
            name: "no-op, 200 stages",
            target: ms(100),
            build: many_stages,
            change: None,
        },
    ];

    println!("| case | amt median | amt target | dvc median | dvc / amt |");
    println!("|---|---:|---:|---:|---:|");
    for case in cases
        .iter()
        .filter(|c| filter.is_empty() || filter.iter().any(|f| c.name.contains(f.as_str())))
    {
        let dir = tempfile::tempdir().expect("temp dir");
        (case.build)(dir.path());
        let amt_median = measure(
            runs,
            || {
                run(Command::new(&amt)
                    .args(["run", "-q"])
                    .current_dir(dir.path()))
            },
            case,
            dir.path(),
        );
        let dvc_median = dvc.as_ref().map(|d| {
            init_dvc(d, dir.path());
            measure(
                dvc_runs,
                || {
                    run(Command::new(d)
                        .args(["repro", "-q"])
                        .current_dir(dir.path()))
                },
                case,
                dir.path(),
            )
        });
        let (dvc_text, ratio) = match dvc_median {
            Some(m) => (
                fmt(m),
                format!("{:.0}×", m.as_secs_f64() / amt_median.as_secs_f64()),
            ),
            None => ("–".into(), "–".into()),
        };
        println!(
            "| {} | {} | ≤ {} | {dvc_text} | {ratio} |",
            case.name,
            fmt(amt_median),
            fmt(case.target)
        );
    }

    println!();
    hashing_throughput();
}

/// Builds once untimed (twice for amt, so freshly written files age into the
/// stat cache), then times `runs` runs, applying the case's change before each.
fn measure(
    runs: usize,
    mut command: impl FnMut() -> Duration,
    case: &Case,
    dir: &Path,
) -> Duration {
    command();
    std::thread::sleep(ms(150));
    command();
    let mut times: Vec<Duration> = (0..runs)
        .map(|i| {
            if let Some(change) = case.change {
                change(dir, i);
            }
            command()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("spawn");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn write(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, content).expect("write");
}

/// Three chained stages over small files.
fn small_pipeline(d: &Path) {
    write(&d.join("data/input.txt"), "1\n2\n3\n");
    let stages = [
        ("a", "data/input.txt", "a.txt"),
        ("b", "OUT/a.txt", "b.txt"),
        ("c", "OUT/b.txt", "c.txt"),
    ];
    pipeline(
        d,
        &stages.map(|(n, dep, out)| (n.to_owned(), vec![dep.to_owned()], out.to_owned())),
    );
}

/// One stage that reads a directory of `n` files (100 per folder).
fn big_dep(d: &Path, n: usize) {
    for i in 0..n {
        write(
            &d.join(format!("data/d{:04}/f{:04}.txt", i / 100, i % 100)),
            &format!("file {i}\n"),
        );
    }
    pipeline(
        d,
        &[(
            "count".to_owned(),
            vec!["data".to_owned()],
            "count.txt".to_owned(),
        )],
    );
}

/// 200 stages in 20 chains of 10, each with its own source file.
fn many_stages(d: &Path) {
    let stages: Vec<(String, Vec<String>, String)> = (0..200)
        .map(|i| {
            write(&d.join(format!("src/{i}.txt")), &format!("{i}\n"));
            let mut deps = vec![format!("src/{i}.txt")];
            if i % 10 != 0 {
                deps.push(format!("OUT/{}.txt", i - 1));
            }
            (format!("s{i:03}"), deps, format!("{i}.txt"))
        })
        .collect();
    pipeline(d, &stages);
}

/// Writes the same stages as `amt.toml` and `dvc.yaml`. `OUT/` in a dep means
/// the tool's own output folder. Each command copies its deps' first line.
fn pipeline(d: &Path, stages: &[(String, Vec<String>, String)]) {
    let mut toml = String::new();
    let mut yaml = String::from("stages:\n");
    for (name, deps, out) in stages {
        for (tool, text) in [("amt", &mut toml), ("dvc", &mut yaml)] {
            let deps: Vec<String> = deps
                .iter()
                .map(|p| p.replace("OUT/", &format!("{tool}-out/")))
                .collect();
            let out = format!("{tool}-out/{out}");
            let first = &deps[0];
            let cmd = if first == "data" {
                format!("mkdir -p {tool}-out && ls -R data | wc -l > {out}")
            } else {
                format!(
                    "mkdir -p {tool}-out && head -n 1 {} > {out}",
                    deps.join(" ")
                )
            };
            if tool == "amt" {
                let list = deps
                    .iter()
                    .map(|p| format!("{p:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                text.push_str(&format!(
                    "[stages.{name}]\ncmd = {cmd:?}\ndeps = [{list}]\nouts = [{out:?}]\n\n"
                ));
            } else {
                let list = deps
                    .iter()
                    .map(|p| format!("      - {p}\n"))
                    .collect::<String>();
                text.push_str(&format!(
                    "  {name}:\n    cmd: {cmd}\n    deps:\n{list}    outs:\n      - {out}\n"
                ));
            }
        }
    }
    write(&d.join("amt.toml"), &toml);
    write(&d.join("dvc.yaml"), &yaml);
}

fn init_dvc(dvc: &Path, dir: &Path) {
    run(Command::new(dvc)
        .args(["init", "--no-scm", "-q"])
        .current_dir(dir));
    run(Command::new(dvc)
        .args(["config", "core.analytics", "false"])
        .current_dir(dir));
}

/// blake3 through amt's own file hashing, streaming and memory-mapped paths.
fn hashing_throughput() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data: Vec<u8> = (0..256usize << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let start = Instant::now();
    let _ = Digest::of_bytes(&data);
    let in_memory = start.elapsed();

    let big = dir.path().join("big.bin");
    fs::write(&big, &data).expect("write");
    let _ = Digest::of_file(&big); // warm the page cache
    let mut file_times: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let _ = Digest::of_file(&big).expect("hash");
            start.elapsed()
        })
        .collect();
    file_times.sort();

    let small_dir = dir.path().join("small");
    fs::create_dir_all(&small_dir).expect("mkdir");
    for i in 0..10_000 {
        fs::write(
            small_dir.join(format!("{i}")),
            &data[i * 4096..(i + 1) * 4096],
        )
        .expect("write");
    }
    let start = Instant::now();
    for i in 0..10_000 {
        let _ = Digest::of_file(&small_dir.join(format!("{i}"))).expect("hash");
    }
    let small = start.elapsed();

    let gbs = |bytes: usize, d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
    println!("blake3 throughput (256 MiB, page cache warm):");
    println!(
        "- in memory, one thread: {:.2} GB/s",
        gbs(data.len(), in_memory)
    );
    println!(
        "- file, memory-mapped on all cores (median of 5): {:.2} GB/s",
        gbs(data.len(), file_times[2])
    );
    println!(
        "- 10,000 files of 4 KiB, one thread: {:.0} files/s",
        10_000.0 / small.as_secs_f64()
    );
}

fn find_dvc() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AMT_BENCH_DVC") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("dvc"))
            .find(|p| p.exists())
    })
}

fn version(dvc: &Path) -> String {
    Command::new(dvc)
        .arg("--version")
        .output()
        .map(|o| format!("DVC {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|_| "DVC (unknown version)".into())
}

fn env_usize(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn fmt(d: Duration) -> String {
    if d < ms(1000) {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}
