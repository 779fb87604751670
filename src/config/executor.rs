//! `[executor]` and a stage's `slurm = { … }`: where stages run and what
//! sbatch is told, validated so that nothing amt relies on to follow a job
//! can be overridden.

use serde::Deserialize;
use toml::Spanned;

use super::error::ConfigError;
use super::validate::Source;

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

/// A name that is not an executor kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not local or slurm")]
pub struct UnknownExecutor(pub String);

impl std::str::FromStr for ExecutorKind {
    type Err = UnknownExecutor;
    /// Parses `local` or `slurm`.
    fn from_str(s: &str) -> Result<Self, UnknownExecutor> {
        match s {
            "local" => Ok(Self::Local),
            "slurm" => Ok(Self::Slurm),
            _ => Err(UnknownExecutor(s.to_owned())),
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
            .find(|(flag, _)| {
                flag[2..] == *name || (name.len() >= 3 && flag[2..].starts_with(name))
            })
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
pub(super) struct RawExecutor {
    kind: Option<ExecutorKind>,
    slurm: Option<Spanned<RawSlurm>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSlurm {
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

impl Source<'_> {
    /// `[executor]` and `[executor.slurm]`, validated.
    pub(super) fn executor(
        &self,
        raw: Option<Spanned<RawExecutor>>,
    ) -> Result<ExecutorConfig, ConfigError> {
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
                        format!(
                            "executor.slurm.{key}: `{v}` is not a duration like 500ms, 10s or 3m"
                        ),
                    )
                }),
            };
            slurm.poll = duration("poll", r.poll, slurm.poll)?;
            slurm.poll_max = duration("poll_max", r.poll_max, slurm.poll_max)?.max(slurm.poll);
            if let Some(name) = r.job_name {
                let ok = !name.is_empty()
                    && name.len() <= 40
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
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
    pub(super) fn check_slurm(
        &self,
        key: &str,
        o: &SlurmOptions,
        at: usize,
    ) -> Result<(), ConfigError> {
        if let Some(t) = &o.time {
            let ok = !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_digit() || c == ':' || c == '-')
                && t.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(self.error(
                    Some(at),
                    format!(
                        "{key}.time: `{t}` is not a Slurm time (MM, MM:SS, HH:MM:SS or D-HH:MM:SS)"
                    ),
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
}
