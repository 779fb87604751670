//! `amt runs`: the run ledger as a Markdown table (or JSON with `--json`).

use amt::ledger::{Ledger, RunRow};
use amt::project::Project;

use super::{Failure, Ui};

#[derive(clap::Args)]
pub struct Args {
    /// Only this stage's executions.
    stage: Option<String>,
    /// Only the newest N.
    #[arg(long, value_name = "N")]
    last: Option<usize>,
}

fn table(rows: &[RunRow]) -> String {
    let mut out = String::from(
        "| invocation | stage | status | cache hit | duration | peak memory | action key | params |\n",
    );
    out += "|---|---|---|---|---:|---:|---|---|\n";
    for r in rows {
        let memory = r
            .peak_rss_kb
            .map_or_else(|| "-".into(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0));
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | `{}` |\n",
            r.invocation,
            r.stage,
            r.status,
            if r.cache_hit { "yes" } else { "no" },
            super::output::human_duration(std::time::Duration::from_millis(
                r.duration_ms.max(0) as u64
            )),
            memory,
            &r.action_key[..r.action_key.len().min(12)],
            r.params
        );
    }
    out
}

pub fn run(project: &Project, args: Args, ui: Ui) -> Result<(), Failure> {
    if let Some(s) = &args.stage
        && project.pipeline.stage(s).is_none()
    {
        return Err(Failure::Input(anyhow::anyhow!("no stage is called `{s}`")));
    }
    let rows = Ledger::new(&project.cache_dir())
        .rows(args.stage.as_deref(), args.last)
        .map_err(|e| Failure::Other(e.into()))?;
    if ui.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Failure::Other(e.into()))?
        );
    } else if rows.is_empty() {
        println!(
            "no stage has run yet (the ledger is {})",
            project.cache_dir().join(amt::ledger::FILE).display()
        );
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}
