//! `amt-stage NAME`: runs one built-in stage with the inputs that `amt run`
//! passes in the environment (`AMT_PARAMS`, `AMT_DEPS`, `AMT_OUTS`, …).
//! `amt-stage --list` prints the stages and their code versions;
//! `amt-stage --probe` prints them with the machine facts, as JSON, for the
//! engine's action keys.

use std::process::ExitCode;

/// The code version the engine keyed the stage with (amt sets it).
const EXPECTED_VERSION: &str = "AMT_CODE_VERSION";

fn main() -> ExitCode {
    // Die with the process that started us (amt's `sh -c`), so a stage never
    // outlives a killed `amt run` and writes outputs behind the next run's back.
    // SAFETY: prctl with PR_SET_PDEATHSIG only changes this process's own settings.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--list" => {
            for b in amt_stages::BUILTINS {
                println!("{:<10} {}  {}", b.name, b.version, b.summary);
            }
            ExitCode::SUCCESS
        }
        [flag] if flag == "--probe" => {
            let probe = amt_stages::facts::probe();
            match serde_json::to_string(&probe) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: encoding the probe: {e}");
                    ExitCode::from(1)
                }
            }
        }
        [name] => {
            let (Some(info), Some(run)) = (amt_stages::builtin(name), amt_stages::runner(name))
            else {
                let names: Vec<&str> = amt_stages::BUILTINS.iter().map(|b| b.name).collect();
                eprintln!(
                    "error: no built-in stage is called `{name}` (available: {})",
                    names.join(", ")
                );
                return ExitCode::from(2);
            };
            // The engine keyed this run with the code version compiled into
            // amt; results of other code must never be stored under that key.
            if let Ok(expected) = std::env::var(EXPECTED_VERSION)
                && expected != info.version
            {
                eprintln!(
                    "error: stage {name}: amt expects code version {expected}, but this amt-stage \
                     was built from other sources ({}); rebuild both: cargo build --release --bins",
                    info.version
                );
                return ExitCode::from(2);
            }
            match amt_stages::StageContext::from_env().and_then(|ctx| run(&ctx)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: stage {name}: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        _ => {
            eprintln!("usage: amt-stage NAME | amt-stage --list | amt-stage --probe");
            ExitCode::from(2)
        }
    }
}
