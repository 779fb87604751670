//! Two `amt` processes in one project, `kill -9` at any instant, and Ctrl-C.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::TestProject;

/// Waits until `path` exists, or panics after `limit`.
fn wait_for(p: &TestProject, rel: &str, limit: Duration) {
    let start = Instant::now();
    while !p.exists(rel) {
        assert!(
            start.elapsed() < limit,
            "{rel} did not appear within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(p: &TestProject, args: &[&str]) -> Child {
    p.command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn kill9(child: &mut Child) {
    // SAFETY: signalling a child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
}

const SLOW: &str = "[stages.slow]\ncmd = \"touch started; sleep 2; echo done > slow.txt\"\nouts = [\"slow.txt\"]\n";

#[test]
fn a_second_run_waits_for_the_lock_and_names_the_holder() {
    let p = TestProject::new(SLOW);
    let mut first = spawn(&p, &["run"]);
    wait_for(&p, "started", Duration::from_secs(10));
    let second = p.amt(&["run", "--lock-timeout", "0.3"]).expect_code(3);
    assert!(
        second
            .stderr
            .contains("waiting for the project lock, held by pid"),
        "{}",
        second.stderr
    );
    assert!(second.stderr.contains("still holds"), "{}", second.stderr);
    assert!(first.wait().unwrap().success());

    // With a long enough timeout the second run simply waits, then finds everything fresh.
    std::fs::remove_file(p.path("started")).unwrap();
    let mut first = spawn(&p, &["run", "--force"]);
    wait_for(&p, "started", Duration::from_secs(10));
    let second = p.amt(&["--json", "run"]).expect_code(0);
    assert_eq!(second.outcomes()["slow"], "fresh");
    assert!(first.wait().unwrap().success());
}

#[test]
fn a_killed_holder_leaves_no_stale_lock_and_its_stage_reruns() {
    let p = TestProject::new(SLOW);
    let mut first = spawn(&p, &["run"]);
    wait_for(&p, "started", Duration::from_secs(10));
    kill9(&mut first);
    // The stage's own process may linger; it was in its own process group.
    let started = Instant::now();
    let run = p
        .amt(&["--json", "run", "--lock-timeout", "5"])
        .expect_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the lock was released with its holder"
    );
    assert_eq!(
        run.outcomes()["slow"],
        "ran",
        "the interrupted stage runs again"
    );
    assert_eq!(p.read("slow.txt"), "done\n");
}

/// Reads every object in the cache and checks that its content matches its name.
fn assert_cache_consistent(p: &TestProject) {
    let cas = p.path("cache/cas/blake3");
    let Ok(dirs) = std::fs::read_dir(&cas) else {
        return;
    };
    for dir in dirs.flatten() {
        for obj in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let name = format!(
                "{}{}",
                dir.file_name().to_string_lossy(),
                obj.file_name().to_string_lossy()
            );
            let digest = blake3::hash(&std::fs::read(obj.path()).unwrap())
                .to_hex()
                .to_string();
            assert_eq!(name, digest, "corrupt object {}", obj.path().display());
        }
    }
}

#[test]
fn kill_9_at_any_instant_leaves_a_state_the_next_run_repairs() {
    let manifest = r#"
        [params]
        n = 40
        [stages.gen]
        cmd = "mkdir -p gen; for i in $(seq $AMT_PARAM_N); do echo $i > gen/f$i; done"
        params = ["n"]
        outs = ["gen"]
        [stages.sum]
        cmd = "cat gen/* | awk '{s += $1} END {print s}' > sum.txt"
        deps = ["gen"]
        outs = ["sum.txt"]
        [stages.copy]
        cmd = "cp sum.txt copy.txt"
        deps = ["sum.txt"]
        outs = ["copy.txt"]
    "#;
    let p = TestProject::new(manifest);
    // Kill at a spread of instants: before, during and after stages and cache writes.
    for (round, delay_ms) in [0u64, 3, 7, 12, 20, 30, 45, 60, 90, 130]
        .into_iter()
        .enumerate()
    {
        let n = 40 + round; // a new action key every round, so there is work to interrupt
        p.write("amt.toml", &manifest.replace("n = 40", &format!("n = {n}")));
        let mut child = spawn(&p, &["run"]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        kill9(&mut child);
        assert_cache_consistent(&p);

        let run = p.amt(&["--json", "run"]).expect_code(0);
        let expected: usize = (1..=n).sum();
        assert_eq!(
            p.read("sum.txt").trim(),
            expected.to_string(),
            "round {round}: {:?}",
            run.outcomes()
        );
        assert_eq!(p.read("copy.txt").trim(), expected.to_string());
        assert!(
            p.amt(&["--json", "run"])
                .expect_code(0)
                .outcomes()
                .values()
                .all(|o| o == "fresh")
        );
        assert_cache_consistent(&p);
    }
}

#[test]
fn ctrl_c_stops_running_stages_and_records_nothing() {
    let p = TestProject::new(
        "[stages.long]\ncmd = \"echo $$ > pid; touch started; sleep 60; echo x > out.txt\"\nouts = [\"out.txt\"]\n",
    );
    let mut child = spawn(&p, &["run"]);
    wait_for(&p, "started", Duration::from_secs(10));
    let stage_pid: i32 = p.read("pid").trim().parse().unwrap();
    let started = Instant::now();
    // SAFETY: signalling a child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(10));
    // SAFETY: signal 0 only probes whether the process exists.
    assert_ne!(
        unsafe { libc::kill(stage_pid, 0) },
        0,
        "the stage's process was stopped"
    );
    assert!(!p.exists("cache/state/long.json"));
}

#[test]
fn gc_removes_unreachable_results_and_a_cap_keeps_recent_ones() {
    let manifest = "[params]\nv = 1\n[stages.s]\ncmd = \"seq 1000 | sed s/^/$AMT_PARAM_V/ > s.txt\"\nparams = [\"v\"]\nouts = [\"s.txt\"]\n";
    let p = TestProject::new(manifest);
    for v in 1..=3 {
        p.write("amt.toml", &manifest.replace("v = 1", &format!("v = {v}")));
        p.amt(&["run"]).expect_code(0);
    }
    // v = 3 is current; v = 1 and v = 2 are unreachable. A generous cap keeps them.
    let kept = p.amt(&["--json", "gc", "--max-size", "1G"]).expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&kept.stdout).unwrap();
    assert_eq!(report["actions_removed"], 0, "{report}");

    let dry = p.amt(&["--json", "gc", "--dry-run"]).expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(report["actions_removed"], 2, "{report}");
    assert_eq!(report["objects_removed"], 2, "{report}");

    p.amt(&["gc"]).expect_code(0);
    assert_eq!(
        p.amt(&["--json", "run"]).expect_code(0).outcomes()["s"],
        "fresh",
        "the current state survives"
    );
    p.write("amt.toml", &manifest.replace("v = 1", "v = 2"));
    assert_eq!(
        p.amt(&["--json", "run"]).expect_code(0).outcomes()["s"],
        "ran",
        "v = 2 was collected"
    );
    assert!(p.read("s.txt").starts_with("21\n"));
}

#[test]
fn status_names_the_stages_a_run_is_executing() {
    // The stage runs until the test lets it finish.
    let p = TestProject::new(
        "[stages.slow]\ncmd = \"touch started; while [ ! -e go ]; do sleep 0.05; done; echo done > slow.txt\"\nouts = [\"slow.txt\"]\n\
         [stages.after]\ncmd = \"cp slow.txt after.txt\"\ndeps = [\"slow.txt\"]\nouts = [\"after.txt\"]\n",
    );
    let mut first = spawn(&p, &["run"]);
    wait_for(&p, "started", Duration::from_secs(10));
    let json = p.amt(&["status", "--json"]).expect_code(0).stdout;
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        status["locked_by"].as_str().is_some_and(|h| h.starts_with("pid ")),
        "{status}"
    );
    let state = |s: &serde_json::Value, name: &str| {
        s["stages"].as_array().unwrap().iter().find(|x| x["stage"] == name).unwrap()["state"].clone()
    };
    assert_eq!(state(&status, "slow"), "running", "{status}");
    assert_eq!(state(&status, "after"), "stale", "{status}");
    let text = p.amt(&["status"]).expect_code(0).stdout;
    assert!(text.contains("another amt (pid ") && text.contains("holds the project lock"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("slow ") && l.contains("running")), "{text}");
    p.write("go", "");
    assert!(first.wait().unwrap().success());

    let status: serde_json::Value =
        serde_json::from_str(&p.amt(&["status", "--json"]).expect_code(0).stdout).unwrap();
    assert_eq!(status["locked_by"], serde_json::Value::Null);
    assert_eq!(state(&status, "slow"), "fresh");
    assert!(!p.exists("cache/running.json"), "the board is removed with its run");
}
