//! Invalid `amt.toml` files: every error names the file, line and column, and
//! the message is snapshot-tested so its wording is reviewed when it changes.

mod common;

use common::TestProject;

fn error(manifest: &str) -> String {
    let p = TestProject::new(manifest);
    std::fs::create_dir_all(p.path("data")).unwrap();
    let run = p.amt(&["status"]).expect_code(2);
    run.stderr
        .replace(&p.root().display().to_string(), "[ROOT]")
}

#[test]
fn syntax_error() {
    insta::assert_snapshot!(error("[stages.a\ncmd = \"true\"\n"), @"error: [ROOT]/amt.toml:1:10: unclosed table, expected `]`");
}

#[test]
fn unknown_key_with_suggestion() {
    insta::assert_snapshot!(error("[stages.train]\ncmd = \"true\"\nouts = [\"m\"]\nparms = [\"lr\"]\n"), @"error: [ROOT]/amt.toml:4:1: unknown key `parms` in [stages.train]; did you mean `params`?");
}

#[test]
fn unknown_top_level_table() {
    insta::assert_snapshot!(error("[stage.train]\ncmd = \"true\"\n"), @"error: [ROOT]/amt.toml:1:2: unknown key `stage` in [stage.train]; did you mean `stages`?");
}

#[test]
fn wrong_type() {
    insta::assert_snapshot!(error("[stages.a]\ncmd = \"true\"\ndeps = \"data\"\n"), @r#"error: [ROOT]/amt.toml:3:8: invalid type: string "data", expected a list of paths, or a table of role = path"#);
}

#[test]
fn cycle_names_its_stages() {
    insta::assert_snapshot!(error(
        "[stages.a]\ncmd = \"x\"\ndeps = [\"c.txt\"]\nouts = [\"a.txt\"]\n\
         [stages.b]\ncmd = \"x\"\ndeps = [\"a.txt\"]\nouts = [\"b.txt\"]\n\
         [stages.c]\ncmd = \"x\"\ndeps = [\"b.txt\"]\nouts = [\"c.txt\"]\n"
    ), @"error: [ROOT]/amt.toml:1:1: the stages form a cycle: a → b → c → a");
}

#[test]
fn two_stages_claim_one_out() {
    insta::assert_snapshot!(error(
        "[stages.a]\ncmd = \"x\"\nouts = [\"model\"]\n[stages.b]\ncmd = \"y\"\nouts = [\"model\"]\n"
    ), @"error: [ROOT]/amt.toml:4:1: stages `a` and `b` claim the same out: `model` and `model`");
}

#[test]
fn out_outside_the_project() {
    insta::assert_snapshot!(error("[stages.a]\ncmd = \"x\"\nouts = [\"/tmp/model\"]\n"),
        @"error: [ROOT]/amt.toml:3:9: stages.a.outs: path `/tmp/model` is absolute; paths are relative to the project root (an out or dep outside the project)");
    insta::assert_snapshot!(error("[stages.a]\ncmd = \"x\"\ndeps = [\"data/../../secret\"]\nouts = [\"m\"]\n"),
        @"error: [ROOT]/amt.toml:3:9: stages.a.deps: path `data/../../secret` contains `..`; paths must stay inside the project (an out or dep outside the project)");
}

#[test]
fn missing_dep_that_no_stage_produces() {
    insta::assert_snapshot!(error("[stages.a]\ncmd = \"x\"\ndeps = [\"data\", \"raw.csv\"]\nouts = [\"m\"]\n"),
        @"error: [ROOT]/amt.toml:3:17: stage `a` depends on `raw.csv`, which does not exist and no stage produces");
}

#[test]
fn undefined_param() {
    insta::assert_snapshot!(error("[params]\ntrain.lr = 1e-3\n[stages.a]\ncmd = \"x\"\nparams = [\"train.rl\"]\nouts = [\"m\"]\n"),
        @"error: [ROOT]/amt.toml:5:11: stages.a.params: `train.rl` is not defined in [params]; did you mean `train.lr`?");
}

#[test]
fn stage_without_a_command() {
    insta::assert_snapshot!(error("[stages.a]\nouts = [\"m\"]\n"),
        @"error: [ROOT]/amt.toml:1:9: stages.a: a stage needs `cmd` (a shell command) or `builtin`");
}

#[test]
fn unknown_builtin() {
    insta::assert_snapshot!(error("[stages.a]\nbuiltin = \"colect\"\nouts = [\"m\"]\n"),
        @"error: [ROOT]/amt.toml:2:11: stages.a.builtin: no built-in stage is called `colect`; did you mean `collect`?");
}

#[test]
fn stage_reading_its_own_out() {
    insta::assert_snapshot!(error("[stages.a]\ncmd = \"x\"\ndeps = [\"m/part\"]\nouts = [\"m\"]\n"),
        @"error: [ROOT]/amt.toml:3:9: stages.a: dep `m/part` overlaps the stage's own out `m`");
}

#[test]
fn missing_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::amt_bin())
        .arg("status")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no amt.toml in"));
}
