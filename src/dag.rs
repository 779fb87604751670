//! The stage graph. An edge runs from the stage that produces a path to every
//! stage whose dep is that path, lies inside it, or contains it.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::config::{Pipeline, StageId};
use crate::names::{ProjectPath, StageName};

/// The pipeline's graph cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum DagError {
    /// The stages of a cycle, in order, the first repeated at the end.
    #[error("the stages form a cycle: {}", .0.iter().map(StageName::as_str).collect::<Vec<_>>().join(" → "))]
    Cycle(Vec<StageName>),
    /// A dep that neither exists nor is produced by a stage.
    #[error("stage `{stage}` depends on `{dep}`, which does not exist and no stage produces")]
    MissingDep { stage: StageName, dep: ProjectPath },
}

/// Stages linked by data flow. Node `n` of the graph is the stage whose id
/// has index `n`.
#[derive(Debug)]
pub struct Dag {
    graph: DiGraph<StageId, ()>,
    order: Vec<StageId>,
}

impl Dag {
    /// Builds and checks the graph; `root` is used to check that source deps exist.
    pub fn build(pipeline: &Pipeline, root: &Path) -> Result<Self, DagError> {
        let mut graph = DiGraph::new();
        let nodes: Vec<NodeIndex> = pipeline.ids().map(|id| graph.add_node(id)).collect();
        for (b, stage) in pipeline.stages.iter().enumerate() {
            for dep in &stage.deps {
                let producers: Vec<usize> = pipeline
                    .stages
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.outs.iter().any(|o| o.overlaps(dep)))
                    .map(|(a, _)| a)
                    .collect();
                if producers.is_empty() && !dep.to_fs(root).exists() {
                    return Err(DagError::MissingDep {
                        stage: stage.name.clone(),
                        dep: dep.clone(),
                    });
                }
                for a in producers {
                    graph.update_edge(nodes[a], nodes[b], ());
                }
            }
        }
        if let Some(cycle) = find_cycle(&graph) {
            return Err(DagError::Cycle(
                cycle
                    .into_iter()
                    .map(|n| pipeline.stages[n.index()].name.clone())
                    .collect(),
            ));
        }
        let order = topo_order(&graph).into_iter().map(|n| graph[n]).collect();
        Ok(Self { graph, order })
    }

    /// All stages in a deterministic topological order (ties broken by name).
    pub fn order(&self) -> &[StageId] {
        &self.order
    }

    /// The direct upstream stages of `id`.
    pub fn upstream(&self, id: StageId) -> Vec<StageId> {
        self.neighbors(id, Direction::Incoming)
    }

    /// The direct downstream stages of `id`.
    pub fn downstream(&self, id: StageId) -> Vec<StageId> {
        self.neighbors(id, Direction::Outgoing)
    }

    fn neighbors(&self, id: StageId, dir: Direction) -> Vec<StageId> {
        let mut v: Vec<StageId> = self
            .graph
            .neighbors_directed(NodeIndex::new(id.index()), dir)
            .map(|n| self.graph[n])
            .collect();
        v.sort_unstable();
        v
    }

    /// `targets` and everything they depend on, transitively.
    pub fn with_upstream(&self, targets: &[StageId]) -> BTreeSet<StageId> {
        self.closure(targets, Direction::Incoming)
    }

    /// `targets` and everything that depends on them, transitively.
    pub fn with_downstream(&self, targets: &[StageId]) -> BTreeSet<StageId> {
        self.closure(targets, Direction::Outgoing)
    }

    fn closure(&self, targets: &[StageId], dir: Direction) -> BTreeSet<StageId> {
        let mut seen: BTreeSet<StageId> = targets.iter().copied().collect();
        let mut queue: VecDeque<StageId> = targets.iter().copied().collect();
        while let Some(i) = queue.pop_front() {
            for n in self.neighbors(i, dir) {
                if seen.insert(n) {
                    queue.push_back(n);
                }
            }
        }
        seen
    }

    /// The stages of `set` in topological order.
    pub fn sorted(&self, set: &BTreeSet<StageId>) -> Vec<StageId> {
        self.order
            .iter()
            .copied()
            .filter(|i| set.contains(i))
            .collect()
    }
}

/// Kahn's algorithm, always taking the smallest ready node (stages are sorted by name).
fn topo_order(graph: &DiGraph<StageId, ()>) -> Vec<NodeIndex> {
    let mut indegree: Vec<usize> = graph
        .node_indices()
        .map(|n| graph.neighbors_directed(n, Direction::Incoming).count())
        .collect();
    let mut ready: BTreeSet<NodeIndex> = graph
        .node_indices()
        .filter(|n| indegree[n.index()] == 0)
        .collect();
    let mut order = Vec::with_capacity(indegree.len());
    while let Some(n) = ready.pop_first() {
        order.push(n);
        for m in graph.neighbors_directed(n, Direction::Outgoing) {
            indegree[m.index()] -= 1;
            if indegree[m.index()] == 0 {
                ready.insert(m);
            }
        }
    }
    order
}

/// One cycle, as a closed walk starting at its smallest stage.
fn find_cycle(graph: &DiGraph<StageId, ()>) -> Option<Vec<NodeIndex>> {
    let mut components: Vec<Vec<NodeIndex>> = tarjan_scc(graph)
        .into_iter()
        .filter(|c| c.len() > 1 || graph.contains_edge(c[0], c[0]))
        .collect();
    components.iter_mut().for_each(|c| c.sort());
    components.sort();
    let component = components.into_iter().next()?;
    let start = component[0];
    // Breadth-first search inside the component for the shortest way back to `start`.
    let mut parent = vec![None; graph.node_count()];
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        let mut next: Vec<NodeIndex> = graph
            .neighbors(n)
            .filter(|m| component.contains(m))
            .collect();
        next.sort();
        for m in next {
            if m == start {
                let mut walk = vec![n];
                let mut cur = n;
                while let Some(p) = parent[cur.index()] {
                    walk.push(p);
                    cur = p;
                }
                walk.reverse();
                if walk[0] != start {
                    walk.insert(0, start);
                }
                walk.push(start);
                return Some(walk);
            }
            if parent[m.index()].is_none() && m != start {
                parent[m.index()] = Some(n);
                queue.push_back(m);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NoBuiltins, parse};

    fn pipeline(text: &str) -> Pipeline {
        parse(Path::new("amt.toml"), text, &NoBuiltins).unwrap()
    }

    #[test]
    fn edges_follow_paths_including_nesting() {
        let p = pipeline(
            r#"
            [stages.a]
            cmd = "x"
            outs = ["out/a"]
            [stages.b]
            cmd = "y"
            deps = ["out/a/part.csv"]
            outs = ["out/b.txt"]
            [stages.c]
            cmd = "z"
            deps = ["out"]
            outs = ["final"]
            "#,
        );
        let dir = tempfile::tempdir().unwrap();
        let dag = Dag::build(&p, dir.path()).unwrap();
        let names = |ids: &[StageId]| -> Vec<&str> {
            ids.iter().map(|&id| p.stages[id].name.as_str()).collect()
        };
        let id = |name| p.id(name).unwrap();
        assert_eq!(names(dag.order()), ["a", "b", "c"]);
        assert_eq!(names(&dag.upstream(id("c"))), ["a", "b"]);
        let up: Vec<StageId> = dag.with_upstream(&[id("b")]).into_iter().collect();
        assert_eq!(names(&up), ["a", "b"]);
        let down: Vec<StageId> = dag.with_downstream(&[id("b")]).into_iter().collect();
        assert_eq!(names(&down), ["b", "c"]);
    }

    #[test]
    fn cycles_are_named_in_order() {
        let p = pipeline(
            r#"
            [stages.a]
            cmd = "x"
            deps = ["c.txt"]
            outs = ["a.txt"]
            [stages.b]
            cmd = "y"
            deps = ["a.txt"]
            outs = ["b.txt"]
            [stages.c]
            cmd = "z"
            deps = ["b.txt"]
            outs = ["c.txt"]
            "#,
        );
        let err = Dag::build(&p, Path::new("/")).unwrap_err();
        assert_eq!(err.to_string(), "the stages form a cycle: a → b → c → a");
    }

    #[test]
    fn missing_sources_are_reported() {
        let p = pipeline("[stages.a]\ncmd = \"x\"\ndeps = [\"nowhere.csv\"]\n");
        let dir = tempfile::tempdir().unwrap();
        let err = Dag::build(&p, dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stage `a` depends on `nowhere.csv`, which does not exist and no stage produces"
        );
    }
}
