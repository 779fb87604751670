//! Built-in stages run through the engine like any command, with named roles,
//! params and their code version in the key.

mod common;

use common::TestProject;

const PIPELINE: &str = r#"
[params]
describe.captions.seed = 1

[stages.collect]
builtin = "collect"
deps = { corpus = "corpus" }
outs = { dir = "out/collect" }

[stages.describe]
builtin = "describe"
params = ["describe"]
deps = { pieces = "out/collect/midi.parquet" }
outs = { dir = "out/texts" }
"#;

fn project(manifest: &str) -> TestProject {
    let p = TestProject::new(manifest);
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/corpus/mma/MMA Tango");
    for entry in std::fs::read_dir(demo).unwrap().flatten() {
        let dst = p.path(&format!(
            "corpus/MMA Tango/{}",
            entry.file_name().to_string_lossy()
        ));
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(entry.path(), dst).unwrap();
    }
    p
}

#[test]
fn built_in_stages_run_cache_and_rerun_only_what_their_params_touch() {
    let p = project(PIPELINE);
    let out = p.run_ok(&[]);
    assert_eq!(
        (out["collect"].as_str(), out["describe"].as_str()),
        ("ran", "ran")
    );
    assert!(p.exists("out/collect/midi.parquet") && p.exists("out/texts/texts.parquet"));
    assert!(
        p.read("cache/logs/collect.log")
            .contains("collect: 3 pieces (0 read leniently), 0 rejected")
    );
    assert!(p.run_ok(&[]).values().all(|o| o == "fresh"));

    p.write("amt.toml", &PIPELINE.replace("seed = 1", "seed = 2"));
    let out = p.run_ok(&[]);
    assert_eq!(
        (out["collect"].as_str(), out["describe"].as_str()),
        ("fresh", "ran")
    );
    let why = p.amt(&["why", "describe"]).expect_code(0).stdout;
    assert!(why.contains("describe is fresh"), "{why}");
}

#[test]
fn a_built_in_stage_names_a_missing_role() {
    let p =
        project("[stages.collect]\nbuiltin = \"collect\"\ndeps = [\"corpus\"]\nouts = [\"out\"]\n");
    let run = p.amt(&["run"]).expect_code(1);
    assert!(
        run.stderr
            .contains("this built-in stage needs named deps, like `deps = { corpus = \"path\" }`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_built_in_stage_rejects_unknown_params_by_name() {
    let p = project(&PIPELINE.replace("seed = 1", "seeed = 1"));
    let run = p.amt(&["run"]).expect_code(1);
    assert!(
        run.stderr
            .contains("invalid [params] describe.captions: unknown field `seeed`, expected one of"),
        "{}",
        run.stderr
    );
}

#[test]
fn stage_list_shows_code_versions() {
    let p = TestProject::new("");
    let out = p.amt(&["stage", "--list"]).expect_code(0).stdout;
    let names: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "collect", "describe", "embed", "cluster", "prepare", "train", "generate", "evaluate"
        ]
    );
    assert!(
        out.lines()
            .all(|l| l.split_whitespace().nth(1).is_some_and(|v| v.len() == 16)),
        "{out}"
    );
}

#[test]
fn embed_runs_once_and_cluster_reruns_when_only_cluster_params_change() {
    let manifest = format!(
        "{PIPELINE}{}",
        r#"
[stages.embed]
builtin = "embed"
params = ["embed"]
deps = { texts = "out/texts/texts.parquet", model = "models/all-MiniLM-L6-v2" }
outs = { dir = "out/embed" }

[stages.cluster]
builtin = "cluster"
params = ["cluster"]
deps = { embeddings = "out/embed/embeddings.parquet", info = "out/embed/embed.json" }
outs = { dir = "out/cluster" }
"#
    )
    .replace(
        "describe.captions.seed = 1",
        "describe.captions.seed = 1\nembed.threads = 2\ncluster.k = 2\ncluster.seed = 0",
    );
    let p = project(&manifest);
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    assert!(
        model.join("model.safetensors").exists(),
        "scripts/test.sh installs the model"
    );
    std::os::unix::fs::symlink(model.parent().unwrap(), p.path("models")).unwrap();

    let out = p.run_ok(&["cluster"]);
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        ["cluster", "collect", "describe", "embed"]
    );
    assert!(out.values().all(|o| o == "ran"), "{out:?}");
    assert!(p.exists("out/cluster/centroids.json") && p.exists("out/cluster/tokens.parquet"));

    p.write(
        "amt.toml",
        &manifest.replace("cluster.seed = 0", "cluster.seed = 1"),
    );
    let out = p.run_ok(&["cluster"]);
    assert_eq!(
        (out["embed"].as_str(), out["cluster"].as_str()),
        ("fresh", "ran"),
        "{out:?}"
    );
}

/// The machine facts a stage checks are the key's, never a variable of the
/// user's shell: collect is keyed with none, so amt tells it so.
#[test]
fn a_users_amt_facts_never_stands_in_for_the_keys() {
    let p = project(PIPELINE);
    let out = p
        .command(&["--json", "run", "collect"])
        .env("AMT_FACTS", "not the key's facts")
        .output()
        .unwrap();
    let outcomes = common::Run::from(out).expect_code(0).outcomes();
    assert_eq!(outcomes["collect"], "ran");
}

/// `amt` beside a stand-in `amt-stage` (a shell script) that answers
/// `--probe` from `probe.json` and runs stages with the real binary.
struct FakeStageBinary {
    dir: tempfile::TempDir,
}

impl FakeStageBinary {
    fn new(versions: &serde_json::Value, facts: &serde_json::Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let real = common::amt_bin();
        let amt = dir.path().join("amt");
        if std::fs::hard_link(&real, &amt).is_err() {
            std::fs::copy(&real, &amt).unwrap();
        }
        let real_stage = real.with_file_name("amt-stage");
        let d = dir.path().display();
        let script = format!(
            "#!/bin/sh\nif [ \"$1\" = --probe ]; then echo probed >> {d}/probes; cat {d}/probe.json; \
             else exec '{}' \"$@\"; fi\n",
            real_stage.display()
        );
        std::fs::write(dir.path().join("amt-stage"), script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("amt-stage"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let fake = Self { dir };
        fake.set(versions, facts);
        fake
    }

    /// Rewrites the probe's answer; `probe.json` is in its watch list, so amt probes again.
    fn set(&self, versions: &serde_json::Value, facts: &serde_json::Value) {
        let probe = serde_json::json!({
            "versions": versions,
            "facts": facts,
            "watch": [self.dir.path().join("probe.json")],
        });
        std::fs::write(self.dir.path().join("probe.json"), probe.to_string()).unwrap();
    }

    fn probes(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("probes")).map_or(0, |s| s.lines().count())
    }

    fn amt(&self, p: &TestProject, args: &[&str]) -> common::Run {
        let out = std::process::Command::new(self.dir.path().join("amt"))
            .args(args)
            .current_dir(p.root())
            .output()
            .unwrap();
        common::Run::from(out)
    }
}

/// This machine's facts, as the real amt-stage reports them.
fn real_facts() -> serde_json::Value {
    let out = std::process::Command::new(common::amt_bin().with_file_name("amt-stage"))
        .arg("--probe")
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["facts"].clone()
}

/// The code versions compiled into this amt, as amt-stage would report them.
fn versions() -> serde_json::Value {
    let p = TestProject::new("");
    let list = p.amt(&["stage", "--list"]).expect_code(0).stdout;
    list.lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (w.next().unwrap().to_owned(), serde_json::Value::from(w.next().unwrap()))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn an_amt_stage_built_from_other_code_is_refused() {
    let mut stale = versions();
    stale["collect"] = "0000000000000000".into();
    let fake = FakeStageBinary::new(&stale, &real_facts());
    let p = project(PIPELINE);
    let run = fake.amt(&p, &["run", "collect"]).expect_code(1);
    assert!(
        run.stderr.contains("was built from other sources than this amt: stage collect has code version")
            && run.stderr.contains("and 0000000000000000 in amt-stage")
            && run.stderr.contains("cargo build --release --bins"),
        "{}",
        run.stderr
    );
    assert!(!p.exists("out/collect"), "the stale binary never ran");
    assert!(!p.exists("cache/ac"), "nothing was cached");
}

/// A built-in stage that uses libtorch depends on the machine's facts: when
/// one changes, it (and only it) goes stale, and a stage keyed with facts
/// that are not the machine's refuses to run.
#[test]
fn machine_facts_enter_the_keys_of_the_stages_that_depend_on_them() {
    let manifest = format!(
        "{PIPELINE}{}",
        r#"
[stages.embed]
builtin = "embed"
params = ["embed"]
deps = { texts = "out/texts/texts.parquet", model = "models/all-MiniLM-L6-v2" }
outs = { dir = "out/embed" }
"#
    )
    .replace("describe.captions.seed = 1", "describe.captions.seed = 1\nembed.threads = 1");
    let p = project(&manifest);
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    std::os::unix::fs::symlink(model.parent().unwrap(), p.path("models")).unwrap();
    let facts = real_facts();
    let fake = FakeStageBinary::new(&versions(), &facts);

    let out = fake.amt(&p, &["--json", "run"]).expect_code(0).outcomes();
    assert!(out.values().all(|o| o == "ran"), "{out:?}");
    assert_eq!(fake.probes(), 1);
    fake.amt(&p, &["run"]).expect_code(0);
    assert_eq!(fake.probes(), 1, "an unchanged machine is not probed again");

    // A probe that says another CPU: embed (and only embed) is stale, and
    // the real amt-stage refuses to run under facts that are not its own.
    let mut other = facts.clone();
    other["cpu"] = "sse-only".into();
    fake.set(&versions(), &other);
    let status = fake.amt(&p, &["status"]).expect_code(0).stdout;
    let cpu = facts["cpu"].as_str().unwrap();
    assert!(
        status.contains(&format!("machine fact cpu changed: {cpu} → sse-only")),
        "{status}"
    );
    let run = fake.amt(&p, &["--json", "run"]).expect_code(1);
    let out = run.outcomes();
    assert_eq!(
        (out["collect"].as_str(), out["describe"].as_str(), out["embed"].as_str()),
        ("fresh", "fresh", "failed"),
        "{out:?}"
    );
    assert!(
        p.read("cache/logs/embed.log")
            .contains(&format!("amt keyed this run for cpu = sse-only, but this machine has {cpu}")),
        "{}",
        p.read("cache/logs/embed.log")
    );
    // The failed run removed embed's outs; the true facts' result comes back from the cache.
    fake.set(&versions(), &facts);
    let out = fake.amt(&p, &["--json", "run"]).expect_code(0).outcomes();
    assert_eq!(out["embed"], "restored", "{out:?}");
}
