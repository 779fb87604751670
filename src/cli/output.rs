//! Progress and results as the scheduler reports them: human lines (with
//! spinners on a terminal), quiet, or JSON lines.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use amt::config::Stage;
use amt::engine::{Change, StageError};
use amt::exec;
use amt::scheduler::{Outcome, Reporter, Summary};
use amt_registry::progress::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

use super::Ui;

/// Lines of a failed stage's log shown on failure.
const LOG_TAIL: usize = 30;

/// Without a terminal (or with `--json`), a stage's progress is printed at
/// most this often while it runs; the last report held back is printed when
/// it finishes.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Prints scheduler events according to the output settings.
pub struct Printer {
    ui: Ui,
    log_dir: std::path::PathBuf,
    bars: Option<MultiProgress>,
    running: Mutex<Vec<(String, ProgressBar)>>,
    /// Each running stage's progress clock.
    clocks: Mutex<std::collections::HashMap<String, Clock>>,
}

/// When a stage started, when its progress was last printed, and the report
/// held back since by the rationing (printed when the stage finishes, so its
/// last word is not lost).
struct Clock {
    started: Instant,
    printed: Option<Instant>,
    held: Option<Progress>,
}

impl Printer {
    /// A printer; spinners appear only on an interactive stderr.
    pub fn new(ui: Ui, log_dir: std::path::PathBuf) -> Self {
        let bars =
            (!ui.quiet && !ui.json && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Self {
            ui,
            log_dir,
            bars,
            running: Mutex::new(Vec::new()),
            clocks: Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// One progress report, with the time left when it is known.
    fn show_progress(&self, stage: &Stage, p: &Progress, eta: Option<Duration>) {
        let name = stage.name.as_str();
        if self.ui.json {
            let ev = json!({"event": "progress", "stage": name, "done": p.done, "total": p.total,
                            "unit": p.unit, "message": p.message,
                            "eta_s": eta.map(|d| d.as_secs())});
            println!("{ev}");
            return;
        }
        let eta_text = eta.map(|d| format!(", ETA {}", human_duration(d))).unwrap_or_default();
        let text = format!("{name} {}{eta_text}", p.summary());
        match &self.bars {
            Some(_) => {
                let running = self.running.lock().expect("printer lock poisoned");
                if let Some((_, bar)) = running.iter().find(|(n, _)| n == name) {
                    bar.set_message(text);
                }
            }
            None => eprintln!("  {text}"),
        }
    }

    /// The final line: counts and elapsed time.
    pub fn summary(&self, summary: &Summary, files_hashed: u64) {
        let counts = summary.counts();
        if self.ui.json {
            println!(
                "{}",
                json!({"event": "summary", "counts": counts, "elapsed_ms": summary.elapsed.as_millis() as u64,
                       "files_hashed": files_hashed, "failed": summary.failed()})
            );
        } else if !self.ui.quiet {
            let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            let parts = if parts.is_empty() {
                "nothing to do".to_owned()
            } else {
                parts.join(", ")
            };
            eprintln!("{parts} in {}", human_duration(summary.elapsed));
        }
    }
}

impl Reporter for Printer {
    /// The ledger keeps executions; the outcome line already says what happened.
    fn executed(&self, _: &amt::ledger::RunRow) {}

    /// Warnings go to stderr whatever the mode: `--json` keeps stdout for events
    /// a program reads, and `--quiet` silences progress, not trouble.
    fn warning(&self, warning: &amt::warning::Warning) {
        self.line(format!("warning: {warning}"));
    }

    fn progress(&self, stage: &Stage, p: &Progress) {
        if self.ui.quiet {
            return;
        }
        let now = Instant::now();
        let started = {
            let mut clocks = self.clocks.lock().expect("printer lock poisoned");
            let clock = clocks.entry(stage.name.to_string()).or_insert(Clock {
                started: now,
                printed: None,
                held: None,
            });
            // A terminal spinner updates always; printed lines are rationed.
            let throttled = self.bars.is_none()
                && clock.printed.is_some_and(|t| now.duration_since(t) < PROGRESS_EVERY);
            if throttled {
                clock.held = Some(p.clone());
                return;
            }
            clock.printed = Some(now);
            clock.held = None;
            clock.started
        };
        self.show_progress(stage, p, eta(now.duration_since(started), p));
    }

    fn started(&self, stage: &Stage, changes: &[Change]) {
        self.clocks.lock().expect("printer lock poisoned").insert(
            stage.name.to_string(),
            Clock {
                started: Instant::now(),
                printed: None,
                held: None,
            },
        );
        let why = changes.first().map(Change::summary).unwrap_or_default();
        if self.ui.json {
            println!(
                "{}",
                json!({"event": "started", "stage": stage.name.as_str(), "reason": why})
            );
            return;
        }
        if self.ui.quiet {
            return;
        }
        match &self.bars {
            Some(m) => {
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .expect("valid template"),
                );
                bar.set_message(format!("{} ({why})", stage.name));
                bar.enable_steady_tick(Duration::from_millis(120));
                self.running
                    .lock()
                    .expect("printer lock poisoned")
                    .push((stage.name.to_string(), bar));
            }
            None => eprintln!("▶ {} ({why})", stage.name),
        }
    }

    fn finished(&self, stage: &Stage, outcome: &Outcome) {
        let clock = self.clocks.lock().expect("printer lock poisoned").remove(stage.name.as_str());
        // Without an ETA: the stage has ended, whatever its report says.
        if let Some(Clock { held: Some(p), .. }) = clock
            && self.bars.is_none()
        {
            self.show_progress(stage, &p, None);
        }
        {
            let mut running = self.running.lock().expect("printer lock poisoned");
            if let Some(pos) = running.iter().position(|(n, _)| n == stage.name.as_str()) {
                running.remove(pos).1.finish_and_clear();
            }
        }
        let name = stage.name.as_str();
        if self.ui.json {
            let mut ev = json!({"event": "finished", "stage": name, "outcome": outcome.label()});
            match outcome {
                Outcome::Ran { duration_ms, job } => {
                    ev["duration_ms"] = json!(duration_ms);
                    if let Some(job) = job {
                        ev["job"] = json!(job);
                    }
                }
                Outcome::Verified { duration_ms } => ev["duration_ms"] = json!(duration_ms),
                Outcome::Nondeterministic(diffs) => {
                    ev["differs"] = json!(diffs.iter().map(|d| json!({
                        "out": d.path.as_str(),
                        "expected": d.expected.map(|e| e.digest.to_hex()),
                        "actual": d.actual.digest.to_hex(),
                    })).collect::<Vec<_>>())
                }
                Outcome::WouldRun(c) | Outcome::WouldRestore(c) => {
                    ev["reasons"] = json!(c.iter().map(Change::summary).collect::<Vec<_>>())
                }
                Outcome::Failed(e) => ev["error"] = json!(e.to_string()),
                Outcome::Skipped(up) => ev["because"] = json!(up.as_str()),
                _ => {}
            }
            println!("{ev}");
            return;
        }
        let failed = !outcome.is_ok() || matches!(outcome, Outcome::Nondeterministic(_));
        if self.ui.quiet && !failed {
            return;
        }
        let text = match outcome {
            Outcome::Fresh if !self.ui.verbose => return,
            Outcome::Fresh => format!("✓ {name} is fresh"),
            Outcome::Restored(m) => format!("↺ {name} restored from cache ({m:?})").to_lowercase(),
            Outcome::Ran { duration_ms, job } => format!(
                "✓ {name} ran in {}{}",
                human_duration(Duration::from_millis(*duration_ms)),
                job.as_ref().map(|j| format!(" (Slurm job {j})")).unwrap_or_default()
            ),
            Outcome::Verified { duration_ms } => format!(
                "✓ {name} verified: the same bytes again in {}",
                human_duration(Duration::from_millis(*duration_ms))
            ),
            Outcome::Nondeterministic(diffs) => {
                let mut t = format!("✗ {name} is nondeterministic: the same inputs gave other bytes");
                for d in diffs {
                    t.push_str(&format!(
                        "\n    {}: {} then, {} now",
                        d.path,
                        d.expected.map_or("nothing".into(), |e| e.digest.short()),
                        d.actual.digest.short()
                    ));
                }
                t
            }
            Outcome::WouldRun(c) => format!("• {name} would run: {}", reasons(c)),
            Outcome::WouldRestore(c) => {
                format!("• {name} would be restored from cache: {}", reasons(c))
            }
            Outcome::Failed(StageError::Cancelled) => format!("✗ {name} cancelled"),
            Outcome::Failed(e) => {
                let mut t = format!("✗ {name} failed: {e}");
                if matches!(e, StageError::Failed { .. }) {
                    let tail = exec::tail(&self.log_dir.join(format!("{name}.log")), LOG_TAIL);
                    if !tail.is_empty() {
                        for l in tail.lines() {
                            t.push_str(&format!("\n    │ {l}"));
                        }
                    }
                }
                t
            }
            Outcome::Skipped(up) => format!("- {name} skipped: upstream stage {up} failed"),
            Outcome::NotStarted => format!("- {name} not started"),
        };
        self.line(text);
    }
}

fn reasons(changes: &[Change]) -> String {
    changes
        .iter()
        .map(Change::summary)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How long is left, from the rate so far (once there is one).
fn eta(elapsed: Duration, p: &Progress) -> Option<Duration> {
    let total = p.total?;
    (p.done > 0 && total >= p.done)
        .then(|| elapsed.mul_f64((total - p.done) as f64 / p.done as f64))
}

/// `850ms`, `12.3s`, `4m05s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}
