//! `amt status`: each stage fresh or stale, with the first reason.

use std::collections::{BTreeMap, BTreeSet};

use amt::config::{Run, StageId};
use amt::names::ProjectPath;
use amt::engine::{Change, Engine};
use amt::project::Project;
use amt::scheduler::{self, Options, Outcome, Reporter, Summary};
use anyhow::Context;
use serde_json::json;

use super::{Failure, Ui};

#[derive(clap::Args)]
pub struct Args {
    /// Stages to show (default: all).
    stages: Vec<String>,
}

struct Silent;

impl Reporter for Silent {
    fn started(&self, _: &amt::config::Stage, _: &[Change]) {}
    fn finished(&self, _: &amt::config::Stage, _: &Outcome) {}
    fn warning(&self, _: &amt::warning::Warning) {}
    fn executed(&self, _: &amt::ledger::RunRow) {}
}

/// Checks stages without changing anything (a dry run over the selection).
pub fn check_all(engine: &Engine<'_>, selection: &BTreeSet<StageId>) -> Summary {
    let opts = Options {
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        force: BTreeSet::new(),
        dry_run: true,
        keep_going: true,
        gpus: u32::MAX,
        mem: 0,
        verify: false,
    };
    scheduler::run(engine, selection, &opts, &Silent)
}

/// The state word and reasons shown for an outcome.
pub fn describe(outcome: &Outcome) -> (&'static str, Vec<String>) {
    match outcome {
        Outcome::Fresh => ("fresh", vec![]),
        Outcome::WouldRun(c) => ("stale", c.iter().map(Change::summary).collect()),
        Outcome::WouldRestore(c) => {
            let mut r: Vec<String> = c.iter().map(Change::summary).collect();
            r.push("cached: will be restored".into());
            ("stale", r)
        }
        Outcome::Failed(e) => ("error", vec![e.to_string()]),
        other => ("unknown", vec![other.label().to_owned()]),
    }
}

pub fn run(project: &Project, args: Args, ui: Ui) -> Result<(), Failure> {
    let targets = project
        .resolve(&args.stages)
        .map_err(|e| Failure::Input(anyhow::anyhow!(e)))?;
    let selection: BTreeSet<StageId> = if targets.is_empty() {
        project.pipeline.ids().collect()
    } else {
        project.dag.with_upstream(&targets)
    };
    let engine = Engine::open(project);
    let summary = check_all(&engine, &selection);
    engine.stat.save().context("saving the stat cache")?;

    // The process holding the project lock (a run, a sweep, gc) and, for a
    // run, the stages it is executing.
    let locked_by = amt::lock::holder(&project.cache_dir().join("lock")).context("checking the project lock")?;
    let running = match &locked_by {
        Some(holder) => amt::running::read(&project.cache_dir(), holder),
        None => BTreeSet::new(),
    };
    let state = |i: StageId, o: &Outcome| {
        let (state, reasons) = describe(o);
        let name = project.pipeline.stages[i].name.as_str();
        (if running.contains(name) { "running" } else { state }, reasons)
    };
    let shown: Vec<(StageId, &Outcome)> = summary
        .outcomes
        .iter()
        .filter(|(i, _)| targets.is_empty() || targets.contains(i))
        .map(|(i, o)| (*i, o))
        .collect();
    let stages = &project.pipeline.stages;
    if ui.json {
        let rows: Vec<_> = shown
            .iter()
            .map(|(i, o)| {
                let (state, reasons) = state(*i, o);
                let stage = &stages[*i];
                let paths = |roles: &Option<Vec<(String, ProjectPath)>>, all: &[ProjectPath]| match roles {
                    Some(r) => json!(r.iter().map(|(k, p)| (k.clone(), p.as_str())).collect::<BTreeMap<_, _>>()),
                    None => json!(all.iter().map(ProjectPath::as_str).collect::<Vec<_>>()),
                };
                json!({
                    "stage": stage.name.as_str(),
                    "state": state,
                    "reasons": reasons,
                    "builtin": match &stage.run {
                        Run::Builtin { name, .. } => Some(name.as_str()),
                        Run::Shell(_) => None,
                    },
                    "after": project.dag.upstream(*i).iter().map(|&u| stages[u].name.as_str()).collect::<Vec<_>>(),
                    "deps": paths(&stage.dep_roles, &stage.deps),
                    "outs": paths(&stage.out_roles, &stage.outs),
                    "metrics": stage.metrics.iter().map(ProjectPath::as_str).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = json!({"profile": project.pipeline.profile, "locked_by": locked_by.map(|h| h.0), "stages": rows});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("encoding status")?
        );
        return Ok(());
    }
    if let Some(profile) = &project.pipeline.profile {
        println!("profile: {profile}");
    }
    if let Some(holder) = &locked_by {
        println!("another amt ({}) holds the project lock", holder.0);
    }
    let width = shown
        .iter()
        .map(|(i, _)| stages[*i].name.as_str().len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("{:<width$}  {:<7}  REASON", "STAGE", "STATE");
    for (i, o) in shown {
        let (state, reasons) = state(i, o);
        let reason = reasons.first().cloned().unwrap_or_default();
        let more = if reasons.len() > 1 {
            format!(" (+{} more: amt why {})", reasons.len() - 1, stages[i].name)
        } else {
            String::new()
        };
        let row = format!(
            "{:<width$}  {:<7}  {reason}{more}",
            stages[i].name.as_str(),
            state
        );
        println!("{}", row.trim_end());
    }
    Ok(())
}
