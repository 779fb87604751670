//! The facts about this machine that a built-in stage's bytes can depend on,
//! as `amt-stage --probe` reports them to the engine, which puts the ones a
//! stage's code reaches into its action key (amt-registry's `FACTS` says which).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// What `amt-stage --probe` prints.
#[derive(Debug, Serialize)]
pub struct Probe {
    /// Each built-in stage's code version, as compiled into this binary.
    pub versions: BTreeMap<&'static str, &'static str>,
    /// Each fact's value on this machine.
    pub facts: BTreeMap<&'static str, String>,
    /// Files whose change can change a fact; the engine probes again when one does.
    pub watch: Vec<PathBuf>,
}

/// The directory of the libtorch this process loaded: from the memory map
/// (`LD_LIBRARY_PATH` can load another than the one linked against), else
/// the one it was linked against.
fn libtorch_lib() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let loaded = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| Path::new(p).parent().map(Path::to_owned));
    let linked = env!("AMT_LIBTORCH_LIB");
    loaded.or_else(|| (!linked.is_empty()).then(|| PathBuf::from(linked)))
}

/// libtorch's version, from the files that ship beside its libraries: the
/// PyPI wheel's `version.py`, or a libtorch archive's `build-version`.
fn libtorch_version(lib: &Path) -> String {
    let base = lib.parent().unwrap_or(lib);
    if let Ok(text) = std::fs::read_to_string(base.join("version.py"))
        && let Some(v) = text.lines().find_map(|l| l.strip_prefix("__version__ = "))
    {
        return v.trim().trim_matches(['\'', '"']).to_owned();
    }
    std::fs::read_to_string(base.join("build-version"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPU kernels libtorch picks: the best of AVX-512, AVX2 and the default
/// that the CPU supports, lowered (never raised) by `ATEN_CPU_CAPABILITY`.
fn cpu_capability() -> String {
    let supported = supported_capability();
    let rank = |c: &str| match c {
        "avx512" => 2,
        "avx2" => 1,
        _ => 0,
    };
    match std::env::var("ATEN_CPU_CAPABILITY") {
        Ok(forced) if rank(&forced.to_ascii_lowercase()) < rank(&supported) => {
            forced.to_ascii_lowercase()
        }
        _ => supported,
    }
}

fn torch_env() -> String {
    let set: Vec<String> = amt_registry::TORCH_VARS
        .iter()
        .filter_map(|v| std::env::var(v).ok().map(|value| format!("{v}={value}")))
        .collect();
    if set.is_empty() { "none".into() } else { set.join(" ") }
}

fn supported_capability() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = info
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).split_whitespace().collect())
        .unwrap_or_default();
    let has = |f: &str| flags.contains(&f);
    if ["avx512f", "avx512bw", "avx512vl", "avx512dq"].iter().all(|f| has(f)) {
        "avx512".into()
    } else if has("avx2") && has("fma") {
        "avx2".into()
    } else {
        std::env::consts::ARCH.into()
    }
}

/// Whether libtorch can use a GPU, and the machine's GPU models (sorted):
/// what kernels a CUDA run gets. Not which GPUs are visible, nor how many: a
/// Slurm job is given its own `CUDA_VISIBLE_DEVICES`, and the stages use one.
fn cuda() -> String {
    if !tch::Cuda::is_available() {
        return "none".into();
    }
    let mut models: Vec<String> = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|gpu| std::fs::read_to_string(gpu.path().join("information")).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("Model:"))
                .map(|m| m.trim().to_owned())
        })
        .collect();
    models.sort();
    models.dedup();
    format!("cuda [{}]", models.join(", "))
}

/// This machine lacks a fact amt keyed the run with.
#[derive(Debug, thiserror::Error)]
#[error(
    "amt keyed this run for {name} = {keyed}, but this machine has {}; amt's probe \
     (cache/probe/) is stale: delete it and run again",
    here.as_deref().unwrap_or("nothing")
)]
pub struct FactMismatch {
    pub name: String,
    pub keyed: String,
    pub here: Option<String>,
}

/// Checks, before a stage runs, that this machine has the facts amt keyed
/// the run with (`AMT_FACTS`): a stale probe must never file one machine's
/// result under another's facts.
pub fn check_keyed(keyed: &BTreeMap<String, String>) -> Result<(), FactMismatch> {
    if keyed.is_empty() {
        return Ok(());
    }
    let here = probe().facts;
    for (name, value) in keyed {
        let found = here.get(name.as_str());
        if found != Some(value) {
            return Err(FactMismatch {
                name: name.clone(),
                keyed: value.clone(),
                here: found.cloned(),
            });
        }
    }
    Ok(())
}

/// Probes the machine.
pub fn probe() -> Probe {
    let lib = libtorch_lib();
    let font = crate::plot::font_path();
    let font_digest = font
        .and_then(|p| std::fs::read(p).ok())
        .map_or_else(|| "none".into(), |b| blake3::hash(&b).to_hex()[..16].to_owned());
    let facts = BTreeMap::from([
        ("libtorch", lib.as_deref().map_or_else(|| "unknown".into(), libtorch_version)),
        ("cpu", cpu_capability()),
        ("torch_env", torch_env()),
        ("cuda", cuda()),
        ("font", font_digest),
    ]);

    let mut watch: Vec<PathBuf> = crate::plot::FONT_PATHS.iter().map(PathBuf::from).collect();
    if let Some(lib) = &lib {
        let base = lib.parent().unwrap_or(lib);
        watch.extend([lib.join("libtorch_cpu.so"), base.join("version.py"), base.join("build-version")]);
    }
    Probe {
        versions: crate::BUILTINS.iter().map(|b| (b.name, b.version)).collect(),
        facts,
        watch,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_registered_fact_is_probed() {
        let probe = super::probe();
        for (name, _) in amt_registry::FACTS {
            assert!(probe.facts.contains_key(name), "{name} is not probed");
        }
        assert_eq!(probe.versions.len(), crate::BUILTINS.len());
        assert_ne!(probe.facts["libtorch"], "unknown", "{probe:?}");
    }
}
