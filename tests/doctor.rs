//! `amt doctor`: one line per check, the fix where something is wrong, and an
//! exit code CI can use; `--deep` checks the cache, `amt gc --repair` mends it.

mod common;

use std::net::TcpListener;

use common::TestProject;

/// The checks of a `--json` report, by name.
fn checks(run: &common::Run) -> serde_json::Map<String, serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout, run.stderr));
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

const PIPELINE: &str = r#"
[stages.copy]
cmd = "cp data/x.txt out.txt"
deps = ["data/x.txt"]
outs = ["out.txt"]
"#;

#[test]
fn a_healthy_project_passes_every_check() {
    let p = TestProject::new(PIPELINE);
    p.write("data/x.txt", "x");
    let run = p.amt(&["--json", "doctor"]).expect_code(0);
    let c = checks(&run);
    for name in ["amt-stage", "libtorch", "inputs", "disk", "memory", "lock"] {
        assert_ne!(c[name]["status"], "fail", "{name}: {}", c[name]);
    }
    assert_eq!(c["inputs"]["status"], "ok");
    assert_eq!(c["project"]["status"], "ok");
    assert_eq!(c["lock"]["detail"], "free");
    assert_eq!(c["remote"]["status"], "skip");
    let human = p.amt(&["doctor"]).expect_code(0).stdout;
    assert!(human.lines().any(|l| l.starts_with("ok    inputs")), "{human}");
}

#[test]
fn a_broken_link_to_an_input_fails_and_says_how_to_fix_it() {
    let p = TestProject::new(
        "[stages.embed]\ncmd = \"ls models/enc > out.txt\"\ndeps = [\"models/enc\"]\nouts = [\"out.txt\"]\n",
    );
    std::fs::create_dir_all(p.path("models")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/venv/model", p.path("models/enc")).unwrap();
    // amt itself refuses the pipeline; doctor says so as one of its checks.
    let run = p.amt(&["--json", "doctor"]).expect_code(1);
    let c = checks(&run);
    assert_eq!(c["project"]["status"], "fail");
    assert!(
        c["project"]["detail"]
            .as_str()
            .unwrap()
            .contains("amt.toml:3:9: stage `embed` depends on `models/enc`, which does not exist"),
        "{}",
        c["project"]
    );
    assert_eq!(c["amt-stage"]["status"], "ok", "the machine is still checked");

    // Installed but empty (an interrupted install): a warning that says where the link leads.
    std::fs::remove_file(p.path("models/enc")).unwrap();
    std::fs::create_dir_all(p.path("venv/model")).unwrap();
    std::os::unix::fs::symlink(p.path("venv/model"), p.path("models/enc")).unwrap();
    let run = p.amt(&["--json", "doctor"]).expect_code(0);
    let inputs = &checks(&run)["inputs"];
    assert_eq!(inputs["status"], "warn", "{inputs}");
    let detail = inputs["detail"].as_str().unwrap();
    assert!(detail.contains("models/enc →") && detail.contains("empty: models/enc (of embed)"), "{detail}");
}

#[test]
fn a_stage_that_declares_more_memory_than_the_machine_has_fails() {
    let p = TestProject::new(&PIPELINE.replace("outs = [\"out.txt\"]", "outs = [\"out.txt\"]\nmem = \"64T\""));
    p.write("data/x.txt", "x");
    let run = p.amt(&["--json", "doctor"]).expect_code(1);
    let memory = &checks(&run)["memory"];
    assert_eq!(memory["status"], "fail", "{memory}");
    assert!(memory["fix"].as_str().unwrap().contains("stages.copy.mem"), "{memory}");
}

#[test]
fn a_held_lock_names_its_holder() {
    let p = TestProject::new("[stages.slow]\ncmd = \"touch started; sleep 30\"\nouts = [\"x\"]\n");
    let mut child = p.command(&["run"]).spawn().unwrap();
    while !p.exists("started") {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = p.amt(&["--json", "doctor"]).expect_code(0);
    let lock = &checks(&run)["lock"];
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(lock["status"], "warn");
    assert_eq!(lock["detail"], format!("held by pid {}", child.id()));
}

#[test]
fn the_remote_is_timed_or_reported_unreachable() {
    let remote = tempfile::tempdir().unwrap();
    let p = TestProject::new(&format!("[remote]\nurl = \"{}\"\n{PIPELINE}", remote.path().display()));
    p.write("data/x.txt", "x");
    let run = p.amt(&["--json", "doctor"]).expect_code(0);
    let r = &checks(&run)["remote"];
    assert_eq!(r["status"], "ok", "{r}");
    assert!(r["detail"].as_str().unwrap().contains(" answers in "), "{r}");

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = TestProject::new(&format!("[remote]\nurl = \"s3://nowhere/c\"\n{PIPELINE}"));
    p.write("data/x.txt", "x");
    let out = p
        .command(&["--json", "doctor"])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let run = common::Run::from(out).expect_code(1);
    let r = &checks(&run)["remote"];
    assert_eq!(r["status"], "fail", "{r}");
    assert!(r["detail"].as_str().unwrap().contains("unreachable"), "{r}");
}

/// Bit rot under cache/: `--deep` finds the object and the result that needs
/// it, `amt gc --repair` removes both, and the stage then runs again.
#[test]
fn deep_finds_a_damaged_object_and_repair_removes_it() {
    use std::os::unix::fs::PermissionsExt;
    let p = TestProject::new(PIPELINE);
    p.write("data/x.txt", "precious");
    p.run_ok(&[]);
    assert_eq!(checks(&p.amt(&["--json", "doctor", "--deep"]).expect_code(0))["cache"]["status"], "ok");

    let digest = blake3::hash(b"precious").to_hex().to_string();
    let object = p.path(&format!("cache/cas/blake3/{}/{}", &digest[..2], &digest[2..]));
    std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&object, "rotten").unwrap();
    let run = p.amt(&["--json", "doctor", "--deep"]).expect_code(1);
    let cache = &checks(&run)["cache"];
    assert!(
        cache["detail"].as_str().unwrap().starts_with("1 damaged objects and 1 damaged action results"),
        "{cache}"
    );
    let repaired = p.amt(&["gc", "--repair"]).expect_code(0).stdout;
    assert!(repaired.contains("removed 2 files"), "{repaired}");
    assert_eq!(checks(&p.amt(&["--json", "doctor", "--deep"]).expect_code(0))["cache"]["status"], "ok");

    // Without the damaged result, a lost output is rebuilt rather than restored from rot.
    std::fs::remove_file(p.path("out.txt")).unwrap();
    assert_eq!(p.run_ok(&[])["copy"], "ran");
    assert_eq!(p.read("out.txt"), "precious");
}
