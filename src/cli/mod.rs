//! Command-line parsing, dispatch and exit codes.
//!
//! | code | meaning                                   |
//! |------|-------------------------------------------|
//! | 0    | success                                   |
//! | 1    | a stage failed                            |
//! | 2    | invalid `amt.toml` or command line        |
//! | 3    | the project lock could not be taken       |
//! | 4    | any other error (I/O, cache)              |
//! | 130  | interrupted (Ctrl-C)                      |

mod builtins;
mod dag;
mod doctor;
mod gc;
mod generate;
mod metrics;
mod output;
mod run;
mod runs;
mod stage;
mod status;
mod studio;
mod sweep;
mod transfer;
mod why;

use std::path::PathBuf;
use std::process::ExitCode;

use amt::project::{Project, ProjectError};
use clap::{Parser, Subcommand};

/// amt: a content-hashed pipeline runner that rebuilds only what changed.
#[derive(Parser)]
#[command(name = "amt", version, about, long_about = None, max_term_width = 100)]
struct Cli {
    /// Run as if started in DIR.
    #[arg(short = 'C', long = "project", global = true, value_name = "DIR")]
    project: Option<PathBuf>,
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "json")]
    quiet: bool,
    /// Machine-readable output: JSON (one object per line for `run`).
    #[arg(long, global = true)]
    json: bool,
    /// Also list fresh stages.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Apply `[profiles.NAME]` of amt.toml to the params.
    #[arg(long, global = true, env = "AMT_PROFILE", value_name = "NAME")]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run stages (all by default) and whatever they depend on, if stale.
    Run(run::Args),
    /// Show whether each stage is fresh or stale, and why.
    Status(status::Args),
    /// Explain exactly what changed for a stage since it last ran.
    Why(why::Args),
    /// Print the stage graph.
    Dag(dag::Args),
    /// Remove cache entries that the current state does not use.
    Gc(gc::Args),
    /// Pipeline runs and sweep points from the ledger: params, metrics, duration, status.
    Runs(runs::Args),
    /// Run the pipeline for every point of a param grid, each in its own workspace.
    Sweep(sweep::Args),
    /// Compare runs' metrics.
    #[command(subcommand)]
    Metrics(metrics::Command),
    /// Upload the local cache to the remote cache.
    Push(transfer::Args),
    /// Download the remote cache's results into the local cache.
    Pull(transfer::Args),
    /// Run a built-in stage (amt runs this for `builtin = "…"` stages).
    Stage(stage::Args),
    /// Write MIDI from text with the project's trained model (`amt generate --help`).
    Generate(generate::Args),
    /// Check that this machine can run this project, and say how to fix what it cannot.
    Doctor(doctor::Args),
    /// The studio: a web page and JSON API to write, see and hear music, and
    /// watch the pipeline (`amt serve --help`).
    Serve(studio::Args),
    /// Render a MIDI file to WAV with a General MIDI SoundFont (`amt render --help`).
    Render(studio::Args),
}

/// How a command ended, mapped to the documented exit codes.
pub enum Failure {
    /// A stage failed.
    Stage,
    /// The user's input is invalid.
    Input(anyhow::Error),
    /// The project lock could not be taken.
    Lock(anyhow::Error),
    /// Interrupted by Ctrl-C.
    Interrupted,
    /// Anything else.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

/// Output settings shared by all commands.
#[derive(Clone, Copy)]
pub struct Ui {
    pub quiet: bool,
    pub json: bool,
    pub verbose: bool,
}

fn load_project(dir: Option<PathBuf>, profile: Option<&str>) -> Result<Project, Failure> {
    let start = match dir {
        Some(d) => d,
        None => std::env::current_dir().map_err(|e| Failure::Other(e.into()))?,
    };
    let root = Project::discover(&start).map_err(|e| Failure::Input(e.into()))?;
    Project::load(&root, &builtins::StageRegistry, profile).map_err(|e| match e {
        ProjectError::Config(c) => Failure::Input(anyhow::Error::new(c)),
        other => Failure::Input(other.into()),
    })
}

/// Parses arguments, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    // `amt __stage-guard CMD…` is how amt runs each stage (see amt::guard).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == amt::guard::GUARD_ARG) {
        let code = amt::guard::main(&args[2..]);
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    if let Ok(exe) = std::env::current_exe() {
        amt::exec::set_guard(exe);
    }
    // A closed stdout (`amt runs | head`) ends amt quietly, as it does any Unix
    // tool, instead of a panic in println!. Sockets are not affected: Rust
    // writes to them with MSG_NOSIGNAL.
    // SAFETY: restoring the default disposition of one signal at start-up.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("AMT_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let ui = Ui {
        quiet: cli.quiet,
        json: cli.json,
        verbose: cli.verbose,
    };
    let command = match cli.command {
        Command::Stage(args) => return stage::run(args),
        Command::Generate(args) => {
            // Outside a project, --model must name the model.
            let project = load_project(cli.project, cli.profile.as_deref()).ok();
            return generate::run(project.as_ref(), args);
        }
        Command::Render(args) => return studio::render(args),
        Command::Serve(args) => {
            return match load_project(cli.project, cli.profile.as_deref()) {
                Ok(project) => studio::serve(&project, args),
                Err(e) => exit_code(Err(e)),
            };
        }
        // A project that does not load is one of the things doctor reports.
        Command::Doctor(args) => {
            let project = load_project(cli.project, cli.profile.as_deref());
            return exit_code(doctor::run(project, args, ui));
        }
        other => other,
    };
    let result = load_project(cli.project, cli.profile.as_deref()).and_then(|project| match command {
        Command::Stage(_)
        | Command::Generate(_)
        | Command::Doctor(_)
        | Command::Render(_)
        | Command::Serve(_) => {
            unreachable!("handled above")
        }
        Command::Run(args) => run::run(&project, args, ui),
        Command::Status(args) => status::run(&project, args, ui),
        Command::Why(args) => why::run(&project, args, ui),
        Command::Dag(args) => dag::run(&project, args),
        Command::Gc(args) => gc::run(&project, args, ui),
        Command::Runs(args) => runs::run(&project, args, ui),
        Command::Sweep(args) => sweep::run(&project, args, ui),
        Command::Metrics(command) => metrics::run(&project, command, ui),
        Command::Push(args) => transfer::push(&project, args, ui),
        Command::Pull(args) => transfer::pull(&project, args, ui),
    });
    exit_code(result)
}

/// The documented exit code of a command's result, with its error printed.
fn exit_code(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Stage) => ExitCode::from(1),
        Err(Failure::Input(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Lock(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(3)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(4)
        }
        Err(Failure::Interrupted) => {
            eprintln!("interrupted");
            ExitCode::from(130)
        }
    }
}
