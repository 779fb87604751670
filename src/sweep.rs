//! Parameter sweeps: a grid of param values (or seeded draws from it), each
//! point run as the same pipeline with those params, in a workspace of its own
//! under `cache/sweeps/`. Points share the project's cache, so stages whose
//! inputs a point does not change are computed once and restored everywhere
//! else; the project's own workspace is never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::config::{Pipeline, StageId, SweepConfig};
use crate::params::{ParamError, ParamKey, canonical};
use crate::project::{Project, ProjectError};

/// A sweep problem, naming the key or value at fault.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("`{0}` is not KEY=VALUE[,VALUE…]")]
    Syntax(String),
    #[error("sweep param {0}")]
    Param(#[from] ParamError),
    #[error("sweep param `{0}` has no values")]
    Empty(String),
    #[error("no sweep is called `{0}` in amt.toml")]
    UnknownSweep(String),
    #[error("preparing the point's workspace {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Project(#[from] ProjectError),
}

/// One param and the values it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: ParamKey,
    pub values: Vec<toml::Value>,
}

/// One point: the params it overrides, and a stable id derived from them.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub id: String,
    pub overrides: BTreeMap<ParamKey, toml::Value>,
}

impl Point {
    fn new(overrides: BTreeMap<ParamKey, toml::Value>) -> Self {
        let text: String = overrides
            .iter()
            .map(|(k, v)| format!("{k}={}\n", canonical(v)))
            .collect();
        let id = blake3::hash(text.as_bytes()).to_hex()[..10].to_owned();
        Self { id, overrides }
    }

    /// `key=value, …` in key order.
    pub fn label(&self) -> String {
        self.overrides
            .iter()
            .map(|(k, v)| format!("{k}={}", canonical(v)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A value as written on the command line: TOML (`3e-4`, `2`, `true`, `"x"`), else a string.
fn value(text: &str) -> toml::Value {
    let text = text.trim();
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

/// Parses `-S key=v1,v2`.
pub fn parse_axis(arg: &str) -> Result<Axis, SweepError> {
    let (key, values) = arg
        .split_once('=')
        .ok_or_else(|| SweepError::Syntax(arg.to_owned()))?;
    let key = ParamKey::parse(key.trim()).map_err(|_| SweepError::Syntax(arg.to_owned()))?;
    let values: Vec<toml::Value> = values
        .split(',')
        .filter(|v| !v.trim().is_empty())
        .map(value)
        .collect();
    if values.is_empty() {
        return Err(SweepError::Empty(key.to_string()));
    }
    Ok(Axis { key, values })
}

/// The axes of a `[sweeps.NAME]` table.
pub fn config_axes(config: &SweepConfig) -> Result<Vec<Axis>, SweepError> {
    config
        .grid
        .iter()
        .map(|(k, v)| {
            Ok(Axis {
                key: ParamKey::parse(k)?,
                values: v.clone(),
            })
        })
        .collect()
}

/// Every combination, the first axis varying slowest.
pub fn grid(axes: &[Axis]) -> Vec<Point> {
    let mut points = vec![BTreeMap::new()];
    for axis in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                axis.values.iter().map(move |v| {
                    let mut p = p.clone();
                    p.insert(axis.key.clone(), v.clone());
                    p
                })
            })
            .collect();
    }
    let mut out: Vec<Point> = points.into_iter().map(Point::new).collect();
    out.dedup_by(|a, b| a.id == b.id);
    out
}

/// `n` distinct points drawn from `points` with a seed (all of them if `n` is larger).
pub fn draw(points: &[Point], n: usize, seed: u64) -> Vec<Point> {
    let mut keyed: Vec<(blake3::Hash, &Point)> = points
        .iter()
        .map(|p| (blake3::hash(format!("{seed}:{}", p.id).as_bytes()), p))
        .collect();
    keyed.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    keyed.into_iter().take(n).map(|(_, p)| p.clone()).collect()
}

/// Checks every axis names a param that `[params]` defines.
pub fn check_axes(pipeline: &Pipeline, axes: &[Axis]) -> Result<(), SweepError> {
    for axis in axes {
        if axis.values.is_empty() {
            return Err(SweepError::Empty(axis.key.to_string()));
        }
        pipeline.params.require(axis.key.as_str())?;
    }
    Ok(())
}

/// The stages in `selection` that no point changes: they read none of the
/// swept params and depend on no stage that does. A sweep runs them once,
/// before the points, so the points all restore them from the cache.
pub fn shared_stages(
    project: &Project,
    selection: &BTreeSet<StageId>,
    axes: &[Axis],
) -> BTreeSet<StageId> {
    let touched: Vec<StageId> = selection
        .iter()
        .copied()
        .filter(|&i| {
            project.pipeline.stages[i]
                .params
                .iter()
                .any(|d| axes.iter().any(|a| d.overlaps(&a.key)))
        })
        .collect();
    let changed = project.dag.with_downstream(&touched);
    selection
        .iter()
        .copied()
        .filter(|i| !changed.contains(i))
        .collect()
}

/// The point's workspace: `cache/sweeps/<id>`.
pub fn workspace(project: &Project, point: &Point) -> PathBuf {
    project.cache_dir().join("sweeps").join(&point.id)
}

/// Links the project's inputs into `dst`: each entry is a symlink to the
/// original, except where declared outputs live, which get real directories
/// so the point's stages write into its own workspace.
fn mirror(src: &Path, dst: &Path, rel: &Path, outs: &[PathBuf]) -> Result<(), SweepError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SweepError::Io { path, source }
    };
    std::fs::create_dir_all(dst.join(rel)).map_err(io(&dst.join(rel)))?;
    for entry in std::fs::read_dir(src.join(rel))
        .map_err(io(&src.join(rel)))?
        .flatten()
    {
        let name = entry.file_name();
        let child = rel.join(&name);
        if rel.as_os_str().is_empty() && (name == "cache" || name == ".git" || name == ".amt") {
            continue;
        }
        if outs.iter().any(|o| *o == child) {
            continue;
        }
        let target = dst.join(&child);
        if outs.iter().any(|o| o.starts_with(&child)) {
            mirror(src, dst, &child, outs)?;
        } else if std::fs::symlink_metadata(&target).is_err() {
            std::os::unix::fs::symlink(src.join(&child), &target).map_err(io(&target))?;
        }
    }
    Ok(())
}

/// The project as this point sees it: its params overridden, in its own workspace.
pub fn point_project(project: &Project, point: &Point) -> Result<Project, SweepError> {
    let mut pipeline = project.pipeline.clone();
    for (k, v) in &point.overrides {
        pipeline.params.set(k, v.clone())?;
    }
    let root = workspace(project, point);
    let outs: Vec<PathBuf> = pipeline
        .stages
        .iter()
        .flat_map(|s| s.outs.iter().map(|o| PathBuf::from(o.as_str())))
        .collect();
    mirror(&project.root, &root, Path::new(""), &outs)?;
    Ok(project.variant(&root, pipeline)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_toml_values() {
        let a = parse_axis("train.lr=1e-3, 3e-4").unwrap();
        assert_eq!(a.key.as_str(), "train.lr");
        assert_eq!(
            a.values,
            vec![toml::Value::Float(1e-3), toml::Value::Float(3e-4)]
        );
        let b = parse_axis("model.preset=tiny,\"gpt2-small\"").unwrap();
        assert_eq!(
            b.values,
            vec![
                toml::Value::String("tiny".into()),
                toml::Value::String("gpt2-small".into())
            ]
        );
        assert!(matches!(parse_axis("lr"), Err(SweepError::Syntax(_))));
        assert!(matches!(parse_axis("lr="), Err(SweepError::Empty(_))));
    }

    #[test]
    fn the_grid_is_the_product_and_draws_are_seeded_subsets() {
        let axes = [parse_axis("a=1,2").unwrap(), parse_axis("b=x,y,z").unwrap()];
        let g = grid(&axes);
        assert_eq!(g.len(), 6);
        assert_eq!(g[0].label(), "a=1, b=\"x\"");
        assert_eq!(g[5].label(), "a=2, b=\"z\"");
        let ids: std::collections::HashSet<&str> = g.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), 6, "ids are distinct");
        assert_eq!(draw(&g, 3, 7), draw(&g, 3, 7));
        assert_eq!(draw(&g, 3, 7).len(), 3);
        assert_ne!(draw(&g, 3, 7), draw(&g, 3, 8));
        assert_eq!(draw(&g, 10, 0).len(), 6);
    }
}
