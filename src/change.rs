//! Why a stage is not fresh, in words: the difference between the inputs a
//! stage was recorded with and its inputs now. The engine decides freshness
//! by action-key equality; this module only explains a stale stage (`amt
//! status`, `amt why`), so it may be incomplete but never decides.

use std::collections::BTreeMap;

use amt_registry::invocation;

use crate::fingerprint::Inputs;
use crate::names::{ProjectPath, StageName};
use crate::tree::Entry;

/// Why a stage is not fresh. `amt status` shows the first; `amt why` all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// No record: the stage never ran here.
    NeverRun,
    /// `--force`.
    Forced,
    /// The command text changed.
    Command { old: String, new: String },
    /// A built-in stage's code version changed.
    CodeVersion {
        old: Option<String>,
        new: Option<String>,
    },
    /// A declared environment variable changed.
    Env {
        var: String,
        old: Option<String>,
        new: Option<String>,
    },
    /// A declared parameter changed (canonical JSON, `None` when not declared before/now).
    Param {
        key: String,
        old: Option<String>,
        new: Option<String>,
    },
    /// A role is bound to another path (`deps.first`: `a.txt` → `b.txt`), or bound or unbound.
    Role {
        binding: String,
        old: Option<String>,
        new: Option<String>,
    },
    /// A machine fact a built-in stage depends on changed (libtorch, CPU kernels, GPUs, font).
    Fact {
        name: String,
        old: Option<String>,
        new: Option<String>,
    },
    /// A variable amt gives the command changed (`AMT_DEPS` when deps are
    /// reordered, `AMT_CPUS` with `cpus`, `AMT_STAGE` on a rename).
    Given {
        var: String,
        old: Option<String>,
        new: Option<String>,
    },
    /// The action key changed in a way this version of amt cannot itemise
    /// (the record was written by another version of amt).
    Key,
    /// A dep's content changed, or the dep was added or removed.
    Dep {
        path: ProjectPath,
        old: Option<Entry>,
        new: Option<Entry>,
    },
    /// A declared out is missing from the workspace.
    OutMissing(ProjectPath),
    /// A declared out was modified after it was recorded.
    OutModified(ProjectPath),
    /// The list of declared outs changed.
    OutsDeclared,
    /// An upstream stage will run first, so the inputs are not known yet.
    Upstream(StageName),
    /// `--verify`: up to date, executed again to compare its bytes.
    Verify,
}

impl Change {
    /// One line for humans.
    pub fn summary(&self) -> String {
        match self {
            Change::NeverRun => "never run".into(),
            Change::Forced => "forced".into(),
            Change::Command { .. } => "command changed".into(),
            Change::CodeVersion { old, new } => format!(
                "code version changed: {} → {}",
                old.as_deref().unwrap_or("none"),
                new.as_deref().unwrap_or("none")
            ),
            Change::Env { var, .. } => format!("env {var} changed"),
            Change::Param { key, old: None, .. } => format!("param {key} added"),
            Change::Param { key, new: None, .. } => format!("param {key} removed"),
            Change::Param {
                key,
                old: Some(o),
                new: Some(n),
            } => format!("param {key} changed: {o} → {n}"),
            Change::Role {
                binding, new: None, ..
            } => format!("role {binding} unbound"),
            Change::Role {
                binding, old: None, ..
            } => format!("role {binding} bound"),
            Change::Role {
                binding,
                old: Some(o),
                new: Some(n),
            } => format!("role {binding} changed: {o} → {n}"),
            Change::Fact { name, old, new } => format!(
                "machine fact {name} changed: {} → {}",
                old.as_deref().unwrap_or("none"),
                new.as_deref().unwrap_or("none")
            ),
            Change::Given { var, old, new } => format!(
                "{var} changed: {} → {}",
                old.as_deref().unwrap_or("unset"),
                new.as_deref().unwrap_or("unset")
            ),
            Change::Key => "action key changed".into(),
            Change::Dep {
                path, old: None, ..
            } => format!("dep {path} added"),
            Change::Dep {
                path, new: None, ..
            } => format!("dep {path} removed"),
            Change::Dep { path, .. } => format!("dep {path} changed"),
            Change::OutMissing(p) => format!("out {p} missing"),
            Change::OutModified(p) => format!("out {p} modified"),
            Change::OutsDeclared => "declared outs changed".into(),
            Change::Upstream(s) => format!("upstream stage {s} is stale"),
            Change::Verify => "verifying that it reproduces its outputs".into(),
        }
    }
}

/// Every difference between recorded and current inputs, in a stable order.
pub fn diff_inputs(old: &Inputs, new: &Inputs) -> Vec<Change> {
    let mut changes = Vec::new();
    if old.command != new.command {
        changes.push(Change::Command {
            old: old.command.clone(),
            new: new.command.clone(),
        });
    }
    if old.code_version != new.code_version {
        changes.push(Change::CodeVersion {
            old: old.code_version.clone(),
            new: new.code_version.clone(),
        });
    }
    for (var, old_v, new_v) in merged(&old.env, &new.env) {
        if old_v != new_v {
            changes.push(Change::Env {
                var: var.clone(),
                old: old_v.cloned().flatten(),
                new: new_v.cloned().flatten(),
            });
        }
    }
    for (key, old_v, new_v) in merged(&old.params, &new.params) {
        if old_v != new_v {
            changes.push(Change::Param {
                key: key.to_string(),
                old: old_v.cloned(),
                new: new_v.cloned(),
            });
        }
    }
    for (path, old_e, new_e) in merged(&old.deps, &new.deps) {
        if old_e != new_e {
            changes.push(Change::Dep {
                path: path.clone(),
                old: old_e.copied(),
                new: new_e.copied(),
            });
        }
    }
    for (binding, old_p, new_p) in merged(&old.roles, &new.roles) {
        if old_p != new_p {
            changes.push(Change::Role {
                binding: binding.clone(),
                old: old_p.cloned(),
                new: new_p.cloned(),
            });
        }
    }
    let roles_changed = changes.iter().any(|c| matches!(c, Change::Role { .. }));
    for (var, old_v, new_v) in merged(&old.given, &new.given) {
        // A rebinding already shows as its roles.
        let said = roles_changed && (var == invocation::var::DEPS || var == invocation::var::OUTS);
        if old_v != new_v && !said {
            changes.push(Change::Given {
                var: var.clone(),
                old: old_v.cloned(),
                new: new_v.cloned(),
            });
        }
    }
    for (name, old_v, new_v) in merged(&old.facts, &new.facts) {
        if old_v != new_v {
            changes.push(Change::Fact {
                name: name.clone(),
                old: old_v.cloned(),
                new: new_v.cloned(),
            });
        }
    }
    changes
}

/// The union of two maps' keys with both values.
fn merged<'a, K: Ord, V>(
    a: &'a BTreeMap<K, V>,
    b: &'a BTreeMap<K, V>,
) -> Vec<(&'a K, Option<&'a V>, Option<&'a V>)> {
    let keys: std::collections::BTreeSet<&K> = a.keys().chain(b.keys()).collect();
    keys.into_iter().map(|k| (k, a.get(k), b.get(k))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_explains_roles_and_facts() {
        let old = Inputs {
            command: "x".into(),
            code_version: None,
            env: BTreeMap::new(),
            params: BTreeMap::new(),
            deps: BTreeMap::new(),
            roles: BTreeMap::from([
                ("deps.first".into(), "a".into()),
                ("deps.second".into(), "b".into()),
            ]),
            given: BTreeMap::new(),
            facts: BTreeMap::from([("cpu".into(), "avx2".into())]),
        };
        let mut new = old.clone();
        new.roles.insert("deps.first".into(), "b".into());
        new.roles.insert("deps.second".into(), "a".into());
        new.facts.insert("cpu".into(), "avx512".into());
        let why: Vec<String> = diff_inputs(&old, &new).iter().map(Change::summary).collect();
        assert_eq!(
            why,
            [
                "role deps.first changed: a → b",
                "role deps.second changed: b → a",
                "machine fact cpu changed: avx2 → avx512"
            ]
        );
        assert!(diff_inputs(&old, &old).is_empty());
    }
}
