//! `amt.toml`: parsing and validation into a typed [`Pipeline`].
//!
//! Every error names the file, line and column and the offending key, and an
//! unknown key comes with the nearest valid one as a suggestion.

mod error;
mod executor;
mod raw;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::names::{ProjectPath, StageName};
use crate::params::{ParamError, ParamKey, Params};

pub use error::{ConfigError, suggest};
use validate::parse_in;

pub use executor::{ExecutorConfig, ExecutorKind, SlurmConfig, SlurmOptions, UnknownExecutor, parse_duration};

/// The manifest's file name.
pub const MANIFEST: &str = "amt.toml";

/// Paths that belong to amt or to git. amt deletes a stage's outs before it
/// runs, so no out may be, hold or lie inside one of them.
pub const RESERVED: &[&str] = &["cache", MANIFEST, ".git", ".amt"];

/// `[sweeps.NAME]`: a grid of param values, optionally sampled.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// Dotted param key → the values to try.
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    /// Run this many points drawn at random from the grid, instead of all of it.
    pub samples: Option<usize>,
    /// The draws' seed.
    #[serde(default)]
    pub seed: u64,
}

/// `[remote]`: a cache shared between machines, read and written through on every run.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// `s3://bucket/prefix` (endpoint, region and credentials from `AWS_*`), or a directory.
    pub url: String,
    /// Upload what this project computes (default true); false only reads.
    #[serde(default = "yes")]
    pub push: bool,
}

fn yes() -> bool {
    true
}

/// How a stage is executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Run {
    /// A shell command, run with `sh -c` from the project root.
    Shell(String),
    /// A stage built into the program, with its code version.
    Builtin {
        name: String,
        version: String,
        command: String,
    },
}

/// What a stage asks of the machine while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    /// CPU slots (of `-j`); at least 1.
    pub cpus: u32,
    /// GPUs.
    pub gpus: u32,
    /// Memory in bytes; 0 means unspecified.
    pub mem: u64,
}

/// One validated stage.
#[derive(Clone, Debug)]
pub struct Stage {
    /// Its name.
    pub name: StageName,
    /// What to execute.
    pub run: Run,
    /// Files and directories it reads.
    pub deps: Vec<ProjectPath>,
    /// Files and directories it must produce (metrics included).
    pub outs: Vec<ProjectPath>,
    /// Role names bound to deps (`deps = { corpus = "data" }`), sorted by role.
    pub dep_roles: Option<Vec<(String, ProjectPath)>>,
    /// Role names bound to outs, sorted by role.
    pub out_roles: Option<Vec<(String, ProjectPath)>>,
    /// The subset of `outs` that hold metrics.
    pub metrics: Vec<ProjectPath>,
    /// Dotted parameter keys (values or whole tables) whose values enter the fingerprint.
    pub params: Vec<ParamKey>,
    /// Environment variables whose values enter the fingerprint.
    pub env: Vec<String>,
    /// Scheduling needs.
    pub resources: Resources,
    /// Where it runs when not where the run says (`executor = "local"`).
    pub executor: Option<ExecutorKind>,
    /// Its own sbatch options, over `[executor.slurm]`.
    pub slurm: SlurmOptions,
}

/// `[profiles.NAME]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Params to override.
    pub params: toml::Table,
    /// Where stages run under this profile.
    pub executor: Option<ExecutorKind>,
}

/// A validated pipeline: stages sorted by name, and the parameter tree.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// `[params]`, with the active profile applied.
    pub params: Params,
    /// The active profile (`--profile`, `AMT_PROFILE`), if any.
    pub profile: Option<String>,
    /// `[profiles.NAME]`: params to override, each checked against `[params]`,
    /// and the executor (`executor = "slurm"` in a profile).
    pub profiles: BTreeMap<String, Profile>,
    /// `[executor]`, with the active profile's and the command line's choice applied.
    pub executor: ExecutorConfig,
    /// The stages, sorted by name.
    pub stages: Vec<Stage>,
    /// `[remote]`, if set.
    pub remote: Option<RemoteConfig>,
    /// `[sweeps.NAME]` tables.
    pub sweeps: BTreeMap<String, SweepConfig>,
}

/// A profile that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// No `[profiles.NAME]` has this name; `hint` names the nearest or the choices.
    #[error("no profile is called `{name}`{hint}")]
    Unknown { name: String, hint: String },
    /// Its params do not fit `[params]` (the message says why, so it is not
    /// also given as the error's source).
    #[error("profiles.{name}: {problem}")]
    Params { name: String, problem: ParamError },
}

/// A stage's identity within one loaded pipeline: its position in
/// [`Pipeline::stages`], which are sorted by name, so ids sort as names do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StageId(usize);

impl StageId {
    /// The position in [`Pipeline::stages`].
    pub fn index(self) -> usize {
        self.0
    }
}

impl std::fmt::Display for StageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::ops::Index<StageId> for [Stage] {
    type Output = Stage;
    fn index(&self, id: StageId) -> &Stage {
        &self[id.0]
    }
}

impl std::ops::Index<StageId> for Vec<Stage> {
    type Output = Stage;
    fn index(&self, id: StageId) -> &Stage {
        &self[id.0]
    }
}

impl Pipeline {
    /// Whether any stage runs on Slurm when stages run on `default` unless they say otherwise.
    pub fn uses_slurm(&self, default: ExecutorKind) -> bool {
        default == ExecutorKind::Slurm
            || self
                .stages
                .iter()
                .any(|s| s.executor == Some(ExecutorKind::Slurm))
    }

    /// Finds a stage by name.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name.as_str() == name)
    }

    /// Every stage's id, in name order.
    pub fn ids(&self) -> impl Iterator<Item = StageId> + use<> {
        (0..self.stages.len()).map(StageId)
    }

    /// The id of the stage called `name`.
    pub fn id(&self, name: &str) -> Option<StageId> {
        self.stages
            .iter()
            .position(|s| s.name.as_str() == name)
            .map(StageId)
    }

    /// The same pipeline with `[profiles.NAME]` applied to its params.
    pub fn with_profile(mut self, name: &str) -> Result<Self, ProfileError> {
        let Some(overlay) = self.profiles.get(name) else {
            let names: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            let hint = match suggest(name, names.iter().copied()) {
                Some(s) => format!("; did you mean `{s}`?"),
                None if names.is_empty() => " (amt.toml defines no [profiles.NAME])".to_owned(),
                None => format!("; profiles: {}", names.join(", ")),
            };
            return Err(ProfileError::Unknown {
                name: name.to_owned(),
                hint,
            });
        };
        // Checked when the manifest was parsed.
        self.params
            .overlay(&overlay.params)
            .map_err(|problem| ProfileError::Params {
                name: name.to_owned(),
                problem,
            })?;
        if let Some(kind) = overlay.executor {
            self.executor.kind = kind;
        }
        self.profile = Some(name.to_owned());
        Ok(self)
    }
}

/// Stages implemented by the program itself. The engine knows only their
/// names, the version of their code, the machine facts their bytes depend on
/// and how to invoke them.
pub trait Builtins: Sync {
    /// The code version of a built-in stage, or `None` if there is no such stage.
    fn version(&self, name: &str) -> Option<String>;
    /// All built-in stage names, for suggestions.
    fn names(&self) -> Vec<String>;
    /// The command line that runs the stage.
    fn command(&self, name: &str) -> String;
    /// The facts about this machine that the stage's bytes depend on
    /// (entered into its action key), after checking that the program that
    /// runs the stage was built from the same code. `cache` is the project's
    /// cache directory, where a probe may keep its answer. The error says
    /// why the facts cannot be vouched for (the program is missing, or was
    /// built from other sources).
    fn facts(
        &self,
        name: &str,
        cache: &Path,
    ) -> Result<BTreeMap<String, String>, Box<dyn std::error::Error + Send + Sync>> {
        let _ = (name, cache);
        Ok(BTreeMap::new())
    }
}

/// A registry with no built-in stages: the engine on its own.
pub struct NoBuiltins;

impl Builtins for NoBuiltins {
    fn version(&self, _: &str) -> Option<String> {
        None
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
    fn command(&self, _: &str) -> String {
        String::new()
    }
}

/// Loads and validates `amt.toml` from `path`, and checks the project
/// directory beside it: no out may be reached through a symbolic link.
pub fn load(path: &Path, builtins: &dyn Builtins) -> Result<Pipeline, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        at: None,
        message: format!("cannot read: {e}"),
    })?;
    let root = path.parent().unwrap_or(Path::new("."));
    parse_in(path, &text, builtins, Some(root))
}

/// Parses and validates manifest text; `file` is used in messages.
pub fn parse(file: &Path, text: &str, builtins: &dyn Builtins) -> Result<Pipeline, ConfigError> {
    parse_in(file, text, builtins, None)
}

/// Text that is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a size like 512M or 10G")]
pub struct NotASize(pub String);

/// Parses `512M`, `4G`, `1.5GiB` or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, NotASize> {
    let bad = || NotASize(text.to_owned());
    let s = text.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.trim().parse().map_err(|_| bad())?;
    let scale: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return Err(bad()),
    };
    if num >= 0.0 {
        Ok((num * scale as f64) as u64)
    } else {
        Err(bad())
    }
}
