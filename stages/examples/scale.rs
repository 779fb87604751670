//! The helpers of `scripts/scale.sh`, the Lakh-size scaling benchmark:
//!
//! - `scale epoch PREPARE_DIR SIZE`: one epoch of train's data loading (read the
//!   train shard, build every batch of 16 as tensors); prints a result line.
//! - `scale collect PROJECT SIZE`: collect on the project's `data/corpus`
//!   in this process, timed as the peers are (no process start); prints a
//!   result line whose `who` is `amt, in process`.
//! - `scale export TEXTS_PARQUET EMBEDDINGS_PARQUET OUT_DIR`: the distinct
//!   texts (`texts.jsonl`) and the embeddings (`embeddings.f32`, row-major
//!   384-wide) for the Python peers, which have no Parquet reader.
//! - `scale ledger SIZE`: the stage executions of `amt runs --stages --json`
//!   (stdin) as result lines.
//! - `scale report RESULTS OUT_DIR`: the Markdown tables and the log-log
//!   plots (`scale-time.png`, `scale-memory.png`) from the result lines.
//!
//! A result line is `{"size", "stage", "who", "seconds", "peak_rss_kb"}`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use amt_stages::tokenizer::{Conditioning, Config, Token, Tokenizer};
use amt_stages::train::{TrainParams, Windows};
use amt_stages::train::data::{BatchOrder, ConditionDrop};

/// The `who` of a stage timed inside a process of its own, as the peers are.
const IN_PROCESS: &str = "amt, in process";

#[derive(Serialize, Deserialize)]
struct Measurement {
    size: u64,
    stage: String,
    who: String,
    seconds: f64,
    peak_rss_kb: Option<u64>,
}

/// This process's peak resident memory in KiB.
fn peak_rss_kb() -> u64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as u64
}

fn epoch(dir: &Path, size: u64) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let windows = Windows::read(&dir.join("train.parquet"))?;
    let tok = Tokenizer::new(Config::default());
    let pad = i64::from(tok.vocab.id(Token::Pad));
    let prefix = Conditioning::default().tokens(&tok.vocab).len();
    let batch = 16;
    let mut tokens = 0i64;
    let mut order = BatchOrder::new(windows.len(), batch, 0);
    // As train draws them, conditioning dropout included.
    let defaults = TrainParams::default();
    let drop = ConditionDrop::new(&tok.vocab, defaults.condition_drop, defaults.uncondition, 0);
    for index in 0..windows.len().div_ceil(batch) as u64 {
        let rows = order.rows(index);
        let (x, _) = windows.batch(&rows, prefix, pad, tch::Device::Cpu, Some((&drop, index)));
        tokens += x.numel() as i64;
    }
    eprintln!("epoch: {} windows, {tokens} input tokens", windows.len());
    let result = Measurement {
        size,
        stage: "train data, 1 epoch".into(),
        who: "amt".into(),
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_kb: Some(peak_rss_kb()),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// collect run in this process on the project's corpus, as the peers are
/// clocked: without the stage process's start (libtorch's static
/// initialisers are most of it). Its rayon pool takes `RAYON_NUM_THREADS`.
fn collect_in_process(project: &Path, size: u64) -> anyhow::Result<()> {
    let out = tempfile::tempdir_in(project)?;
    let ctx = amt_stages::StageContext::new(
        project.to_owned(),
        out.path().join("scratch"),
        serde_json::json!({"collect": {"max_file_mib": 64}}),
        serde_json::json!({"corpus": "data/corpus"}),
        serde_json::json!({"dir": out.path().join("collect")}),
    );
    let started = std::time::Instant::now();
    amt_stages::collect::run(&ctx)?;
    let result = Measurement {
        size,
        stage: "collect".into(),
        who: IN_PROCESS.into(),
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_kb: Some(peak_rss_kb()),
    };
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn export(texts: &Path, embeddings: &Path, out: &Path) -> anyhow::Result<()> {
    use amt_stages::table::{column, read_parquet};
    use arrow::array::StringArray;
    let mut distinct = BTreeSet::new();
    for batch in read_parquet(texts)? {
        let text = column::<StringArray>(&batch, "text", texts)?;
        distinct.extend(text.iter().flatten().map(str::to_owned));
    }
    let lines: Vec<String> = distinct
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("texts.jsonl"), lines.join("\n") + "\n")?;
    let mut raw = Vec::new();
    for (_, v) in amt_stages::embed::read_embeddings(embeddings)? {
        raw.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    }
    std::fs::write(out.join("embeddings.f32"), raw)?;
    Ok(())
}

#[derive(Deserialize)]
struct Execution {
    stage: String,
    duration_ms: i64,
    peak_rss_kb: Option<i64>,
    cache_hit: bool,
}

fn ledger(size: u64) -> anyhow::Result<()> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let rows: Vec<Execution> = serde_json::from_str(&text).context("amt runs --stages --json")?;
    for row in rows.iter().filter(|r| !r.cache_hit) {
        let result = Measurement {
            size,
            stage: row.stage.clone(),
            who: "amt".into(),
            seconds: row.duration_ms as f64 / 1e3,
            peak_rss_kb: row.peak_rss_kb.map(|k| k as u64),
        };
        println!("{}", serde_json::to_string(&result)?);
    }
    Ok(())
}

fn mib(kb: Option<u64>) -> String {
    kb.map_or("–".into(), |k| format!("{:.0}", k as f64 / 1024.0))
}

fn report(results: &Path, out: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(results)?;
    let rows: Vec<Measurement> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", results.display(), i + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    let sizes: BTreeSet<u64> = rows.iter().map(|r| r.size).collect();
    let order = |stage: &str| {
        [
            "collect",
            "describe",
            "embed",
            "cluster",
            "prepare",
            "train data, 1 epoch",
        ]
        .iter()
        .position(|s| *s == stage)
        .unwrap_or(99)
    };
    let mut stages: Vec<&str> = rows
        .iter()
        .filter(|r| r.who == "amt")
        .map(|r| r.stage.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    stages.sort_by_key(|s| order(s));
    let amt: BTreeMap<(&str, u64), &Measurement> = rows
        .iter()
        .filter(|r| r.who == "amt")
        .map(|r| ((r.stage.as_str(), r.size), r))
        .collect();

    print!("| stage |");
    for s in &sizes {
        print!(" {s} files: s | MiB |");
    }
    println!(
        " time ×, {} → {} |",
        sizes.first().unwrap_or(&0),
        sizes.last().unwrap_or(&0)
    );
    print!("|---|");
    for _ in &sizes {
        print!("---:|---:|");
    }
    println!("---:|");
    for stage in &stages {
        print!("| {stage} |");
        for &size in &sizes {
            match amt.get(&(*stage, size)) {
                Some(r) => print!(" {:.1} | {} |", r.seconds, mib(r.peak_rss_kb)),
                None => print!(" – | – |"),
            }
        }
        let first = sizes.first().and_then(|&s| amt.get(&(*stage, s)));
        let last = sizes.last().and_then(|&s| amt.get(&(*stage, s)));
        match (first, last) {
            (Some(a), Some(b)) if a.seconds > 0.0 => println!(" {:.0} |", b.seconds / a.seconds),
            _ => println!(" – |"),
        }
    }
    println!();
    println!("| stage, files | amt s | peer | peer s | peer s ÷ amt s | amt MiB | peer MiB |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    // A stage also timed in process is compared both ways.
    let in_process: BTreeMap<(&str, u64), &Measurement> = rows
        .iter()
        .filter(|r| r.who == IN_PROCESS)
        .map(|r| ((r.stage.as_str(), r.size), r))
        .collect();
    for r in rows.iter().filter(|r| !r.who.starts_with("amt")) {
        let key = (r.stage.as_str(), r.size);
        let Some(ours) = amt.get(&key) else {
            continue;
        };
        let line = |label: String, ours: &Measurement| {
            println!(
                "| {label}, {} | {:.2} | {} | {:.2} | **{:.2}×** | {} | {} |",
                r.size,
                ours.seconds,
                r.who,
                r.seconds,
                r.seconds / ours.seconds,
                mib(ours.peak_rss_kb),
                mib(r.peak_rss_kb)
            );
        };
        line(r.stage.clone(), ours);
        if let Some(inner) = in_process.get(&key) {
            line(format!("{} (amt in process)", r.stage), inner);
        }
    }

    let series = |value: &dyn Fn(&Measurement) -> Option<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
        stages
            .iter()
            .map(|stage| {
                let points = sizes
                    .iter()
                    .filter_map(|&size| {
                        let r = amt.get(&(*stage, size))?;
                        Some(((size as f64).log10(), value(r)?.max(1e-3).log10()))
                    })
                    .collect();
                ((*stage).to_owned(), points)
            })
            .collect()
    };
    std::fs::create_dir_all(out)?;
    for (file, title, y_label, s) in [
        (
            "scale-time.png",
            "amt's stages: wall time against corpus size (log-log)",
            "log10 seconds",
            series(&|r| Some(r.seconds)),
        ),
        (
            "scale-memory.png",
            "amt's stages: peak memory against corpus size (log-log)",
            "log10 MiB",
            series(&|r| r.peak_rss_kb.map(|k| k as f64 / 1024.0)),
        ),
    ] {
        let named: Vec<(&str, &[(f64, f64)])> =
            s.iter().map(|(n, p)| (n.as_str(), p.as_slice())).collect();
        amt_stages::plot::lines(&out.join(file), title, "log10 files", y_label, &named)?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["epoch", dir, size] => epoch(Path::new(dir), size.parse()?),
        ["collect", project, size] => collect_in_process(Path::new(project), size.parse()?),
        ["export", texts, embeddings, out] => {
            export(Path::new(texts), Path::new(embeddings), Path::new(out))
        }
        ["ledger", size] => ledger(size.parse()?),
        ["report", results, out] => report(Path::new(results), Path::new(out)),
        _ => bail!(
            "usage: scale epoch PREPARE_DIR SIZE | scale collect PROJECT SIZE | \
             scale export TEXTS EMBEDDINGS OUT | \
             scale ledger SIZE < runs.json | scale report RESULTS OUT_DIR"
        ),
    }
}
