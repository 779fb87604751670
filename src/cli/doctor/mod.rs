//! `amt doctor`: whether this machine can run this project, and if not, why
//! and what to do. Each check is one line with a status and, where something
//! is wrong, the fix; `--json` gives the same for CI; the exit code is 1 when
//! any check failed. `--deep` also hashes every cached object (see amt::fsck).

mod machine;

use std::time::Duration;

use amt::config::Run;
use amt::lock;
use amt::project::Project;
use amt::remote::Remote;
use serde::Serialize;

use super::builtins::{Probe, ProbeError, probe_now};
use super::stage::stage_binary;
use super::{Failure, Ui};

#[derive(clap::Args)]
pub struct Args {
    /// Also hash every object in cache/ against its digest (`amt gc --repair`
    /// removes what is damaged).
    #[arg(long)]
    deep: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

/// One line of the report.
#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    status: Status,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn check(check: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        check,
        status,
        detail: detail.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

pub fn run(project: Result<Project, Failure>, args: Args, ui: Ui) -> Result<(), Failure> {
    let mut report = Vec::new();
    let project = match project {
        Ok(p) => {
            report.push(check("project", Status::Ok, format!("{} loads", p.root.join("amt.toml").display())));
            Some(p)
        }
        Err(Failure::Input(e) | Failure::Other(e) | Failure::Lock(e)) => {
            report.push(
                check("project", Status::Fail, format!("{e:#}")).fix(
                    "correct amt.toml where the message points, or restore what it names \
                     (scripts/setup.sh re-links the sentence encoder and libtorch)",
                ),
            );
            None
        }
        Err(_) => None,
    };
    let uses_builtins = project.as_ref().is_none_or(|p| {
        p.pipeline
            .stages
            .iter()
            .any(|s| matches!(s.run, Run::Builtin { .. }))
    });
    // GPUs stages that run here need (a cluster's stages bring their own).
    let gpus_needed = project.as_ref().map_or(0, |p| {
        use amt::config::ExecutorKind;
        let kind = p.pipeline.executor.kind;
        p.pipeline
            .stages
            .iter()
            .filter(|s| s.executor.unwrap_or(kind) == ExecutorKind::Local)
            .map(|s| s.resources.gpus)
            .max()
            .unwrap_or(0)
    });
    report.extend(stage_binary_checks(uses_builtins, gpus_needed));
    let here = std::env::current_dir().unwrap_or_default();
    match &project {
        Some(project) => {
            report.push(inputs(project));
            report.push(machine::disk(&project.root));
            report.push(machine::memory(project));
            report.push(remote(project));
            report.push(slurm(project));
            report.push(lock_state(project));
            if args.deep {
                report.push(cache(project));
            }
        }
        None => report.push(machine::disk(&here)),
    }

    if ui.json {
        let doc = serde_json::json!({
            "ok": !report.iter().any(|c| c.status == Status::Fail),
            "checks": report,
        });
        println!("{doc:#}");
    } else {
        for c in &report {
            let word = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            println!("{word}  {:<12} {}", c.check, c.detail);
            if let Some(fix) = &c.fix {
                println!("      {:<12} fix: {fix}", "");
            }
        }
    }
    if report.iter().any(|c| c.status == Status::Fail) {
        Err(Failure::Stage)
    } else {
        Ok(())
    }
}

/// amt-stage runs, matches amt, loads libtorch; and the GPU, if any.
fn stage_binary_checks(needed: bool, gpus_needed: u32) -> Vec<Check> {
    let rebuild = "cargo build --release --bins (or scripts/demo.sh); scripts/setup.sh installs libtorch";
    let probe: Result<Probe, ProbeError> = probe_now();
    let mut out = Vec::new();
    match &probe {
        Err(e) => {
            let status = if needed { Status::Fail } else { Status::Warn };
            out.push(check("amt-stage", status, e.to_string()).fix(rebuild));
            out.push(check("libtorch", Status::Skip, "amt-stage did not run"));
        }
        Ok(p) => {
            let stale: Vec<String> = amt_registry::BUILTINS
                .iter()
                .filter(|b| p.versions.get(b.name).map(String::as_str) != Some(b.version))
                .map(|b| b.name.to_owned())
                .collect();
            let bad = if needed { Status::Fail } else { Status::Warn };
            out.push(if stale.is_empty() {
                check(
                    "amt-stage",
                    Status::Ok,
                    format!("{} matches this amt ({} stages)", stage_binary().display(), p.versions.len()),
                )
            } else {
                check(
                    "amt-stage",
                    bad,
                    format!("built from other sources than this amt (stages {})", stale.join(", ")),
                )
                .fix(rebuild)
            });
            let version = p.facts.get("libtorch").cloned().unwrap_or_default();
            let bad = if needed { Status::Fail } else { Status::Warn };
            out.push(if version.is_empty() || version == "unknown" {
                check("libtorch", bad, "loaded, but its version is unknown").fix(rebuild)
            } else {
                check(
                    "libtorch",
                    Status::Ok,
                    format!(
                        "{version} loads; CPU kernels {}",
                        p.facts.get("cpu").map_or("?", String::as_str)
                    ),
                )
            });
        }
    }
    let driver = std::fs::read_to_string("/proc/driver/nvidia/version").ok();
    let cuda = probe.as_ref().ok().and_then(|p| p.facts.get("cuda").cloned());
    out.push(match (driver, cuda.as_deref()) {
        (None, _) if gpus_needed > 0 => check(
            "cuda",
            Status::Fail,
            format!("a stage declares {gpus_needed} GPU(s) and this machine has no NVIDIA driver"),
        )
        .fix("run those stages on Slurm (--executor slurm) or on a GPU machine"),
        (None, _) => check("cuda", Status::Skip, "no NVIDIA driver: built-in stages run on the CPU"),
        (Some(d), Some("none")) => check(
            "cuda",
            Status::Warn,
            format!(
                "driver present ({}) but libtorch sees no GPU",
                d.lines().next().unwrap_or("").trim()
            ),
        )
        .fix("scripts/setup.sh installs the CUDA build of torch when nvidia-smi exists"),
        (Some(d), Some(gpus)) => check(
            "cuda",
            Status::Ok,
            format!("{gpus}; {}", d.lines().next().unwrap_or("").trim()),
        ),
        (Some(_), None) => check("cuda", Status::Skip, "amt-stage did not run"),
    });
    out
}

/// Every dep no stage produces (the corpus, the sentence encoder, the
/// prompts): amt refuses to load a pipeline whose input is missing, so here
/// they are there; this says where the linked ones lead (a link into a venv
/// is how the encoder arrives) and flags empty directories, which a half-done
/// install leaves.
fn inputs(project: &Project) -> Check {
    let stages = &project.pipeline.stages;
    let (mut links, mut empty, mut external) = (Vec::new(), Vec::new(), 0);
    for stage in stages {
        for dep in &stage.deps {
            if stages.iter().any(|s| s.outs.iter().any(|o| o.overlaps(dep))) {
                continue;
            }
            external += 1;
            let path = dep.to_fs(&project.root);
            if let Ok(target) = std::fs::read_link(&path) {
                links.push(format!("{dep} → {}", target.display()));
            }
            if path.is_dir() && std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none()) {
                empty.push(format!("{dep} (of {})", stage.name));
            }
        }
    }
    let mut detail = format!("{external} external deps");
    if !links.is_empty() {
        detail.push_str(&format!("; links: {}", links.join(", ")));
    }
    if empty.is_empty() {
        check("inputs", Status::Ok, detail)
    } else {
        check("inputs", Status::Warn, format!("{detail}; empty: {}", empty.join(", ")))
            .fix("scripts/setup.sh installs the encoder; restore the data the stages read")
    }
}

fn remote(project: &Project) -> Check {
    let Some(cfg) = &project.pipeline.remote else {
        return check("remote", Status::Skip, "no [remote] in amt.toml");
    };
    match Remote::open(&cfg.url).and_then(|r| r.ping()) {
        Ok(rtt) => check(
            "remote",
            Status::Ok,
            format!("{} answers in {} ms", cfg.url, rtt.as_millis()),
        ),
        Err(e) => check("remote", Status::Fail, e.to_string())
            .fix("check the URL, and AWS_ENDPOINT_URL and the credentials for S3"),
    }
}

/// Whether slurmctld answers, when a stage would run on Slurm.
fn slurm(project: &Project) -> Check {
    if !project.pipeline.uses_slurm(project.pipeline.executor.kind) {
        return check("slurm", Status::Skip, "no stage runs on Slurm ([executor] kind = \"slurm\" or --executor slurm)");
    }
    let started = std::time::Instant::now();
    match std::process::Command::new("sinfo")
        .args(["--noheader", "--format=%P %a %D %t"])
        .output()
    {
        Err(e) => check("slurm", Status::Fail, format!("cannot run sinfo: {e}"))
            .fix("install Slurm's client commands, or run without --executor slurm"),
        Ok(out) if !out.status.success() => check(
            "slurm",
            Status::Fail,
            format!("sinfo failed: {}", String::from_utf8_lossy(&out.stderr).trim()),
        )
        .fix("check that slurmctld runs and SLURM_CONF names its slurm.conf"),
        Ok(out) => {
            let partitions: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect();
            // `%P %a …`: the name (`debug*` marks the default) and whether it is up.
            let up = |name: &str| {
                partitions.iter().any(|p| {
                    let mut w = p.split_whitespace();
                    w.next().map(|n| n.trim_end_matches('*')) == Some(name) && w.next() == Some("up")
                })
            };
            let wanted = project.pipeline.executor.slurm.options.partition.clone();
            let text = format!(
                "slurmctld answers in {} ms; partitions: {}",
                started.elapsed().as_millis(),
                partitions.join("; ")
            );
            match wanted {
                _ if partitions.is_empty() => check("slurm", Status::Fail, "slurmctld answers but lists no partition")
                    .fix("ask the cluster's admins; amt cannot submit anywhere"),
                Some(p) if !up(&p) => check("slurm", Status::Fail, format!("{text}; `{p}` is not there or not up"))
                    .fix("set [executor.slurm] partition to one that is up"),
                _ => check("slurm", Status::Ok, text),
            }
        }
    }
}

fn lock_state(project: &Project) -> Check {
    let mut holder = None;
    match lock::acquire(&project.cache_dir().join("lock"), Duration::ZERO, |h| {
        holder = Some(h.0.clone())
    }) {
        Ok(_free) => check("lock", Status::Ok, "free"),
        Err(lock::LockError::Timeout { .. }) => check(
            "lock",
            Status::Warn,
            format!("held by {}", holder.unwrap_or_else(|| "another process".into())),
        ),
        Err(e) => check("lock", Status::Fail, e.to_string()),
    }
}

fn cache(project: &Project) -> Check {
    let store = amt::store::Store::new(&project.cache_dir());
    match amt::fsck::check(&store) {
        Err(e) => check("cache", Status::Fail, format!("cannot read the cache: {e}")),
        Ok(r) if r.is_clean() => check(
            "cache",
            Status::Ok,
            format!(
                "{} objects and {} action results match their digests",
                r.objects_checked, r.actions_checked
            ),
        ),
        Ok(r) => check(
            "cache",
            Status::Fail,
            format!(
                "{} damaged objects and {} damaged action results (of {} and {})",
                r.damaged_objects.len(),
                r.damaged_actions.len(),
                r.objects_checked,
                r.actions_checked
            ),
        )
        .fix("amt gc --repair removes them; the stages they served run again"),
    }
}
