//! `amt run`: bring stages up to date.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use amt::config::{ExecutorKind, StageId};
use amt::engine::{Engine, StageError};
use amt::exec::Processes;
use amt::ledger::{PipelineRun, RunStatus, now_ms};
use amt::project::Project;
use amt::run_context::{Event, RemoteChoice, RunContext, RunContextError, Settings};
use amt::scheduler::{self, Options, Outcome};
use anyhow::Context;

use super::output::Printer;
use super::{Failure, Ui};

#[derive(clap::Args)]
pub struct Args {
    /// Stages to bring up to date (default: all), with everything upstream of them.
    stages: Vec<String>,
    /// Show what would happen without running or restoring anything.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Rerun the named stages (all, if none are named) even when fresh.
    #[arg(short, long)]
    force: bool,
    /// Also run everything downstream of the named stages.
    #[arg(short, long)]
    downstream: bool,
    /// CPU slots for parallel stages [default: number of cores].
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// After a failure, keep running stages that do not depend on it.
    #[arg(short, long)]
    keep_going: bool,
    /// Seconds to wait for another amt process to release the project.
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    lock_timeout: f64,
    /// Read and write through this remote cache (s3://bucket/prefix or a
    /// directory) instead of the one `[remote]` names.
    #[arg(long, value_name = "URL")]
    remote: Option<String>,
    /// Use no remote cache, even if `[remote]` names one.
    #[arg(long, conflicts_with = "remote")]
    no_remote: bool,
    /// Execute the selected stages even when fresh or cached, and check that
    /// they reproduce the recorded outputs byte for byte; name those that do not.
    #[arg(long, conflicts_with_all = ["dry_run", "force"])]
    verify: bool,
    /// Where stages run: `local`, or `slurm` (as jobs; `[executor.slurm]`
    /// configures them) [default: `[executor] kind`, else local].
    #[arg(long, value_name = "KIND")]
    executor: Option<ExecutorKind>,
}

/// Sets up an invocation's runs, saying what it waits for or goes without.
pub(super) fn context(
    project: &Project,
    settings: &Settings,
    ui: Ui,
) -> Result<RunContext, Failure> {
    let quiet = ui.quiet || ui.json;
    let context = RunContext::open(project, settings, |event| match event {
        Event::WaitingForLock(holder) if !quiet => {
            eprintln!("waiting for the project lock, held by {} …", holder.0)
        }
        Event::RemoteUnavailable(e) => {
            eprintln!("warning: {e}; continuing with the local cache only")
        }
        Event::WaitingForLock(_) => {}
    });
    let context = context.map_err(|e| match e {
        RunContextError::Lock(e) => Failure::Lock(e.into()),
        e => Failure::Other(e.into()),
    })?;
    install_interrupt_handler(Arc::clone(context.processes()));
    Ok(context)
}

/// `--remote` and `--no-remote` as a choice.
pub(super) fn remote_choice(url: Option<String>, off: bool) -> RemoteChoice {
    match (url, off) {
        (_, true) => RemoteChoice::Off,
        (Some(url), false) => RemoteChoice::Url(url),
        (None, false) => RemoteChoice::Configured,
    }
}

pub fn run(project: &Project, args: Args, ui: Ui) -> Result<(), Failure> {
    let targets = project
        .resolve(&args.stages)
        .map_err(|e| Failure::Input(anyhow::anyhow!(e)))?;
    let all: Vec<StageId> = project.pipeline.ids().collect();
    let named = if targets.is_empty() {
        all.clone()
    } else {
        targets
    };
    let selection = if args.downstream {
        let down: Vec<StageId> = project.dag.with_downstream(&named).into_iter().collect();
        project.dag.with_upstream(&down)
    } else {
        project.dag.with_upstream(&named)
    };
    let force: BTreeSet<StageId> = if args.force {
        if args.downstream {
            project.dag.with_downstream(&named)
        } else {
            named.iter().copied().collect()
        }
    } else {
        BTreeSet::new()
    };

    let settings = Settings {
        dry_run: args.dry_run,
        lock_timeout: Duration::from_secs_f64(args.lock_timeout.max(0.0)),
        remote: remote_choice(args.remote.clone(), args.no_remote),
        executor: args.executor,
        label: None,
    };
    let context = context(project, &settings, ui)?;
    let engine = context.engine(project, None);

    let opts = Options {
        jobs: args.jobs.unwrap_or_else(default_jobs),
        force,
        dry_run: args.dry_run,
        keep_going: args.keep_going,
        gpus: available_gpus(),
        mem: total_memory(),
        verify: args.verify,
    };
    let printer = Printer::new(ui, engine.log_dir());
    let started_at_ms = now_ms();
    let summary = if args.dry_run {
        scheduler::run(&engine, &selection, &opts, &printer)
    } else {
        // Tells `amt status` and the studio which stages are executing.
        let tracker = amt::running::Tracker::new(&project.cache_dir(), &printer);
        scheduler::run(&engine, &selection, &opts, &context.recorder(&tracker))
    };
    let files_hashed = engine.hash_stats.files();
    printer.summary(&summary, files_hashed);
    if args.dry_run && !ui.quiet {
        print_submissions(&engine, &summary, ui.json);
    }

    // A run that found everything fresh changed nothing; it is not worth a ledger row.
    let did_something = summary.counts().keys().any(|k| *k != "fresh");
    if !args.dry_run && did_something {
        let run = pipeline_run(
            &engine,
            &selection,
            &summary,
            started_at_ms,
            engine.invocation().to_owned(),
            None,
        );
        if let Err(e) = context.record_run(&run) {
            eprintln!("warning: {e}");
        }
    }
    engine.stat.save().context("saving the stat cache")?;
    if engine.processes.is_cancelled() {
        return Err(Failure::Interrupted);
    }
    let cancelled = summary
        .outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Failed(StageError::Cancelled)));
    let nondeterministic = summary.nondeterministic();
    if !nondeterministic.is_empty() && !ui.json {
        let names: Vec<&str> = nondeterministic
            .iter()
            .map(|&i| project.pipeline.stages[i].name.as_str())
            .collect();
        eprintln!(
            "nondeterministic: {} (the same inputs gave other bytes; their cached results stay as they were)",
            names.join(", ")
        );
    }
    match (summary.failed(), cancelled) {
        (_, true) => Err(Failure::Interrupted),
        (true, _) => Err(Failure::Stage),
        _ if !nondeterministic.is_empty() => Err(Failure::Stage),
        _ => Ok(()),
    }
}

/// `--dry-run` with a cluster: what each stage that would run would submit.
fn print_submissions(engine: &Engine<'_>, summary: &scheduler::Summary, json: bool) {
    let stages = &engine.project.pipeline.stages;
    for (i, outcome) in &summary.outcomes {
        let stage = &stages[*i];
        if !matches!(outcome, Outcome::WouldRun(_)) || !engine.executor_for(stage).is_remote() {
            continue;
        }
        // The inputs may depend on stages that have not run yet: then the key is not known.
        let key = engine
            .check(stage, false)
            .map_or_else(|_| "unknown".to_owned(), |c| c.key.to_string());
        let command = engine.describe_execution(stage, &key);
        if json {
            let ev = serde_json::json!({"event": "submission", "stage": stage.name.as_str(), "command": command});
            println!("{ev}");
        } else {
            println!("{command}");
        }
    }
}

/// On Ctrl-C or SIGTERM, stop every running stage (SIGTERM, then SIGKILL).
fn install_interrupt_handler(processes: Arc<Processes>) {
    let _ = ctrlc::set_handler(move || {
        let processes = Arc::clone(&processes);
        std::thread::spawn(move || processes.cancel());
    });
}

pub(super) fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// GPUs: `AMT_GPUS`, else the entries of `CUDA_VISIBLE_DEVICES`, else the NVIDIA driver's count.
pub(super) fn available_gpus() -> u32 {
    if let Some(n) = std::env::var("AMT_GPUS").ok().and_then(|v| v.parse().ok()) {
        return n;
    }
    if let Ok(v) = std::env::var("CUDA_VISIBLE_DEVICES") {
        return v.split(',').filter(|s| !s.trim().is_empty()).count() as u32;
    }
    std::fs::read_dir("/proc/driver/nvidia/gpus").map_or(0, |d| d.count() as u32)
}

/// Physical memory in bytes, from /proc/meminfo (0: unknown, no limit).
pub(super) fn total_memory() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The ledger row of a finished pipeline run: every param leaf, the outcome
/// counts, and the metrics files of the stages it brought up to date.
pub fn pipeline_run(
    engine: &Engine<'_>,
    selection: &BTreeSet<StageId>,
    summary: &scheduler::Summary,
    started_at_ms: u64,
    run: String,
    sweep: Option<&str>,
) -> PipelineRun {
    let project = engine.project;
    let params = project
        .pipeline
        .params
        .all_leaves()
        .into_iter()
        .map(|(k, v)| (k.to_string(), amt::params::to_json(v)))
        .collect();
    let stages = summary
        .counts()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
        .collect();
    let mut metrics = serde_json::Map::new();
    for &i in selection {
        for m in &project.pipeline.stages[i].metrics {
            if let Ok(text) = std::fs::read_to_string(m.to_fs(&project.root)) {
                let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                metrics.insert(m.to_string(), v);
            }
        }
    }
    let cancelled = summary
        .outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Failed(StageError::Cancelled)));
    let status = if cancelled {
        RunStatus::Interrupted
    } else if summary.failed() {
        RunStatus::Failed
    } else {
        RunStatus::Ok
    };
    PipelineRun {
        run,
        sweep: sweep.map(str::to_owned),
        params,
        status,
        started_at_ms: started_at_ms as i64,
        duration_ms: summary.elapsed.as_millis() as i64,
        stages,
        metrics,
    }
}
