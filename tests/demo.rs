//! The demo pipeline end to end on the bundled corpus, with a shortened
//! training run: every built-in stage runs, a rerun is a no-op, and a change
//! reruns exactly the stages downstream of it.

mod common;

use common::TestProject;

fn demo() -> TestProject {
    common::demo_project(&[])
}

const MUSIC: [&str; 8] = [
    "collect", "describe", "embed", "cluster", "prepare", "train", "generate", "evaluate",
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
    let remote = tempfile::tempdir().unwrap();
    let url = remote.path().display().to_string();
    let first = p.run_ok(&["evaluate", "--remote", &url]);
    assert_eq!(ran(&first), MUSIC, "{first:?}");

    // CI with cached artifacts: a second checkout, an empty cache, the same remote.
    let ci = demo();
    let second = ci.run_ok(&["evaluate", "--remote", &url]);
    assert!(
        ran(&second).is_empty(),
        "the second checkout executed {:?}",
        ran(&second)
    );
    assert_eq!(
        ci.read("artifacts/evaluate/metrics.json"),
        p.read("artifacts/evaluate/metrics.json")
    );
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
    // The held-out captions: the test profile samples six of them, each by
    // the model at every guidance scale, strictly, by the untrained model,
    // as random tokens, and scores the captioned pieces themselves.
    let heldout = &metrics["heldout"];
    assert_eq!(heldout["prompts"], 6, "{heldout}");
    let rows: Vec<&str> = heldout["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["system"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            "model",
            "model, guidance 2",
            "model, guidance 4",
            "model, strict, guidance 2",
            "untrained model",
            "random tokens",
            "captioned pieces"
        ]
    );
    let strict = &heldout["systems"][3]["scores"];
    for exact in ["tempo_bin_match", "time_signature_match"] {
        let v = &strict[exact];
        assert!(v.is_null() || v["mean"] == 1.0, "strict writes the {exact} asked: {v}");
    }
    let report = p.read("artifacts/evaluate/report.md");
    assert!(
        report.contains("![piano roll](rolls/01-")
            && report.contains("quality level")
            && report.contains("## Held-out captions")
            && report.contains("![adherence by guidance scale](guidance.png)"),
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
            "--wav",
        ])
        .expect_code(0);
    assert!(out.stdout.contains("jig.mid"), "{}", out.stdout);
    // --wav renders it beside the MIDI file: a 16-bit stereo WAV, never clipped
    // (tests/studio.rs checks sound against a file of known length).
    assert!(out.stdout.contains("jig.wav"), "{}", out.stdout);
    let wav = std::fs::read(p.path("jig.wav")).unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
    assert_eq!((reader.spec().channels, reader.spec().bits_per_sample), (2, 16));
    let peak = reader.into_samples::<i16>().map(|s| s.unwrap().unsigned_abs()).max().unwrap();
    assert!(peak < i16::MAX as u16, "peak {peak}");
    assert!(
        out.stdout.contains(
            "understood: tempo any; key D major; meter any; instruments any; semantic token "
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("not read as attributes (only the semantic token hears them): cheerful, jig"),
        "{}",
        out.stdout
    );
    assert_eq!(&std::fs::read(p.path("jig.mid")).unwrap()[..4], b"MThd");

    // The model bundle is self-contained: a copy far from the project (and
    // from models/) generates on its own.
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("bundle");
    let status = std::process::Command::new("cp")
        .arg("-rL")
        .arg(p.path("artifacts/train"))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let out = common::Run::from(
        std::process::Command::new(common::amt_bin())
            .args(["generate", "--text", "a slow waltz", "--out", "waltz.mid"])
            .args(["--max-tokens", "64", "--threads", "1", "--model"])
            .arg(&copy)
            .current_dir(elsewhere.path())
            .output()
            .unwrap(),
    )
    .expect_code(0);
    assert_eq!(
        &std::fs::read(elsewhere.path().join("waltz.mid")).unwrap()[..4],
        b"MThd",
        "{}",
        out.stderr
    );
}

#[test]
fn a_killed_training_run_resumes_from_its_last_checkpoint() {
    let p = common::demo_project(&[(
        "train.steps = 20",
        "train.steps = 60\ntrain.checkpoint_every = 10",
    )]);
    p.run_ok(&["prepare"]);
    let mut child = p
        .command(&["run", "train"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let latest = p.path("cache/scratch/train/work/checkpoints/latest");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !latest.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before it could be interrupted"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saved = std::fs::read_to_string(&latest).unwrap();
    let step: u64 = saved.trim().trim_start_matches("step-").parse().unwrap();
    assert!(step < 60, "killed before the end (checkpoint {saved})");

    assert_eq!(p.run_ok(&["train"])["train"], "ran");
    let log = p.read("cache/logs/train.log");
    assert!(
        log.contains(&format!("resuming from the checkpoint at step {step}")),
        "{log}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&p.read("artifacts/train/train.json")).unwrap();
    assert_eq!(summary["steps"], 60);
}

/// Under a memory limit too small for its micro-batch, training halves the
/// micro-batch (doubling accumulation) until it fits, and completes.
#[test]
fn training_that_runs_out_of_memory_halves_its_micro_batch_and_completes() {
    let p = common::demo_project(&[
        ("train.steps = 20", "train.steps = 3\ntrain.checkpoint_every = 1\ntrain.eval_every = 100"),
        ("train.batch_size = 16", "train.batch_size = 256"),
        ("outs = { dir = \"artifacts/train\" }", "outs = { dir = \"artifacts/train\" }\nmem = \"2G\""),
    ]);
    let out = p.run_ok(&["train"]);
    assert_eq!(out["train"], "ran");
    let log = p.read("cache/logs/train.log");
    assert!(
        log.contains("train: out of memory at step 0 with micro-batches of 256: resuming from the last checkpoint with micro-batches of 128 × 2"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "the expected failures are not printed as panics:\n{log}");
    let metrics: serde_json::Value = serde_json::from_str(&p.read("artifacts/metrics/train.json")).unwrap();
    let micro = metrics["micro_batch"].as_u64().unwrap();
    assert!(micro < 256 && 256 % micro == 0, "{metrics}");
    assert_eq!(metrics["steps"], 3);
    assert_eq!(metrics["out_of_memory"][0]["micro_batch"], 256);
    // The ledger has it too, with the stage's metrics.
    let runs = p.amt(&["--json", "runs", "--stages", "--stage", "train"]).expect_code(0).stdout;
    assert!(runs.contains("out_of_memory"), "{runs}");
}
