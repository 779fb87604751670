//! `amt-studio` (run as `amt serve` and `amt render`): the studio's server,
//! and MIDI rendered to WAV on the command line.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use amt_stages::audio::{self, Synth};
use amt_stages::generate::Generator;
use amt_studio::access::Access;
use amt_studio::pipeline::Pipeline;
use amt_studio::server::{self, MAX_AUDIO_SECONDS, Off, Settings, Studio};

#[derive(Parser)]
#[command(name = "amt", bin_name = "amt", max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The studio: a web page and JSON API to write, see and hear music, and
    /// watch the pipeline.
    Serve(ServeArgs),
    /// Render a MIDI file to 16-bit stereo WAV at 44.1 kHz.
    Render(RenderArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Where to listen. Any address but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8800")]
    addr: SocketAddr,
    /// A secret every API request must carry (Authorization: Bearer TOKEN, or
    /// ?token=TOKEN); required off loopback.
    #[arg(long, env = "AMT_STUDIO_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The project (`amt serve` passes it).
    #[arg(long, default_value = ".")]
    project: PathBuf,
    /// The trained model: the train stage's output (`amt serve` passes the
    /// project's; a relative path is from the current directory).
    #[arg(long, env = "AMT_MODEL")]
    model: Option<PathBuf>,
    /// The General MIDI SoundFont (default: $AMT_SOUNDFONT, else Debian's in /usr/share/sounds/sf2).
    #[arg(long, value_name = "FILE")]
    soundfont: Option<PathBuf>,
    /// The `amt` that reports the pipeline (`amt serve` passes itself).
    #[arg(long, env = "AMT_BIN", value_name = "FILE")]
    amt: Option<PathBuf>,
    /// Generations and renders run at once, one torch thread each.
    #[arg(long, default_value_t = default_workers())]
    workers: usize,
    /// Requests waiting beyond those; more are answered 429 with Retry-After.
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// Seconds one generate or render request may take, waiting included.
    #[arg(long, default_value_t = 120.0)]
    deadline: f64,
    /// MiB of generated pieces and their audio kept (16 or more); the oldest go first.
    #[arg(long, default_value_t = 256)]
    results_mib: usize,
    /// `auto` (CUDA when present), `cpu` or `cuda`.
    #[arg(long, default_value = "auto")]
    device: String,
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
}

#[derive(clap::Args)]
struct RenderArgs {
    /// The MIDI file.
    input: PathBuf,
    /// The WAV file to write (default: the input with `.wav`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The General MIDI SoundFont (default: $AMT_SOUNDFONT, else Debian's in /usr/share/sounds/sf2).
    #[arg(long, value_name = "FILE")]
    soundfont: Option<PathBuf>,
}

fn load_synth(explicit: Option<&Path>) -> anyhow::Result<Synth> {
    let path = audio::find_soundfont(explicit)?;
    Ok(Synth::load(&path)?)
}

fn render(args: RenderArgs) -> anyhow::Result<()> {
    let midi =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    amt_stages::midi::parse(&midi)
        .map_err(|e| BadInput(format!("{}: {e}", args.input.display())))?;
    let synth = load_synth(args.soundfont.as_deref())?;
    let sound = synth
        .render(&midi)
        .with_context(|| format!("rendering {}", args.input.display()))?;
    let out = args.out.unwrap_or_else(|| args.input.with_extension("wav"));
    amt_stages::atomic::write(&out, &sound.wav_bytes()?)?;
    let peak = sound.peak();
    println!(
        "{}  ({:.1} s, peak {:.1} dBFS, SoundFont {})",
        out.display(),
        sound.seconds(),
        20.0 * f64::from(peak.max(1e-9)).log10(),
        synth.path().display()
    );
    Ok(())
}

/// The command line asked for something invalid (exit code 2, as `amt`'s).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

/// Checks the settings before anything is loaded.
fn check(args: &ServeArgs, has_token: bool) -> Result<(), BadInput> {
    let bad = |m: String| Err(BadInput(m));
    if !(args.addr.ip().is_loopback() || has_token) {
        return bad(format!(
            "{} is not a loopback address: anyone who can reach it could use the studio, so \
             pass --token TOKEN (or set AMT_STUDIO_TOKEN)",
            args.addr
        ));
    }
    if !(args.deadline > 0.0 && args.deadline <= 86_400.0) {
        return bad(format!(
            "--deadline must be a number of seconds in (0, 86400], not {}",
            args.deadline
        ));
    }
    if !(1..=64).contains(&args.workers) {
        return bad(format!(
            "--workers must be in [1, 64], not {}",
            args.workers
        ));
    }
    if !(1..=4096).contains(&args.queue) {
        return bad(format!("--queue must be in [1, 4096], not {}", args.queue));
    }
    if !(16..=65_536).contains(&args.results_mib) {
        return bad(format!(
            "--results-mib must be in [16, 65536], not {}",
            args.results_mib
        ));
    }
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let token = args.token.clone().filter(|t| !t.is_empty());
    check(&args, token.is_some())?;
    let project = args
        .project
        .canonicalize()
        .with_context(|| format!("the project {}", args.project.display()))?;
    let model = match args.model {
        Some(m) => std::path::absolute(&m).with_context(|| format!("the model {}", m.display()))?,
        None => project.join("artifacts/train"),
    };
    let device = amt_stages::device::pick(&args.device, 1)?;
    let generator = Generator::load_on(&model, device)
        .map_err(Off::Model);
    let synth = load_synth(args.soundfont.as_deref())
        .map(|s| s.with_max_seconds(MAX_AUDIO_SECONDS))
        .map_err(Off::Audio);
    let amt = match args.amt {
        Some(a) => a,
        None => std::env::current_exe()
            .context("finding amt beside amt-studio")?
            .with_file_name("amt"),
    };
    if let Err(why) = &generator {
        eprintln!("warning: {why}");
    }
    if let Err(why) = &synth {
        eprintln!("warning: {why}");
    }
    let soundfont = synth.as_ref().map(|s| s.path().display().to_string()).ok();
    let settings = Settings {
        workers: args.workers,
        queue: args.queue,
        deadline: Duration::from_secs_f64(args.deadline),
        results_cap: args.results_mib << 20,
    };
    let studio = Arc::new(Studio::new(
        generator,
        synth,
        Pipeline::new(project, amt),
        &settings,
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        let addr = listener.local_addr()?;
        let access = match &token {
            Some(t) => Access::Token(t.clone()),
            None => Access::loopback(addr),
        };
        // Tests and scripts read this line for the port when --addr ends in :0.
        // Nothing else is said on stdout, and a closed stdout stops nothing.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "amt studio: http://{addr}/");
        let _ = out.flush();
        drop(out);
        eprintln!(
            "  model {}; SoundFont {}; {} workers, queue {}",
            model.display(),
            soundfont.as_deref().unwrap_or("none"),
            settings.workers,
            settings.queue
        );
        if token.is_some() {
            eprintln!("  every API request needs the token: open http://{addr}/?token=TOKEN");
        }
        server::serve(listener, server::router(studio, access))
            .await
            .context("serving")
    })
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Render(args) => render(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // As `amt`'s exit codes: 2 for bad input, 4 for any other error.
            ExitCode::from(if e.is::<BadInput>() { 2 } else { 4 })
        }
    }
}
