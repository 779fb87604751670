//! The environment protocol between amt and a stage's command: which
//! variables amt sets and what their values mean. The engine writes them from
//! a [`Given`] (what the action key covers) and a [`Place`] (where the run
//! happens, which the key leaves out); a built-in stage reads them back as one
//! [`Invocation`]. Shell stages read the same variables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The variables' names.
pub mod var {
    /// The stage's name.
    pub const STAGE: &str = "AMT_STAGE";
    /// Its deps as JSON [`Bindings`](super::Bindings).
    pub const DEPS: &str = "AMT_DEPS";
    /// Its outs (metrics files excepted) as JSON [`Bindings`](super::Bindings).
    pub const OUTS: &str = "AMT_OUTS";
    /// Its metrics files as a JSON list.
    pub const METRICS: &str = "AMT_METRICS";
    /// Its CPU share.
    pub const CPUS: &str = "AMT_CPUS";
    /// The code version a built-in's key was computed with.
    pub const CODE_VERSION: &str = "AMT_CODE_VERSION";
    /// The machine facts a built-in's key holds, as a JSON map.
    pub const FACTS: &str = "AMT_FACTS";
    /// Its declared params as one JSON object.
    pub const PARAMS: &str = "AMT_PARAMS";
    /// The project root (absolute); every bound path is relative to it.
    pub const PROJECT_ROOT: &str = "AMT_PROJECT_ROOT";
    /// The action's scratch directory (absolute).
    pub const SCRATCH: &str = "AMT_SCRATCH";
    /// The stage's memo directory (absolute).
    pub const MEMO: &str = "AMT_MEMO";
    /// The file the stage reports progress through.
    pub const PROGRESS: &str = crate::progress::PROGRESS_VAR;
}

/// Paths, relative to the project root, bound to a stage's deps or outs: by
/// role where amt.toml names roles (`deps = { corpus = "data/corpus" }`),
/// else in declared order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bindings {
    /// `{ role = "path", … }`.
    Roles(BTreeMap<String, String>),
    /// `["path", …]`.
    Paths(Vec<String>),
}

impl Bindings {
    /// The path bound to `role`; `Err` when the bindings are a plain list.
    pub fn role(&self, role: &str) -> Result<Option<&str>, InvocationError> {
        match self {
            Bindings::Roles(map) => Ok(map.get(role).map(String::as_str)),
            Bindings::Paths(_) => Err(InvocationError::Unnamed),
        }
    }

    /// True when nothing is bound.
    pub fn is_empty(&self) -> bool {
        match self {
            Bindings::Roles(map) => map.is_empty(),
            Bindings::Paths(paths) => paths.is_empty(),
        }
    }
}

/// What amt gives a command besides its params and where it runs. All of it
/// is part of the action key, since a command may write any of it into its
/// outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Given {
    /// The stage's name.
    pub stage: String,
    /// Its deps.
    pub deps: Bindings,
    /// Its outs, less the metrics files.
    pub outs: Bindings,
    /// Its metrics files.
    pub metrics: Vec<String>,
    /// Its CPU share (the declared `cpus`, whatever `-j` the run was given).
    pub cpus: u32,
    /// A built-in's code version.
    pub code_version: Option<String>,
}

impl Given {
    /// The variables, by name.
    pub fn vars(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::from([
            (var::STAGE.to_owned(), self.stage.clone()),
            (var::DEPS.to_owned(), json(&self.deps)),
            (var::OUTS.to_owned(), json(&self.outs)),
            (var::METRICS.to_owned(), json(&self.metrics)),
            (var::CPUS.to_owned(), self.cpus.max(1).to_string()),
        ]);
        if let Some(version) = &self.code_version {
            vars.insert(var::CODE_VERSION.to_owned(), version.clone());
        }
        vars
    }
}

/// Where one execution happens. The key leaves it out, so that checkouts and
/// sweep points share results; a command must not write it into its outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    /// The project root.
    pub root: PathBuf,
    /// Resumable work on this action (train's checkpoints), emptied when the
    /// action changes or on `--force`.
    pub scratch: PathBuf,
    /// Memos of outside lookups, kept whatever the action.
    pub memo: PathBuf,
    /// Where to report progress.
    pub progress: Option<PathBuf>,
}

impl Place {
    /// The variables, by name.
    pub fn vars(&self) -> Vec<(String, String)> {
        let text = |p: &PathBuf| p.display().to_string();
        let mut vars = vec![
            (var::PROJECT_ROOT.to_owned(), text(&self.root)),
            (var::SCRATCH.to_owned(), text(&self.scratch)),
            (var::MEMO.to_owned(), text(&self.memo)),
        ];
        if let Some(progress) = &self.progress {
            vars.push((var::PROGRESS.to_owned(), text(progress)));
        }
        vars
    }
}

/// One run of a stage as its command sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// What the key covers.
    pub given: Given,
    /// Where it runs.
    pub place: Place,
    /// The declared params, nested by their dotted keys.
    pub params: Value,
    /// A built-in's keyed machine facts.
    pub facts: Option<BTreeMap<String, String>>,
}

/// The environment does not hold a valid invocation.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// A variable amt always sets is missing.
    #[error("${0} is not set: built-in stages run under `amt run`")]
    Missing(&'static str),
    /// A variable's value is not what the protocol says.
    #[error("${var} is not valid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A role was asked of bindings declared as a plain list.
    #[error("the bindings are a list, not named roles")]
    Unnamed,
}

impl Invocation {
    /// Reads the invocation from this process's environment.
    pub fn from_env() -> Result<Self, InvocationError> {
        Self::from_vars(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads the invocation from variables looked up by name.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, InvocationError> {
        let get = |name: &'static str| lookup(name).ok_or(InvocationError::Missing(name));
        fn parse<T: serde::de::DeserializeOwned>(
            name: &'static str,
            text: &str,
        ) -> Result<T, InvocationError> {
            serde_json::from_str(text).map_err(|e| InvocationError::Invalid {
                var: name,
                reason: e.to_string(),
            })
        }
        let root = PathBuf::from(get(var::PROJECT_ROOT)?);
        let given = Given {
            stage: get(var::STAGE)?,
            deps: parse(var::DEPS, &get(var::DEPS)?)?,
            outs: parse(var::OUTS, &get(var::OUTS)?)?,
            metrics: parse(var::METRICS, &get(var::METRICS)?)?,
            cpus: get(var::CPUS)?
                .parse()
                .map_err(|e: std::num::ParseIntError| InvocationError::Invalid {
                    var: var::CPUS,
                    reason: e.to_string(),
                })?,
            code_version: lookup(var::CODE_VERSION),
        };
        let place = Place {
            scratch: PathBuf::from(get(var::SCRATCH)?),
            memo: PathBuf::from(get(var::MEMO)?),
            progress: lookup(var::PROGRESS).map(PathBuf::from),
            root,
        };
        let params = match lookup(var::PARAMS) {
            Some(text) => parse(var::PARAMS, &text)?,
            None => Value::Null,
        };
        let facts = match lookup(var::FACTS) {
            Some(text) => Some(parse(var::FACTS, &text)?),
            None => None,
        };
        Ok(Self {
            given,
            place,
            params,
            facts,
        })
    }
}

/// A protocol value's JSON text.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("bindings and path lists serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation() -> Invocation {
        Invocation {
            given: Given {
                stage: "train".to_owned(),
                deps: Bindings::Roles(BTreeMap::from([(
                    "windows".to_owned(),
                    "artifacts/prepare".to_owned(),
                )])),
                outs: Bindings::Paths(vec!["artifacts/train".to_owned()]),
                metrics: vec!["metrics/train.json".to_owned()],
                cpus: 2,
                code_version: Some("0123456789abcdef".to_owned()),
            },
            place: Place {
                root: "/p".into(),
                scratch: "/p/cache/scratch/ab".into(),
                memo: "/p/cache/memo/train".into(),
                progress: Some("/p/cache/progress/train".into()),
            },
            params: serde_json::json!({"train": {"lr": 0.001}}),
            facts: Some(BTreeMap::from([("cpu".to_owned(), "avx2".to_owned())])),
        }
    }

    /// What the engine writes, as it writes it.
    fn written(inv: &Invocation) -> BTreeMap<String, String> {
        let mut env = inv.given.vars();
        env.extend(inv.place.vars());
        env.insert(var::PARAMS.to_owned(), inv.params.to_string());
        if let Some(facts) = &inv.facts {
            env.insert(var::FACTS.to_owned(), serde_json::to_string(facts).unwrap());
        }
        env
    }

    #[test]
    fn what_the_engine_writes_a_stage_reads_back() {
        let inv = invocation();
        let env = written(&inv);
        assert_eq!(env["AMT_DEPS"], r#"{"windows":"artifacts/prepare"}"#);
        assert_eq!(env["AMT_OUTS"], r#"["artifacts/train"]"#);
        let read = Invocation::from_vars(|name| env.get(name).cloned()).unwrap();
        assert_eq!(read, inv);
    }

    #[test]
    fn a_missing_or_malformed_variable_is_named() {
        let mut env = written(&invocation());
        env.remove("AMT_SCRATCH");
        let err = Invocation::from_vars(|name| env.get(name).cloned()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "$AMT_SCRATCH is not set: built-in stages run under `amt run`"
        );
        let mut env = written(&invocation());
        env.insert("AMT_DEPS".to_owned(), "[1]".to_owned());
        let err = Invocation::from_vars(|name| env.get(name).cloned()).unwrap_err();
        assert!(
            err.to_string().starts_with("$AMT_DEPS is not valid: "),
            "{err}"
        );
    }

    #[test]
    fn roles_are_asked_of_named_bindings_only() {
        let inv = invocation();
        assert_eq!(
            inv.given.deps.role("windows").unwrap(),
            Some("artifacts/prepare")
        );
        assert_eq!(inv.given.deps.role("corpus").unwrap(), None);
        assert!(matches!(
            inv.given.outs.role("model"),
            Err(InvocationError::Unnamed)
        ));
    }
}
