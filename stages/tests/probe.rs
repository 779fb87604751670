//! `amt-stage --probe`: the code versions and machine facts the engine keys
//! built-in stages with, and the handshake that refuses a mismatched binary.

use std::process::Command;

fn amt_stage() -> Command {
    Command::new(env!("CARGO_BIN_EXE_amt-stage"))
}

#[test]
fn the_probe_reports_versions_and_the_facts_libtorch_acts_on() {
    let out = amt_stage()
        .arg("--probe")
        .env("ATEN_CPU_CAPABILITY", "default")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let probe: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for b in amt_stages::BUILTINS {
        assert_eq!(probe["versions"][b.name], b.version, "{probe}");
    }
    // libtorch honours ATEN_CPU_CAPABILITY, so the fact must follow it.
    assert_eq!(probe["facts"]["cpu"], "default", "{probe}");
    let libtorch = probe["facts"]["libtorch"].as_str().unwrap();
    assert!(libtorch.starts_with("2.13.0"), "the pinned libtorch: {libtorch}");
    assert!(probe["facts"]["font"].as_str().is_some_and(|f| !f.is_empty()));
    assert!(!probe["watch"].as_array().unwrap().is_empty());
}

#[test]
fn a_stage_keyed_with_other_code_refuses_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = amt_stage()
        .arg("collect")
        .env("AMT_CODE_VERSION", "0123456789abcdef")
        .env("AMT_PROJECT_ROOT", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("amt expects code version 0123456789abcdef")
            && err.contains("rebuild both: cargo build --release --bins"),
        "{err}"
    );
}
