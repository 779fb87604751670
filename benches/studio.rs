//! The studio under load: N clients each sending `POST /api/generate` back to
//! back for a fixed time against one `amt serve` (release build, 2 workers,
//! queue 16) on the demo's model. Every answer is checked (a 200 carries the
//! piece asked for, the same as when asked alone; a 429 says when to retry),
//! and the table gives throughput (pieces, and tokens counting each piece's
//! conditioning prefix) and p50/p95 latency per client count.
//! There is no peer to compare with: these are absolute numbers for this
//! machine.
//!
//! Run with `scripts/bench.sh studio` (it trains the demo's model for 40
//! steps first, about a minute).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SECONDS: u64 = 20;
const CLIENTS: [usize; 4] = [1, 2, 4, 8];
const MAX_TOKENS: usize = 256;

fn amt() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amt"))
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(project: &Path) -> Server {
    let mut child = Command::new(amt())
        .arg("-C")
        .arg(project)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--queue",
            "16",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("amt serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .trim_start_matches("amt studio: ")
        .trim_end_matches('/')
        .to_owned();
    Server(child, url)
}

fn request(client: usize, n: usize) -> Value {
    // Unguided, as the figures in BENCHMARKS.md were measured (guidance 2,
    // the default, costs a second forward pass per token).
    json!({"text": format!("a lively reel for fiddle, take {client}"), "seed": n, "max_tokens": MAX_TOKENS, "guidance": 1.0})
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    for sub in ["data/corpus", "demo"] {
        let parent = p.join(sub).parent().unwrap().to_owned();
        std::fs::create_dir_all(&parent).unwrap();
        assert!(
            Command::new("cp")
                .arg("-r")
                .arg(repo.join(sub))
                .arg(&parent)
                .status()
                .unwrap()
                .success()
        );
    }
    let manifest = std::fs::read_to_string(repo.join("amt.toml")).unwrap();
    assert!(manifest.contains("train.steps = 600"), "the demo's train.steps changed; update this bench");
    let manifest = manifest.replacen("train.steps = 600", "train.steps = 40", 1);
    std::fs::write(p.join("amt.toml"), manifest).unwrap();
    std::fs::create_dir_all(p.join("models")).unwrap();
    std::os::unix::fs::symlink(
        repo.join("models/all-MiniLM-L6-v2").canonicalize().unwrap(),
        p.join("models/all-MiniLM-L6-v2"),
    )
    .unwrap();
    eprintln!("training the demo's model for 40 steps…");
    let trained = Command::new(amt())
        .arg("-C")
        .arg(p)
        .args(["-q", "run", "train"])
        .status()
        .unwrap();
    assert!(trained.success());

    let server = serve(p);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let url = format!("{}/api/generate", server.1);
    // What each request must answer, asked alone.
    let reference = |client: usize, n: usize| -> Value {
        let r = http.post(&url).json(&request(client, n)).send().unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().unwrap()["notes"].clone()
    };
    let expected: Vec<Value> = (0..8).map(|c| reference(c, 0)).collect();

    println!(
        "| clients | answered | refused (429) | pieces/s | tokens/s | p50 s | p95 s | max s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for clients in CLIENTS {
        let until = Instant::now() + Duration::from_secs(SECONDS);
        let started = Instant::now();
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let url = url.clone();
                let expected = expected[c].clone();
                std::thread::spawn(move || {
                    let http = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(600))
                        .build()
                        .unwrap();
                    let (mut latencies, mut refused, mut n, mut tokens) =
                        (Vec::new(), 0usize, 0usize, 0u64);
                    while Instant::now() < until {
                        // Every fourth request is the checked one (seed 0).
                        let seed = if n % 4 == 0 { 0 } else { n };
                        n += 1;
                        let t0 = Instant::now();
                        let r = http
                            .post(&url)
                            .json(&request(c, seed))
                            .send()
                            .expect("no request is lost");
                        match r.status().as_u16() {
                            200 => {
                                let piece: Value = r.json().unwrap();
                                assert_eq!(piece["text"], request(c, seed)["text"]);
                                tokens += piece["tokens"].as_u64().unwrap();
                                if seed == 0 {
                                    assert_eq!(
                                        piece["notes"], expected,
                                        "answered wrongly under load"
                                    );
                                }
                                latencies.push(t0.elapsed());
                            }
                            429 => {
                                let wait: u64 = r.headers()["retry-after"]
                                    .to_str()
                                    .unwrap()
                                    .parse()
                                    .unwrap();
                                refused += 1;
                                std::thread::sleep(Duration::from_secs(wait.min(2)));
                            }
                            other => panic!("status {other}: {}", r.text().unwrap()),
                        }
                    }
                    (latencies, refused, tokens)
                })
            })
            .collect();
        let (mut all, mut refused, mut tokens) = (Vec::new(), 0, 0);
        for t in threads {
            let (l, r, k) = t.join().unwrap();
            all.extend(l);
            refused += r;
            tokens += k;
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort();
        let pct = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize].as_secs_f64();
        println!(
            "| {clients} | {} | {refused} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
            all.len(),
            all.len() as f64 / elapsed,
            tokens as f64 / elapsed,
            pct(0.5),
            pct(0.95),
            pct(1.0)
        );
    }
}
