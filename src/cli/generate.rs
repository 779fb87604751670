//! `amt generate --text "…"`: writes MIDI from text with the project's trained
//! model. The work happens in the `amt-generate` binary beside `amt` (which
//! links libtorch); this command finds the model directory, the `model` dep of
//! the stage that runs the built-in `generate`, and hands over.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use amt::config::Run;
use amt::project::Project;

/// The binary that does the generating.
const GENERATE_BINARY: &str = "amt-generate";

#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// --text "…" [--out f.mid] [--num N] [--temperature T] [--top-k K] [--top-p P]
    /// [--max-tokens N] [--seed S] [--guidance G] [--strict] [--model DIR]; `amt generate --help`
    /// lists them all.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "OPTIONS"
    )]
    options: Vec<String>,
}

/// The `model` dep of the stage running the built-in `generate`, if the project has one.
pub fn project_model(project: &Project) -> Option<PathBuf> {
    let stage = project
        .pipeline
        .stages
        .iter()
        .find(|s| matches!(&s.run, Run::Builtin { name, .. } if name == "generate"))?;
    let (_, path) = stage
        .dep_roles
        .as_ref()?
        .iter()
        .find(|(role, _)| role == "model")?;
    Some(project.root.join(path.as_str()))
}

pub fn run(project: Option<&Project>, args: Args) -> ExitCode {
    let mut command = beside(GENERATE_BINARY);
    command.args(&args.options);
    if std::env::var_os("AMT_MODEL").is_none()
        && let Some(model) = project.and_then(project_model)
    {
        command.env("AMT_MODEL", model);
    }
    exec(command)
}

/// A command for `binary`, which is built beside `amt`.
pub fn beside(binary: &str) -> std::process::Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("amt"));
    std::process::Command::new(exe.with_file_name(binary))
}

/// Replaces this process with `command`; returns only if that fails.
pub fn exec(mut command: std::process::Command) -> ExitCode {
    let err = command.exec();
    eprintln!(
        "error: cannot run {}: {err} (it is built with the workspace: cargo build --workspace)",
        command.get_program().display()
    );
    ExitCode::from(4)
}
