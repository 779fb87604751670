//! `amt run`: what reruns, what is restored, and what is left alone.

mod common;

use common::{TestProject, settle};

/// A three-stage pipeline: `double` reads data/ and a param, `sum` reads its
/// output, `other` is independent. Each appends to runs/<stage> when it executes.
const PIPELINE: &str = r#"
[params]
scale = 2
unused = "x"

[stages.double]
cmd = "echo . >> runs/double; mkdir -p out; awk -v s=$AMT_PARAM_SCALE '{print $1 * s}' data/nums.txt > out/doubled.txt"
deps = ["data"]
params = ["scale"]
outs = ["out/doubled.txt"]

[stages.sum]
cmd = "echo . >> runs/sum; awk '{s += $1} END {print s}' out/doubled.txt > sum.txt"
deps = ["out/doubled.txt"]
outs = ["sum.txt"]

[stages.other]
cmd = "echo . >> runs/other; echo hi > other.txt"
outs = ["other.txt"]
"#;

fn project() -> TestProject {
    let p = TestProject::new(PIPELINE);
    p.write("data/nums.txt", "1\n2\n3\n");
    std::fs::create_dir_all(p.path("runs")).unwrap();
    p
}

#[test]
fn first_run_executes_everything_and_second_is_a_no_op() {
    let p = project();
    let first = p.run_ok(&[]);
    assert_eq!(
        first.values().filter(|o| *o == "ran").count(),
        3,
        "{first:?}"
    );
    assert_eq!(p.read("sum.txt"), "12\n");
    let second = p.run_ok(&[]);
    assert!(second.values().all(|o| o == "fresh"), "{second:?}");
    assert_eq!(
        (p.runs("double"), p.runs("sum"), p.runs("other")),
        (1, 1, 1)
    );
}

#[test]
fn a_changed_dep_reruns_that_stage_and_its_downstream_only() {
    let p = project();
    p.run_ok(&[]);
    p.write("data/nums.txt", "1\n2\n3\n4\n");
    let out = p.run_ok(&[]);
    assert_eq!(out["double"], "ran");
    assert_eq!(out["sum"], "ran");
    assert_eq!(out["other"], "fresh");
    assert_eq!(p.read("sum.txt"), "20\n");
}

#[test]
fn a_changed_param_reruns_and_a_reverted_one_restores_from_the_cache() {
    let p = project();
    p.run_ok(&[]);
    let manifest = p.read("amt.toml");
    p.write("amt.toml", &manifest.replace("scale = 2", "scale = 3"));
    let out = p.run_ok(&[]);
    assert_eq!(
        (out["double"].as_str(), out["sum"].as_str()),
        ("ran", "ran")
    );
    assert_eq!(p.read("sum.txt"), "18\n");

    p.write("amt.toml", &manifest);
    let out = p.run_ok(&[]);
    assert_eq!(
        (out["double"].as_str(), out["sum"].as_str()),
        ("restored", "restored")
    );
    assert_eq!(p.read("sum.txt"), "12\n");
    assert_eq!(
        (p.runs("double"), p.runs("sum")),
        (2, 2),
        "restoring must not execute"
    );
}

#[test]
fn an_undeclared_param_does_not_enter_the_fingerprint() {
    let p = project();
    p.run_ok(&[]);
    p.write(
        "amt.toml",
        &p.read("amt.toml")
            .replace("unused = \"x\"", "unused = \"y\""),
    );
    assert!(p.run_ok(&[]).values().all(|o| o == "fresh"));
}

#[test]
fn identical_upstream_output_stops_the_rebuild_early() {
    let p = project();
    p.run_ok(&[]);
    // Same numbers, different bytes in data/: double reruns but writes the same output.
    p.write("data/nums.txt", "1\n2\n3\n");
    p.write("data/notes.md", "irrelevant\n");
    let out = p.run_ok(&[]);
    assert_eq!(out["double"], "ran");
    assert_eq!(out["sum"], "fresh", "sum's input is byte-identical");
}

#[test]
fn a_deleted_or_edited_out_is_restored_without_running() {
    let p = project();
    p.run_ok(&[]);
    std::fs::remove_file(p.path("sum.txt")).unwrap();
    assert_eq!(p.run_ok(&[])["sum"], "restored");
    assert_eq!(p.read("sum.txt"), "12\n");

    std::fs::remove_file(p.path("other.txt")).unwrap();
    p.write("other.txt", "tampered\n");
    assert_eq!(p.run_ok(&[])["other"], "restored");
    assert_eq!(p.read("other.txt"), "hi\n");
    assert_eq!((p.runs("sum"), p.runs("other")), (1, 1));
}

#[test]
fn declared_env_vars_enter_the_fingerprint() {
    let p = TestProject::new(
        "[stages.e]\ncmd = \"echo $GREETING > e.txt\"\nenv = [\"GREETING\"]\nouts = [\"e.txt\"]\n",
    );
    let run = |v: &str| {
        p.command(&["--json", "run"])
            .env("GREETING", v)
            .output()
            .unwrap()
    };
    assert!(run("hello").status.success());
    assert_eq!(p.read("e.txt"), "hello\n");
    let out = String::from_utf8(run("hello").stdout).unwrap();
    assert!(out.contains(r#""outcome":"fresh""#), "{out}");
    assert!(run("bye").status.success());
    assert_eq!(p.read("e.txt"), "bye\n");
}

#[test]
fn targets_run_with_their_upstream_and_downstream_on_request() {
    let p = project();
    let out = p.run_ok(&["double"]);
    assert_eq!(out.keys().collect::<Vec<_>>(), ["double"]);
    let out = p.run_ok(&["--downstream", "double"]);
    assert_eq!(out.keys().collect::<Vec<_>>(), ["double", "sum"]);
    assert_eq!(p.runs("other"), 0);
}

#[test]
fn force_reruns_fresh_targets() {
    let p = project();
    p.run_ok(&[]);
    let out = p.run_ok(&["--force", "sum"]);
    assert_eq!(
        (out["double"].as_str(), out["sum"].as_str()),
        ("fresh", "ran")
    );
    assert_eq!(p.runs("sum"), 2);
}

#[test]
fn dry_run_reports_and_changes_nothing() {
    let p = project();
    let run = p.amt(&["run", "--dry-run"]).expect_code(0);
    assert!(
        run.stderr.contains("• double would run: never run"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("• sum would run: upstream stage double is stale"),
        "{}",
        run.stderr
    );
    assert!(!p.exists("sum.txt") && !p.exists("cache/state"));
}

#[test]
fn an_out_that_is_not_produced_fails_the_stage_and_names_it() {
    let p = TestProject::new("[stages.lazy]\ncmd = \"true\"\nouts = [\"result.bin\"]\n");
    let run = p.amt(&["run"]).expect_code(1);
    assert!(
        run.stderr.contains(
            "lazy failed: the command exited 0 but did not produce its declared out `result.bin`"
        ),
        "{}",
        run.stderr
    );
    assert!(
        !p.exists("cache/state/lazy.json"),
        "a failed stage is not recorded"
    );
    // The ledger has the execution, as failed though its command exited 0.
    let ledger = p.amt(&["--json", "runs", "--stages"]).expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&ledger.stdout).unwrap();
    let statuses: Vec<(&str, i64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["exit_code"].as_i64().unwrap()))
        .collect();
    assert_eq!(statuses, [("failed", 0)], "{}", ledger.stdout);
}

#[test]
fn a_failure_shows_the_log_records_nothing_and_starts_no_new_work() {
    let p = TestProject::new(
        r#"
        [stages.a_fails]
        cmd = "echo 'something broke' >&2; exit 3"
        outs = ["a.txt"]
        [stages.b_independent]
        cmd = "echo b > b.txt"
        outs = ["b.txt"]
        [stages.c_downstream]
        cmd = "cat a.txt > c.txt"
        deps = ["a.txt"]
        outs = ["c.txt"]
        "#,
    );
    // One slot: a_fails runs first (name order), so b_independent must never start.
    let run = p.amt(&["run", "-j", "1"]).expect_code(1);
    assert!(
        run.stderr
            .contains("✗ a_fails failed: the command failed (exit code 3)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("│ something broke"),
        "the log tail is shown:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("- b_independent not started"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("- c_downstream skipped: upstream stage a_fails failed"),
        "{}",
        run.stderr
    );
    assert!(!p.exists("b.txt") && !p.exists("cache/state/a_fails.json"));

    let run = p
        .amt(&["--json", "run", "-j", "1", "--keep-going"])
        .expect_code(1);
    let out = run.outcomes();
    assert_eq!(out["b_independent"], "ran");
    assert_eq!(out["c_downstream"], "skipped");
}

/// Skips cascade down a chain even when nothing else is running (this run
/// used to wait forever for a message no stage would send).
#[test]
fn a_failure_skips_a_whole_chain_and_the_run_ends() {
    let p = TestProject::new(
        r#"
        [stages.a]
        cmd = "exit 1"
        outs = ["a.txt"]
        [stages.b]
        cmd = "cat a.txt > b.txt"
        deps = ["a.txt"]
        outs = ["b.txt"]
        [stages.c]
        cmd = "cat b.txt > c.txt"
        deps = ["b.txt"]
        outs = ["c.txt"]
        [stages.d]
        cmd = "cat c.txt > d.txt"
        deps = ["c.txt"]
        outs = ["d.txt"]
        "#,
    );
    let mut child = p
        .command(&["--json", "run"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("amt run did not end after a failure");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = common::Run::from(child.wait_with_output().unwrap()).expect_code(1);
    let out = run.outcomes();
    assert_eq!(
        [&out["a"], &out["b"], &out["c"], &out["d"]],
        ["failed", "skipped", "skipped", "skipped"]
    );
}

#[test]
fn running_stages_finish_after_another_fails() {
    let p = TestProject::new(
        r#"
        [stages.fast_fail]
        cmd = "sleep 0.2; exit 1"
        outs = ["never"]
        [stages.slow]
        cmd = "sleep 1; echo done > slow.txt"
        outs = ["slow.txt"]
        "#,
    );
    p.amt(&["run", "-j", "2"]).expect_code(1);
    assert_eq!(p.read("slow.txt"), "done\n");
    assert!(
        p.exists("cache/state/slow.json"),
        "a stage that finished is recorded"
    );
}

#[test]
fn independent_stages_run_in_parallel() {
    // Each stage waits for the other's flag: this finishes only if both run at once.
    let wait = |me: &str, other: &str| {
        format!(
            "touch flag_{me}; for i in $(seq 100); do [ -e flag_{other} ] && break; sleep 0.05; done; [ -e flag_{other} ] && echo ok > {me}.txt"
        )
    };
    let p = TestProject::new(&format!(
        "[stages.left]\ncmd = \"{}\"\nouts = [\"left.txt\"]\n[stages.right]\ncmd = \"{}\"\nouts = [\"right.txt\"]\n",
        wait("left", "right"),
        wait("right", "left")
    ));
    p.amt(&["run", "-j", "2"]).expect_code(0);
    assert_eq!(p.read("left.txt"), "ok\n");
}

#[test]
fn cpu_requests_limit_concurrency() {
    // With -j 2 and cpus = 2, the stages must take turns.
    let body = |me: &str| {
        format!(
            "if [ -e busy ]; then touch overlap; fi; touch busy; sleep 0.3; rm -f busy; echo x > {me}.txt"
        )
    };
    let p = TestProject::new(&format!(
        "[stages.a]\ncmd = \"{}\"\ncpus = 2\nouts = [\"a.txt\"]\n[stages.b]\ncmd = \"{}\"\ncpus = 2\nouts = [\"b.txt\"]\n",
        body("a"),
        body("b")
    ));
    p.amt(&["run", "-j", "2"]).expect_code(0);
    assert!(p.exists("a.txt") && p.exists("b.txt"));
    assert!(
        !p.exists("overlap"),
        "stages needing 2 CPUs overlapped on 2 slots"
    );
}

#[test]
fn a_stage_needing_more_gpus_than_exist_fails_clearly() {
    let p = TestProject::new("[stages.g]\ncmd = \"true\"\ngpus = 1\nouts = [\"g\"]\n");
    let run = p.command(&["run"]).env("AMT_GPUS", "0").output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr.contains("needs 1 GPU(s) and 0 are available"),
        "{stderr}"
    );
}

#[test]
fn params_reach_the_command_as_json_and_variables() {
    let p = TestProject::new(
        r#"
        [params]
        train.lr = 3e-4
        train.name = "tiny"
        [stages.show]
        cmd = "echo \"$AMT_PARAMS|$AMT_PARAM_TRAIN_LR|$AMT_PARAM_TRAIN_NAME|$AMT_STAGE\" > p.txt"
        params = ["train"]
        outs = ["p.txt"]
        "#,
    );
    p.run_ok(&[]);
    assert_eq!(
        p.read("p.txt"),
        "{\"train\":{\"lr\":0.0003,\"name\":\"tiny\"}}|0.0003|tiny|show\n"
    );
    let p2 = TestProject::new(
        "[params]\ntrain.lr = 3e-4\n[stages.show]\ncmd = \"echo $AMT_PARAM_TRAIN_LR > p.txt\"\nparams = [\"train.lr\"]\nouts = [\"p.txt\"]\n",
    );
    p2.run_ok(&[]);
    assert_eq!(p2.read("p.txt"), "0.0003\n");
}

#[test]
fn directory_outs_round_trip_through_the_cache() {
    let p = TestProject::new(
        r#"
        [params]
        n = 3
        [stages.gen]
        cmd = "mkdir -p out/deep; for i in $(seq $AMT_PARAM_N); do echo $i > out/deep/f$i; done; printf '#!/bin/sh\n' > out/run.sh; chmod +x out/run.sh"
        params = ["n"]
        outs = ["out"]
        "#,
    );
    p.run_ok(&[]);
    std::fs::remove_dir_all(p.path("out")).unwrap();
    assert_eq!(p.run_ok(&[])["gen"], "restored");
    assert_eq!(p.read("out/deep/f3"), "3\n");
    use std::os::unix::fs::PermissionsExt;
    assert_ne!(
        std::fs::metadata(p.path("out/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0
    );
    settle();
    assert_eq!(p.run_ok(&[])["gen"], "fresh");
}

#[test]
fn changing_one_file_in_a_large_dep_rehashes_only_that_file() {
    let p = TestProject::new(
        "[stages.count]\ncmd = \"ls -R data | wc -l > n.txt\"\ndeps = [\"data\"]\nouts = [\"n.txt\"]\n",
    );
    for d in 0..20 {
        for f in 0..100 {
            p.write(&format!("data/d{d:02}/f{f:03}.txt"), &format!("{d} {f}\n"));
        }
    }
    settle();
    let first = p.amt(&["--json", "run"]).expect_code(0).summary();
    assert_eq!(first["files_hashed"], 2001, "2000 data files and the out");
    settle();
    // The out was hashed moments after it was written, too recently to trust its
    // stat stamp (git's "racy clean" problem), so it is read once more now.
    let second = p.amt(&["--json", "run"]).expect_code(0).summary();
    assert_eq!(
        second["files_hashed"], 1,
        "only the out written by the first run"
    );
    let noop = p.amt(&["--json", "run"]).expect_code(0).summary();
    assert_eq!(noop["files_hashed"], 0, "a no-op reads no file");

    p.write("data/d07/f042.txt", "changed\n");
    let changed = p.amt(&["--json", "run"]).expect_code(0).summary();
    assert_eq!(
        changed["files_hashed"], 2,
        "the changed file and the new out"
    );
}

#[test]
fn bad_stage_names_on_the_command_line_get_a_suggestion() {
    let p = project();
    let run = p.amt(&["run", "dubble"]).expect_code(2);
    assert!(
        run.stderr
            .contains("no stage is called `dubble`; did you mean `double`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_empty_pipeline_has_nothing_to_do() {
    let p = TestProject::new("[params]\nx = 1\n");
    let run = p.amt(&["run"]).expect_code(0);
    assert!(run.stderr.contains("nothing to do"), "{}", run.stderr);
    p.amt(&["status"]).expect_code(0);
    p.amt(&["dag"]).expect_code(0);
}

/// A stage learns its CPU share: `AMT_CPUS` and the thread-pool variables,
/// except those the user set.
#[test]
fn a_stage_sees_its_cpu_share_and_the_users_own_thread_settings() {
    let p = TestProject::new(
        r#"
        [stages.one]
        cmd = "echo $AMT_CPUS $OMP_NUM_THREADS $MKL_NUM_THREADS $OPENBLAS_NUM_THREADS $RAYON_NUM_THREADS > one.txt"
        cpus = 1
        outs = ["one.txt"]
        [stages.two]
        cmd = "echo $AMT_CPUS $OMP_NUM_THREADS $RAYON_NUM_THREADS > two.txt"
        cpus = 2
        outs = ["two.txt"]
        "#,
    );
    let run = p
        .command(&["run", "-j", "1"])
        .env_remove("OMP_NUM_THREADS")
        .env_remove("MKL_NUM_THREADS")
        .env_remove("OPENBLAS_NUM_THREADS")
        .env("RAYON_NUM_THREADS", "7")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(p.read("one.txt"), "1 1 1 1 7\n");
    // The declared share, even under a smaller -j, so its thread count (and
    // with it, for a libtorch stage, its bytes) does not depend on -j.
    assert_eq!(p.read("two.txt"), "2 2 7\n");
}

/// `--profile` (or `AMT_PROFILE`) overrides params; its values enter keys
/// like any param, so switching back and forth restores from the cache.
#[test]
fn profiles_override_params_and_switching_back_restores() {
    let p = TestProject::new(
        r#"
        [params]
        steps = 400
        [profiles.dev]
        steps = 20
        [stages.train]
        cmd = "echo . >> runs/train; echo $AMT_PARAM_STEPS > model.txt"
        params = ["steps"]
        outs = ["model.txt"]
        "#,
    );
    std::fs::create_dir_all(p.path("runs")).unwrap();
    p.run_ok(&[]);
    assert_eq!(p.read("model.txt"), "400\n");
    p.run_ok(&["--profile", "dev"]);
    assert_eq!(p.read("model.txt"), "20\n");
    let status = p.amt(&["status", "--profile", "dev"]).expect_code(0).stdout;
    assert!(status.starts_with("profile: dev\n"), "{status}");
    let out = p.run_ok(&[]);
    assert_eq!(out["train"], "restored");
    assert_eq!(p.read("model.txt"), "400\n");
    let out = p.command(&["--json", "run"]).env("AMT_PROFILE", "dev").output().unwrap();
    assert_eq!(common::Run::from(out).expect_code(0).outcomes()["train"], "restored");
    assert_eq!((p.read("model.txt").as_str(), p.runs("train")), ("20\n", 2));

    let r = p.amt(&["run", "--profile", "deb"]).expect_code(2);
    assert!(r.stderr.contains("no profile is called `deb`; did you mean `dev`?"), "{}", r.stderr);
}

/// A stage that writes `$AMT_PROGRESS` is shown going; `--json` emits it as
/// `progress` events.
#[test]
fn a_stage_reports_progress_and_amt_passes_it_on() {
    let p = TestProject::new(
        r#"
        [stages.count]
        cmd = "for i in 1 2 3; do printf '{\"done\":%d,\"total\":3,\"unit\":\"steps\",\"message\":\"loss 0.%d\"}' $i $i > $AMT_PROGRESS.tmp && mv $AMT_PROGRESS.tmp $AMT_PROGRESS; sleep 0.4; done; echo ok > out.txt"
        outs = ["out.txt"]
        "#,
    );
    let run = p.amt(&["--json", "run"]).expect_code(0);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["event"] == "progress")
        .collect();
    assert!(!events.is_empty(), "{}", run.stdout);
    let first = &events[0];
    assert_eq!(
        (&first["stage"], &first["total"], &first["unit"]),
        (&"count".into(), &3.into(), &"steps".into()),
        "{first}"
    );
    assert!(first["message"].as_str().unwrap().starts_with("loss 0."));
    // Reports are rationed (one every few seconds), but the stage's last one
    // is held back and printed when it finishes, not dropped.
    assert!(events.len() <= 2, "{}", run.stdout);
    let last = events.last().unwrap();
    assert_eq!((&last["done"], &last["message"]), (&3.into(), &"loss 0.3".into()), "{last}");
    let plain = p.amt(&["run", "--force"]).expect_code(0);
    let lines: Vec<&str> = plain
        .stderr
        .lines()
        .filter(|l| l.contains("count ") && l.contains("/3 steps"))
        .collect();
    assert!(lines.len() <= 2, "{}", plain.stderr);
    assert!(lines.last().is_some_and(|l| l.contains("3/3 steps, loss 0.3")), "{}", plain.stderr);
}
