//! `amt why STAGE`: exactly what changed since the stage last ran.

use std::collections::HashMap;

use amt::engine::{Change, Decision, Engine};
use amt::explain::diff_trees;
use amt::project::Project;
use amt::tree::Kind;
use anyhow::Context;

use super::status::{check_all, describe};
use super::{Failure, Ui};

/// Most file changes listed per dependency.
const MAX_FILES: usize = 20;

#[derive(clap::Args)]
pub struct Args {
    /// The stage to explain.
    stage: String,
}

pub fn run(project: &Project, args: Args, ui: Ui) -> Result<(), Failure> {
    let target = project
        .resolve(std::slice::from_ref(&args.stage))
        .map_err(|e| Failure::Input(anyhow::anyhow!(e)))?[0];
    let stage = &project.pipeline.stages[target];
    let engine = Engine::open(project);

    // Upstream stages first: if one is stale, this stage's inputs will change when it runs.
    // Only the upstream stages need the dry run; the target itself is checked once, below.
    let mut upstream = project.dag.with_upstream(&[target]);
    upstream.remove(&target);
    let summary = check_all(&engine, &upstream);
    let stale_upstream: Vec<&str> = summary
        .outcomes
        .iter()
        .filter(|(_, o)| describe(o).0 != "fresh")
        .map(|(i, _)| project.pipeline.stages[*i].name.as_str())
        .collect();

    let check = engine
        .check(stage, false)
        .map_err(|e| Failure::Other(anyhow::anyhow!("{}: {e}", stage.name)))?;
    let fresh = matches!(check.decision, Decision::Fresh);
    let mut lines = Vec::new();
    for up in &stale_upstream {
        lines.push(format!("upstream stage {up} is stale and will run first"));
    }
    let fresh_manifests: HashMap<_, _> = check.dep_manifests().iter().cloned().collect();
    for change in &check.changes {
        lines.extend(explain(&engine, &fresh_manifests, change));
    }
    if let Decision::Restore(_) = check.decision {
        lines.push(format!(
            "the cache holds outputs for these inputs (action {}): they will be restored",
            check.key.0.short()
        ));
    }
    engine.stat.save().context("saving the stat cache")?;

    if ui.json {
        let v = serde_json::json!({
            "stage": stage.name.as_str(),
            "state": if fresh && stale_upstream.is_empty() { "fresh" } else { "stale" },
            "action_key": check.key.to_string(),
            "changes": lines,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).context("encoding why")?
        );
        return Ok(());
    }
    if lines.is_empty() {
        println!("{} is fresh (action {})", stage.name, check.key.0.short());
    } else {
        println!("{} is stale:", stage.name);
        for l in lines {
            println!("  {l}");
        }
    }
    Ok(())
}

fn explain(
    engine: &Engine<'_>,
    fresh: &HashMap<amt::digest::Digest, Vec<u8>>,
    change: &Change,
) -> Vec<String> {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".to_owned());
    match change {
        Change::Command { old, new } => vec![
            "command changed:".into(),
            format!("  - {old}"),
            format!("  + {new}"),
        ],
        Change::Env { var, old, new } => vec![format!("env {var}: {} → {}", show(old), show(new))],
        Change::Param { key, old, new } => {
            vec![format!("param {key}: {} → {}", show(old), show(new))]
        }
        Change::Dep {
            path,
            old: Some(old),
            new: Some(new),
        } if old.kind == Kind::Dir || new.kind == Kind::Dir => {
            let mut out = vec![format!("dep {path} changed:")];
            match diff_trees(&engine.store, fresh, path.as_str(), old, new) {
                Some(files) => {
                    for (change, file) in files.iter().take(MAX_FILES) {
                        out.push(format!("  {} {file}", change.word()));
                    }
                    if files.len() > MAX_FILES {
                        out.push(format!("  … and {} more", files.len() - MAX_FILES));
                    }
                }
                None => out.push("  (the previous listing is no longer in the cache)".into()),
            }
            out
        }
        Change::Dep {
            path,
            old: Some(o),
            new: Some(n),
        } => {
            vec![format!(
                "dep {path} changed: {} → {}",
                o.digest.short(),
                n.digest.short()
            )]
        }
        other => vec![other.summary()],
    }
}
