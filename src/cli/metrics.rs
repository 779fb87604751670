//! `amt metrics diff [A] [B]`: two runs' params and metrics side by side.
//! A and B are run ids from `amt runs` (an invocation, or a sweep point);
//! by default the two newest runs.

use std::collections::BTreeSet;

use amt::ledger::{Ledger, PipelineRun};
use amt::project::Project;
use serde_json::json;

use super::runs::{fmt_number, metric_values};
use super::{Failure, Ui};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Compare two runs' params and metrics.
    Diff {
        /// The first run (default: the second newest).
        a: Option<String>,
        /// The second run (default: the newest).
        b: Option<String>,
    },
}

fn find(runs: &[PipelineRun], id: &str) -> Result<PipelineRun, Failure> {
    // A point can run more than once; its newest run counts.
    runs.iter()
        .rev()
        .find(|r| r.run == id || r.run.starts_with(id))
        .cloned()
        .ok_or_else(|| {
            Failure::Input(anyhow::anyhow!(
                "no run `{id}` in the ledger (see `amt runs`)"
            ))
        })
}

pub fn run(project: &Project, command: Command, ui: Ui) -> Result<(), Failure> {
    let Command::Diff { a, b } = command;
    let runs = Ledger::new(&project.cache_dir())
        .pipeline_runs(None, None)
        .map_err(|e| Failure::Other(e.into()))?;
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (find(&runs, &a)?, find(&runs, &b)?),
        (Some(a), None) => (
            find(&runs, &a)?,
            runs.last()
                .cloned()
                .ok_or_else(|| Failure::Input(anyhow::anyhow!("the ledger has no runs")))?,
        ),
        (None, _) if runs.len() >= 2 => {
            (runs[runs.len() - 2].clone(), runs[runs.len() - 1].clone())
        }
        (None, _) => {
            return Err(Failure::Input(anyhow::anyhow!(
                "the ledger has fewer than two runs to compare"
            )));
        }
    };
    let keys: BTreeSet<&String> = a.params.keys().chain(b.params.keys()).collect();
    let params: Vec<(&String, String, String)> = keys
        .into_iter()
        .filter(|k| a.params.get(*k) != b.params.get(*k))
        .map(|k| {
            (
                k,
                a.params.get(k).map_or("-".into(), |v| v.to_string()),
                b.params.get(k).map_or("-".into(), |v| v.to_string()),
            )
        })
        .collect();
    let (ma, mb) = (metric_values(&a), metric_values(&b));
    let names: BTreeSet<&String> = ma.keys().chain(mb.keys()).collect();
    if ui.json {
        let metrics: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .map(|k| {
                let (x, y) = (ma.get(*k).copied(), mb.get(*k).copied());
                let delta = x.zip(y).map(|(x, y)| y - x);
                ((*k).clone(), json!({ "a": x, "b": y, "change": delta }))
            })
            .collect();
        let p: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|(k, x, y)| ((*k).clone(), json!({ "a": x, "b": y })))
            .collect();
        let doc = json!({ "a": a.run, "b": b.run, "params": p, "metrics": metrics });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| Failure::Other(e.into()))?
        );
        return Ok(());
    }
    let mut out = format!("| | {} | {} | change |\n|---|---|---|---|\n", a.run, b.run);
    for (k, x, y) in &params {
        out += &format!("| param {k} | {x} | {y} | |\n");
    }
    for k in names {
        let (x, y) = (ma.get(k), mb.get(k));
        let delta = match (x, y) {
            (Some(x), Some(y)) => {
                let d = y - x;
                if d > 0.0 {
                    format!("+{}", fmt_number(d))
                } else {
                    fmt_number(d)
                }
            }
            _ => String::new(),
        };
        let cell = |v: Option<&f64>| v.map_or_else(|| "-".into(), |v| fmt_number(*v));
        out += &format!("| {k} | {} | {} | {delta} |\n", cell(x), cell(y));
    }
    print!("{out}");
    Ok(())
}
