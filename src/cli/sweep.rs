//! `amt sweep`: run the pipeline once per point of a param grid, each point in
//! its own workspace (`cache/sweeps/<point>`) sharing the project's cache, so
//! the stages a point does not change come from the cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use amt::config::StageId;
use amt::project::Project;
use amt::run_context::Settings;
use amt::scheduler::{self, Options};
use amt::sweep::{self, Axis, Point};

use super::output::Printer;
use super::{Failure, Ui};

#[derive(clap::Args)]
pub struct Args {
    /// Stages to bring up to date at each point (default: all), with their upstream.
    stages: Vec<String>,
    /// A param and its values, KEY=V1,V2,… (repeatable; the points are the product).
    #[arg(short = 'S', long = "set", value_name = "KEY=VALUES")]
    set: Vec<String>,
    /// Start from `[sweeps.NAME]` in amt.toml; its name labels the points in the ledger.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Run this many points drawn at random from the grid.
    #[arg(long, value_name = "N")]
    samples: Option<usize>,
    /// Seed for --samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Points run at once [default: number of cores].
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Seconds to wait for another amt process to release the project.
    #[arg(long, value_name = "SECS", default_value_t = 600.0)]
    lock_timeout: f64,
    /// Where stages run: `local`, or `slurm`, each point's stages as jobs
    /// (`--jobs` then counts points, hence jobs, in flight).
    #[arg(long, value_name = "KIND")]
    executor: Option<amt::config::ExecutorKind>,
    /// Read and write through this remote cache (s3://bucket/prefix or a
    /// directory) instead of the one `[remote]` names.
    #[arg(long, value_name = "URL")]
    remote: Option<String>,
    /// Use no remote cache, even if `[remote]` names one.
    #[arg(long, conflicts_with = "remote")]
    no_remote: bool,
}

fn input(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Input(e.into())
}

/// The points to run, the swept axes, and the sweep's name in the ledger.
fn points(project: &Project, args: &Args) -> Result<(Vec<Point>, Vec<Axis>, String), Failure> {
    let mut axes: Vec<Axis> = Vec::new();
    let (mut samples, mut seed) = (args.samples, args.seed);
    if let Some(name) = &args.name {
        let config = project
            .pipeline
            .sweeps
            .get(name)
            .ok_or_else(|| input(sweep::SweepError::UnknownSweep(name.clone())))?;
        axes.extend(sweep::config_axes(config).map_err(input)?);
        samples = samples.or(config.samples);
        if args.seed == 0 {
            seed = config.seed;
        }
    }
    for s in &args.set {
        let axis = sweep::parse_axis(s).map_err(input)?;
        axes.retain(|a| a.key != axis.key);
        axes.push(axis);
    }
    if axes.is_empty() {
        return Err(input(anyhow::anyhow!(
            "nothing to sweep: give -S KEY=V1,V2 or --name NAME ([sweeps.NAME] in amt.toml)"
        )));
    }
    sweep::check_axes(&project.pipeline, &axes).map_err(input)?;
    let mut points = sweep::grid(&axes);
    if let Some(n) = samples {
        points = sweep::draw(&points, n, seed);
    }
    let name = args.name.clone().unwrap_or_else(|| {
        let text: Vec<String> = axes
            .iter()
            .map(|a| format!("{}={:?}", a.key, a.values))
            .collect();
        format!(
            "sweep-{}",
            &blake3::hash(text.join(";").as_bytes()).to_hex()[..8]
        )
    });
    Ok((points, axes, name))
}

pub fn run(project: &Project, args: Args, ui: Ui) -> Result<(), Failure> {
    let (points, axes, name) = points(project, &args)?;
    let targets = project
        .resolve(&args.stages)
        .map_err(|e| input(anyhow::anyhow!(e)))?;
    let settings = Settings {
        dry_run: false,
        lock_timeout: Duration::from_secs_f64(args.lock_timeout.max(0.0)),
        remote: super::run::remote_choice(args.remote.clone(), args.no_remote),
        executor: args.executor,
        label: Some("sweep"),
    };
    // One context for every point: one lock, one remote, one cluster executor
    // (so one status query follows all their jobs), one Ctrl-C.
    let context = super::run::context(project, &settings, ui)?;

    let variants: Vec<Project> = points
        .iter()
        .map(|p| sweep::point_project(project, p))
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::Other(e.into()))?;
    let named: Vec<StageId> = if targets.is_empty() {
        project.pipeline.ids().collect()
    } else {
        targets
    };
    let selection = project.dag.with_upstream(&named);
    if !ui.quiet && !ui.json {
        eprintln!(
            "sweep {name}: {} points, {} at a time",
            points.len(),
            args.jobs
                .unwrap_or_else(super::run::default_jobs)
                .min(points.len())
        );
    }

    let processes = context.processes();
    let opts = || Options {
        jobs: 1,
        force: Default::default(),
        dry_run: false,
        keep_going: false,
        gpus: super::run::available_gpus(),
        mem: super::run::total_memory(),
        verify: false,
    };
    let quiet = Ui {
        quiet: true,
        json: false,
        verbose: false,
    };
    // What every point shares runs once, first, so the points restore it instead
    // of racing to compute it.
    let shared = sweep::shared_stages(project, &selection, &axes);
    if let Some(first) = variants.first()
        && !shared.is_empty()
    {
        let engine = context.engine(first, Some("shared"));
        let summary = scheduler::run(
            &engine,
            &shared,
            &Options {
                jobs: args.jobs.unwrap_or_else(super::run::default_jobs),
                ..opts()
            },
            &context.recorder(&Printer::new(quiet, engine.log_dir())),
        );
        let _ = engine.stat.save();
        if summary.failed() {
            eprintln!(
                "error: a stage every point needs failed; see {}",
                first.local_dir().join("logs").display()
            );
            return Err(Failure::Stage);
        }
    }
    let next = AtomicUsize::new(0);
    // Each point's ledger row, in grid order whatever order they finish in.
    let rows: Vec<std::sync::Mutex<Option<amt::ledger::PipelineRun>>> =
        points.iter().map(|_| Default::default()).collect();
    let failed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..args
            .jobs
            .unwrap_or_else(super::run::default_jobs)
            .clamp(1, points.len().max(1))
        {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let (Some(point), Some(variant)) = (points.get(i), variants.get(i)) else {
                        break;
                    };
                    if processes.is_cancelled() {
                        break;
                    }
                    let engine = context.engine(variant, Some(&point.id));
                    let started = amt::ledger::now_ms();
                    let summary = scheduler::run(
                        &engine,
                        &selection,
                        &opts(),
                        &context.recorder(&Printer::new(quiet, engine.log_dir())),
                    );
                    let row = super::run::pipeline_run(
                        &engine,
                        &selection,
                        &summary,
                        started,
                        point.id.clone(),
                        Some(&name),
                    );
                    if row.status != amt::ledger::RunStatus::Ok {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    if let Err(e) = context.record_run(&row) {
                        eprintln!("warning: {e}");
                    }
                    let _ = engine.stat.save();
                    *rows[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(row);
                    if !ui.quiet && !ui.json {
                        let row = rows[i].lock().unwrap_or_else(|e| e.into_inner());
                        let status = row.as_ref().map_or("?", |r| r.status.as_str());
                        let counts: Vec<String> = summary
                            .counts()
                            .iter()
                            .map(|(k, v)| format!("{v} {k}"))
                            .collect();
                        eprintln!(
                            "point {} ({}): {} — {} in {}",
                            point.id,
                            point.label(),
                            status,
                            counts.join(", "),
                            super::output::human_duration(summary.elapsed)
                        );
                    }
                }
            });
        }
    });
    if processes.is_cancelled() {
        return Err(Failure::Interrupted);
    }
    let rows: Vec<amt::ledger::PipelineRun> = rows
        .into_iter()
        .filter_map(|r| r.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Failure::Other(e.into()))?
        );
    } else if !ui.quiet {
        print!("{}", super::runs::table(&rows));
    }
    if failed.load(Ordering::SeqCst) > 0 {
        Err(Failure::Stage)
    } else {
        Ok(())
    }
}
