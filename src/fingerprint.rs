//! The action key: a blake3 digest over everything that can change a stage's
//! outputs, and nothing else.
//!
//! | input          | why it is in the key                          |
//! |----------------|-----------------------------------------------|
//! | command        | a different command computes something else   |
//! | code version   | a built-in stage's implementation changed     |
//! | env values     | declared variables steer the command          |
//! | param values   | declared parameters steer the command         |
//! | dep digests    | the data changed (directories as Merkle trees)|
//! | role bindings  | a path now plays another part for the stage   |
//! | given vars     | `AMT_STAGE`, `AMT_DEPS`/`AMT_OUTS`/`AMT_METRICS` in order, `AMT_CPUS` and the thread-pool variables amt sets |
//! | machine facts  | a built-in's bytes depend on them (libtorch's version, CPU kernels, GPUs, the charts' font) |
//!
//! Where the stage runs (the project root, its scratch and memo directories),
//! `mem`, timestamps and everything else about the machine are deliberately
//! left out, so an identical action run anywhere shares its cache entry. A
//! shell stage's machine is its own business: declare what matters to it
//! with `env`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{ActionKey, Digest};
use crate::names::ProjectPath;
use crate::params::ParamKey;
use crate::tree::Entry;

/// Prefixes the hashed bytes so a future scheme can never collide with this one.
const DOMAIN: &[u8] = b"amt-action-v1\0";

/// The inputs of one stage execution, in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// The shell command, or `builtin NAME` for a built-in stage.
    pub command: String,
    /// The built-in stage's code version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_version: Option<String>,
    /// Declared environment variables; `None` when unset.
    #[serde(default)]
    pub env: BTreeMap<String, Option<String>>,
    /// Declared parameters, leaf by leaf, as canonical JSON text.
    #[serde(default)]
    pub params: BTreeMap<ParamKey, String>,
    /// Every dependency's kind and digest.
    #[serde(default)]
    pub deps: BTreeMap<ProjectPath, Entry>,
    /// Named bindings (`deps.corpus` → path), which tell a stage what each path is for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, String>,
    /// The variables amt gives the command (its name, its bindings in order,
    /// its CPU share), as the command sees them.
    #[serde(default)]
    pub given: BTreeMap<String, String>,
    /// Facts about the machine that a built-in stage's bytes depend on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub facts: BTreeMap<String, String>,
}

impl Inputs {
    /// The action key of these inputs.
    pub fn action_key(&self) -> ActionKey {
        let mut bytes = DOMAIN.to_vec();
        // BTreeMaps serialise in key order, so this encoding is canonical.
        bytes.extend(serde_json::to_vec(self).expect("inputs serialise"));
        ActionKey(Digest::of_bytes(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Kind;

    fn inputs() -> Inputs {
        Inputs {
            command: "python train.py".into(),
            code_version: None,
            env: BTreeMap::new(),
            params: BTreeMap::from([(ParamKey::parse("train.lr").unwrap(), "0.0003".into())]),
            deps: BTreeMap::from([(
                ProjectPath::parse("data").unwrap(),
                Entry {
                    kind: Kind::Dir,
                    digest: Digest::of_bytes(b"d"),
                },
            )]),
            roles: BTreeMap::new(),
            given: BTreeMap::new(),
            facts: BTreeMap::new(),
        }
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = inputs().action_key();
        let mut i = inputs();
        i.command.push(' ');
        assert_ne!(i.action_key(), base);
        let mut i = inputs();
        i.code_version = Some("2".into());
        assert_ne!(i.action_key(), base);
        let mut i = inputs();
        i.env.insert("SEED".into(), None);
        assert_ne!(i.action_key(), base);
        let mut i = inputs();
        i.params.insert(ParamKey::parse("train.lr").unwrap(), "0.001".into());
        assert_ne!(i.action_key(), base);
        let mut i = inputs();
        i.deps
            .values_mut()
            .for_each(|e| e.digest = Digest::of_bytes(b"e"));
        assert_ne!(i.action_key(), base);
        let mut i = inputs();
        i.roles.insert("deps.corpus".into(), "data".into());
        assert_ne!(i.action_key(), base);
        let mut i = inputs();
        i.facts.insert("libtorch".into(), "2.13.0+cpu".into());
        assert_ne!(i.action_key(), base);
        let mut i = inputs();
        i.given.insert("AMT_CPUS".into(), "2".into());
        assert_ne!(i.action_key(), base);
        assert_eq!(inputs().action_key(), base);
    }

}
