//! Texts from Wikipedia through the MediaWiki API.
//!
//! For each piece it tries the original system's query cascade, takes the
//! first search hit, follows redirects, skips disambiguation pages and keeps
//! the plain-text intro. Around that it adds what the original lacked: a
//! polite User-Agent, a client-side rate limit, timeouts, retries with
//! exponential backoff and jitter on 429, 5xx, timeouts and malformed replies
//! (honouring Retry-After), an on-disk response cache so a rerun never asks
//! twice, a journal so a crash loses nothing, and an offline mode.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `[params] describe.wikipedia.*`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WikiParams {
    /// The MediaWiki API endpoint.
    #[serde(default = "default_api")]
    pub api: String,
    /// Use only cached responses; never touch the network.
    #[serde(default)]
    pub offline: bool,
    /// At most this many requests per second.
    #[serde(default = "default_rate")]
    pub requests_per_second: f64,
    /// Per-request timeout.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Retries after the first attempt.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// First backoff delay; it doubles with each retry, with ±50 % jitter.
    #[serde(default = "default_backoff")]
    pub backoff_s: f64,
    /// Upper bound for a single wait, Retry-After included.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_s: f64,
    /// Sent with every request, as Wikimedia's policy asks; put a contact in it.
    #[serde(default = "default_agent")]
    pub user_agent: String,
}

fn default_api() -> String {
    "https://en.wikipedia.org/w/api.php".into()
}
fn default_rate() -> f64 {
    1.0
}
fn default_timeout() -> f64 {
    10.0
}
fn default_retries() -> u32 {
    5
}
fn default_backoff() -> f64 {
    1.0
}
fn default_max_backoff() -> f64 {
    60.0
}
fn default_agent() -> String {
    format!(
        "amt/{} (text-to-MIDI research; set describe.wikipedia.user_agent to add a contact)",
        env!("CARGO_PKG_VERSION")
    )
}

impl Default for WikiParams {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("all fields have defaults")
    }
}

/// What Wikipedia gave for one piece.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// The intro extract, plain text.
    pub text: String,
    /// The article's URL.
    pub url: String,
    /// The query that found it.
    pub query: String,
}

/// The original system's query cascade, in order.
pub fn queries(artist: Option<&str>, title: &str) -> Vec<String> {
    let mut q = Vec::new();
    if let Some(a) = artist {
        q.push(format!("{a} {title} (song)"));
        q.push(format!("{a} {title}"));
    }
    q.push(format!("{title} (song)"));
    if let Some(a) = artist {
        q.push(format!("{a} {title} (album)"));
        q.push(a.to_owned());
    }
    q
}

/// Why a lookup gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum WikiError {
    #[error("offline and not cached: {0}")]
    NotCached(String),
    #[error("gave up after {attempts} attempts: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("request failed: {0}")]
    Fatal(String),
}

/// A MediaWiki client with a response cache under `cache_dir`.
pub struct Client {
    params: WikiParams,
    http: Option<reqwest::blocking::Client>,
    cache_dir: PathBuf,
    next_slot: Mutex<Instant>,
    /// Requests actually sent (cache misses), for reports and tests.
    pub requests: std::sync::atomic::AtomicU64,
}

impl Client {
    /// A client; builds no HTTP stack in offline mode.
    pub fn new(params: WikiParams, cache_dir: &Path) -> anyhow::Result<Self> {
        let http = if params.offline {
            None
        } else {
            // reqwest is built without a default crypto provider; ring is installed once here.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                reqwest::blocking::Client::builder()
                    .user_agent(params.user_agent.clone())
                    .timeout(Duration::from_secs_f64(params.timeout_s))
                    .connect_timeout(Duration::from_secs_f64(params.timeout_s))
                    .build()
                    .context("building the HTTP client")?,
            )
        };
        Ok(Self {
            params,
            http,
            cache_dir: cache_dir.to_owned(),
            next_slot: Mutex::new(Instant::now()),
            requests: Default::default(),
        })
    }

    fn cache_path(&self, url: &str) -> PathBuf {
        let hex = blake3::hash(url.as_bytes()).to_hex();
        self.cache_dir
            .join(&hex[..2])
            .join(format!("{}.json", &hex[2..]))
    }

    /// Waits for the next slot of the client-side rate limit.
    fn wait_turn(&self) {
        let interval = Duration::from_secs_f64(1.0 / self.params.requests_per_second.max(1e-3));
        let mut next = self.next_slot.lock().expect("rate limiter poisoned");
        let now = Instant::now();
        if *next > now {
            std::thread::sleep(*next - now);
        }
        *next = Instant::now() + interval;
    }

    fn backoff(&self, attempt: u32, retry_after: Option<f64>) -> Duration {
        let secs = match retry_after {
            Some(s) => s,
            None => {
                let base = self.params.backoff_s * 2f64.powi(attempt as i32);
                base * rand::rng().random_range(0.5..1.5)
            }
        };
        Duration::from_secs_f64(secs.clamp(0.0, self.params.max_backoff_s))
    }

    /// GETs the API with these query parameters, through the cache.
    pub fn get(&self, query: &[(&str, &str)]) -> Result<Value, WikiError> {
        let url = reqwest::Url::parse_with_params(&self.params.api, query)
            .map_err(|e| WikiError::Fatal(e.to_string()))?;
        let key = url.as_str().to_owned();
        let cached = self.cache_path(&key);
        if let Ok(bytes) = std::fs::read(&cached)
            && let Ok(v) = serde_json::from_slice(&bytes)
        {
            return Ok(v);
        }
        let Some(http) = &self.http else {
            return Err(WikiError::NotCached(key));
        };
        let mut last = String::new();
        for attempt in 0..=self.params.max_retries {
            self.wait_turn();
            self.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let retry_after = match http.get(url.clone()).send() {
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<f64>().ok());
                    if status.is_success() {
                        match resp.bytes().map_err(|e| e.to_string()).and_then(|b| {
                            serde_json::from_slice::<Value>(&b)
                                .map(|v| (v, b))
                                .map_err(|e| format!("malformed JSON: {e}"))
                        }) {
                            Ok((v, bytes)) => {
                                // The cache only saves requests; failing to write it is not an error.
                                if let Some(parent) = cached.parent()
                                    && std::fs::create_dir_all(parent).is_ok()
                                    && let Ok(mut tmp) = tempfile::NamedTempFile::new_in(parent)
                                    && tmp.write_all(&bytes).is_ok()
                                {
                                    let _ = tmp.persist(&cached);
                                }
                                return Ok(v);
                            }
                            Err(e) => {
                                last = e;
                                None
                            }
                        }
                    } else if status.as_u16() == 429 || status.is_server_error() {
                        last = format!("HTTP {status}");
                        retry_after
                    } else {
                        return Err(WikiError::Fatal(format!("HTTP {status} for {key}")));
                    }
                }
                Err(e) if e.is_timeout() => {
                    last = "timed out".into();
                    None
                }
                Err(e) => {
                    last = format!("{e}");
                    None
                }
            };
            if attempt < self.params.max_retries {
                std::thread::sleep(self.backoff(attempt, retry_after));
            }
        }
        Err(WikiError::GaveUp {
            attempts: self.params.max_retries + 1,
            last,
        })
    }

    /// The first search hit's title for a query.
    fn search(&self, q: &str) -> Result<Option<String>, WikiError> {
        let v = self.get(&[
            ("action", "query"),
            ("list", "search"),
            ("srsearch", q),
            ("srlimit", "1"),
            ("format", "json"),
            ("formatversion", "2"),
        ])?;
        Ok(v.pointer("/query/search/0/title")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// The intro of an article, following redirects; `None` for a disambiguation page.
    fn extract(&self, title: &str) -> Result<Option<(String, String)>, WikiError> {
        let v = self.get(&[
            ("action", "query"),
            ("prop", "extracts|pageprops|info"),
            ("exintro", "1"),
            ("explaintext", "1"),
            ("redirects", "1"),
            ("inprop", "url"),
            ("titles", title),
            ("format", "json"),
            ("formatversion", "2"),
        ])?;
        let Some(page) = v.pointer("/query/pages/0") else {
            return Ok(None);
        };
        if page.get("missing").is_some() || page.pointer("/pageprops/disambiguation").is_some() {
            return Ok(None);
        }
        let text = page
            .get("extract")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned();
        if text.is_empty() {
            return Ok(None);
        }
        let url = page
            .get("fullurl")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Ok(Some((text, url)))
    }

    /// The journal for this endpoint: answers from another API never mix in.
    pub fn journal_path(&self, scratch: &Path) -> PathBuf {
        let api = blake3::hash(self.params.api.as_bytes()).to_hex();
        scratch.join(format!("journal-{}.jsonl", &api[..16]))
    }

    /// Runs the cascade for one piece.
    pub fn describe(&self, artist: Option<&str>, title: &str) -> Result<Option<Found>, WikiError> {
        for q in queries(artist, title) {
            let Some(hit) = self.search(&q)? else {
                continue;
            };
            if let Some((text, url)) = self.extract(&hit)? {
                return Ok(Some(Found {
                    text,
                    url,
                    query: q,
                }));
            }
        }
        Ok(None)
    }
}

/// One journal line: the outcome for a piece, written as soon as it is known.
#[derive(Debug, Serialize, Deserialize)]
pub struct JournalEntry {
    pub path: String,
    pub found: Option<Found>,
}

/// An append-only record of finished lookups, so a crash loses nothing and a rerun resumes.
pub struct Journal {
    file: std::fs::File,
}

impl Journal {
    /// Opens (or creates) the journal and returns what it already holds.
    /// A torn last line, left by a crash, is ignored.
    pub fn open(path: &Path) -> anyhow::Result<(Self, Vec<JournalEntry>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let done = match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
            Err(_) => Vec::new(),
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok((Self { file }, done))
    }

    /// Appends one outcome and flushes it to disk.
    pub fn record(&mut self, entry: &JournalEntry) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        Ok(())
    }
}
