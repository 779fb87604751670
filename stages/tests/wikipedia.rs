//! The Wikipedia source against a local server on 127.0.0.1 that speaks the
//! MediaWiki API's JSON (search, extracts, redirects, disambiguation pages)
//! and injects 429s, 500s, slow replies and malformed replies on request.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amt_stages::collect::table::PieceRow;
use amt_stages::describe::wikipedia::{Client, WikiError, WikiParams};
use amt_stages::describe::{Params, Source, describe};
use serde_json::json;

#[derive(Clone, Debug)]
enum Fault {
    Status(u16, Option<u32>),
    Slow(Duration),
    Malformed,
}

#[derive(Default)]
struct State {
    /// Every request's decoded query string, in order.
    log: Vec<HashMap<String, String>>,
    user_agents: Vec<String>,
    /// Faults to serve, per search query or page title, before answering normally.
    faults: HashMap<String, VecDeque<Fault>>,
}

/// A tiny MediaWiki. Search maps a query to a title; pages may redirect or be disambiguations.
struct MockWiki {
    api: String,
    state: Arc<Mutex<State>>,
}

fn search_hit(q: &str) -> Option<&'static str> {
    match q {
        "Traditional (Ireland) The Kesh (song)" => Some("Kesh"),
        "Traditional (Ireland) The Kesh" => Some("The Kesh (tune)"),
        "Lonely Air (song)" => Some("Lonely Air"),
        "Flaky Reel (song)" => Some("Flaky Reel"),
        _ => None,
    }
}

fn page(title: &str) -> serde_json::Value {
    let (redirects, page) = match title {
        "Kesh" => (
            json!([]),
            json!({"title": "Kesh", "pageprops": {"disambiguation": ""}, "extract": "Kesh may refer to:"}),
        ),
        "The Kesh (tune)" => (
            json!([{"from": "The Kesh (tune)", "to": "The Kesh"}]),
            json!({"title": "The Kesh", "extract": "The Kesh is a traditional Irish jig.", "fullurl": "https://en.wikipedia.org/wiki/The_Kesh"}),
        ),
        "Lonely Air" => (
            json!([]),
            json!({"title": "Lonely Air", "extract": "A slow air.", "fullurl": "https://en.wikipedia.org/wiki/Lonely_Air"}),
        ),
        "Flaky Reel" => (
            json!([]),
            json!({"title": "Flaky Reel", "extract": "A reel.", "fullurl": "https://en.wikipedia.org/wiki/Flaky_Reel"}),
        ),
        other => (json!([]), json!({"title": other, "missing": true})),
    };
    json!({"batchcomplete": true, "query": {"redirects": redirects, "pages": [page]}})
}

impl MockWiki {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let api = format!("http://{}/w/api.php", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request_line = String::new();
                    reader.read_line(&mut request_line).unwrap();
                    let mut agent = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("user-agent:") {
                            agent = v.trim().to_owned();
                        }
                    }
                    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
                    let url = reqwest::Url::parse(&format!("http://x{target}")).unwrap();
                    let query: HashMap<String, String> = url.query_pairs().into_owned().collect();
                    let key = query
                        .get("srsearch")
                        .or_else(|| query.get("titles"))
                        .cloned()
                        .unwrap_or_default();
                    let fault = {
                        let mut s = shared.lock().unwrap();
                        s.log.push(query.clone());
                        s.user_agents.push(agent);
                        s.faults.get_mut(&key).and_then(VecDeque::pop_front)
                    };
                    let body = if query.get("list").map(String::as_str) == Some("search") {
                        let hits: Vec<_> = search_hit(&key)
                            .into_iter()
                            .map(|t| json!({"title": t}))
                            .collect();
                        json!({"query": {"search": hits}}).to_string()
                    } else {
                        page(&key).to_string()
                    };
                    let (status, extra, body) = match fault {
                        None => ("200 OK".to_owned(), String::new(), body),
                        Some(Fault::Status(code, retry)) => (
                            format!("{code} Oops"),
                            retry
                                .map(|s| format!("Retry-After: {s}\r\n"))
                                .unwrap_or_default(),
                            "{}".to_owned(),
                        ),
                        Some(Fault::Slow(d)) => {
                            std::thread::sleep(d);
                            ("200 OK".to_owned(), String::new(), body)
                        }
                        Some(Fault::Malformed) => (
                            "200 OK".to_owned(),
                            String::new(),
                            "{\"query\": [tru".to_owned(),
                        ),
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Self { api, state }
    }

    fn inject(&self, key: &str, faults: &[Fault]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(key.to_owned(), faults.iter().cloned().collect());
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().log.len()
    }
}

fn params(api: &str) -> WikiParams {
    WikiParams {
        api: api.to_owned(),
        requests_per_second: 1000.0,
        timeout_s: 0.5,
        max_retries: 3,
        backoff_s: 0.01,
        max_backoff_s: 5.0,
        ..WikiParams::default()
    }
}

#[test]
fn cascade_skips_disambiguation_and_follows_redirects() {
    let wiki = MockWiki::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(params(&wiki.api), dir.path()).unwrap();
    let found = client
        .describe(Some("Traditional (Ireland)"), "The Kesh")
        .unwrap()
        .unwrap();
    assert_eq!(found.text, "The Kesh is a traditional Irish jig.");
    assert_eq!(found.url, "https://en.wikipedia.org/wiki/The_Kesh");
    assert_eq!(
        found.query, "Traditional (Ireland) The Kesh",
        "the first query hit a disambiguation page"
    );
    assert!(
        client
            .describe(Some("Nobody"), "Nothing")
            .unwrap()
            .is_none(),
        "all five queries miss"
    );
    let agents = wiki.state.lock().unwrap().user_agents.clone();
    assert!(agents.iter().all(|a| a.starts_with("amt/")), "{agents:?}");
}

#[test]
fn retries_429_500_slow_and_malformed_replies() {
    let wiki = MockWiki::start();
    let dir = tempfile::tempdir().unwrap();
    wiki.inject(
        "Lonely Air (song)",
        &[
            Fault::Status(500, None),
            Fault::Status(503, None),
            Fault::Malformed,
        ],
    );
    wiki.inject("Lonely Air", &[Fault::Slow(Duration::from_secs(2))]);
    let client = Client::new(params(&wiki.api), dir.path()).unwrap();
    let found = client.describe(None, "Lonely Air").unwrap().unwrap();
    assert_eq!(found.text, "A slow air.");
    // search: 3 faults + 1 success; extract: 1 timeout + 1 success.
    assert_eq!(wiki.requests(), 6);
}

#[test]
fn retry_after_is_honoured() {
    let wiki = MockWiki::start();
    let dir = tempfile::tempdir().unwrap();
    wiki.inject("Flaky Reel (song)", &[Fault::Status(429, Some(1))]);
    let client = Client::new(params(&wiki.api), dir.path()).unwrap();
    let start = Instant::now();
    assert!(client.describe(None, "Flaky Reel").unwrap().is_some());
    // Without Retry-After the backoff would be about 10 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(950),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn persistent_failures_give_up_after_the_retry_budget() {
    let wiki = MockWiki::start();
    let dir = tempfile::tempdir().unwrap();
    wiki.inject("Flaky Reel (song)", &vec![Fault::Status(500, None); 10]);
    let client = Client::new(params(&wiki.api), dir.path()).unwrap();
    match client.describe(None, "Flaky Reel") {
        Err(WikiError::GaveUp { attempts: 4, last }) => {
            assert_eq!(last, "HTTP 500 Internal Server Error")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(wiki.requests(), 4);
}

#[test]
fn the_rate_limit_spaces_requests() {
    let wiki = MockWiki::start();
    let dir = tempfile::tempdir().unwrap();
    let client = Client::new(
        WikiParams {
            requests_per_second: 20.0,
            ..params(&wiki.api)
        },
        dir.path(),
    )
    .unwrap();
    let start = Instant::now();
    client.describe(Some("Nobody"), "Nothing").unwrap(); // five searches
    assert_eq!(wiki.requests(), 5);
    assert!(
        start.elapsed() >= Duration::from_millis(190),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_cache_means_a_rerun_never_asks_twice_and_offline_mode_uses_it() {
    let wiki = MockWiki::start();
    let dir = tempfile::tempdir().unwrap();
    let first = Client::new(params(&wiki.api), dir.path())
        .unwrap()
        .describe(Some("Traditional (Ireland)"), "The Kesh")
        .unwrap();
    let asked = wiki.requests();
    let again = Client::new(params(&wiki.api), dir.path())
        .unwrap()
        .describe(Some("Traditional (Ireland)"), "The Kesh")
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(wiki.requests(), asked, "every answer came from the cache");

    let offline = Client::new(
        WikiParams {
            offline: true,
            ..params(&wiki.api)
        },
        dir.path(),
    )
    .unwrap();
    assert_eq!(
        offline
            .describe(Some("Traditional (Ireland)"), "The Kesh")
            .unwrap(),
        first
    );
    assert!(matches!(
        offline.describe(None, "Lonely Air"),
        Err(WikiError::NotCached(_))
    ));
    assert_eq!(wiki.requests(), asked, "offline mode sends nothing");
}

fn piece(path: &str, artist: Option<&str>, title: &str) -> PieceRow {
    PieceRow {
        path: path.into(),
        artist: artist.map(str::to_owned),
        title: title.into(),
        duration_s: 30.0,
        first_tempo_bpm: 120.0,
        mean_tempo_bpm: 120.0,
        time_signatures: vec!["6/8".into()],
        key_signatures: vec![],
        instruments: vec!["Violin".into()],
        has_drums: false,
        n_notes: 100,
        velocity_mean: Some(80.0),
        note_density: Some(3.0),
        estimated_key: Some("D Major".into()),
    }
}

#[test]
fn the_journal_resumes_after_a_crash_and_other_sources_fill_gaps() {
    let wiki = MockWiki::start();
    let scratch = tempfile::tempdir().unwrap();
    let p = Params {
        sources: vec![Source::Wikipedia, Source::Captions],
        wikipedia: params(&wiki.api),
        ..Params::default()
    };
    let kesh = piece("a/The Kesh.mid", Some("Traditional (Ireland)"), "The Kesh");
    let air = piece("b/Lonely Air.mid", None, "Lonely Air");
    let none = piece("c/Unknown.mid", None, "Unknown");
    let (labels, user) = (HashMap::new(), HashMap::new());

    // A first run that "crashed" after one piece: its journal holds that piece.
    let memo = scratch.path().join("memo");
    describe(&[kesh.clone()], &p, &labels, &user, scratch.path(), &memo).unwrap();
    std::fs::remove_dir_all(memo.join("wikipedia/http")).unwrap(); // even without the response cache
    let before = wiki.requests();
    let (rows, failures) =
        describe(&[kesh, air, none], &p, &labels, &user, scratch.path(), &memo).unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let asked: Vec<String> = wiki.state.lock().unwrap().log[before..]
        .iter()
        .filter_map(|q| q.get("srsearch").or(q.get("titles")).cloned())
        .collect();
    assert!(
        !asked.iter().any(|q| q.contains("Kesh")),
        "the journaled piece is not asked again: {asked:?}"
    );
    assert_eq!(rows[0].source, Some("wikipedia"));
    assert_eq!(rows[1].text.as_deref(), Some("A slow air."));
    assert_eq!(
        rows[2].source,
        Some("captions"),
        "captions fill what Wikipedia lacks"
    );
}
