//! `amt-generate` (run as `amt generate`): writes MIDI from a sentence with a
//! trained model directory (the train stage's output).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use amt_stages::audio;
use amt_stages::generate::{Generator, SampleOptions, slug};

/// Write music from text with a trained model.
#[derive(Parser)]
#[command(name = "amt generate", bin_name = "amt generate", max_term_width = 100)]
struct Args {
    /// What the music should be like, e.g. "a cheerful jig in D major, 6/8".
    #[arg(long)]
    text: String,
    /// The MIDI file to write (with --num > 1, a number is added before `.mid`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// How many pieces to write (seeds SEED, SEED+1, …).
    #[arg(long, default_value_t = 1)]
    num: usize,
    /// Softmax temperature; 0 always picks the likeliest token.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Sample among the k likeliest tokens only (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling: the smallest set of tokens holding this much probability.
    #[arg(long, default_value_t = 0.95)]
    top_p: f64,
    /// Music tokens to generate at most.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Classifier-free guidance: 1 samples the model as trained; above 1
    /// leans harder towards the text (each token then costs two passes).
    #[arg(long, default_value_t = SampleOptions::default().guidance)]
    guidance: f64,
    /// Write the tempo, meter and instruments the text names exactly, and
    /// keep pitches in the key it names unless the model is confident otherwise.
    #[arg(long)]
    strict: bool,
    /// The train stage's output directory (`amt generate` passes the project's).
    #[arg(long, env = "AMT_MODEL", default_value = "artifacts/train")]
    model: PathBuf,
    /// Torch threads. Sampling's operations are too small to spread over
    /// cores, so one thread each lets concurrent generations share the
    /// machine instead of fighting over it (0: the CPU share, `AMT_CPUS` or
    /// every core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `auto` (CUDA when present), `cpu` or `cuda`.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Also render each piece to a WAV file beside its MIDI file.
    #[arg(long)]
    wav: bool,
    /// The General MIDI SoundFont for --wav (default: $AMT_SOUNDFONT, else
    /// Debian's in /usr/share/sounds/sf2).
    #[arg(long, value_name = "FILE", requires = "wav")]
    soundfont: Option<PathBuf>,
}

fn run(args: Args) -> anyhow::Result<()> {
    let device = amt_stages::device::pick(&args.device, args.threads)?;
    let generator = Generator::load_on(&args.model, device).with_context(|| {
        format!(
            "loading the model in {} (run `amt run train` first)",
            args.model.display()
        )
    })?;
    // Load the SoundFont before generating, so a missing one fails fast.
    let synth = if args.wav {
        let path = audio::find_soundfont(args.soundfont.as_deref())?;
        Some(audio::Synth::load(&path)?)
    } else {
        None
    };
    let base = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.mid", slug(&args.text))));
    for k in 0..args.num {
        let opts = SampleOptions {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            max_tokens: args.max_tokens,
            seed: args.seed + k as u64,
            guidance: args.guidance,
            strict: args.strict,
        };
        let g = generator.generate(&args.text, &opts)?;
        let path = if args.num == 1 {
            base.clone()
        } else {
            let stem = base
                .file_stem()
                .map_or_else(|| "piece".into(), |s| s.to_string_lossy().into_owned());
            base.with_file_name(format!("{stem}-{k}.mid"))
        };
        if k == 0 {
            // The same for every piece of the text.
            println!(
                "understood: {} ({:.2} from its centroid)",
                g.conditioning.describe(),
                g.semantic_distance
            );
            if !g.unread.is_empty() {
                println!(
                    "not read as attributes (only the semantic token hears them): {}",
                    g.unread.join(", ")
                );
            }
        }
        amt_stages::atomic::write(&path, &g.midi)?;
        let c = &g.conditioning;
        let prefix = generator
            .tokenizer()
            .texts(&c.tokens(&generator.tokenizer().vocab))
            .join(" ");
        println!(
            "{}  ({} tokens{}; {prefix})",
            path.display(),
            g.tokens.len(),
            if g.ended { "" } else { ", cut at --max-tokens" }
        );
        if let Some(synth) = &synth {
            let wav = path.with_extension("wav");
            let sound = synth
                .render(&g.midi)
                .with_context(|| format!("rendering {}", path.display()))?;
            amt_stages::atomic::write(&wav, &sound.wav_bytes()?)?;
            println!("{}  ({:.1} s of audio)", wav.display(), sound.seconds());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
