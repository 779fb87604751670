//! `amt stage NAME`: runs a built-in stage. The stages live in the
//! `amt-stage` binary next to `amt`, so that `amt` itself never loads their
//! heavy dependencies (libtorch); this command hands over to it.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The built-in stage to run.
    #[arg(required_unless_present_any = ["list", "sources"])]
    name: Option<String>,
    /// List the built-in stages and their code versions.
    #[arg(long, conflicts_with = "sources")]
    list: bool,
    /// List the source files behind a built-in stage's code version, and the
    /// machine facts in its key.
    #[arg(long, value_name = "NAME")]
    sources: Option<String>,
}

/// The `amt-stage` binary installed beside the running `amt`.
pub fn stage_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("amt"));
    exe.with_file_name(amt_registry::STAGE_BINARY)
}

pub fn run(args: Args) -> ExitCode {
    if args.list {
        for b in amt_registry::BUILTINS {
            println!("{:<10} {}  {}", b.name, b.version, b.summary);
        }
        return ExitCode::SUCCESS;
    }
    if let Some(name) = args.sources {
        let Some(b) = amt_registry::builtin(&name) else {
            eprintln!("error: no built-in stage is called `{name}`");
            return ExitCode::from(2);
        };
        println!("{} {} (stages/, {} files)", b.name, b.version, b.sources.len());
        for f in b.sources {
            println!("  {f}");
        }
        if !b.facts.is_empty() {
            println!("machine facts: {}", b.facts.join(", "));
        }
        return ExitCode::SUCCESS;
    }
    let name = args.name.unwrap_or_default();
    let binary = stage_binary();
    let err = std::process::Command::new(&binary).arg(&name).exec();
    eprintln!(
        "error: cannot run {}: {err} (it is built with the workspace: cargo build --workspace)",
        binary.display()
    );
    ExitCode::from(4)
}
