//! What a built-in stage receives from the engine: its params and the paths
//! bound to its dep and out roles, read from the [`Invocation`] amt passes in
//! the environment.

use std::path::{Path, PathBuf};

use amt_registry::invocation::{Bindings, Invocation};
use anyhow::{anyhow, bail};
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
    deps: Bindings,
    outs: Bindings,
    metrics: Vec<String>,
}

impl StageContext {
    /// The context `amt run` passes in the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let Invocation {
            given,
            place,
            params,
            facts: _,
        } = Invocation::from_env()?;
        Ok(Self {
            root: place.root,
            scratch: place.scratch,
            memo: place.memo,
            code_version: given.code_version,
            progress: place.progress,
            params,
            deps: given.deps,
            outs: given.outs,
            metrics: given.metrics,
        })
    }

    /// A context built directly, for tests and library callers: `deps` and
    /// `outs` are JSON as amt passes them (`{"role": "path"}`, or a list), or
    /// null for none.
    ///
    /// # Panics
    /// When `deps` or `outs` is none of those.
    pub fn new(root: PathBuf, scratch: PathBuf, params: Value, deps: Value, outs: Value) -> Self {
        let bindings = |v: Value| -> Bindings {
            match v {
                Value::Null => Bindings::Paths(Vec::new()),
                v => serde_json::from_value(v)
                    .expect("bindings are a map of roles to paths, or a list"),
            }
        };
        Self {
            root,
            memo: scratch.join("memo"),
            scratch,
            code_version: None,
            progress: None,
            params,
            deps: bindings(deps),
            outs: bindings(outs),
            metrics: Vec::new(),
        }
    }

    /// The same context with declared metrics files (as `metrics = [...]` gives them).
    pub fn with_metrics(mut self, paths: &[&str]) -> Self {
        self.metrics = paths.iter().map(|p| (*p).to_owned()).collect();
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

    fn bound(
        &self,
        what: &str,
        bindings: &Bindings,
        role: &str,
    ) -> anyhow::Result<Option<PathBuf>> {
        match bindings.role(role) {
            Ok(path) => Ok(path.map(|p| self.root.join(p))),
            Err(_) if bindings.is_empty() => Ok(None),
            Err(_) => bail!(
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
        self.metrics.iter().map(|p| self.root.join(p)).collect()
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
