//! `amt gc`: remove cache entries the current state does not use.

use std::time::Duration;

use amt::config::parse_size;
use amt::engine::Engine;
use amt::lock;
use amt::project::Project;
use anyhow::Context;

use super::{Failure, Ui};

#[derive(clap::Args)]
pub struct Args {
    /// Keep the newest unused results too, while the cache stays under SIZE (e.g. 10G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_size: Option<u64>,
    /// Report what would be removed without removing it.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Seconds to wait for another amt process to release the project.
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    lock_timeout: f64,
    /// Instead: hash every cached object, and remove damaged objects and the
    /// action results that need them (what `amt doctor --deep` reports).
    #[arg(long, conflicts_with = "max_size")]
    repair: bool,
}

pub fn run(project: &Project, args: Args, ui: Ui) -> Result<(), Failure> {
    let cache = project.cache_dir();
    let _lock = lock::acquire(
        &cache.join("lock"),
        Duration::from_secs_f64(args.lock_timeout.max(0.0)),
        |h| {
            if !ui.quiet {
                eprintln!("waiting for the project lock, held by {} …", h.0);
            }
        },
    )
    .map_err(|e| Failure::Lock(e.into()))?;
    let engine = Engine::open(project);
    if args.repair {
        return repair(&engine.store, args.dry_run, ui);
    }
    let report = amt::gc::collect(&engine.store, &engine.state, args.max_size, args.dry_run)
        .context("collecting garbage")?;
    if !args.dry_run {
        engine
            .store
            .clean_tmp()
            .context("cleaning the cache's staging directory")?;
        let root = &project.root;
        let pruned = engine.stat.retain(|p| root.join(p).exists());
        engine.stat.save().context("saving the stat cache")?;
        tracing::debug!(pruned, "stat cache entries for deleted files");
    }
    if ui.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("encoding the report")?
        );
    } else if !ui.quiet {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        println!(
            "{verb} {} objects and {} action results ({}); {} kept",
            report.objects_removed,
            report.actions_removed,
            human_bytes(report.bytes_freed),
            human_bytes(report.bytes_kept)
        );
    }
    Ok(())
}

/// `--repair`: hash everything, remove what is damaged.
fn repair(store: &amt::store::Store, dry_run: bool, ui: Ui) -> Result<(), Failure> {
    let report = amt::fsck::check(store).context("checking the cache")?;
    let removed = if dry_run {
        0
    } else {
        amt::fsck::repair(store, &report).context("removing damaged entries")?
    };
    if ui.json {
        let doc = serde_json::json!({"checked": report, "removed": removed});
        println!("{doc}");
    } else if !ui.quiet {
        println!(
            "checked {} objects and {} action results: {} damaged objects, {} damaged action results{}",
            report.objects_checked,
            report.actions_checked,
            report.damaged_objects.len(),
            report.damaged_actions.len(),
            if dry_run { " (nothing removed: --dry-run)".to_owned() } else { format!("; removed {removed} files") }
        );
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
