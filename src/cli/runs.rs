//! `amt runs`: pipeline runs and sweep points from the ledger, with the params
//! that differ between them and their metrics; `--stages` lists single stage
//! executions instead. Markdown, or JSON with `--json`.

use std::collections::{BTreeMap, BTreeSet};

use amt::ledger::{Ledger, PipelineRun, RunRow};
use amt::project::Project;

use super::{Failure, Ui};

#[derive(clap::Args)]
pub struct Args {
    /// Only this sweep's points (or, with --stages, this stage's executions).
    #[arg(long, value_name = "NAME")]
    sweep: Option<String>,
    /// Only the newest N.
    #[arg(long, value_name = "N")]
    last: Option<usize>,
    /// List stage executions (stage, action key, cache hit, peak memory) instead.
    #[arg(long)]
    stages: bool,
    /// With --stages: only this stage.
    #[arg(long, value_name = "STAGE", requires = "stages")]
    stage: Option<String>,
}

/// Numeric leaves of a JSON value as `prefix.a.b` → number, in key order.
pub fn numeric_leaves(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
    match v {
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                out.insert(prefix.to_owned(), f);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                numeric_leaves(&format!("{prefix}.{k}"), v, out);
            }
        }
        _ => {}
    }
}

/// A run's metrics flattened: `<file stem>.<key path>` → number.
pub fn metric_values(run: &PipelineRun) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (path, v) in &run.metrics {
        let stem = std::path::Path::new(path)
            .file_stem()
            .map_or_else(|| path.clone(), |s| s.to_string_lossy().into_owned());
        numeric_leaves(&stem, v, &mut out);
    }
    out
}

/// A number with at most six significant decimals, trailing zeros trimmed.
pub fn fmt_number(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

fn param_text(v: Option<&serde_json::Value>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The runs as a Markdown table: the params that differ between them, then every metric.
pub fn table(runs: &[PipelineRun]) -> String {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.params.keys()).collect();
    let varying: Vec<&String> = keys
        .into_iter()
        .filter(|k| {
            runs.iter()
                .map(|r| param_text(r.params.get(*k)))
                .collect::<BTreeSet<_>>()
                .len()
                > 1
        })
        .collect();
    let metrics: Vec<BTreeMap<String, f64>> = runs.iter().map(metric_values).collect();
    let names: BTreeSet<&String> = metrics.iter().flat_map(|m| m.keys()).collect();
    let mut head = vec![
        "run".to_owned(),
        "sweep".into(),
        "status".into(),
        "duration".into(),
    ];
    head.extend(varying.iter().map(|k| k.to_string()));
    head.extend(names.iter().map(|k| k.to_string()));
    let mut out = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
    for (r, m) in runs.iter().zip(&metrics) {
        let mut cells = vec![
            r.run.clone(),
            r.sweep.clone().unwrap_or_else(|| "-".into()),
            r.status.to_string(),
            super::output::human_duration(std::time::Duration::from_millis(
                r.duration_ms.max(0) as u64
            )),
        ];
        cells.extend(varying.iter().map(|k| param_text(r.params.get(*k))));
        cells.extend(
            names
                .iter()
                .map(|k| m.get(*k).map_or_else(|| "-".into(), |x| fmt_number(*x))),
        );
        out += &format!("| {} |\n", cells.join(" | "));
    }
    out
}

/// Prints pipeline runs (of one sweep, or all).
pub fn print_runs(
    project: &Project,
    sweep: Option<&str>,
    last: Option<usize>,
    ui: Ui,
) -> Result<(), Failure> {
    let runs = Ledger::new(&project.cache_dir())
        .pipeline_runs(sweep, last)
        .map_err(|e| Failure::Other(e.into()))?;
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&runs).map_err(|e| Failure::Other(e.into()))?
        );
    } else if runs.is_empty() {
        println!(
            "no runs recorded yet (the ledger is {})",
            project.cache_dir().join(amt::ledger::FILE).display()
        );
    } else {
        print!("{}", table(&runs));
    }
    Ok(())
}

fn executions_table(rows: &[RunRow]) -> String {
    let mut out = String::from(
        "| invocation | stage | status | cache hit | duration | peak memory | action key | params |\n",
    );
    out += "|---|---|---|---|---|---|---|---|\n";
    for r in rows {
        let memory = r
            .peak_rss_kb
            .map_or_else(|| "-".into(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0));
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | `{}` |\n",
            r.invocation,
            r.stage,
            r.status,
            if r.cache_hit { "yes" } else { "no" },
            super::output::human_duration(std::time::Duration::from_millis(
                r.duration_ms.max(0) as u64
            )),
            memory,
            &r.action_key[..r.action_key.len().min(12)],
            r.params
        );
    }
    out
}

pub fn run(project: &Project, args: Args, ui: Ui) -> Result<(), Failure> {
    if !args.stages {
        return print_runs(project, args.sweep.as_deref(), args.last, ui);
    }
    if let Some(s) = &args.stage
        && project.pipeline.stage(s).is_none()
    {
        return Err(Failure::Input(anyhow::anyhow!("no stage is called `{s}`")));
    }
    let rows = Ledger::new(&project.cache_dir())
        .rows(args.stage.as_deref(), args.last)
        .map_err(|e| Failure::Other(e.into()))?;
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Failure::Other(e.into()))?
        );
    } else if rows.is_empty() {
        println!(
            "no stage has run yet (the ledger is {})",
            project.cache_dir().join(amt::ledger::FILE).display()
        );
    } else {
        print!("{}", executions_table(&rows));
    }
    Ok(())
}
