//! The demo pipeline end to end on the bundled corpus, with a shortened
//! training run: every built-in stage runs, a rerun is a no-op, and a change
//! reruns exactly the stages downstream of it.

mod common;

use common::TestProject;

fn demo() -> TestProject {
    common::demo_project(&[])
}

const MUSIC: [&str; 8] = [
    "collect", "describe", "embed", "process", "prepare", "train", "generate", "evaluate",
];

fn ran(outcomes: &std::collections::BTreeMap<String, String>) -> Vec<&str> {
    MUSIC
        .iter()
        .copied()
        .filter(|s| outcomes.get(*s).map(String::as_str) == Some("ran"))
        .collect()
}

#[test]
fn the_demo_runs_end_to_end_and_reruns_only_what_a_change_touches() {
    let p = demo();
    let first = p.run_ok(&["evaluate"]);
    assert_eq!(ran(&first), MUSIC, "{first:?}");
    for f in [
        "artifacts/evaluate/metrics.json",
        "artifacts/evaluate/report.md",
        "artifacts/evaluate/pieces.parquet",
        "artifacts/train/hf/model.safetensors",
        "artifacts/train/loss.png",
    ] {
        assert!(p.exists(f), "{f} is missing");
    }
    let metrics: serde_json::Value =
        serde_json::from_str(&p.read("artifacts/evaluate/metrics.json")).unwrap();
    let systems: Vec<&String> = metrics["systems"].as_object().unwrap().keys().collect();
    assert_eq!(systems, ["model", "random tokens", "untrained model"]);
    assert_eq!(
        metrics["pieces"], 8,
        "one piece per prompt in demo/prompts.txt"
    );
    let report = p.read("artifacts/evaluate/report.md");
    assert!(
        report.contains("![piano roll](rolls/01-") && report.contains("quality level"),
        "{report}"
    );

    // A rerun restores nothing and runs nothing.
    assert!(p.run_ok(&["evaluate"]).values().all(|o| o == "fresh"));

    // Forcing evaluate reproduces metrics.json byte for byte.
    let before = p.read("artifacts/evaluate/metrics.json");
    p.run_ok(&["--force", "evaluate"]);
    assert_eq!(p.read("artifacts/evaluate/metrics.json"), before);

    // A training parameter: train, generate and evaluate.
    let manifest = p.read("amt.toml");
    p.write(
        "amt.toml",
        &manifest.replace("train.seed = 0", "train.seed = 1"),
    );
    assert_eq!(
        ran(&p.run_ok(&["evaluate"])),
        ["train", "generate", "evaluate"]
    );

    // A caption template: everything from the texts on, not collect.
    let manifest = p.read("amt.toml");
    let templates = "describe.captions.templates = [\"a {mood} {form}[ in {key}][, {tempo}]\"]\n";
    p.write(
        "amt.toml",
        &manifest.replace(
            "describe.captions.seed = 0\n",
            &format!("describe.captions.seed = 0\n{templates}"),
        ),
    );
    assert_eq!(ran(&p.run_ok(&["evaluate"])), &MUSIC[1..]);

    // amt generate uses the project's model.
    let out = p
        .amt(&[
            "generate",
            "--text",
            "a cheerful jig in D major",
            "--out",
            "jig.mid",
            "--max-tokens",
            "64",
            "--threads",
            "1",
        ])
        .expect_code(0);
    assert!(out.stdout.contains("jig.mid"), "{}", out.stdout);
    assert_eq!(&std::fs::read(p.path("jig.mid")).unwrap()[..4], b"MThd");
}
