//! The shapes serde reads `amt.toml` into, before validation.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::executor::RawExecutor;
use super::{ExecutorKind, RemoteConfig, SlurmOptions, SweepConfig};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    #[serde(default)]
    pub(super) params: toml::Table,
    #[serde(default)]
    pub(super) stages: BTreeMap<Spanned<String>, Spanned<RawStage>>,
    pub(super) remote: Option<RemoteConfig>,
    #[serde(default)]
    pub(super) sweeps: BTreeMap<String, SweepConfig>,
    #[serde(default)]
    pub(super) profiles: BTreeMap<String, Spanned<toml::Table>>,
    pub(super) executor: Option<Spanned<RawExecutor>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStage {
    pub(super) cmd: Option<Spanned<String>>,
    pub(super) builtin: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) deps: RawPaths,
    #[serde(default)]
    pub(super) outs: RawPaths,
    #[serde(default)]
    pub(super) metrics: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) params: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) env: Vec<Spanned<String>>,
    pub(super) cpus: Option<Spanned<u32>>,
    pub(super) gpus: Option<Spanned<u32>>,
    pub(super) mem: Option<Spanned<String>>,
    pub(super) executor: Option<Spanned<ExecutorKind>>,
    pub(super) slurm: Option<Spanned<SlurmOptions>>,
}

/// `deps` or `outs`: a list of paths, or a table binding role names to paths
/// (which built-in stages use to find their inputs and outputs).
#[derive(Default)]
pub(super) enum RawPaths {
    #[default]
    Empty,
    List(Vec<Spanned<String>>),
    Named(Vec<(String, Spanned<String>)>),
}

impl RawPaths {
    pub(super) fn paths(&self) -> Vec<&Spanned<String>> {
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
