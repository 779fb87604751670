//! From the raw manifest to a [`Pipeline`]: every path, name, binding and
//! param reference checked, each error located in the file.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use super::error::{ConfigError, line_col, suggest, unknown_field};
use super::raw::{RawManifest, RawPaths, RawStage};
use super::*;
use crate::names::NameError;

pub(super) fn parse_in(
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
                let kind: ExecutorKind =
                    v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| {
                        src.error(
                            Some(span.start),
                            format!(
                                "profiles.{name}.executor: `{v}` is not \"local\" or \"slurm\""
                            ),
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
                    body.find(key.as_str())
                        .or_else(|| body.find(last))
                        .map(|o| span.start + o)
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

pub(super) struct Source<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
    /// The project directory, when the manifest is loaded from one.
    pub(super) root: Option<&'a Path>,
}

impl Source<'_> {
    pub(super) fn error(&self, offset: Option<usize>, message: impl Into<String>) -> ConfigError {
        let at = offset.map(|o| line_col(self.text, o));
        ConfigError {
            file: self.file.to_owned(),
            at,
            message: message.into(),
        }
    }

    pub(super) fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
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
    pub(super) fn table_at(&self, offset: usize) -> Option<String> {
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

        let raw_outs: Vec<&Spanned<String>> = raw
            .outs
            .paths()
            .into_iter()
            .chain(raw.metrics.iter())
            .collect();
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
            Some(m) => parse_size(m.get_ref())
                .map_err(|e| self.error(Some(m.span().start), format!("stages.{n}.mem: {e}")))?,
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
                        RESERVED
                            .iter()
                            .map(|r| format!("`{r}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
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
