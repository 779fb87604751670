//! Helpers for integration tests: a temp project and a way to run `amt` in it.
#![allow(dead_code)]

pub mod moto;
pub mod slurm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A throwaway project directory with an `amt.toml`.
pub struct TestProject {
    dir: tempfile::TempDir,
}

/// What one `amt` invocation did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The outcome of a finished command.
    pub fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with the output unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The `summary` event of a `--json` run.
    pub fn summary(&self) -> serde_json::Value {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "summary")
            .unwrap_or_else(|| panic!("no summary in:\n{}\n{}", self.stdout, self.stderr))
    }

    /// Stage → outcome, from the `finished` events of a `--json` run.
    pub fn outcomes(&self) -> std::collections::BTreeMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "finished")
            .map(|v| {
                (
                    v["stage"].as_str().unwrap().to_owned(),
                    v["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

pub fn amt_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_amt"))
}

impl TestProject {
    /// A project with this `amt.toml`.
    pub fn new(manifest: &str) -> Self {
        let p = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        p.write("amt.toml", manifest);
        p
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// A command for `amt ARGS` in this project.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(amt_bin());
        c.args(args).current_dir(self.root()).env_remove("AMT_LOG");
        c
    }

    /// Runs `amt ARGS` to completion.
    pub fn amt(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("running amt"))
    }

    /// Runs `amt run --json ARGS`, expecting success, and returns stage → outcome.
    pub fn run_ok(&self, args: &[&str]) -> std::collections::BTreeMap<String, String> {
        let mut all = vec!["--json", "run"];
        all.extend_from_slice(args);
        self.amt(&all).expect_code(0).outcomes()
    }

    /// How many times a stage's command has run, counted by lines it appends to `runs/<stage>`.
    pub fn runs(&self, stage: &str) -> usize {
        std::fs::read_to_string(self.path(&format!("runs/{stage}")))
            .map_or(0, |s| s.lines().count())
    }

    /// Insta settings that hide the temp path and timings.
    pub fn insta(&self) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        let root = regex_escape(&self.root().display().to_string());
        s.add_filter(&root, "[ROOT]");
        s.add_filter(r"\b\d+(\.\d+)?(ms|s)\b", "[TIME]");
        s.add_filter(r"action [0-9a-f]{8}", "action [KEY]");
        s
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// Lets file timestamps age past the stat cache's racy window.
pub fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(150));
}

/// A copy of the repository's demo project (amt.toml, corpus, prompts, the
/// encoder), training for 20 steps, writing one short piece per prompt and
/// sampling six short held-out captions,
/// with further `(from, to)` edits to its amt.toml.
pub fn demo_project(edits: &[(&str, &str)]) -> TestProject {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(repo.join("amt.toml")).unwrap();
    let mut short = manifest.clone();
    for (from, to) in [
        ("train.steps = 600", "train.steps = 20"),
        ("generate.num = 4", "generate.num = 1"),
        ("generate.max_tokens = 512", "generate.max_tokens = 96"),
        ("evaluate.heldout_prompts = 0", "evaluate.heldout_prompts = 6"),
        ("evaluate.heldout_tokens = 256", "evaluate.heldout_tokens = 64"),
    ]
    .iter()
    .chain(edits)
    {
        assert!(
            short.contains(from),
            "amt.toml has no `{from}`; update the tests"
        );
        short = short.replacen(from, to, 1);
    }
    let p = TestProject::new(&short);
    for dir in ["data/corpus", "demo"] {
        for entry in walkdir::WalkDir::new(repo.join(dir))
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
        {
            let rel = entry.path().strip_prefix(repo).unwrap();
            let dst = p.root().join(rel);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::copy(entry.path(), dst).unwrap();
        }
    }
    let encoder = repo
        .join("models/all-MiniLM-L6-v2")
        .canonicalize()
        .expect("models/all-MiniLM-L6-v2 (scripts/setup.sh links it)");
    std::fs::create_dir_all(p.path("models")).unwrap();
    std::os::unix::fs::symlink(encoder, p.path("models/all-MiniLM-L6-v2")).unwrap();
    p
}
