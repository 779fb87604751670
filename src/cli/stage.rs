//! `amt stage NAME`: runs a built-in stage with the inputs amt passes in the
//! environment. `amt run` invokes it; users rarely need to.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The built-in stage to run.
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// List the built-in stages and their code versions.
    #[arg(long)]
    list: bool,
}

pub fn run(args: Args) -> ExitCode {
    if args.list {
        for b in amt_stages::BUILTINS {
            println!("{:<10} {}  {}", b.name, b.version, b.summary);
        }
        return ExitCode::SUCCESS;
    }
    let name = args.name.unwrap_or_default();
    let Some(builtin) = amt_stages::builtin(&name) else {
        let names: Vec<&str> = amt_stages::BUILTINS.iter().map(|b| b.name).collect();
        eprintln!("error: no built-in stage is called `{name}` (available: {})", names.join(", "));
        return ExitCode::from(2);
    };
    let result = amt_stages::StageContext::from_env().and_then(|ctx| (builtin.run)(&ctx));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: stage {name}: {e:#}");
            ExitCode::from(1)
        }
    }
}
