//! The built-in stages as the engine sees them: names and code versions from
//! the registry, machine facts from `amt-stage --probe`, run by `amt-stage`.
//!
//! The probe loads libtorch (about half a second), so its answer is kept in
//! `cache/probe/HOST.json` with a stamp of everything it depends on: the
//! `amt-stage` binary, the files it names (libtorch, the font), the variables
//! libtorch reads and the GPUs the driver lists. A no-op run only compares
//! the stamp.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use amt::config::Builtins;
use amt::fsutil::write_atomic;
use serde::{Deserialize, Serialize};

use super::stage::stage_binary;

/// What `amt-stage --probe` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// Each stage's code version as compiled into `amt-stage`.
    pub versions: BTreeMap<String, String>,
    /// The machine facts.
    pub facts: BTreeMap<String, String>,
    /// Files whose change can change a fact.
    pub watch: Vec<PathBuf>,
}

/// `amt-stage --probe` gave no answer.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "cannot run {}: {error}; it is built with the workspace (cargo build --release --bins)",
        binary.display()
    )]
    Spawn {
        binary: PathBuf,
        error: Arc<std::io::Error>,
    },
    #[error("{} --probe failed: {stderr}", binary.display())]
    Failed { binary: PathBuf, stderr: String },
    #[error("{} --probe printed no probe: {error}", binary.display())]
    Unreadable {
        binary: PathBuf,
        error: Arc<serde_json::Error>,
    },
}

/// Why the facts of a built-in stage cannot be vouched for.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("no built-in stage `{0}`")]
    Unknown(String),
    #[error(
        "{} was built from other sources than this amt: stage {stage} has code version {ours} \
         in amt and {} in amt-stage. Running it would store the old code's output under the new \
         code's key; rebuild both: cargo build --release --bins (or scripts/demo.sh)",
        binary.display(),
        theirs.as_deref().unwrap_or("none")
    )]
    Stale {
        binary: PathBuf,
        stage: String,
        ours: String,
        theirs: Option<String>,
    },
    #[error("amt-stage --probe did not report the fact `{0}`")]
    MissingFact(String),
}

#[derive(Serialize, Deserialize)]
struct Cached {
    stamp: Vec<String>,
    probe: Probe,
}

/// The processor (model and feature flags) and the GPU driver, so that a
/// cache carried to another machine with the same host name is probed again.
fn machine_identity() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let first = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| blake3::hash(l.as_bytes()).to_hex()[..16].to_owned())
            .unwrap_or_default()
    };
    let driver = std::fs::read_to_string("/proc/driver/nvidia/version").unwrap_or_default();
    vec![
        format!("cpu model {}", first("model name")),
        format!("cpu flags {}", first("flags")),
        format!("driver {}", blake3::hash(driver.as_bytes()).to_hex()[..16].to_owned()),
    ]
}

fn stat_line(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!(
            "{} {} {} {} {}.{}",
            path.display(),
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec()
        ),
        Err(_) => format!("{} missing", path.display()),
    }
}

/// Everything the probe's answer depends on, cheap to read.
fn stamp(binary: &Path, watch: &[PathBuf]) -> Vec<String> {
    let mut s = vec![stat_line(binary)];
    s.extend(watch.iter().map(|p| stat_line(p)));
    let vars = amt_registry::PROBE_VARS.iter().chain(amt_registry::TORCH_VARS);
    s.extend(vars.map(|v| format!("{v}={}", std::env::var(v).unwrap_or_default())));
    let mut gpus: Vec<String> = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    gpus.sort();
    s.push(format!("gpus={}", gpus.join(",")));
    s.extend(machine_identity());
    s
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .unwrap_or_else(|| "localhost".into())
}

/// The probe, from the cache when its stamp still holds.
fn probe(cache: &Path) -> Result<Probe, ProbeError> {
    let binary = stage_binary();
    let file = cache.join("probe").join(format!("{}.json", host()));
    if let Some(cached) = std::fs::read(&file)
        .ok()
        .and_then(|b| serde_json::from_slice::<Cached>(&b).ok())
        && cached.stamp == stamp(&binary, &cached.probe.watch)
    {
        return Ok(cached.probe);
    }
    let probe = probe_now()?;
    let cached = Cached {
        stamp: stamp(&binary, &probe.watch),
        probe,
    };
    // The probe is only a memo: failing to keep it costs the next run half a second.
    if let Ok(bytes) = serde_json::to_vec_pretty(&cached) {
        let _ = write_atomic(&file, &bytes);
    }
    Ok(cached.probe)
}

/// Runs `amt-stage --probe` now.
pub fn probe_now() -> Result<Probe, ProbeError> {
    let binary = stage_binary();
    let out = match std::process::Command::new(&binary).arg("--probe").output() {
        Ok(out) => out,
        Err(e) => {
            return Err(ProbeError::Spawn {
                binary,
                error: Arc::new(e),
            });
        }
    };
    if !out.status.success() {
        return Err(ProbeError::Failed {
            binary,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    serde_json::from_slice(&out.stdout).map_err(|e| ProbeError::Unreadable {
        binary,
        error: Arc::new(e),
    })
}

/// The registry of built-in stages that `amt` runs through `amt-stage`.
pub struct StageRegistry;

impl Builtins for StageRegistry {
    fn version(&self, name: &str) -> Option<String> {
        amt_registry::builtin(name).map(|b| b.version.to_owned())
    }

    fn names(&self) -> Vec<String> {
        amt_registry::BUILTINS
            .iter()
            .map(|b| b.name.to_owned())
            .collect()
    }

    fn command(&self, name: &str) -> String {
        let exe = stage_binary().display().to_string();
        format!("'{}' {name}", exe.replace('\'', "'\\''"))
    }

    fn facts(
        &self,
        name: &str,
        cache: &Path,
    ) -> Result<BTreeMap<String, String>, Box<dyn std::error::Error + Send + Sync>> {
        static PROBE: OnceLock<Result<Probe, ProbeError>> = OnceLock::new();
        let probe = PROBE
            .get_or_init(|| probe(cache))
            .as_ref()
            .map_err(|e| FactsError::from(e.clone()))?;
        let info =
            amt_registry::builtin(name).ok_or_else(|| FactsError::Unknown(name.to_owned()))?;
        let theirs = probe.versions.get(name);
        if theirs.map(String::as_str) != Some(info.version) {
            return Err(FactsError::Stale {
                binary: stage_binary(),
                stage: name.to_owned(),
                ours: info.version.to_owned(),
                theirs: theirs.cloned(),
            }
            .into());
        }
        Ok(info
            .facts
            .iter()
            .map(|f| {
                probe
                    .facts
                    .get(*f)
                    .map(|v| (f.to_string(), v.clone()))
                    .ok_or_else(|| FactsError::MissingFact(f.to_string()))
            })
            .collect::<Result<_, _>>()?)
    }
}
