//! `amt serve` and `amt render`: the studio (a web page and JSON API to write,
//! see and hear music) and MIDI-to-WAV rendering. Both run in the
//! `amt-studio` binary beside `amt`, which links libtorch and the
//! synthesizer; these commands find the project's model and hand over.

use std::process::ExitCode;

use amt::project::Project;

use super::generate::{beside, exec, project_model};

/// The binary that serves and renders.
const STUDIO_BINARY: &str = "amt-studio";

#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// `amt serve --help` and `amt render --help` list them.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "OPTIONS"
    )]
    options: Vec<String>,
}

/// `amt serve`: the studio for `project`, with its model and this `amt` for
/// the pipeline's state.
pub fn serve(project: &Project, args: Args) -> ExitCode {
    let mut command = beside(STUDIO_BINARY);
    command.arg("serve").arg("--project").arg(&project.root);
    if let Ok(me) = std::env::current_exe() {
        command.env("AMT_BIN", me);
    }
    // The studio asks `amt status` and `amt runs`: under the same profile.
    if let Some(profile) = &project.pipeline.profile {
        command.env("AMT_PROFILE", profile);
    }
    if std::env::var_os("AMT_MODEL").is_none()
        && let Some(model) = project_model(project)
    {
        command.env("AMT_MODEL", model);
    }
    command.args(&args.options);
    exec(command)
}

/// `amt render in.mid --out out.wav`.
pub fn render(args: Args) -> ExitCode {
    let mut command = beside(STUDIO_BINARY);
    command.arg("render").args(&args.options);
    exec(command)
}
