//! `amt status`, `amt why` and `amt dag`, snapshot-tested.

mod common;

use common::{TestProject, settle};

const PIPELINE: &str = r#"
[params]
prepare.size = 10
train.lr = 3e-4
train.layers = 2

[stages.prepare]
cmd = "mkdir -p prepared; cp -r data/* prepared/; echo $AMT_PARAM_PREPARE_SIZE > prepared/size"
deps = ["data"]
params = ["prepare.size"]
outs = ["prepared"]

[stages.train]
cmd = "cat prepared/* > model.txt; echo $AMT_PARAMS >> model.txt"
deps = ["prepared", "train.sh"]
params = ["train"]
env = ["SEED"]
outs = ["model.txt"]

[stages.evaluate]
cmd = "wc -l model.txt > metrics.txt"
deps = ["model.txt"]
metrics = ["metrics.txt"]

[stages.report]
cmd = "cat metrics.txt > report.md"
deps = ["metrics.txt"]
outs = ["report.md"]
"#;

fn project() -> TestProject {
    let p = TestProject::new(PIPELINE);
    p.write("data/a.csv", "1\n");
    p.write("data/b.csv", "2\n");
    p.write("data/sub/c.csv", "3\n");
    p.write("train.sh", "# trainer\n");
    p
}

#[test]
fn dag_in_three_formats() {
    let p = project();
    let text = p.amt(&["dag"]).expect_code(0).stdout;
    let dot = p.amt(&["dag", "--format", "dot"]).expect_code(0).stdout;
    let mermaid = p.amt(&["dag", "--format", "mermaid"]).expect_code(0).stdout;
    insta::assert_snapshot!("dag_text", text);
    insta::assert_snapshot!("dag_dot", dot);
    insta::assert_snapshot!("dag_mermaid", mermaid);
}

#[test]
fn status_before_and_after_changes() {
    let p = project();
    let s = p.insta();
    s.bind(|| {
        insta::assert_snapshot!("status_never_run", p.amt(&["status"]).expect_code(0).stdout)
    });
    p.amt(&["run"]).expect_code(0);
    settle();
    s.bind(|| insta::assert_snapshot!("status_fresh", p.amt(&["status"]).expect_code(0).stdout));

    p.write(
        "amt.toml",
        &PIPELINE.replace("train.lr = 3e-4", "train.lr = 1e-3"),
    );
    p.write("data/sub/c.csv", "33\n");
    std::fs::remove_file(p.path("report.md")).unwrap();
    s.bind(|| insta::assert_snapshot!("status_stale", p.amt(&["status"]).expect_code(0).stdout));
    s.bind(|| {
        insta::assert_snapshot!(
            "status_stale_json",
            p.amt(&["status", "--json"]).expect_code(0).stdout
        )
    });
}

#[test]
fn why_lists_every_change() {
    let p = project();
    p.amt(&["run"]).expect_code(0);
    let s = p.insta();
    s.bind(|| insta::assert_snapshot!("why_fresh", p.amt(&["why", "train"]).expect_code(0).stdout));

    // Change a param, a file inside a dep directory, add and remove files, the command and an env var.
    p.write(
        "amt.toml",
        &PIPELINE
            .replace("train.lr = 3e-4", "train.lr = 1e-3")
            .replace(
                "echo $AMT_PARAMS >> model.txt",
                "echo $AMT_PARAMS > model.txt",
            ),
    );
    p.amt(&["run", "prepare"]).expect_code(0);
    p.write("data/sub/c.csv", "33\n");
    p.write("data/d.csv", "4\n");
    std::fs::remove_file(p.path("data/a.csv")).unwrap();
    p.amt(&["run", "prepare"]).expect_code(0);
    p.write("train.sh", "# trainer v2\n");
    let run = p
        .command(&["why", "train"])
        .env("SEED", "7")
        .output()
        .unwrap();
    assert!(run.status.success());
    s.bind(|| insta::assert_snapshot!("why_stale", String::from_utf8_lossy(&run.stdout)));

    let downstream = p.amt(&["why", "report"]).expect_code(0).stdout;
    s.bind(|| insta::assert_snapshot!("why_downstream", downstream));
}

#[test]
fn why_reports_a_restorable_result() {
    let p = project();
    p.amt(&["run"]).expect_code(0);
    p.write(
        "amt.toml",
        &PIPELINE.replace("train.layers = 2", "train.layers = 4"),
    );
    p.amt(&["run"]).expect_code(0);
    p.write("amt.toml", PIPELINE);
    let s = p.insta();
    s.bind(|| {
        insta::assert_snapshot!(
            "why_restorable",
            p.amt(&["why", "train"]).expect_code(0).stdout
        )
    });
}
