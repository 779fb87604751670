//! Sweeps: points share upstream results through the cache, run in their own
//! workspaces, reproduce byte for byte, and land in the ledger, whose `amt runs`
//! and `amt metrics diff` tables are snapshot-tested.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::TestProject;

const PIPELINE: &str = r#"
[params]
train.lr = 0.1
train.layers = 2

[stages.prep]
cmd = "mkdir -p out && wc -w < data/x.txt > out/prep.txt"
deps = ["data/x.txt"]
outs = ["out/prep.txt"]

[stages.train]
cmd = "mkdir -p out metrics && awk \"BEGIN { printf \\\"{\\\\\\\"loss\\\\\\\": %.3f, \\\\\\\"words\\\\\\\": %d}\\\", $AMT_PARAM_TRAIN_LR * $AMT_PARAM_TRAIN_LAYERS, $(cat out/prep.txt) }\" > metrics/train.json && cp out/prep.txt out/model.txt"
deps = ["out/prep.txt"]
params = ["train"]
outs = ["out/model.txt"]
metrics = ["metrics/train.json"]

[sweeps.grid]
grid = { "train.lr" = [0.1, 0.2], "train.layers" = [2, 4] }
"#;

fn project() -> TestProject {
    let p = TestProject::new(PIPELINE);
    p.write("data/x.txt", "one two three\n");
    p
}

fn settings(p: &TestProject) -> insta::Settings {
    let mut s = p.insta();
    s.add_filter(r"\b\d{13}-\d+\b", "[INVOCATION]");
    s
}

#[test]
fn a_sweep_shares_upstream_stages_and_leaves_the_workspace_alone() {
    let p = project();
    let out = p
        .amt(&["sweep", "--name", "grid", "--jobs", "2"])
        .expect_code(0);
    assert!(
        !p.exists("out") && !p.exists("metrics"),
        "points write only in their own workspaces"
    );
    // prep's one action ran once; every other point restored it.
    let execs: serde_json::Value =
        serde_json::from_str(&p.amt(&["--json", "runs", "--stages"]).expect_code(0).stdout)
            .unwrap();
    let prep: Vec<&str> = execs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["stage"] == "prep")
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(prep.iter().filter(|s| **s == "ran").count(), 1, "{prep:?}");
    assert_eq!(prep.len(), 4);
    let train_ran = execs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["stage"] == "train" && r["status"] == "ran")
        .count();
    assert_eq!(train_ran, 4);
    settings(&p).bind(|| insta::assert_snapshot!("sweep_table", out.stdout));

    // Rerunning the sweep executes nothing.
    p.amt(&["sweep", "--name", "grid"]).expect_code(0);
    let execs: serde_json::Value =
        serde_json::from_str(&p.amt(&["--json", "runs", "--stages"]).expect_code(0).stdout)
            .unwrap();
    assert_eq!(
        execs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "ran")
            .count(),
        5
    );
}

#[test]
fn runs_and_metrics_diff_print_deterministic_tables() {
    let p = project();
    p.amt(&["run"]).expect_code(0);
    p.amt(&["sweep", "-S", "train.lr=0.3", "-S", "train.layers=4"])
        .expect_code(0);
    let runs = p.amt(&["runs"]).expect_code(0).stdout;
    let diff = p.amt(&["metrics", "diff"]).expect_code(0).stdout;
    let json: serde_json::Value =
        serde_json::from_str(&p.amt(&["--json", "metrics", "diff"]).expect_code(0).stdout).unwrap();
    assert_eq!(json["metrics"]["train.loss"]["change"], 1.0);
    settings(&p).bind(|| {
        insta::assert_snapshot!("runs_table", runs);
        insta::assert_snapshot!("metrics_diff", diff);
    });
}

#[test]
fn sweep_keys_are_checked_against_params() {
    let p = project();
    let e = p.amt(&["sweep", "-S", "train.lrr=1"]).expect_code(2);
    assert!(
        e.stderr
            .contains("sweep param `train.lrr` is not defined in [params]; did you mean `train.lr`?"),
        "{}",
        e.stderr
    );
    let e = p.amt(&["sweep", "--name", "nope"]).expect_code(2);
    assert!(
        e.stderr.contains("no sweep is called `nope`"),
        "{}",
        e.stderr
    );
}

/// Every file under `dir` (symlinked inputs skipped) with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_same_point_in_two_projects_gives_byte_identical_artifacts_and_metrics() {
    let edits = [("evaluate.baselines = true", "evaluate.baselines = false")];
    let (a, b) = (common::demo_project(&edits), common::demo_project(&edits));
    for p in [&a, &b] {
        p.amt(&[
            "sweep",
            "evaluate",
            "-S",
            "train.lr=1e-3",
            "-S",
            "train.seed=3",
        ])
        .expect_code(0);
    }
    let point = |p: &TestProject| {
        let sweeps = p.path("cache/sweeps");
        let dirs: Vec<_> = std::fs::read_dir(&sweeps).unwrap().flatten().collect();
        assert_eq!(dirs.len(), 1);
        dirs[0].path().join("artifacts")
    };
    let (fa, fb) = (files(&point(&a)), files(&point(&b)));
    assert!(
        fa.contains_key("metrics/evaluate.json")
            && fa.contains_key("train/model/model.safetensors")
            && fa.contains_key("evaluate/metrics.json"),
        "{:?}",
        fa.keys()
    );
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(
            fb[name] == *bytes,
            "{name} differs between the two runs of the same point"
        );
    }
}
