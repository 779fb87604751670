//! The pipeline as the studio shows it. The stage states and the ledger come
//! from `amt status --json` and `amt runs --json`, so the page says exactly
//! what the command line says; the loss curve, metrics and report are read
//! from the outputs those stages declare.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use serde_json::Value;

/// The project and the `amt` binary that answers for it.
#[derive(Clone, Debug)]
pub struct Pipeline {
    root: PathBuf,
    amt: PathBuf,
}

impl Pipeline {
    /// The project at `root`, asked through the `amt` at `amt`.
    pub fn new(root: PathBuf, amt: PathBuf) -> Self {
        Self { root, amt }
    }

    /// The project's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn amt_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let out = Command::new(&self.amt)
            .arg("-C")
            .arg(&self.root)
            .arg("--json")
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.amt.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "`amt {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("reading `amt {} --json`", args.join(" ")))
    }

    /// `amt status --json`: every stage's state, reasons, edges and outputs.
    pub fn status(&self) -> anyhow::Result<Value> {
        self.amt_json(&["status"])
    }

    /// `amt runs --json`: the ledger's pipeline runs, newest last.
    pub fn runs(&self, last: usize) -> anyhow::Result<Value> {
        self.amt_json(&["runs", "--last", &last.to_string()])
    }

    /// The output directory (role `dir`) of the stage running `builtin`.
    fn builtin_dir(status: &Value, builtin: &str) -> Option<String> {
        status["stages"]
            .as_array()?
            .iter()
            .find(|s| s["builtin"] == builtin)?
            .get("outs")?
            .get("dir")?
            .as_str()
            .map(str::to_owned)
    }

    /// A project-relative path from amt's own output, checked again: it must
    /// stay inside the project.
    fn inside(&self, rel: &str) -> anyhow::Result<PathBuf> {
        let p = Path::new(rel);
        anyhow::ensure!(
            p.components().all(|c| matches!(c, Component::Normal(_))),
            "{rel:?} is not a path inside the project"
        );
        Ok(self.root.join(p))
    }

    /// Every stage's metrics files, parsed: `{stage: {path: value}}` (missing files are null).
    pub fn metrics(&self, status: &Value) -> anyhow::Result<Value> {
        let mut all = serde_json::Map::new();
        for stage in status["stages"].as_array().into_iter().flatten() {
            let Some(files) = stage["metrics"].as_array().filter(|f| !f.is_empty()) else {
                continue;
            };
            let mut by_file = serde_json::Map::new();
            for f in files.iter().filter_map(Value::as_str) {
                let path = self.inside(f)?;
                let value = match std::fs::read(&path) {
                    Ok(bytes) => serde_json::from_slice(&bytes)
                        .with_context(|| format!("reading {}", path.display()))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                };
                by_file.insert(f.to_owned(), value);
            }
            let name = stage["stage"].as_str().unwrap_or_default().to_owned();
            all.insert(name, Value::Object(by_file));
        }
        Ok(Value::Object(all))
    }

    /// The train stage's loss log (empty before it has run).
    pub fn loss(&self, status: &Value) -> anyhow::Result<Vec<amt_stages::train::log::LogRow>> {
        let Some(dir) = Self::builtin_dir(status, "train") else {
            return Ok(Vec::new());
        };
        let path = self.inside(&dir)?.join("loss.csv");
        if !path.is_file() {
            return Ok(Vec::new());
        }
        amt_stages::train::log::read_csv(&path)
    }

    /// The evaluate stage's report as HTML, its images pointed at
    /// `/api/report/files/NAME` (`None` before it has run).
    pub fn report_html(&self, status: &Value) -> anyhow::Result<Option<String>> {
        let Some(dir) = Self::builtin_dir(status, "evaluate") else {
            return Ok(None);
        };
        let path = self.inside(&dir)?.join("report.md");
        let markdown = match std::fs::read_to_string(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Some(markdown_to_html(&markdown)))
    }

    /// A file of the evaluate stage's output directory, by bare name.
    pub fn report_file(&self, status: &Value, name: &str) -> Option<PathBuf> {
        let dir = Self::builtin_dir(status, "evaluate")?;
        let name = report_file_name(name)?;
        let path = self.inside(&dir).ok()?.join(name);
        path.is_file().then_some(path)
    }
}

/// A bare file name with an image or text extension; nothing with a separator.
fn report_file_name(name: &str) -> Option<&str> {
    let p = Path::new(name);
    let mut parts = p.components();
    let (Some(Component::Normal(_)), None) = (parts.next(), parts.next()) else {
        return None;
    };
    let ext = p.extension()?.to_str()?;
    matches!(ext, "png" | "svg" | "json" | "md" | "csv").then_some(name)
}

/// Markdown to HTML, with relative image links rewritten to the report's
/// file route and raw HTML dropped (the report is ours, but the page is too).
fn markdown_to_html(markdown: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, Tag};
    let events =
        Parser::new_ext(markdown, Options::ENABLE_TABLES).filter_map(|event| match event {
            Event::Html(_) | Event::InlineHtml(_) => None,
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest_url = match report_file_name(&dest_url) {
                    Some(name) => format!("/api/report/files/{name}").into(),
                    None => dest_url,
                };
                Some(Event::Start(Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                }))
            }
            other => Some(other),
        });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_files_are_bare_names() {
        assert_eq!(report_file_name("pitch.png"), Some("pitch.png"));
        for bad in ["../x.png", "a/b.png", "/etc/passwd", "..", "x.so", "report"] {
            assert_eq!(report_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_report_links_its_images_and_drops_raw_html() {
        let html = markdown_to_html(
            "# Report\n\n![loss](loss.png)\n\n<script>x()</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(
            html.contains(r#"<img src="/api/report/files/loss.png" alt="loss""#),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("<table>"), "{html}");
    }

    #[test]
    fn paths_from_amt_must_stay_in_the_project() {
        let p = Pipeline::new("/p".into(), "amt".into());
        assert_eq!(
            p.inside("artifacts/train").unwrap(),
            Path::new("/p/artifacts/train")
        );
        assert!(p.inside("../x").is_err());
        assert!(p.inside("/etc").is_err());
    }
}
