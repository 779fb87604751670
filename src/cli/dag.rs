//! `amt dag`: the stage graph as text, Graphviz dot or Mermaid.

use amt::config::StageId;
use amt::project::Project;

use super::Failure;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Dot,
    Mermaid,
}

#[derive(clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

pub fn run(project: &Project, args: Args) -> Result<(), Failure> {
    print!("{}", render(project, args.format));
    Ok(())
}

/// Renders the graph; stages appear in topological order.
pub fn render(project: &Project, format: Format) -> String {
    let stages = &project.pipeline.stages;
    let dag = &project.dag;
    let name = |i: StageId| stages[i].name.as_str();
    let mut out = String::new();
    match format {
        Format::Text => {
            for &i in dag.order() {
                let ups: Vec<&str> = dag.upstream(i).into_iter().map(name).collect();
                if ups.is_empty() {
                    out.push_str(&format!("{}\n", name(i)));
                } else {
                    out.push_str(&format!("{} ← {}\n", name(i), ups.join(", ")));
                }
            }
        }
        Format::Dot => {
            out.push_str("digraph amt {\n  rankdir=LR;\n  node [shape=box];\n");
            for &i in dag.order() {
                out.push_str(&format!("  \"{}\";\n", name(i)));
            }
            for &i in dag.order() {
                for d in dag.downstream(i) {
                    out.push_str(&format!("  \"{}\" -> \"{}\";\n", name(i), name(d)));
                }
            }
            out.push_str("}\n");
        }
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            let id = |i: StageId| format!("s{i}");
            for &i in dag.order() {
                out.push_str(&format!("  {}[\"{}\"]\n", id(i), name(i)));
            }
            for &i in dag.order() {
                for d in dag.downstream(i) {
                    out.push_str(&format!("  {} --> {}\n", id(i), id(d)));
                }
            }
        }
    }
    out
}
