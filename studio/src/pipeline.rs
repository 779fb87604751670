//! The pipeline as the studio shows it. The stage states and the ledger come
//! from `amt status --json` and `amt runs --json`, so the page says exactly
//! what the command line says; the loss curve, metrics and report are read
//! from the outputs those stages declare.
//!
//! `amt status` hashes what changed since it last looked, so its answer is
//! shared: one query at a time, reused for [`STATUS_TTL`]. Every query has a
//! time limit, and its process is killed when the limit or the client goes.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::api::ApiError;

/// How long an `amt status` answer is reused.
pub const STATUS_TTL: Duration = Duration::from_secs(2);
/// The longest an `amt` query may take.
const QUERY_LIMIT: Duration = Duration::from_secs(120);

/// `amt` answers by their arguments, with when they were given.
type Answers = HashMap<Vec<String>, (Instant, Arc<Value>)>;

/// The project and the `amt` binary that answers for it.
pub struct Pipeline {
    root: PathBuf,
    amt: PathBuf,
    /// Recent answers by their arguments. Held across a query, so
    /// concurrent callers wait for one answer instead of asking again.
    answers: Mutex<Answers>,
}

impl Pipeline {
    /// The project at `root`, asked through the `amt` at `amt`.
    pub fn new(root: PathBuf, amt: PathBuf) -> Self {
        Self {
            root,
            amt,
            answers: Mutex::new(HashMap::new()),
        }
    }

    async fn amt_json(&self, args: &[&str]) -> Result<Value, ApiError> {
        let failed = |why: String| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("`amt {}`: {why}", args.join(" ")),
            )
        };
        let child = tokio::process::Command::new(&self.amt)
            .arg("-C")
            .arg(&self.root)
            .arg("--json")
            .args(args)
            .kill_on_drop(true)
            .output();
        let out = match tokio::time::timeout(QUERY_LIMIT, child).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(failed(format!("cannot run {}: {e}", self.amt.display()))),
            Err(_) => return Err(failed(format!("no answer in {} s", QUERY_LIMIT.as_secs()))),
        };
        if !out.status.success() {
            return Err(failed(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| failed(format!("unreadable answer: {e}")))
    }

    /// `amt ARGS --json`, one query at a time, each answer reused for [`STATUS_TTL`].
    async fn ask(&self, args: &[&str]) -> Result<Arc<Value>, ApiError> {
        let key: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let mut answers = self.answers.lock().await;
        if let Some((at, value)) = answers.get(&key)
            && at.elapsed() < STATUS_TTL
        {
            return Ok(Arc::clone(value));
        }
        let value = Arc::new(self.amt_json(args).await?);
        answers.retain(|_, (at, _)| at.elapsed() < STATUS_TTL);
        answers.insert(key, (Instant::now(), Arc::clone(&value)));
        Ok(value)
    }

    /// `amt status --json`: every stage's state, reasons, edges and outputs.
    pub async fn status(&self) -> Result<Arc<Value>, ApiError> {
        self.ask(&["status"]).await
    }

    /// `amt runs --json`: the ledger's newest `last` pipeline runs, newest last.
    pub async fn runs(&self, last: usize) -> Result<Arc<Value>, ApiError> {
        self.ask(&["runs", "--last", &last.to_string()]).await
    }

    /// The output directory (role `dir`) of the stage running `builtin`.
    async fn builtin_dir(&self, builtin: &str) -> Result<Option<PathBuf>, ApiError> {
        let status = self.status().await?;
        let dir = status["stages"]
            .as_array()
            .and_then(|stages| stages.iter().find(|s| s["builtin"] == builtin))
            .and_then(|s| s["outs"]["dir"].as_str());
        dir.map(|d| self.inside(d)).transpose()
    }

    /// A project-relative path from amt's own output, checked again: it must
    /// stay inside the project.
    fn inside(&self, rel: &str) -> Result<PathBuf, ApiError> {
        let p = Path::new(rel);
        if p.components().all(|c| matches!(c, Component::Normal(_))) {
            Ok(self.root.join(p))
        } else {
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("amt named {rel:?}, not a path inside the project"),
            ))
        }
    }

    /// Every stage's metrics files, parsed: `{stage: {path: value}}` (missing files are null).
    pub async fn metrics(&self) -> Result<Value, ApiError> {
        let status = self.status().await?;
        let mut files = Vec::new();
        for stage in status["stages"].as_array().into_iter().flatten() {
            let name = stage["stage"].as_str().unwrap_or_default().to_owned();
            for f in stage["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                files.push((name.clone(), f.to_owned(), self.inside(f)?));
            }
        }
        blocking(move || {
            let mut all = serde_json::Map::new();
            for (stage, rel, path) in files {
                let value = match std::fs::read(&path) {
                    Ok(bytes) => serde_json::from_slice(&bytes)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
                    Err(e) => anyhow::bail!("{}: {e}", path.display()),
                };
                let entry = all
                    .entry(stage)
                    .or_insert_with(|| Value::Object(Default::default()));
                entry[rel.as_str()] = value;
            }
            Ok(Value::Object(all))
        })
        .await
    }

    /// The train stage's loss log (empty before it has run).
    pub async fn loss(&self) -> Result<Vec<amt_stages::train::log::LogRow>, ApiError> {
        let Some(dir) = self.builtin_dir("train").await? else {
            return Ok(Vec::new());
        };
        let path = dir.join("loss.csv");
        blocking(move || {
            if !path.is_file() {
                return Ok(Vec::new());
            }
            amt_stages::train::log::read_csv(&path)
        })
        .await
    }

    /// The evaluate stage's report as HTML, its images pointed at
    /// `/api/report/files/…` (`None` before it has run).
    pub async fn report_html(&self) -> Result<Option<String>, ApiError> {
        let Some(dir) = self.builtin_dir("evaluate").await? else {
            return Ok(None);
        };
        let path = dir.join("report.md");
        blocking(move || match std::fs::read_to_string(&path) {
            Ok(markdown) => Ok(Some(markdown_to_html(&markdown))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => anyhow::bail!("{}: {e}", path.display()),
        })
        .await
    }

    /// A file of the evaluate stage's output directory and its content type,
    /// by a relative path the report links ([`report_file_type`]).
    pub async fn report_file(
        &self,
        rel: &str,
    ) -> Result<Option<(PathBuf, &'static str)>, ApiError> {
        let Some(mime) = report_file_type(rel) else {
            return Ok(None);
        };
        let Some(dir) = self.builtin_dir("evaluate").await? else {
            return Ok(None);
        };
        let path = dir.join(rel);
        Ok(path.is_file().then_some((path, mime)))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::internal(&e)),
        Err(e) => Err(ApiError::internal(&anyhow::anyhow!(
            "the query panicked: {e}"
        ))),
    }
}

/// The content type of a file the report may link: a relative path of at
/// most two plain parts (`loss.png`, `rolls/NAME.png`) with an image or
/// data extension. Anything else is not served.
pub fn report_file_type(rel: &str) -> Option<&'static str> {
    let p = Path::new(rel);
    let parts: Vec<Component> = p.components().collect();
    if parts.is_empty()
        || parts.len() > 2
        || !parts.iter().all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    match p.extension()?.to_str()? {
        "png" => Some("image/png"),
        "svg" => Some("image/svg+xml"),
        "json" => Some("application/json"),
        "csv" => Some("text/csv; charset=utf-8"),
        _ => None,
    }
}

/// Markdown to HTML for the page. Raw HTML is dropped; images and links to
/// the report's own files point at the file route; web links stay; any other
/// link (a project path, `javascript:`) keeps only its text.
fn markdown_to_html(markdown: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
    let served = |dest: &CowStr| {
        report_file_type(dest).map(|_| CowStr::from(format!("/api/report/files/{dest}")))
    };
    let web = |dest: &CowStr| dest.starts_with("https://") || dest.starts_with("http://");
    let mut dropped_link = false;
    let mut dropped_image = false;
    let events =
        Parser::new_ext(markdown, Options::ENABLE_TABLES).filter_map(|event| match event {
            Event::Html(_) | Event::InlineHtml(_) => None,
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => match served(&dest_url) {
                Some(dest_url) => Some(Event::Start(Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                })),
                None => {
                    dropped_image = true;
                    None
                }
            },
            Event::End(TagEnd::Image) if dropped_image => {
                dropped_image = false;
                None
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest_url = if web(&dest_url) {
                    Some(dest_url)
                } else {
                    served(&dest_url)
                };
                match dest_url {
                    Some(dest_url) => Some(Event::Start(Tag::Link {
                        link_type,
                        dest_url,
                        title,
                        id,
                    })),
                    None => {
                        dropped_link = true;
                        None
                    }
                }
            }
            Event::End(TagEnd::Link) if dropped_link => {
                dropped_link = false;
                None
            }
            other => Some(other),
        });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    // Table alignment comes as inline styles, which the page's CSP refuses;
    // classes do the same. (Raw HTML was dropped, so these are pulldown's own.)
    ["left", "center", "right"].iter().fold(html, |html, side| {
        html.replace(
            &format!(r#"style="text-align: {side}""#),
            &format!(r#"class="align-{side}""#),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_files_are_short_relative_paths() {
        assert_eq!(report_file_type("loss.png"), Some("image/png"));
        assert_eq!(report_file_type("rolls/01-a-jig-0.png"), Some("image/png"));
        for bad in [
            "../x.png",
            "a/b/c.png",
            "/etc/passwd",
            "..",
            "x.so",
            "report",
            "rolls/../../x.png",
            "",
        ] {
            assert_eq!(report_file_type(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_report_links_its_files_and_drops_what_could_run_or_leak() {
        let html = markdown_to_html(
            "# Report\n\n![loss](loss.png) ![roll](rolls/a.png) ![far](https://example.com/x.png)\n\n\
             <script>x()</script>\n\n[MIDI](artifacts/generate/a.mid) · [bad](javascript:alert(1)) · \
             [docs](https://example.com/)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(
            html.contains(r#"<img src="/api/report/files/loss.png" alt="loss""#),
            "{html}"
        );
        assert!(
            html.contains(r#"<img src="/api/report/files/rolls/a.png" alt="roll""#),
            "{html}"
        );
        assert!(!html.contains("example.com/x.png"), "{html}");
        assert!(
            !html.contains("<script") && !html.contains("javascript:"),
            "{html}"
        );
        assert!(
            html.contains("MIDI") && !html.contains("artifacts/generate"),
            "{html}"
        );
        assert!(
            html.contains(r#"<a href="https://example.com/">docs</a>"#),
            "{html}"
        );
        assert!(html.contains("<table>"), "{html}");
        let aligned = markdown_to_html("| a | b |\n|:---|---:|\n| 1 | 2 |\n");
        assert!(
            aligned.contains(r#"<td class="align-right">2</td>"#),
            "{aligned}"
        );
        assert!(!aligned.contains("style="), "{aligned}");
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
