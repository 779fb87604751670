//! `amt.toml`: parsing and validation into a typed [`Pipeline`].
//!
//! Every error names the file, line and column and the offending key, and an
//! unknown key comes with the nearest valid one as a suggestion.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::names::{NameError, ProjectPath, StageName};
use crate::params::{ParamKey, Params};

/// The manifest's file name.
pub const MANIFEST: &str = "amt.toml";

/// Paths that belong to amt or to git. amt deletes a stage's outs before it
/// runs, so no out may be, hold or lie inside one of them.
pub const RESERVED: &[&str] = &["cache", MANIFEST, ".git", ".amt"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    params: toml::Table,
    #[serde(default)]
    stages: BTreeMap<Spanned<String>, Spanned<RawStage>>,
    remote: Option<RemoteConfig>,
    #[serde(default)]
    sweeps: BTreeMap<String, SweepConfig>,
    #[serde(default)]
    profiles: BTreeMap<String, Spanned<toml::Table>>,
    executor: Option<Spanned<RawExecutor>>,
}

/// Where stages run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// On this machine, under the stage guard.
    #[default]
    Local,
    /// As Slurm jobs (`sbatch`), on a filesystem the cluster shares.
    Slurm,
}

impl ExecutorKind {
    /// Parses `local` or `slurm`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "slurm" => Some(Self::Slurm),
            _ => None,
        }
    }
}

/// What sbatch is told besides what amt decides itself: `[executor.slurm]`,
/// and a stage's `slurm = { … }`, whose fields win.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time`: `MM`, `MM:SS`, `HH:MM:SS` or `D-HH:MM:SS`.
    pub time: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// `--constraint`.
    pub constraint: Option<String>,
    /// Further sbatch arguments, word by word.
    #[serde(default)]
    pub extra: Vec<String>,
}

impl SlurmOptions {
    /// These options with a stage's own on top.
    pub fn with(&self, stage: &SlurmOptions) -> SlurmOptions {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        SlurmOptions {
            partition: pick(&self.partition, &stage.partition),
            account: pick(&self.account, &stage.account),
            time: pick(&self.time, &stage.time),
            qos: pick(&self.qos, &stage.qos),
            constraint: pick(&self.constraint, &stage.constraint),
            extra: self.extra.iter().chain(&stage.extra).cloned().collect(),
        }
    }
}

/// sbatch options amt sets itself, or that would break how it follows a job
/// (an array's ids, a held or waiting job, requeueing), which `extra` may not
/// give: long forms, and their one-letter forms.
const MANAGED_SBATCH: &[(&str, Option<char>)] = &[
    ("--job-name", Some('J')),
    ("--output", Some('o')),
    ("--error", Some('e')),
    ("--parsable", None),
    ("--export", None),
    ("--comment", None),
    ("--chdir", Some('D')),
    ("--wrap", None),
    ("--cpus-per-task", Some('c')),
    ("--mem", None),
    ("--gres", None),
    ("--ntasks", Some('n')),
    ("--open-mode", None),
    ("--array", Some('a')),
    ("--hold", Some('H')),
    ("--wait", Some('W')),
    ("--requeue", None),
    ("--no-requeue", None),
    ("--dependency", Some('d')),
];

/// The managed option an `extra` word gives, if any. Long options may be
/// abbreviated (`--out=` is `--output`), as sbatch's getopt allows.
fn managed_sbatch(word: &str) -> Option<&'static str> {
    if let Some(long) = word.strip_prefix("--") {
        let name = long.split('=').next().unwrap_or(long);
        if name.is_empty() {
            return None;
        }
        return MANAGED_SBATCH
            .iter()
            .find(|(flag, _)| flag[2..] == *name || (name.len() >= 3 && flag[2..].starts_with(name)))
            .map(|(flag, _)| *flag);
    }
    let short = word.strip_prefix('-')?.chars().next()?;
    MANAGED_SBATCH
        .iter()
        .find(|(_, letter)| *letter == Some(short))
        .map(|(flag, _)| *flag)
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecutor {
    kind: Option<ExecutorKind>,
    slurm: Option<Spanned<RawSlurm>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlurm {
    partition: Option<String>,
    account: Option<String>,
    time: Option<String>,
    qos: Option<String>,
    constraint: Option<String>,
    #[serde(default)]
    extra: Vec<String>,
    poll: Option<String>,
    poll_max: Option<String>,
    job_name: Option<String>,
}

/// `[executor]`: where stages run, and how Slurm is driven.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// `local` (default) or `slurm`; `amt run --executor` overrides it.
    pub kind: ExecutorKind,
    /// `[executor.slurm]`.
    pub slurm: SlurmConfig,
}

/// `[executor.slurm]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmConfig {
    /// What every job is submitted with.
    pub options: SlurmOptions,
    /// The first wait between status queries; it grows while nothing
    /// finishes, up to `poll_max`, and starts again when something does.
    pub poll: std::time::Duration,
    /// The longest wait between status queries.
    pub poll_max: std::time::Duration,
    /// The job name's prefix; the run's id follows it, so one query by name
    /// finds every job of a run.
    pub job_name: String,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        Self {
            options: SlurmOptions::default(),
            poll: std::time::Duration::from_secs(10),
            poll_max: std::time::Duration::from_secs(180),
            job_name: "amt".into(),
        }
    }
}

/// Parses `500ms`, `10s`, `3m` or plain seconds.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.trim().parse().ok().filter(|n: &f64| *n >= 0.0)?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Some(std::time::Duration::from_secs_f64(secs))
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    cmd: Option<Spanned<String>>,
    builtin: Option<Spanned<String>>,
    #[serde(default)]
    deps: RawPaths,
    #[serde(default)]
    outs: RawPaths,
    #[serde(default)]
    metrics: Vec<Spanned<String>>,
    #[serde(default)]
    params: Vec<Spanned<String>>,
    #[serde(default)]
    env: Vec<Spanned<String>>,
    cpus: Option<Spanned<u32>>,
    gpus: Option<Spanned<u32>>,
    mem: Option<Spanned<String>>,
    executor: Option<Spanned<ExecutorKind>>,
    slurm: Option<Spanned<SlurmOptions>>,
}

/// `deps` or `outs`: a list of paths, or a table binding role names to paths
/// (which built-in stages use to find their inputs and outputs).
#[derive(Default)]
enum RawPaths {
    #[default]
    Empty,
    List(Vec<Spanned<String>>),
    Named(Vec<(String, Spanned<String>)>),
}

impl RawPaths {
    fn paths(&self) -> Vec<&Spanned<String>> {
        match self {
            RawPaths::Empty => Vec::new(),
            RawPaths::List(v) => v.iter().collect(),
            RawPaths::Named(v) => v.iter().map(|(_, p)| p).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for RawPaths {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Paths;
        impl<'de> serde::de::Visitor<'de> for Paths {
            type Value = RawPaths;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of paths, or a table of role = path")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawPaths, A::Error> {
                let mut v = Vec::new();
                while let Some(p) = seq.next_element::<Spanned<String>>()? {
                    v.push(p);
                }
                Ok(RawPaths::List(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawPaths, A::Error> {
                let mut v = Vec::new();
                while let Some((role, p)) = map.next_entry::<String, Spanned<String>>()? {
                    v.push((role, p));
                }
                v.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(RawPaths::Named(v))
            }
        }
        d.deserialize_any(Paths)
    }
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

impl Pipeline {
    /// Whether any stage runs on Slurm when stages run on `default` unless they say otherwise.
    pub fn uses_slurm(&self, default: ExecutorKind) -> bool {
        default == ExecutorKind::Slurm
            || self.stages.iter().any(|s| s.executor == Some(ExecutorKind::Slurm))
    }

    /// Finds a stage by name.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name.as_str() == name)
    }

    /// The same pipeline with `[profiles.NAME]` applied to its params.
    pub fn with_profile(mut self, name: &str) -> Result<Self, String> {
        let Some(overlay) = self.profiles.get(name) else {
            let names: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            let mut m = format!("no profile is called `{name}`");
            match suggest(name, names.iter().copied()) {
                Some(s) => m.push_str(&format!("; did you mean `{s}`?")),
                None if names.is_empty() => m.push_str(" (amt.toml defines no [profiles.NAME])"),
                None => m.push_str(&format!("; profiles: {}", names.join(", "))),
            }
            return Err(m);
        };
        // Checked when the manifest was parsed.
        self.params
            .overlay(&overlay.params)
            .map_err(|e| format!("profiles.{name}: {e}"))?;
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
    /// cache directory, where a probe may keep its answer.
    fn facts(&self, name: &str, cache: &Path) -> Result<BTreeMap<String, String>, String> {
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

/// An `amt.toml` that cannot be used, located as precisely as possible.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The manifest file.
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a location.
    pub at: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.file.display(), self.message)
            }
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
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

fn parse_in(
    file: &Path,
    text: &str,
    builtins: &dyn Builtins,
    root: Option<&Path>,
) -> Result<Pipeline, ConfigError> {
    let src = Source { file, text, root };
    let raw: RawManifest = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
    let params = Params::new(raw.params);
    let mut stages = Vec::new();
    for (name, raw_stage) in raw.stages {
        stages.push(src.stage(&name, raw_stage, &params, builtins)?);
    }
    check_outs(&src, &stages)?;
    let mut profiles = BTreeMap::new();
    for (name, table) in raw.profiles {
        let span = table.span();
        let mut table = table.into_inner();
        // `executor` in a profile chooses where stages run, unless it is a param.
        let executor = match table.get("executor") {
            Some(v) if params.require("executor").is_err() => {
                let kind = v.as_str().and_then(ExecutorKind::parse).ok_or_else(|| {
                    src.error(
                        Some(span.start),
                        format!("profiles.{name}.executor: `{v}` is not \"local\" or \"slurm\""),
                    )
                })?;
                table.remove("executor");
                Some(kind)
            }
            _ => None,
        };
        if let Err(e) = params.clone().overlay(&table) {
            // Point at the key where it is written, else at the profile.
            let at = match &e {
                crate::params::ParamError::Unknown { key, .. } => {
                    // The table's own lines: up to the next header.
                    let rest = &text[span.start.min(text.len())..];
                    let end = rest[1..].find("\n[").map_or(rest.len(), |e| e + 1);
                    let body = &rest[..end];
                    let last = key.rsplit('.').next().unwrap_or(key);
                    body.find(key.as_str()).or_else(|| body.find(last)).map(|o| span.start + o)
                }
                _ => None,
            };
            return Err(src.error(at.or(Some(span.start)), format!("profiles.{name}: {e}")));
        }
        profiles.insert(
            name,
            Profile {
                params: table,
                executor,
            },
        );
    }
    let executor = src.executor(raw.executor)?;
    Ok(Pipeline {
        params,
        profile: None,
        profiles,
        executor,
        stages,
        remote: raw.remote,
        sweeps: raw.sweeps,
    })
}

struct Source<'a> {
    file: &'a Path,
    text: &'a str,
    /// The project directory, when the manifest is loaded from one.
    root: Option<&'a Path>,
}

impl Source<'_> {
    fn error(&self, offset: Option<usize>, message: impl Into<String>) -> ConfigError {
        let at = offset.map(|o| line_col(self.text, o));
        ConfigError {
            file: self.file.to_owned(),
            at,
            message: message.into(),
        }
    }

    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let offset = e.span().map(|s| s.start);
        let message = e.message().trim().to_owned();
        let message = match unknown_field(&message) {
            Some((field, expected)) => {
                let table = offset
                    .and_then(|o| self.table_at(o))
                    .unwrap_or_else(|| "the top level".into());
                let mut m = format!("unknown key `{field}` in {table}");
                if let Some(s) = suggest(&field, expected.iter().map(String::as_str)) {
                    m.push_str(&format!("; did you mean `{s}`?"));
                } else {
                    m.push_str(&format!("; expected one of {}", expected.join(", ")));
                }
                m
            }
            None => message,
        };
        self.error(offset, message)
    }

    /// The `[table]` header in force at `offset`, for messages.
    fn table_at(&self, offset: usize) -> Option<String> {
        let offset = offset.min(self.text.len());
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |n| offset + n);
        self.text[..line_end]
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.split('#').next().unwrap_or(l).trim().to_owned())
    }

    fn path(
        &self,
        stage: &str,
        key: &str,
        p: &Spanned<String>,
    ) -> Result<ProjectPath, ConfigError> {
        ProjectPath::parse(p.get_ref()).map_err(|e| {
            let why = match e {
                NameError::Absolute(_) | NameError::ParentDir(_) => {
                    format!("{e} (an out or dep outside the project)")
                }
                _ => e.to_string(),
            };
            self.error(Some(p.span().start), format!("stages.{stage}.{key}: {why}"))
        })
    }

    fn stage(
        &self,
        name: &Spanned<String>,
        raw: Spanned<RawStage>,
        params: &Params,
        builtins: &dyn Builtins,
    ) -> Result<Stage, ConfigError> {
        let stage_at = Some(name.span().start);
        let stage_name = StageName::parse(name.get_ref())
            .map_err(|e| self.error(stage_at, format!("stages.{}: {e}", name.get_ref())))?;
        let n = stage_name.as_str();
        let raw = raw.into_inner();

        let run = match (raw.cmd, raw.builtin) {
            (Some(cmd), None) => Run::Shell(cmd.into_inner()),
            (None, Some(b)) => {
                let version = builtins.version(b.get_ref()).ok_or_else(|| {
                    let names = builtins.names();
                    let mut m = format!(
                        "stages.{n}.builtin: no built-in stage is called `{}`",
                        b.get_ref()
                    );
                    match suggest(b.get_ref(), names.iter().map(String::as_str)) {
                        Some(s) => m.push_str(&format!("; did you mean `{s}`?")),
                        None if names.is_empty() => m.push_str("; this build has none"),
                        None => m.push_str(&format!("; available: {}", names.join(", "))),
                    }
                    self.error(Some(b.span().start), m)
                })?;
                let command = builtins.command(b.get_ref());
                Run::Builtin {
                    name: b.into_inner(),
                    version,
                    command,
                }
            }
            (Some(cmd), Some(_)) => {
                return Err(self.error(
                    Some(cmd.span().start),
                    format!("stages.{n}: set `cmd` or `builtin`, not both"),
                ));
            }
            (None, None) => {
                return Err(self.error(
                    stage_at,
                    format!("stages.{n}: a stage needs `cmd` (a shell command) or `builtin`"),
                ));
            }
        };

        let raw_deps = raw.deps.paths();
        let deps = raw_deps
            .iter()
            .map(|p| self.path(n, "deps", p))
            .collect::<Result<Vec<_>, _>>()?;
        let metrics = raw
            .metrics
            .iter()
            .map(|p| self.path(n, "metrics", p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut outs = raw
            .outs
            .paths()
            .iter()
            .map(|p| self.path(n, "outs", p))
            .collect::<Result<Vec<_>, _>>()?;
        let roles = |raw: &RawPaths, paths: &[ProjectPath]| match raw {
            RawPaths::Named(v) => Some(
                v.iter()
                    .map(|(role, _)| role.clone())
                    .zip(paths.iter().cloned())
                    .collect(),
            ),
            _ => None,
        };
        let dep_roles = roles(&raw.deps, &deps);
        let out_roles = roles(&raw.outs, &outs);
        outs.extend(metrics.iter().cloned());

        let raw_outs: Vec<&Spanned<String>> =
            raw.outs.paths().into_iter().chain(raw.metrics.iter()).collect();
        for (out, raw_out) in outs.iter().zip(&raw_outs) {
            self.check_out(n, out, raw_out.span().start)?;
        }

        for (dep, raw_dep) in deps.iter().zip(&raw_deps) {
            if let Some(out) = outs.iter().find(|o| o.overlaps(dep)) {
                return Err(self.error(
                    Some(raw_dep.span().start),
                    format!("stages.{n}: dep `{dep}` overlaps the stage's own out `{out}`"),
                ));
            }
        }

        let mut param_keys = Vec::new();
        for p in &raw.params {
            let key = params
                .require(p.get_ref())
                .map_err(|e| self.error(Some(p.span().start), format!("stages.{n}.params: {e}")))?;
            param_keys.push(key);
        }

        for v in &raw.env {
            let ok = !v.get_ref().is_empty()
                && v.get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !v.get_ref().starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(self.error(
                    Some(v.span().start),
                    format!("stages.{n}.env: `{}` is not a variable name", v.get_ref()),
                ));
            }
        }

        let cpus = raw.cpus.as_ref().map_or(1, |c| *c.get_ref());
        if cpus == 0 {
            let at = raw.cpus.as_ref().map(|c| c.span().start);
            return Err(self.error(at, format!("stages.{n}.cpus: must be at least 1")));
        }
        let mem = match &raw.mem {
            Some(m) => parse_size(m.get_ref()).ok_or_else(|| {
                self.error(
                    Some(m.span().start),
                    format!(
                        "stages.{n}.mem: `{}` is not a size like 512M or 4G",
                        m.get_ref()
                    ),
                )
            })?,
            None => 0,
        };
        let resources = Resources {
            cpus,
            gpus: raw.gpus.map_or(0, |g| g.into_inner()),
            mem,
        };

        let slurm = match raw.slurm {
            Some(o) => {
                let at = o.span().start;
                let o = o.into_inner();
                self.check_slurm(&format!("stages.{n}.slurm"), &o, at)?;
                o
            }
            None => SlurmOptions::default(),
        };

        Ok(Stage {
            name: stage_name,
            executor: raw.executor.map(Spanned::into_inner),
            slurm,
            run,
            deps,
            outs,
            dep_roles,
            out_roles,
            metrics,
            params: param_keys,
            env: raw.env.into_iter().map(Spanned::into_inner).collect(),
            resources,
        })
    }
}

impl Source<'_> {
    /// `[executor]` and `[executor.slurm]`, validated.
    fn executor(&self, raw: Option<Spanned<RawExecutor>>) -> Result<ExecutorConfig, ConfigError> {
        let raw = raw.map(Spanned::into_inner).unwrap_or_default();
        let mut slurm = SlurmConfig::default();
        if let Some(r) = raw.slurm {
            let at = r.span().start;
            let r = r.into_inner();
            let options = SlurmOptions {
                partition: r.partition,
                account: r.account,
                time: r.time,
                qos: r.qos,
                constraint: r.constraint,
                extra: r.extra,
            };
            self.check_slurm("executor.slurm", &options, at)?;
            slurm.options = options;
            let duration = |key: &str, v: Option<String>, default| match v {
                None => Ok(default),
                Some(v) => parse_duration(&v).filter(|d| !d.is_zero()).ok_or_else(|| {
                    self.error(
                        Some(at),
                        format!("executor.slurm.{key}: `{v}` is not a duration like 500ms, 10s or 3m"),
                    )
                }),
            };
            slurm.poll = duration("poll", r.poll, slurm.poll)?;
            slurm.poll_max = duration("poll_max", r.poll_max, slurm.poll_max)?.max(slurm.poll);
            if let Some(name) = r.job_name {
                let ok = !name.is_empty()
                    && name.len() <= 40
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !ok {
                    return Err(self.error(
                        Some(at),
                        format!("executor.slurm.job_name: `{name}` must be 1 to 40 letters, digits, `_` or `-`"),
                    ));
                }
                slurm.job_name = name;
            }
        }
        Ok(ExecutorConfig {
            kind: raw.kind.unwrap_or_default(),
            slurm,
        })
    }

    /// sbatch options that cannot work: a malformed time, or an `extra`
    /// argument that would fight one amt sets.
    fn check_slurm(&self, key: &str, o: &SlurmOptions, at: usize) -> Result<(), ConfigError> {
        if let Some(t) = &o.time {
            let ok = !t.is_empty()
                && t.chars().all(|c| c.is_ascii_digit() || c == ':' || c == '-')
                && t.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(self.error(
                    Some(at),
                    format!("{key}.time: `{t}` is not a Slurm time (MM, MM:SS, HH:MM:SS or D-HH:MM:SS)"),
                ));
            }
        }
        for word in &o.extra {
            if let Some(flag) = managed_sbatch(word) {
                return Err(self.error(
                    Some(at),
                    format!(
                        "{key}.extra: `{word}` ({flag}) is amt's to set: it follows each job by its \
                         name, log and id, and sets resources from `cpus`, `mem` and `gpus`"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// An out must not touch amt's or git's own files, nor be reached through
    /// a symbolic link (deleting or writing it would act outside the project).
    fn check_out(&self, stage: &str, out: &ProjectPath, at: usize) -> Result<(), ConfigError> {
        for reserved in RESERVED {
            let r = ProjectPath::parse(reserved).expect("reserved names are valid paths");
            if out.overlaps(&r) {
                return Err(self.error(
                    Some(at),
                    format!(
                        "stages.{stage}.outs: `{out}` touches `{reserved}`, which belongs to \
                         {}; amt deletes a stage's outs before it runs, so outs must stay clear \
                         of {}",
                        if *reserved == ".git" { "git" } else { "amt" },
                        RESERVED.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        if let Some(root) = self.root
            && let Some(link) = crate::fsutil::linked_ancestor(root, out)
        {
            let target = std::fs::read_link(link.to_fs(root))
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            return Err(self.error(
                Some(at),
                format!(
                    "stages.{stage}.outs: `{out}` lies under `{link}`, a symbolic link (to \
                     {target}); amt deletes and writes outs, so they must be reached \
                     through real directories of the project"
                ),
            ));
        }
        Ok(())
    }
}

/// Two stages may not claim the same output, nor one inside another's.
fn check_outs(src: &Source<'_>, stages: &[Stage]) -> Result<(), ConfigError> {
    let mut claimed: Vec<(&ProjectPath, &StageName)> = Vec::new();
    for stage in stages {
        for out in &stage.outs {
            if let Some((other, owner)) = claimed.iter().find(|(o, _)| o.overlaps(out)) {
                let what = if *other == out {
                    "the same out"
                } else {
                    "overlapping outs"
                };
                let at = src.text.find(&format!("[stages.{}]", stage.name));
                return Err(src.error(
                    at,
                    format!(
                        "stages `{owner}` and `{}` claim {what}: `{other}` and `{out}`",
                        stage.name
                    ),
                ));
            }
            claimed.push((out, &stage.name));
        }
    }
    Ok(())
}

/// The closest candidate to `word`, if any is close enough to be a typo.
pub fn suggest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Parses serde's "unknown field `x`, expected one of `a`, `b`" message.
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((field.to_owned(), expected))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Parses `512M`, `4G`, `1.5GiB` or plain bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.trim().parse().ok()?;
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
        _ => return None,
    };
    (num >= 0.0).then(|| (num * scale as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(Path::new("amt.toml"), text, &NoBuiltins)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_keys_name_the_line_and_suggest() {
        let e = err("[stages.a]\ncmd = \"true\"\ndepz = [\"x\"]\n");
        assert!(
            e.starts_with("amt.toml:3:1: unknown key `depz` in [stages.a]; did you mean `deps`?"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let e = err("[stages.a\ncmd = 1\n");
        assert!(e.starts_with("amt.toml:1:"), "{e}");
    }

    #[test]
    fn params_must_exist() {
        let e =
            err("[params]\ntrain.lr = 1\n[stages.a]\ncmd = \"true\"\nparams = [\"train.lrr\"]\n");
        assert!(
            e.contains("amt.toml:5:") && e.contains("did you mean `train.lr`?"),
            "{e}"
        );
    }

    #[test]
    fn outs_must_be_unique_and_inside() {
        let e = err(
            "[stages.a]\ncmd = \"x\"\nouts = [\"o\"]\n[stages.b]\ncmd = \"y\"\nouts = [\"o/sub\"]\n",
        );
        assert!(
            e.contains("stages `a` and `b` claim overlapping outs"),
            "{e}"
        );
        let e = err("[stages.a]\ncmd = \"x\"\nouts = [\"../o\"]\n");
        assert!(
            e.contains("amt.toml:3:9") && e.contains("contains `..`"),
            "{e}"
        );
    }

    #[test]
    fn outs_may_not_touch_amts_or_gits_files() {
        for out in ["cache", "cache/x", "amt.toml", ".git", ".git/hooks", "./.amt"] {
            let e = err(&format!("[stages.a]\ncmd = \"x\"\nouts = [\"{out}\"]\n"));
            assert!(e.starts_with("amt.toml:3:9: stages.a.outs: `"), "{out}: {e}");
            assert!(e.contains("amt deletes a stage's outs"), "{out}: {e}");
        }
        let e = err("[stages.a]\ncmd = \"x\"\nmetrics = [\"cache/m.json\"]\n");
        assert!(e.starts_with("amt.toml:3:"), "{e}");
        // A name that merely starts like a reserved one is fine.
        parse(Path::new("amt.toml"), "[stages.a]\ncmd = \"x\"\nouts = [\"cached\", \".gitkeep\"]\n", &NoBuiltins).unwrap();
    }

    #[test]
    fn outs_under_a_symbolic_link_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let manifest = dir.path().join(MANIFEST);
        std::fs::write(&manifest, "[stages.a]\ncmd = \"x\"\nouts = [\"out/result.txt\"]\n").unwrap();
        let e = load(&manifest, &NoBuiltins).unwrap_err().to_string();
        assert!(e.contains("amt.toml:3:9: stages.a.outs: `out/result.txt` lies under `out`, a symbolic link"), "{e}");
    }

    #[test]
    fn profiles_override_params_and_name_their_mistakes() {
        let text = "[params]\ntrain.steps = 400\nmodel.preset = \"tiny\"\n\
                    [profiles.dev]\ntrain.steps = 20\n[profiles.prod]\nmodel.preset = \"gpt2-small\"\n";
        let p = parse(Path::new("amt.toml"), text, &NoBuiltins).unwrap();
        let steps = |p: &Pipeline| {
            p.params.get(&ParamKey::parse("train.steps").unwrap()).and_then(|v| v.as_integer())
        };
        assert_eq!(steps(&p), Some(400));
        let dev = p.clone().with_profile("dev").unwrap();
        assert_eq!((steps(&dev), dev.profile.as_deref()), (Some(20), Some("dev")));
        assert_eq!(
            p.clone().with_profile("deb").unwrap_err(),
            "no profile is called `deb`; did you mean `dev`?"
        );
        let e = err("[params]\ntrain.steps = 1\n[profiles.dev]\ntrain.stepz = 2\n");
        assert!(
            e.starts_with("amt.toml:4:1: profiles.dev: `train.stepz` is not defined in [params]; did you mean `train.steps`?"),
            "{e}"
        );
    }

    #[test]
    fn the_executor_and_a_stages_slurm_options_parse_and_merge() {
        let text = "[executor]\nkind = \"slurm\"\n[executor.slurm]\npartition = \"cpu\"\ntime = \"1:00:00\"\n\
                    poll = \"500ms\"\nextra = [\"--nice=5\"]\n\
                    [stages.a]\ncmd = \"x\"\nouts = [\"o\"]\nslurm = { partition = \"gpu\", extra = [\"--exclusive\"] }\n\
                    [stages.b]\ncmd = \"y\"\nouts = [\"p\"]\nexecutor = \"local\"\n";
        let p = parse(Path::new("amt.toml"), text, &NoBuiltins).unwrap();
        assert_eq!(p.executor.kind, ExecutorKind::Slurm);
        assert_eq!(p.executor.slurm.poll, std::time::Duration::from_millis(500));
        assert_eq!(p.executor.slurm.poll_max, std::time::Duration::from_secs(180));
        let a = p.stage("a").unwrap();
        let merged = p.executor.slurm.options.with(&a.slurm);
        assert_eq!(merged.partition.as_deref(), Some("gpu"));
        assert_eq!(merged.time.as_deref(), Some("1:00:00"));
        assert_eq!(merged.extra, ["--nice=5", "--exclusive"]);
        assert_eq!(p.stage("b").unwrap().executor, Some(ExecutorKind::Local));
    }

    #[test]
    fn slurm_options_that_cannot_work_are_refused() {
        for word in ["--job-name=x", "-Jother", "--out=/tmp/x.log", "--array=0-3", "--hold", "-o", "--no-req"] {
            let e = err(&format!("[executor.slurm]\nextra = [\"{word}\"]\n"));
            assert!(e.contains(&format!("executor.slurm.extra: `{word}` (")), "{word}: {e}");
        }
        // Options amt leaves alone pass, abbreviated or not.
        parse(Path::new("amt.toml"), "[executor.slurm]\nextra = [\"--exclusive\", \"--nice=5\", \"-N1\"]\n", &NoBuiltins).unwrap();
        let e = err("[stages.a]\ncmd = \"x\"\nouts = [\"o\"]\nslurm = { time = \"an hour\" }\n");
        assert!(e.starts_with("amt.toml:4:9: stages.a.slurm.time: `an hour` is not a Slurm time"), "{e}");
        let e = err("[executor]\nkind = \"k8s\"\n");
        assert!(e.contains("amt.toml:2:8"), "{e}");
        let e = err("[executor.slurm]\npoll = \"soon\"\n");
        assert!(e.contains("executor.slurm.poll: `soon` is not a duration"), "{e}");
    }

    #[test]
    fn a_profile_may_choose_the_executor() {
        let text = "[params]\nx = 1\n[profiles.cluster]\nexecutor = \"slurm\"\nx = 2\n";
        let p = parse(Path::new("amt.toml"), text, &NoBuiltins).unwrap();
        assert_eq!(p.executor.kind, ExecutorKind::Local);
        let c = p.with_profile("cluster").unwrap();
        assert_eq!(c.executor.kind, ExecutorKind::Slurm);
        assert_eq!(c.params.get(&ParamKey::parse("x").unwrap()).and_then(|v| v.as_integer()), Some(2));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("lots"), None);
    }

}
