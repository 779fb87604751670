//! A project: the directory holding `amt.toml`, its validated pipeline and graph.

use std::path::{Path, PathBuf};

use crate::config::{self, Builtins, ConfigError, MANIFEST, Pipeline, StageId};
use crate::dag::{Dag, DagError};

/// A loaded, validated project.
pub struct Project {
    /// The directory holding `amt.toml`.
    pub root: PathBuf,
    /// The validated pipeline.
    pub pipeline: Pipeline,
    /// Its stage graph.
    pub dag: Dag,
    /// The program's built-in stages.
    pub builtins: &'static dyn Builtins,
    /// The cache: objects, action results and the ledger (shared by sweep points).
    cache: PathBuf,
    /// This workspace's own records: state, logs, scratch, stat cache.
    local: PathBuf,
}

/// Finding or loading a project failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no {MANIFEST} in {0} or any parent directory")]
    NotFound(PathBuf),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Project {
    /// Finds `amt.toml` in `start` or its ancestors.
    pub fn discover(start: &Path) -> Result<PathBuf, ProjectError> {
        start
            .ancestors()
            .find(|dir| dir.join(MANIFEST).is_file())
            .map(Path::to_owned)
            .ok_or_else(|| ProjectError::NotFound(start.to_owned()))
    }

    /// Loads and validates the project rooted at `root`, with `[profiles.NAME]`
    /// applied when a profile is named.
    pub fn load(
        root: &Path,
        builtins: &'static dyn Builtins,
        profile: Option<&str>,
    ) -> Result<Self, ProjectError> {
        let manifest = root.join(MANIFEST);
        let mut pipeline = config::load(&manifest, builtins)?;
        if let Some(name) = profile {
            pipeline = pipeline.with_profile(name).map_err(|e| ConfigError {
                file: manifest.clone(),
                at: None,
                message: e.to_string(),
            })?;
        }
        let dag = Dag::build(&pipeline, root).map_err(|e| dag_error(&manifest, e))?;
        Ok(Self {
            root: root.to_owned(),
            pipeline,
            dag,
            builtins,
            cache: root.join("cache"),
            local: root.join("cache"),
        })
    }

    /// The same pipeline with other params, in another workspace directory
    /// that keeps its own state but shares this project's cache.
    pub fn variant(&self, root: &Path, pipeline: Pipeline) -> Result<Self, ProjectError> {
        let dag =
            Dag::build(&pipeline, root).map_err(|e| dag_error(&self.root.join(MANIFEST), e))?;
        Ok(Self {
            root: root.to_owned(),
            pipeline,
            dag,
            builtins: self.builtins,
            cache: self.cache.clone(),
            local: root.join(".amt"),
        })
    }

    /// The cache directory (`<root>/cache`, or the parent project's for a variant).
    pub fn cache_dir(&self) -> PathBuf {
        self.cache.clone()
    }

    /// This workspace's records (`<root>/cache` for a project, `<root>/.amt` for a variant).
    pub fn local_dir(&self) -> PathBuf {
        self.local.clone()
    }

    /// Resolves stage names given on the command line.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<StageId>, String> {
        names
            .iter()
            .map(|n| {
                self.pipeline.id(n).ok_or_else(|| {
                    let all = self.pipeline.stages.iter().map(|s| s.name.as_str());
                    match config::suggest(n, all) {
                        Some(s) => format!("no stage is called `{n}`; did you mean `{s}`?"),
                        None => format!("no stage is called `{n}`"),
                    }
                })
            })
            .collect()
    }
}

/// Locates a graph error in the manifest so it reads like the other config errors.
fn dag_error(manifest: &Path, e: DagError) -> ConfigError {
    let text = std::fs::read_to_string(manifest).unwrap_or_default();
    let offset = match &e {
        DagError::MissingDep { stage, dep } => text
            .find(&format!("[stages.{stage}]"))
            .and_then(|s| text[s..].find(&format!("\"{dep}")).map(|o| s + o)),
        DagError::Cycle(stages) => text.find(&format!("[stages.{}]", stages[0])),
    };
    let at = offset.map(|o| {
        let before = &text[..o];
        (
            before.matches('\n').count() + 1,
            before.rsplit('\n').next().map_or(0, str::len) + 1,
        )
    });
    ConfigError {
        file: manifest.to_owned(),
        at,
        message: e.to_string(),
    }
}
