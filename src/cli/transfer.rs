//! `amt push` and `amt pull`: copy the action cache and its objects to and
//! from a remote cache (`[remote]` in amt.toml, or `--remote URL`).

use std::time::Instant;

use amt::engine::Engine;
use amt::project::Project;
use amt::remote::{Remote, Transfer};
use anyhow::Context;

use super::{Failure, Ui};

#[derive(clap::Args)]
pub struct Args {
    /// The remote cache (s3://bucket/prefix or a directory); default: `[remote] url`.
    #[arg(long, value_name = "URL")]
    remote: Option<String>,
}

fn open(project: &Project, args: &Args) -> Result<Remote, Failure> {
    let url = args
        .remote
        .clone()
        .or_else(|| project.pipeline.remote.as_ref().map(|r| r.url.clone()))
        .ok_or_else(|| {
            Failure::Input(anyhow::anyhow!(
                "no remote cache: set [remote] url in amt.toml or pass --remote URL"
            ))
        })?;
    Remote::open(&url).map_err(|e| Failure::Input(e.into()))
}

fn report(verb: &str, t: Transfer, secs: f64, ui: Ui) {
    if ui.json {
        println!(
            "{}",
            serde_json::json!({ "actions": t.actions, "objects": t.objects, "bytes": t.bytes, "skipped": t.skipped, "seconds": secs })
        );
    } else if !ui.quiet {
        println!(
            "{verb} {} action results and {} objects ({:.1} MiB) in {secs:.2}s; {} already there",
            t.actions,
            t.objects,
            t.bytes as f64 / (1024.0 * 1024.0),
            t.skipped
        );
    }
}

fn add(a: &mut Transfer, b: Transfer) {
    a.actions += b.actions;
    a.objects += b.objects;
    a.bytes += b.bytes;
    a.skipped += b.skipped;
}

/// Uploads every complete local action result and its objects.
pub fn push(project: &Project, args: Args, ui: Ui) -> Result<(), Failure> {
    let remote = open(project, &args)?;
    let engine = Engine::open(project);
    let started = Instant::now();
    let mut total = Transfer::default();
    for (key, _) in engine.store.action_keys() {
        let Some(result) = engine.store.get_action(&key) else {
            continue;
        };
        if !result
            .outs
            .iter()
            .all(|o| engine.store.is_complete(&o.entry))
        {
            continue;
        }
        let t = remote
            .upload(&key, &result, &engine.store)
            .with_context(|| format!("pushing {key}"))?;
        add(&mut total, t);
    }
    report("pushed", total, started.elapsed().as_secs_f64(), ui);
    Ok(())
}

/// Downloads every remote action result the local cache lacks, verifying each object.
pub fn pull(project: &Project, args: Args, ui: Ui) -> Result<(), Failure> {
    let remote = open(project, &args)?;
    let engine = Engine::open(project);
    let started = Instant::now();
    let mut total = Transfer::default();
    for key in remote
        .action_keys()
        .context("listing the remote's action results")?
    {
        if engine
            .store
            .get_action(&key)
            .is_some_and(|r| r.outs.iter().all(|o| engine.store.is_complete(&o.entry)))
        {
            total.skipped += 1;
            continue;
        }
        let Some(result) = remote
            .get_action(&key)
            .context("reading an action result")?
        else {
            continue;
        };
        let t = remote
            .fetch(&key, &result, &engine.store)
            .with_context(|| format!("pulling {key}"))?;
        add(&mut total, t);
    }
    report("pulled", total, started.elapsed().as_secs_f64(), ui);
    Ok(())
}
