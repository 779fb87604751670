//! The remote cache against a real S3-compatible server (moto, started here on
//! 127.0.0.1) and a plain directory: a second checkout with an empty cache runs
//! nothing, push and pull, corrupted objects are refused, and an unreachable
//! remote only warns.

mod common;

use std::net::TcpListener;

use common::TestProject;
use common::moto::Moto;

fn moto(bucket: &str) -> Moto {
    Moto::from_env(bucket)
        .expect("AMT_MOTO_SERVER is not set: run scripts/test.sh, which installs moto and sets it")
}

const PIPELINE: &str = r#"
[params]
n = 3

[stages.make]
cmd = "mkdir -p out/data && for i in $(seq 1 20); do echo row $i > out/data/$i.txt; done && echo made >> runs.log"
outs = ["out/data"]

[stages.sum]
cmd = "cat out/data/*.txt | wc -l > out/sum.txt && echo summed >> runs.log"
deps = ["out/data"]
params = ["n"]
outs = ["out/sum.txt"]
"#;

/// Runs `amt ARGS` with moto's credentials, expecting `code`.
fn amt(p: &TestProject, moto: Option<&Moto>, args: &[&str], code: i32) -> common::Run {
    let mut c = p.command(args);
    if let Some(m) = moto {
        c.envs(m.env());
    }
    common::Run::from(c.output().unwrap()).expect_code(code)
}

fn outcomes(run: &common::Run) -> Vec<(String, String)> {
    run.outcomes().into_iter().collect()
}

#[test]
fn a_second_checkout_with_an_empty_cache_executes_nothing() {
    let moto = moto("amt-ci");
    let manifest = format!("[remote]\nurl = \"s3://amt-ci/cache\"\n{PIPELINE}");
    let first = TestProject::new(&manifest);
    let run = amt(&first, Some(&moto), &["--json", "run"], 0);
    assert_eq!(
        outcomes(&run),
        [("make".into(), "ran".into()), ("sum".into(), "ran".into())],
        "{}",
        run.stderr
    );

    let second = TestProject::new(&manifest);
    let run = amt(&second, Some(&moto), &["--json", "run"], 0);
    assert_eq!(
        outcomes(&run),
        [
            ("make".into(), "restored".into()),
            ("sum".into(), "restored".into())
        ],
        "{}",
        run.stderr
    );
    assert!(
        !second.exists("runs.log"),
        "no command ran in the second checkout"
    );
    assert_eq!(second.read("out/sum.txt"), first.read("out/sum.txt"));
    assert_eq!(second.read("out/data/7.txt"), "row 7\n");

    // The second checkout's ledger says where its results came from.
    let ledger = amt(&second, None, &["--json", "runs", "--stages"], 0);
    let rows: serde_json::Value = serde_json::from_str(&ledger.stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "restored" && r["cache_hit"] == true),
        "{rows}"
    );
}

#[test]
fn push_then_pull_through_a_directory() {
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().display().to_string();
    let first = TestProject::new(PIPELINE);
    amt(&first, None, &["run"], 0);
    let pushed = amt(&first, None, &["push", "--remote", &url], 0);
    assert!(
        pushed.stdout.contains("pushed 2 action results"),
        "{}",
        pushed.stdout
    );
    let again = amt(&first, None, &["push", "--remote", &url], 0);
    assert!(
        again
            .stdout
            .contains("pushed 0 action results and 0 objects"),
        "writes are create-only: {}",
        again.stdout
    );

    let second = TestProject::new(PIPELINE);
    let pulled = amt(&second, None, &["pull", "--remote", &url], 0);
    assert!(
        pulled.stdout.contains("pulled 2 action results"),
        "{}",
        pulled.stdout
    );
    let run = amt(&second, None, &["--json", "run"], 0);
    assert!(
        run.outcomes().values().all(|o| o == "restored"),
        "{}",
        run.stdout
    );
    assert!(!second.exists("runs.log"));
}

/// Per point of `amt --json sweep`, its outcome counts.
fn sweep_counts(run: &common::Run) -> Vec<serde_json::Value> {
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).expect("sweep --json");
    rows.as_array().unwrap().iter().map(|r| r["stages"].clone()).collect()
}

#[test]
fn sweeps_read_and_write_through_the_configured_remote() {
    let remote = tempfile::tempdir().unwrap();
    let manifest = format!("[remote]\nurl = \"{}\"\n{PIPELINE}", remote.path().display());
    let sweep = ["--json", "sweep", "-S", "n=1,2"];
    let first = TestProject::new(&manifest);
    let ran = sweep_counts(&amt(&first, None, &sweep, 0));
    assert_eq!(ran.len(), 2);
    assert!(ran.iter().all(|c| c["ran"].as_u64() >= Some(1)), "{ran:?}");

    // A second checkout, empty cache: every point comes from the remote.
    let second = TestProject::new(&manifest);
    let restored = sweep_counts(&amt(&second, None, &sweep, 0));
    assert!(
        restored.iter().all(|c| c.get("ran").is_none() && c["restored"].as_u64() >= Some(1)),
        "{restored:?}"
    );

    // --remote URL names it on the command line instead.
    let fourth = TestProject::new(PIPELINE);
    let url = remote.path().display().to_string();
    let named = sweep_counts(&amt(&fourth, None, &["--json", "sweep", "--remote", &url, "-S", "n=1,2"], 0));
    assert!(named.iter().all(|c| c.get("ran").is_none()), "{named:?}");

    // --no-remote really leaves it out.
    let third = TestProject::new(&manifest);
    let local = sweep_counts(&amt(&third, None, &["--json", "sweep", "--no-remote", "-S", "n=1,2"], 0));
    assert!(local.iter().all(|c| c["ran"].as_u64() >= Some(1)), "{local:?}");
}

#[test]
fn a_corrupted_remote_object_is_refused_and_the_stage_runs() {
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().display().to_string();
    let first = TestProject::new(PIPELINE);
    amt(&first, None, &["run", "--remote", &url], 0);
    // Tamper with every stored object.
    for entry in walkdir::WalkDir::new(remote.path().join("cas"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
    {
        std::fs::write(entry.path(), b"forged").unwrap();
    }
    let second = TestProject::new(PIPELINE);
    let run = amt(&second, None, &["--json", "run", "--remote", &url], 0);
    assert!(
        run.stderr.contains("is corrupt") && run.stderr.contains("it was not used"),
        "{}",
        run.stderr
    );
    assert!(
        run.outcomes().values().all(|o| o == "ran"),
        "{}",
        run.stdout
    );
    assert_eq!(second.read("out/data/7.txt"), "row 7\n");
}

#[test]
fn an_unreachable_remote_warns_once_and_the_run_goes_on_locally() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = TestProject::new(PIPELINE);
    let unreachable = |args: &[&str]| {
        let mut c = p.command(args);
        c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("AWS_REGION", "us-east-1");
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(
            stderr.contains("remote cache s3://nowhere/cache is unreachable")
                && stderr.contains("continuing with the local cache only"),
            "{stderr}"
        );
        assert_eq!(stderr.matches("unreachable").count(), 1, "said once: {stderr}");
    };
    unreachable(&["--json", "run", "--remote", "s3://nowhere/cache"]);
    assert_eq!(p.read("out/sum.txt").trim(), "20");
    // A sweep's points share the remote, and so give it up together.
    unreachable(&["--json", "sweep", "--remote", "s3://nowhere/cache", "-j", "2", "-S", "n=1,2,3,4"]);
}

/// A forged but self-consistent entry: every digest is right, but the
/// listing of `out/data` names `../../../NAME`, one level above the project. Returns the objects to plant
/// (name under the remote's prefix, bytes) for the action result `genuine`.
fn forge(genuine: &[u8], name: &str) -> Vec<(String, Vec<u8>)> {
    let content = b"written outside the project".to_vec();
    let content_hex = blake3::hash(&content).to_hex().to_string();
    let listing = format!("amt-tree-v1\nf {content_hex} ../../../{name}\n").into_bytes();
    let listing_hex = blake3::hash(&listing).to_hex().to_string();
    let mut action: serde_json::Value = serde_json::from_slice(genuine).unwrap();
    action["outs"][0]["digest"] = serde_json::Value::String(listing_hex.clone());
    vec![
        (format!("cas/blake3/{content_hex}"), content),
        (format!("cas/blake3/{listing_hex}"), listing),
        (String::new(), serde_json::to_vec(&action).unwrap()),
    ]
}

fn make_key(p: &TestProject) -> String {
    let state: serde_json::Value = serde_json::from_str(&p.read("cache/state/make.json")).unwrap();
    state["action_key"].as_str().unwrap().to_owned()
}

/// The second checkout refuses the forged listing, runs the stage itself and
/// writes nothing outside its directory.
fn assert_forgery_refused(run: &common::Run, second: &TestProject, name: &str) {
    for dir in second.root().ancestors().take(3) {
        assert!(!dir.join(name).exists(), "{} was written", dir.join(name).display());
    }
    assert!(
        run.stderr.contains("is malformed") && run.stderr.contains("it was not used"),
        "{}",
        run.stderr
    );
    assert_eq!(run.outcomes()["make"], "ran", "{}", run.stdout);
    assert_eq!(second.read("out/data/7.txt"), "row 7\n");
}

#[test]
fn a_forged_listing_in_a_directory_remote_writes_nothing_outside_the_project() {
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().display().to_string();
    let first = TestProject::new(PIPELINE);
    amt(&first, None, &["run", "--remote", &url], 0);
    let key = make_key(&first);
    let ac = remote.path().join(format!("ac/blake3/{key}.json"));
    let name = format!("amt-escape-{}", std::process::id());
    for (path, bytes) in forge(&std::fs::read(&ac).unwrap(), &name) {
        let dst = if path.is_empty() { ac.clone() } else { remote.path().join(path) };
        std::fs::write(dst, bytes).unwrap();
    }
    let second = TestProject::new(PIPELINE);
    let run = amt(&second, None, &["--json", "run", "--remote", &url], 0);
    assert_forgery_refused(&run, &second, &name);
}

#[test]
fn a_forged_listing_in_s3_writes_nothing_outside_the_project() {
    let moto = moto("amt-forged");
    let manifest = format!("[remote]\nurl = \"s3://amt-forged/cache\"\n{PIPELINE}");
    let first = TestProject::new(&manifest);
    amt(&first, Some(&moto), &["run"], 0);
    // The genuine result, as the first checkout recorded it locally.
    let key = make_key(&first);
    let ac = format!("cache/ac/blake3/{key}.json");
    let genuine = std::fs::read(first.path(&format!("cache/ac/blake3/{}/{}.json", &key[..2], &key[2..]))).unwrap();
    let name = format!("amt-escape-s3-{}", std::process::id());
    for (path, bytes) in forge(&genuine, &name) {
        let path = if path.is_empty() { ac.clone() } else { format!("cache/{path}") };
        moto.put("amt-forged", &path, &bytes);
    }
    let second = TestProject::new(&manifest);
    let run = amt(&second, Some(&moto), &["--json", "run"], 0);
    assert_forgery_refused(&run, &second, &name);
}
