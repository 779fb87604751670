//! The studio (`amt serve`) as a user meets it: a real server on 127.0.0.1
//! in front of a project the real pipeline trained, its JSON API and errors,
//! its limits under concurrent clients, and the page in a real browser
//! (Debian's chromium through chromedriver), which leaves a screenshot.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestProject;
use serde_json::{Value, json};

/// The SoundFont the sound checks were made with (scripts/test.sh installs it).
const SOUNDFONT: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

/// Every render peaks here: −1 dBFS (0.89 of full scale), whatever its loudness.
const PEAK: u16 = 29_162;

/// A running `amt serve`, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// Starts `amt serve --addr 127.0.0.1:0 ARGS…` in `project` and waits for its address.
    fn start(project: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(common::amt_bin())
            // The developer's own settings must not reach the server.
            .env_remove("AMT_STUDIO_TOKEN")
            .env_remove("AMT_MODEL")
            .env_remove("AMT_SOUNDFONT")
            .env_remove("AMT_PROFILE")
            .arg("-C")
            .arg(project)
            .args(["serve", "--addr", "127.0.0.1:0", "--soundfont", SOUNDFONT])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("amt serve starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let url = first
            .trim()
            .strip_prefix("amt studio: ")
            .unwrap_or_else(|| panic!("amt serve said {first:?}"))
            .trim_end_matches('/')
            .to_owned();
        Self { child, url }
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::blocking::Client {
    // reqwest is built without a default TLS provider; plain HTTP still asks for one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
}

fn generate(server: &Server, body: Value) -> reqwest::blocking::Response {
    client()
        .post(server.at("/api/generate"))
        .json(&body)
        .send()
        .unwrap()
}

/// Asserts a JSON error with this status naming this field.
fn assert_error(response: reqwest::blocking::Response, status: u16, field: Option<&str>) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().unwrap();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(body["field"].as_str(), field, "{body}");
    body
}

/// Reads a WAV file's samples, checking its format.
fn wav_samples(bytes: &[u8]) -> Vec<i16> {
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(
        (reader.spec().channels, reader.spec().sample_rate),
        (2, 44_100)
    );
    reader.into_samples().map(Result::unwrap).collect()
}

/// The demo project, trained by `amt run train` (20 steps).
fn trained() -> TestProject {
    let p = common::demo_project(&[]);
    p.amt(&["run", "train"]).expect_code(0);
    p
}

#[test]
fn the_studio_writes_plays_and_shows_the_pipeline() {
    let project = trained();
    let server = Server::start(project.root(), &["--workers", "2", "--queue", "8"]);
    let http = client();

    // Generate: what amt understood, notes for the piano roll, and links.
    let response = generate(
        &server,
        json!({"text": "a slow waltz in D minor, 3/4, played on piano", "seed": 3, "max_tokens": 128}),
    );
    assert_eq!(response.status(), 200);
    let piece: Value = response.json().unwrap();
    let understood = &piece["understood"];
    assert_eq!(understood["key"], "D minor", "{piece}");
    assert_eq!(understood["meter"], "3/4", "{piece}");
    assert_eq!(understood["instruments"], json!(["piano"]), "{piece}");
    assert!(understood["semantic_token"].is_u64(), "{piece}");
    // "3/4" named the meter; "waltz" only shapes the semantic token.
    assert_eq!(understood["unread"], json!(["waltz"]), "{piece}");
    let notes = piece["notes"].as_array().unwrap();
    assert!(!notes.is_empty(), "{piece}");
    for n in notes {
        assert!(
            n["start"].as_f64().unwrap() <= n["end"].as_f64().unwrap(),
            "{n}"
        );
    }
    let id = piece["id"].as_str().unwrap();

    // The same request writes the same music; the MIDI is the one described.
    let again: Value = generate(&server, json!({"text": "a slow waltz in D minor, 3/4, played on piano", "seed": 3, "max_tokens": 128})).json().unwrap();
    assert_ne!(again["id"], piece["id"]);
    assert_eq!(again["notes"], piece["notes"]);
    let midi = http
        .get(server.at(piece["midi"].as_str().unwrap()))
        .send()
        .unwrap();
    assert_eq!(midi.headers()["content-type"], "audio/midi");
    let midi = midi.bytes().unwrap();
    assert_eq!(&midi[..4], b"MThd");
    let again_midi = http
        .get(server.at(again["midi"].as_str().unwrap()))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(midi, again_midi);

    // Its audio: as long as the notes (plus the release tail), not silent, not clipped.
    let audio = http
        .get(server.at(piece["audio"].as_str().unwrap()))
        .send()
        .unwrap();
    assert_eq!(audio.status(), 200);
    assert_eq!(audio.headers()["content-type"], "audio/wav");
    let samples = wav_samples(&audio.bytes().unwrap());
    let seconds = samples.len() as f64 / 2.0 / 44_100.0;
    let last_note = piece["seconds"].as_f64().unwrap();
    assert!(
        seconds >= last_note && seconds <= last_note + 3.0,
        "{seconds} s of audio for notes ending at {last_note} s"
    );
    let peak = samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak.abs_diff(PEAK) <= 2, "peak {peak}");
    // A player seeks with byte ranges.
    let part = http
        .get(server.at(piece["audio"].as_str().unwrap()))
        .header("range", "bytes=44-1043")
        .send()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["accept-ranges"], "bytes");
    assert!(
        part.headers()["content-range"]
            .to_str()
            .unwrap()
            .starts_with("bytes 44-1043/")
    );
    assert_eq!(part.bytes().unwrap().len(), 1000);

    // Earlier results stay listed, newest first.
    let listed: Value = http
        .get(server.at("/api/results"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ids: Vec<&str> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [again["id"].as_str().unwrap(), id]);
    let one: Value = http
        .get(server.at(&format!("/api/results/{id}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(one, piece);

    // Render a MIDI file of known length: 2 s of notes and the 1.5 s release tail.
    let render = |midi: Vec<u8>| {
        let wav = http
            .post(server.at("/api/render"))
            .header("content-type", "audio/midi")
            .body(midi)
            .send()
            .unwrap();
        assert_eq!(wav.status(), 200);
        wav_samples(&wav.bytes().unwrap())
    };
    let samples = render(two_seconds_of_flute());
    assert_eq!(
        samples.len(),
        2 * 154_350,
        "3.5 s at 44.1 kHz, two channels"
    );
    let peak = |s: &[i16]| s.iter().map(|x| x.unsigned_abs()).max().unwrap();
    let sounding = |s: &[i16]| {
        s.chunks(2 * 4410)
            .filter(|tenth| peak(tenth) > 1000)
            .count()
    };
    // Sound throughout the 2 s of notes (20 tenths of a second), then it dies away.
    assert!(
        sounding(&samples[..2 * 88_200]) == 20,
        "{} of 20 tenths sound",
        sounding(&samples[..2 * 88_200])
    );
    assert!(
        peak(&samples[samples.len() - 2 * 4410..]) < peak(&samples) / 10,
        "the tail decays"
    );
    assert!(
        peak(&samples).abs_diff(PEAK) <= 2,
        "peak {}",
        peak(&samples)
    );
    // A real piece from the corpus: not silent and never clipped either.
    let known = std::fs::read(
        project.path("data/corpus/folk/Traditional (Ireland)/Old Grey Goose The.mid"),
    )
    .unwrap();
    let samples = render(known);
    assert!(samples.len() > 2 * 44_100 * 60, "{} samples", samples.len());
    assert!(
        peak(&samples).abs_diff(PEAK) <= 2,
        "peak {}",
        peak(&samples)
    );

    // The pipeline, as `amt status` and `amt runs` say it.
    let status: Value = http
        .get(server.at("/api/status"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let stages = status["stages"].as_array().unwrap();
    let stage = |name: &str| {
        stages
            .iter()
            .find(|s| s["stage"] == name)
            .unwrap_or_else(|| panic!("{status}"))
    };
    assert_eq!(stage("train")["state"], "fresh");
    assert_eq!(stage("train")["builtin"], "train");
    assert_eq!(stage("train")["after"], json!(["cluster", "prepare"]));
    assert_eq!(stage("evaluate")["state"], "stale");
    assert_eq!(status["locked_by"], Value::Null);
    assert_eq!(status["model"], true);
    let runs: Value = http
        .get(server.at("/api/runs?last=5"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["status"], "ok", "{runs}");
    let loss: Value = http
        .get(server.at("/api/loss"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let rows = loss["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 20, "{loss}");
    assert!(rows[0]["train_loss"].as_f64().unwrap() > rows[19]["train_loss"].as_f64().unwrap());
    let metrics: Value = http
        .get(server.at("/api/metrics"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        metrics["train"]["artifacts/metrics/train.json"].is_object(),
        "{metrics}"
    );
    let report: Value = http
        .get(server.at("/api/report"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(report["html"], Value::Null, "not evaluated yet");

    // Bad input: 4xx JSON naming the field, and no path of the client's choosing.
    assert_error(
        generate(&server, json!({"text": "a jig", "temprature": 2})),
        400,
        Some("temprature"),
    );
    assert_error(
        generate(&server, json!({"text": "a jig", "top_p": 0})),
        400,
        Some("top_p"),
    );
    assert_error(
        generate(&server, json!({"text": "a jig", "max_tokens": 1_000_000})),
        400,
        Some("max_tokens"),
    );
    assert_error(
        generate(&server, json!({"text": "a jig", "seed": -1})),
        400,
        Some("seed"),
    );
    assert_error(generate(&server, json!({"text": ""})), 400, Some("text"));
    assert_error(
        generate(&server, json!({"text": "x".repeat(1001)})),
        400,
        Some("text"),
    );
    let post = |path: &str, content_type: &str, body: Vec<u8>| {
        http.post(server.at(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap()
    };
    assert_error(
        post("/api/generate", "application/json", b"{not json".to_vec()),
        400,
        None,
    );
    assert_error(
        post(
            "/api/generate",
            "application/json",
            br#"{"text": "a"} {}"#.to_vec(),
        ),
        400,
        None,
    );
    // A body of another type is refused: a cross-site form post
    // (text/plain) cannot reach the model.
    assert_error(
        post(
            "/api/generate",
            "text/plain",
            br#"{"text": "a jig"}"#.to_vec(),
        ),
        415,
        Some("content-type"),
    );
    assert_error(
        post("/api/render", "text/plain", two_seconds_of_flute()),
        415,
        Some("content-type"),
    );
    for bad in [
        "0000000000000000",
        "..%2F..%2Fetc%2Fpasswd",
        "ABCDEF0123456789",
        "%FF",
    ] {
        let r = http
            .get(server.at(&format!("/api/results/{bad}/midi")))
            .send()
            .unwrap();
        assert_error(r, 404, Some("id"));
    }
    // (Encoded: a client removes plain dot segments before sending.)
    for bad in [
        "..%2Famt.toml",
        "rolls/..%2F..%2Famt.toml",
        "%2Fetc%2Fpasswd",
        "report.md",
    ] {
        let r = http
            .get(server.at(&format!("/api/report/files/{bad}")))
            .send()
            .unwrap();
        assert_error(r, 404, Some("path"));
    }
    assert_error(
        http.get(server.at("/api/runs?last=0")).send().unwrap(),
        400,
        Some("last"),
    );
    assert_error(
        http.get(server.at("/api/runs?lots=1")).send().unwrap(),
        400,
        Some("lots"),
    );
    assert_error(
        post("/api/render", "audio/midi", b"not midi".to_vec()),
        422,
        Some("body"),
    );
    // A header and no tracks: amt's reader accepts it, the synthesizer would
    // panic on it; it is refused, and no worker is lost (see the load below).
    for _ in 0..3 {
        let empty = b"MThd\0\0\0\x06\0\0\0\0\0\x60".to_vec();
        assert_error(post("/api/render", "audio/midi", empty), 422, Some("body"));
    }
    // Too large: refused from its Content-Length. The server may close the
    // connection before the client has sent it all, so a reset is a refusal too.
    match http
        .post(server.at("/api/render"))
        .header("content-type", "audio/midi")
        .body(vec![0u8; 5 << 20])
        .send()
    {
        Ok(r) => {
            assert_error(r, 413, Some("body"));
        }
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    assert_error(
        http.get(server.at("/api/nothing")).send().unwrap(),
        404,
        None,
    );
    assert_error(
        http.get(server.at("/api/generate")).send().unwrap(),
        405,
        None,
    );
    // Another site's name for this address (DNS rebinding) is refused.
    let rebound = http
        .get(server.at("/api/status"))
        .header("host", "evil.example:80")
        .send()
        .unwrap();
    assert_error(rebound, 403, Some("host"));
    // A page of another site, as the browser says it.
    let foreign = http
        .get(server.at("/api/runs"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .unwrap();
    assert_error(foreign, 403, Some("origin"));
    let foreign = http
        .post(server.at("/api/generate"))
        .header("origin", "http://evil.example")
        .json(&json!({"text": "a jig"}))
        .send()
        .unwrap();
    assert_error(foreign, 403, Some("origin"));
    let page = http.get(server.at("/")).send().unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    report_page(&server, project.root());
    load(&server, &piece);
    browser(&server);
    drop(server);
    queue_and_deadline(project.root());
}

/// One worker and one place in the queue: of four requests at once, the
/// ones beyond are refused with Retry-After. A deadline shorter than any
/// generation gets a 504, and frees the worker.
fn queue_and_deadline(project: &Path) {
    let server = Server::start(project, &["--workers", "1", "--queue", "1"]);
    // All four are sent at the same instant: one runs, one waits, the rest are refused.
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let url = server.at("/api/generate");
            let body = json!({"text": "a long drone", "seed": i, "max_tokens": 1024});
            let start = std::sync::Arc::clone(&start);
            std::thread::spawn(move || {
                let request = client().post(url).json(&body);
                start.wait();
                let r = request.send().unwrap();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
                (r.status().as_u16(), retry)
            })
        })
        .collect();
    let answers: Vec<(u16, Option<u64>)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        answers
            .iter()
            .all(|a| a.0 == 200 || (a.0 == 429 && a.1.is_some_and(|s| s >= 1))),
        "{answers:?}"
    );
    assert!(
        answers.iter().filter(|a| a.0 == 429).count() >= 1,
        "{answers:?}"
    );
    assert!(
        answers.iter().filter(|a| a.0 == 200).count() >= 1,
        "{answers:?}"
    );
    drop(server);

    // A deadline shorter than any generation: 504, and the worker is free again.
    let server = Server::start(project, &["--workers", "1", "--deadline", "0.001"]);
    assert_error(generate(&server, json!({"text": "a jig"})), 504, None);
    assert_error(generate(&server, json!({"text": "a reel"})), 504, None);
    let freed = Instant::now() + Duration::from_secs(10);
    loop {
        let status: Value = client()
            .get(server.at("/api/status"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if status["pending"] == 0 {
            break;
        }
        assert!(
            Instant::now() < freed,
            "the stopped jobs still hold the worker: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The evaluate report as a page: its tables and images, through the file route.
/// (The pipeline here stops at train, so the test writes what evaluate would.)
fn report_page(server: &Server, project: &Path) {
    let dir = project.join("artifacts/evaluate");
    std::fs::create_dir_all(dir.join("rolls")).unwrap();
    let png = std::fs::read(project.join("artifacts/train/loss.png")).unwrap();
    std::fs::write(dir.join("rolls/01-a-jig-0.png"), &png).unwrap();
    std::fs::write(
        dir.join("report.md"),
        "# Evaluation\n\n| metric | value |\n|---|---:|\n| overall | 0.72 |\n\n\
         ![piano roll](rolls/01-a-jig-0.png)\n\n[MIDI](../generate/01-a-jig-0.mid)\n",
    )
    .unwrap();
    let http = client();
    let report: Value = http
        .get(server.at("/api/report"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let html = report["html"].as_str().expect("the report is there now");
    assert!(
        html.contains(r#"<td class="align-right">0.72</td>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<img src="/api/report/files/rolls/01-a-jig-0.png""#),
        "{html}"
    );
    assert!(
        html.contains("MIDI") && !html.contains("../generate"),
        "{html}"
    );
    let image = http
        .get(server.at("/api/report/files/rolls/01-a-jig-0.png"))
        .send()
        .unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["content-type"], "image/png");
    assert_eq!(image.bytes().unwrap(), png);
}

/// Four quarter notes on a flute at 120 BPM: exactly 2 s of music.
fn two_seconds_of_flute() -> Vec<u8> {
    let mut track = vec![0x00, 0xff, 0x51, 0x03, 0x07, 0xa1, 0x20, 0x00, 0xc0, 73];
    for pitch in [60, 62, 64, 65] {
        // On at once; off 480 ticks (one beat) later.
        track.extend([0x00, 0x90, pitch, 100, 0x83, 0x60, 0x80, pitch, 64]);
    }
    track.extend([0x00, 0xff, 0x2f, 0x00]);
    let mut midi = b"MThd\0\0\0\x06\0\0\0\x01\x01\xe0MTrk".to_vec();
    midi.extend((track.len() as u32).to_be_bytes());
    midi.extend(track);
    midi
}

/// N clients for a fixed time: every request is answered, correctly or with
/// a 429 that says when to retry; p50 and p95 latency are printed.
fn load(server: &Server, reference: &Value) {
    const CLIENTS: usize = 6;
    let until = Instant::now() + Duration::from_secs(8);
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = server.at("/api/generate");
            let expected = reference["notes"].clone();
            std::thread::spawn(move || {
                let http = client();
                let (mut latencies, mut refused) = (Vec::new(), 0);
                while Instant::now() < until {
                    // Every other request is the reference one, whose answer is known.
                    let known = latencies.len() % 2 == 0;
                    let body = if known {
                        json!({"text": "a slow waltz in D minor, 3/4, played on piano", "seed": 3, "max_tokens": 128})
                    } else {
                        json!({"text": format!("client {c} wants a quick reel"), "seed": c, "max_tokens": 64})
                    };
                    let t0 = Instant::now();
                    let response = http.post(&url).json(&body).send().expect("no request is lost");
                    let status = response.status().as_u16();
                    if status == 429 {
                        assert!(response.headers().contains_key("retry-after"));
                        refused += 1;
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    assert_eq!(status, 200, "{}", response.text().unwrap());
                    let piece: Value = response.json().unwrap();
                    if known {
                        assert_eq!(piece["notes"], expected, "answered wrongly under load");
                    } else {
                        assert_eq!(piece["text"], body["text"]);
                    }
                    latencies.push(t0.elapsed());
                }
                (latencies, refused)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut refused = 0;
    for t in threads {
        let (l, r) = t.join().expect("a client failed");
        all.extend(l);
        refused += r;
    }
    all.sort();
    assert!(all.len() >= CLIENTS, "{} answers in 8 s", all.len());
    let pct = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize].as_secs_f64();
    eprintln!(
        "load: {CLIENTS} clients, 8 s: {} answered, {refused} refused (429); p50 {:.2} s, p95 {:.2} s",
        all.len(),
        pct(0.5),
        pct(0.95)
    );
}

/// The page in headless chromium: type a prompt, generate, wait for the
/// piano roll and the audio player, play, and keep a screenshot.
fn browser(server: &Server) {
    let driver_port = free_port();
    let mut driver = Command::new("chromedriver")
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (scripts/test.sh installs Debian's chromium-driver)");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _driver = Kill(&mut driver);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shot = screenshot_path();
    runtime.block_on(async {
        use fantoccini::{ClientBuilder, Locator};
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1000",
                            "--autoplay-policy=no-user-gesture-required"]}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let browser = loop {
            match ClientBuilder::new(connector.clone()).capabilities(caps.clone()).connect(&format!("http://127.0.0.1:{driver_port}")).await {
                Ok(b) => break b,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver did not answer: {e}"),
            }
        };
        browser.goto(&server.url).await.unwrap();
        const PROMPT: &str = "a gentle lullaby in G major played on flute";
        let text = browser.find(Locator::Id("text")).await.unwrap();
        text.send_keys(PROMPT).await.unwrap();
        let length = browser.find(Locator::Id("max_tokens")).await.unwrap();
        length.clear().await.unwrap();
        length.send_keys("96").await.unwrap();
        browser.find(Locator::Id("generate")).await.unwrap().click().await.unwrap();
        // Earlier results are listed too; this one is the card with our prompt.
        let card = format!("//article[h2[text()='{PROMPT}']]");
        let roll = browser
            .wait()
            .at_most(Duration::from_secs(120))
            .for_element(Locator::XPath(&format!("{card}//canvas[@data-notes]")))
            .await
            .expect("the piano roll appears");
        let drawn: usize = roll.attr("data-notes").await.unwrap().unwrap().parse().unwrap();
        assert!(drawn > 0);
        let understood = browser
            .find(Locator::XPath(&format!("{card}//p[@class='understood']")))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(understood.contains("key G major") && understood.contains("pipe"), "{understood}");
        let first = browser.find(Locator::Css("#results .result .prompt")).await.unwrap().text().await.unwrap();
        assert_eq!(first, PROMPT, "the newest result comes first");
        // Play: the player loads the WAV from the server and its clock moves.
        let played = browser
            .execute_async(
                "const [done] = arguments; const a = document.querySelector('#results .result audio');
                 a.play().then(() => setTimeout(() => done({time: a.currentTime, duration: a.duration, error: null}), 1500),
                               e => done({error: String(e)}));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(played["error"], Value::Null, "{played}");
        assert!(played["time"].as_f64().unwrap() > 0.0, "{played}");
        assert!(played["duration"].as_f64().unwrap() > 1.0, "{played}");
        std::fs::write(&shot, browser.screenshot().await.unwrap()).unwrap();
        // The Pipeline page draws every stage.
        browser.goto(&format!("{}/pipeline", server.url)).await.unwrap();
        browser.wait().at_most(Duration::from_secs(60)).for_element(Locator::Css(".stage[data-stage='evaluate']")).await.unwrap();
        browser.wait().at_most(Duration::from_secs(30)).for_element(Locator::Css("#loss-curve polyline")).await.unwrap();
        let fresh = browser.find_all(Locator::Css(".stage.fresh")).await.unwrap().len();
        assert!(fresh >= 6, "{fresh} fresh stages drawn");
        browser.close().await.unwrap();
    });
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    eprintln!("screenshot: {}", shot.display());
}

/// Where the browser check keeps its screenshot (kept after the test).
fn screenshot_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("studio-write.png")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn off_loopback_the_studio_needs_a_token_and_checks_it() {
    let p = TestProject::new("[stages.a]\ncmd = \"echo a > a.txt\"\nouts = [\"a.txt\"]\n");
    let refused = p.amt(&["serve", "--addr", "0.0.0.0:0"]).expect_code(2);
    assert!(
        refused
            .stderr
            .contains("0.0.0.0:0 is not a loopback address")
            && refused.stderr.contains("--token"),
        "{}",
        refused.stderr
    );

    // No model yet: the pipeline is still served, and generating says why not.
    let server = Server::start(p.root(), &["--token", "s3cret"]);
    let http = client();
    assert_error(
        http.get(server.at("/api/status")).send().unwrap(),
        401,
        Some("token"),
    );
    assert_error(
        http.get(server.at("/api/status"))
            .bearer_auth("wrong")
            .send()
            .unwrap(),
        401,
        Some("token"),
    );
    let status: Value = http
        .get(server.at("/api/status"))
        .bearer_auth("s3cret")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["stages"][0]["stage"], "a");
    assert_eq!(status["stages"][0]["state"], "stale");
    assert_eq!(
        http.get(server.at("/api/results?token=s3cret"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let no_model = http
        .post(server.at("/api/generate"))
        .bearer_auth("s3cret")
        .json(&json!({"text": "a jig"}))
        .send()
        .unwrap();
    let body = assert_error(no_model, 503, None);
    assert!(
        body["error"].as_str().unwrap().contains("amt run train"),
        "{body}"
    );
    // The page itself carries no data and loads without the token.
    assert_eq!(http.get(server.at("/")).send().unwrap().status(), 200);
}
