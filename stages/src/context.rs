//! What a built-in stage receives from the engine: its params and the paths
//! bound to its dep and out roles, read from the environment amt sets.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The inputs of one built-in stage run.
#[derive(Clone, Debug)]
pub struct StageContext {
    /// The project root; every bound path is relative to it.
    pub root: PathBuf,
    /// Where interrupted work on this action resumes (train's checkpoints).
    /// The engine empties it when the action changes or on `--force`.
    pub scratch: PathBuf,
    /// Memos of outside lookups, kept whatever the action (describe's HTTP
    /// cache). Never for state derived from the stage's inputs.
    pub memo: PathBuf,
    /// The code version the engine keyed this run with, when run by amt.
    pub code_version: Option<String>,
    /// Where to report progress (`AMT_PROGRESS`), when run by amt.
    pub progress: Option<PathBuf>,
    params: Value,
    deps: Value,
    outs: Value,
    metrics: Value,
}

fn json_var(name: &str) -> anyhow::Result<Value> {
    match std::env::var(name) {
        Ok(text) => {
            serde_json::from_str(&text).with_context(|| format!("${name} is not valid JSON"))
        }
        Err(_) => Ok(Value::Null),
    }
}

impl StageContext {
    /// Reads `AMT_PROJECT_ROOT`, `AMT_SCRATCH`, `AMT_MEMO`, `AMT_CODE_VERSION`,
    /// `AMT_PARAMS`, `AMT_DEPS`, `AMT_OUTS` and `AMT_METRICS`.
    pub fn from_env() -> anyhow::Result<Self> {
        let root = std::env::var_os("AMT_PROJECT_ROOT")
            .map(PathBuf::from)
            .ok_or_else(|| {
                anyhow!("AMT_PROJECT_ROOT is not set: built-in stages run under `amt run`")
            })?;
        let scratch = std::env::var_os("AMT_SCRATCH")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("cache/scratch"));
        let memo = std::env::var_os("AMT_MEMO")
            .map(PathBuf::from)
            .unwrap_or_else(|| scratch.join("memo"));
        Ok(Self {
            root,
            scratch,
            memo,
            code_version: std::env::var("AMT_CODE_VERSION").ok(),
            progress: std::env::var_os(amt_registry::progress::PROGRESS_VAR).map(PathBuf::from),
            params: json_var("AMT_PARAMS")?,
            deps: json_var("AMT_DEPS")?,
            outs: json_var("AMT_OUTS")?,
            metrics: json_var("AMT_METRICS")?,
        })
    }

    /// A context built directly, for tests and library callers.
    pub fn new(root: PathBuf, scratch: PathBuf, params: Value, deps: Value, outs: Value) -> Self {
        Self {
            root,
            memo: scratch.join("memo"),
            scratch,
            code_version: None,
            progress: None,
            params,
            deps,
            outs,
            metrics: Value::Null,
        }
    }

    /// The same context with declared metrics files (as `metrics = [...]` gives them).
    pub fn with_metrics(mut self, paths: &[&str]) -> Self {
        self.metrics = Value::Array(
            paths
                .iter()
                .map(|p| Value::String((*p).to_owned()))
                .collect(),
        );
        self
    }

    /// The `[params] TABLE.*` values, with defaults for what is not set.
    /// Unknown keys are errors that name them.
    pub fn params<T: DeserializeOwned + Default>(&self, table: &str) -> anyhow::Result<T> {
        match self.params.get(table) {
            None | Some(Value::Null) => Ok(T::default()),
            Some(v) => serde_path_to_error::deserialize(v.clone()).map_err(|e| {
                // Name the full dotted key of the offending table, e.g. `describe.captions`.
                let at = e.path().to_string();
                let key = if at == "." {
                    table.to_owned()
                } else {
                    format!("{table}.{at}")
                };
                let key = key
                    .rsplit_once('.')
                    .map_or(key.as_str(), |(t, _)| t)
                    .to_owned();
                anyhow!("invalid [params] {key}: {}", e.inner())
            }),
        }
    }

    fn bound(&self, what: &str, bindings: &Value, role: &str) -> anyhow::Result<Option<PathBuf>> {
        match bindings {
            Value::Object(map) => match map.get(role) {
                Some(Value::String(p)) => Ok(Some(self.root.join(p))),
                Some(other) => bail!("{what}.{role} must be a path, not {other}"),
                None => Ok(None),
            },
            Value::Null => Ok(None),
            _ => bail!(
                "this built-in stage needs named {what}, like `{what} = {{ {role} = \"path\" }}`"
            ),
        }
    }

    /// The path bound to a dep role; an error names the role if it is missing.
    pub fn dep(&self, role: &str) -> anyhow::Result<PathBuf> {
        self.bound("deps", &self.deps, role)?
            .ok_or_else(|| anyhow!("this built-in stage needs `deps = {{ {role} = \"…\" }}`"))
    }

    /// The path bound to a dep role, if any.
    pub fn optional_dep(&self, role: &str) -> anyhow::Result<Option<PathBuf>> {
        self.bound("deps", &self.deps, role)
    }

    /// The stage's declared metrics files (`metrics = [...]` in amt.toml).
    pub fn metrics_files(&self) -> Vec<PathBuf> {
        match &self.metrics {
            Value::Array(paths) => paths
                .iter()
                .filter_map(Value::as_str)
                .map(|p| self.root.join(p))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Writes a stage's headline numbers to every declared metrics file.
    pub fn write_metrics(&self, metrics: &Value) -> anyhow::Result<()> {
        for path in self.metrics_files() {
            crate::atomic::write_json(&path, metrics)?;
        }
        Ok(())
    }

    /// A progress meter for `amt run` to show, in `unit`s out of `total`.
    pub fn meter(&self, unit: &'static str, total: Option<u64>) -> crate::progress::Meter {
        crate::progress::Meter::new(self.progress.clone(), unit, total)
    }

    /// The path bound to an out role; an error names the role if it is missing.
    pub fn out(&self, role: &str) -> anyhow::Result<PathBuf> {
        self.bound("outs", &self.outs, role)?
            .ok_or_else(|| anyhow!("this built-in stage needs `outs = {{ {role} = \"…\" }}`"))
    }
}

/// `to` relative to the directory `from` (both under the same root).
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    to[common..].iter().for_each(|c| out.push(c));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_out_of_the_output_directory() {
        assert_eq!(
            relative_path(Path::new("/p/artifacts/train"), Path::new("/p/models/enc")),
            PathBuf::from("../../models/enc")
        );
        assert_eq!(
            relative_path(Path::new("/p/out"), Path::new("/p/out/enc")),
            PathBuf::from("enc")
        );
    }
}
