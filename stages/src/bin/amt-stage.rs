//! `amt-stage NAME`: runs one built-in stage with the inputs that `amt run`
//! passes in the environment (`AMT_PARAMS`, `AMT_DEPS`, `AMT_OUTS`, …).
//! `amt-stage --list` prints the stages and their code versions;
//! `amt-stage --probe` prints them with the machine facts, as JSON, for the
//! engine's action keys.

use std::collections::BTreeMap;
use std::process::ExitCode;

use amt_registry::invocation::var;

/// The implementation of a built-in stage named in the registry.
fn runner(name: &str) -> Option<amt_stages::Runner> {
    use amt_stages::*;
    match name {
        "collect" => Some(collect::run),
        "describe" => Some(describe::run),
        "embed" => Some(embed::run),
        "cluster" => Some(cluster::run),
        "prepare" => Some(prepare::run),
        "train" => Some(train::run),
        "generate" => Some(generate::run),
        "evaluate" => Some(evaluate::run),
        _ => None,
    }
}

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
            let (Some(info), Some(run)) = (amt_stages::builtin(name), runner(name))
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
            if let Ok(expected) = std::env::var(var::CODE_VERSION)
                && expected != info.version
            {
                eprintln!(
                    "error: stage {name}: amt expects code version {expected}, but this amt-stage \
                     was built from other sources ({}); rebuild both: cargo build --release --bins",
                    info.version
                );
                return ExitCode::from(2);
            }
            // Nor under machine facts that are not this machine's. A stage
            // keyed with none (collect, describe, cluster, prepare) skips the probe,
            // which asks libtorch for its GPUs.
            if let Ok(keyed) = std::env::var(var::FACTS) {
                let keyed: BTreeMap<String, String> = match serde_json::from_str(&keyed) {
                    Ok(k) => k,
                    Err(e) => {
                        eprintln!("error: stage {name}: AMT_FACTS is not a map of facts: {e}");
                        return ExitCode::from(2);
                    }
                };
                if let Err(e) = amt_stages::facts::check_keyed(&keyed) {
                    eprintln!("error: stage {name}: {e}");
                    return ExitCode::from(2);
                }
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_registered_stage_has_an_implementation() {
        for b in amt_stages::BUILTINS {
            assert!(super::runner(b.name).is_some(), "{} has no runner", b.name);
        }
    }
}
