//! What a stage's action key is computed from: its command (or built-in name,
//! code version and machine facts), declared env and params, dep digests,
//! role bindings and the variables amt gives it, read from the workspace now.

use std::collections::BTreeMap;

use crate::config::{Run, Stage};
use crate::digest::Digest;
use crate::fingerprint::Inputs;
use crate::params::canonical;
use crate::project::Project;
use crate::stage_env::{env_text, given_vars};
use crate::tree::{TreeError, TreeHasher};

/// A stage's inputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputsError {
    #[error("{0}")]
    Tree(#[from] TreeError),
    /// The program behind a built-in stage cannot vouch for its facts.
    #[error("{0}")]
    Builtin(Box<dyn std::error::Error + Send + Sync>),
}

/// A stage's current inputs, with the listings of its directory deps (by digest).
pub fn collect(
    project: &Project,
    stage: &Stage,
    hasher: &TreeHasher<'_>,
) -> Result<(Inputs, Vec<(Digest, Vec<u8>)>), InputsError> {
    let (command, code_version, facts) = match &stage.run {
        Run::Shell(cmd) => (cmd.clone(), None, BTreeMap::new()),
        Run::Builtin { name, version, .. } => {
            let facts = project
                .builtins
                .facts(name, &project.cache_dir())
                .map_err(InputsError::Builtin)?;
            (format!("builtin {name}"), Some(version.clone()), facts)
        }
    };
    let given = given_vars(stage);
    // A declared variable has the value the command will see: amt's own
    // (the CPU share) where amt sets it, else the one amt was started with.
    let env = stage
        .env
        .iter()
        .map(|v| {
            let value = match given.get(v) {
                Some(set) => Some(set.clone()),
                None => std::env::var_os(v).map(|os| env_text(&os)),
            };
            (v.clone(), value)
        })
        .collect();
    let params = stage
        .params
        .iter()
        .flat_map(|key| project.pipeline.params.leaves(key))
        .map(|(key, value)| (key, canonical(value)))
        .collect();
    let mut deps = BTreeMap::new();
    let mut manifests = Vec::new();
    for dep in &stage.deps {
        let hashed = hasher.hash(dep)?;
        deps.insert(dep.clone(), hashed.entry);
        manifests.extend(hashed.manifests);
    }
    let mut roles = BTreeMap::new();
    for (kind, bindings) in [("deps", &stage.dep_roles), ("outs", &stage.out_roles)] {
        for (role, path) in bindings.iter().flatten() {
            roles.insert(format!("{kind}.{role}"), path.to_string());
        }
    }
    Ok((
        Inputs {
            command,
            code_version,
            env,
            params,
            deps,
            roles,
            given,
            facts,
        },
        manifests,
    ))
}
