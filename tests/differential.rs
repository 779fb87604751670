//! Differential testing against clean builds, the test Bazel and Shake are
//! trusted for: random small pipelines, random sequences of edits (dep
//! contents, params, commands, env values, role bindings, dep order, stage
//! names, CPU shares, outs moved between `outs` and `metrics`, stages added
//! and removed, reverts to an earlier state, outs deleted or edited by hand,
//! `kill -9` mid-run), and after every step each output of an incremental
//! `amt run` must equal the output of a from-scratch build in a fresh
//! directory.
//!
//! Every stage's output is a function of exactly what it is given (its
//! command text, deps, bindings, params, declared env and the variables amt
//! sets), so any difference is a stale result reused or a fresh one lost. `AMT_DIFF_CASES` sets the number
//! of sequences (default 100); `scripts/differential.sh` runs thousands.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use proptest::prelude::*;

/// Source files stages can depend on.
const SOURCES: usize = 3;
/// Params and env variables stages can declare.
const KNOBS: usize = 2;

#[derive(Clone, Debug)]
enum Dep {
    Source(usize),
    /// The output of an earlier stage.
    Stage(usize),
}

#[derive(Clone, Debug)]
struct StageSpec {
    /// A constant in the command text.
    k: u8,
    deps: Vec<Dep>,
    /// Deps bound to roles (`deps = { r0 = …, r1 = … }`) instead of a list.
    named: bool,
    params: Vec<usize>,
    env: Vec<usize>,
    /// Part of the stage's name (`s0_3`).
    tag: u8,
    cpus: u32,
    /// Its second output is declared under `metrics` rather than `outs`.
    metric: bool,
}

#[derive(Clone, Debug)]
struct State {
    stages: Vec<StageSpec>,
    sources: [u8; SOURCES],
    params: [i8; KNOBS],
    env: [Option<u8>; KNOBS],
}

#[derive(Clone, Debug)]
enum Edit {
    Source(usize, u8),
    Param(usize, i8),
    Command(usize, u8),
    Env(usize, Option<u8>),
    /// Rotate a stage's role bindings.
    SwapRoles(usize),
    /// Rotate a stage's deps, keeping them a list or a table as they are.
    Reorder(usize),
    Rename(usize, u8),
    Cpus(usize, u32),
    /// Move a stage's second output between `outs` and `metrics`.
    FlipMetric(usize),
    AddStage(StageSpec),
    RemoveLast,
    /// Back to the state this many steps ago.
    Revert(usize),
    DeleteOut(usize),
    /// Replace an out's file, or append to it in place.
    EditOut(usize, bool),
    /// `kill -9` amt this many milliseconds into a run.
    Kill(u64),
}

fn stage_spec(earlier: usize) -> impl Strategy<Value = StageSpec> {
    let dep = if earlier == 0 {
        (0..SOURCES).prop_map(Dep::Source).boxed()
    } else {
        prop_oneof![
            (0..SOURCES).prop_map(Dep::Source),
            (0..earlier).prop_map(Dep::Stage)
        ]
        .boxed()
    };
    (
        any::<u8>(),
        prop::collection::vec(dep, 0..=3),
        any::<bool>(),
        prop::collection::vec(0..KNOBS, 0..=2),
        prop::collection::vec(0..KNOBS, 0..=2),
        (0u8..3, 1u32..=3, any::<bool>()),
    )
        .prop_map(|(k, mut deps, named, mut params, mut env, (tag, cpus, metric))| {
            // A path may be declared once.
            let mut seen = Vec::new();
            deps.retain(|d| {
                let p = dep_path(d);
                !seen.contains(&p) && {
                    seen.push(p);
                    true
                }
            });
            params.sort();
            params.dedup();
            env.sort();
            env.dedup();
            StageSpec {
                k,
                deps,
                named,
                params,
                env,
                tag,
                cpus,
                metric,
            }
        })
}

fn state() -> impl Strategy<Value = State> {
    (2usize..=5)
        .prop_flat_map(|n| {
            let stages: Vec<_> = (0..n).map(|i| stage_spec(i).boxed()).collect();
            (
                stages,
                any::<[u8; SOURCES]>(),
                any::<[i8; KNOBS]>(),
                any::<[Option<u8>; KNOBS]>(),
            )
        })
        .prop_map(|(stages, sources, params, env)| State {
            stages,
            sources,
            params,
            env,
        })
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (0..SOURCES, any::<u8>()).prop_map(|(f, v)| Edit::Source(f, v)),
        2 => (0..KNOBS, any::<i8>()).prop_map(|(p, v)| Edit::Param(p, v)),
        2 => (0usize..5, any::<u8>()).prop_map(|(s, k)| Edit::Command(s, k)),
        2 => (0..KNOBS, any::<Option<u8>>()).prop_map(|(e, v)| Edit::Env(e, v)),
        2 => (0usize..5).prop_map(Edit::SwapRoles),
        1 => (0usize..5).prop_map(Edit::Reorder),
        1 => (0usize..5, 0u8..3).prop_map(|(s, t)| Edit::Rename(s, t)),
        1 => (0usize..5, 1u32..=3).prop_map(|(s, c)| Edit::Cpus(s, c)),
        1 => (0usize..5).prop_map(Edit::FlipMetric),
        1 => stage_spec(5).prop_map(Edit::AddStage),
        1 => Just(Edit::RemoveLast),
        2 => (1usize..4).prop_map(Edit::Revert),
        1 => (0usize..5).prop_map(Edit::DeleteOut),
        1 => (0usize..5, any::<bool>()).prop_map(|(s, replace)| Edit::EditOut(s, replace)),
        1 => (0u64..40).prop_map(Edit::Kill),
    ]
}

fn dep_path(d: &Dep) -> String {
    match d {
        Dep::Source(f) => format!("src/f{f}.txt"),
        Dep::Stage(s) => out_path(*s),
    }
}

fn out_path(stage: usize) -> String {
    format!("o/s{stage}.txt")
}

fn second_path(stage: usize) -> String {
    format!("o/s{stage}.m")
}

impl State {
    /// `amt.toml`. Each command writes its constant, its bindings, params and
    /// declared env, then its deps' contents.
    fn manifest(&self) -> String {
        let mut m = String::from("[params]\n");
        for (i, v) in self.params.iter().enumerate() {
            m.push_str(&format!("p{i} = {v}\n"));
        }
        for (i, s) in self.stages.iter().enumerate() {
            // Deps on stages that no longer exist (after a removal) are dropped.
            let deps: Vec<String> = s
                .deps
                .iter()
                .filter(|d| !matches!(d, Dep::Stage(j) if *j >= i || *j >= self.stages.len()))
                .map(dep_path)
                .collect();
            let mut cmd = format!(
                "mkdir -p o; echo $AMT_STAGE > {}; {{ echo k{}; echo \\\"$AMT_DEPS\\\"; echo \\\"$AMT_OUTS $AMT_METRICS\\\"; \
                 echo \\\"$AMT_PARAMS\\\"; echo $AMT_STAGE $AMT_CPUS $OMP_NUM_THREADS;",
                second_path(i),
                s.k
            );
            for e in &s.env {
                cmd.push_str(&format!(" echo E{e}=${{AMT_DT_E{e}-unset}};"));
            }
            // In path order, so that rebinding roles leaves the command text alone.
            let mut sorted = deps.clone();
            sorted.sort();
            for d in &sorted {
                cmd.push_str(&format!(" cat {d};"));
            }
            cmd.push_str(&format!(" }} > {}", out_path(i)));
            m.push_str(&format!("\n[stages.s{i}_{}]\ncmd = \"{cmd}\"\ncpus = {}\n", s.tag, s.cpus));
            if s.named {
                let roles: Vec<String> = deps
                    .iter()
                    .enumerate()
                    .map(|(r, d)| format!("r{r} = \"{d}\""))
                    .collect();
                m.push_str(&format!("deps = {{ {} }}\n", roles.join(", ")));
            } else {
                let list: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
                m.push_str(&format!("deps = [{}]\n", list.join(", ")));
            }
            let params: Vec<String> = s.params.iter().map(|p| format!("\"p{p}\"")).collect();
            m.push_str(&format!("params = [{}]\n", params.join(", ")));
            let env: Vec<String> = s.env.iter().map(|e| format!("\"AMT_DT_E{e}\"")).collect();
            m.push_str(&format!("env = [{}]\n", env.join(", ")));
            if s.metric {
                m.push_str(&format!("outs = [\"{}\"]\nmetrics = [\"{}\"]\n", out_path(i), second_path(i)));
            } else {
                m.push_str(&format!("outs = [\"{}\", \"{}\"]\n", out_path(i), second_path(i)));
            }
        }
        m
    }

    /// Writes the manifest and sources into `dir`.
    fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        write_if_changed(&dir.join("amt.toml"), self.manifest().as_bytes());
        for (i, v) in self.sources.iter().enumerate() {
            let text = format!("source {i}: {v}\n");
            write_if_changed(&dir.join(format!("src/f{i}.txt")), text.as_bytes());
        }
    }

    fn env(&self) -> Vec<(String, Option<String>)> {
        self.env
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("AMT_DT_E{i}"), v.map(|v| v.to_string())))
            .collect()
    }

    fn apply(&mut self, e: &Edit) {
        let n = self.stages.len();
        match e {
            Edit::Source(f, v) => self.sources[*f] = *v,
            Edit::Param(p, v) => self.params[*p] = *v,
            Edit::Command(s, k) => self.stages[s % n].k = *k,
            Edit::Env(i, v) => self.env[*i] = *v,
            Edit::SwapRoles(s) => {
                let s = &mut self.stages[s % n];
                if s.deps.len() > 1 {
                    s.deps.rotate_left(1);
                    s.named = true;
                }
            }
            Edit::Reorder(s) => {
                let deps = &mut self.stages[s % n].deps;
                if !deps.is_empty() {
                    deps.rotate_left(1);
                }
            }
            Edit::Rename(s, t) => self.stages[s % n].tag = *t,
            Edit::Cpus(s, c) => self.stages[s % n].cpus = *c,
            Edit::FlipMetric(s) => self.stages[s % n].metric ^= true,
            Edit::AddStage(spec) if n < 6 => self.stages.push(spec.clone()),
            Edit::RemoveLast if n > 1 => {
                self.stages.pop();
            }
            _ => {}
        }
    }
}

/// Writes only when the bytes differ, as an editor that saves an unchanged
/// file would not.
fn write_if_changed(path: &Path, bytes: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        std::fs::write(path, bytes).unwrap();
    }
}

fn amt(dir: &Path, state: &State, args: &[&str]) -> Command {
    let mut c = Command::new(common::amt_bin());
    c.args(args).current_dir(dir).env_remove("AMT_LOG");
    for (k, v) in state.env() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

fn run_ok(dir: &Path, state: &State, jobs: &str) {
    let out = amt(dir, state, &["run", "-q", "-j", jobs]).output().unwrap();
    assert!(
        out.status.success(),
        "amt run failed in {}:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr),
        state.manifest()
    );
}

fn outputs(dir: &Path, state: &State) -> Vec<(String, String)> {
    (0..state.stages.len())
        .flat_map(|i| [out_path(i), second_path(i)])
        .map(|p| {
            let text = std::fs::read_to_string(dir.join(&p)).unwrap_or_else(|e| format!("<{e}>"));
            (p, text)
        })
        .collect()
}

/// Runs one sequence; returns the first divergence, if any.
fn check_sequence(start: State, edits: Vec<Edit>, jobs: &str) -> Result<(), TestCaseError> {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let mut clean: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut history = vec![start.clone()];
    let mut state = start;
    state.write(dir);
    run_ok(dir, &state, jobs);
    for (step, e) in edits.iter().enumerate() {
        match e {
            Edit::Revert(back) => {
                state = history[history.len().saturating_sub(*back).min(history.len() - 1)].clone()
            }
            Edit::DeleteOut(s) => {
                let _ = std::fs::remove_file(dir.join(out_path(s % state.stages.len())));
            }
            Edit::EditOut(s, replace) => {
                let p = dir.join(out_path(s % state.stages.len()));
                if *replace {
                    let _ = std::fs::remove_file(&p);
                    let _ = std::fs::write(&p, "edited by hand\n");
                } else if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&p) {
                    use std::io::Write;
                    let _ = f.write_all(b"appended in place\n");
                }
            }
            Edit::Kill(ms) => {
                let mut child = amt(dir, &state, &["run", "-q", "-j", jobs]).spawn().unwrap();
                std::thread::sleep(Duration::from_millis(*ms));
                let _ = child.kill();
                let _ = child.wait();
            }
            other => state.apply(other),
        }
        history.push(state.clone());
        state.write(dir);
        run_ok(dir, &state, jobs);

        let key = format!("{}{:?}{:?}", state.manifest(), state.sources, state.env);
        let expected = clean.entry(key).or_insert_with(|| {
            let fresh = tempfile::tempdir().unwrap();
            state.write(fresh.path());
            run_ok(fresh.path(), &state, "1");
            outputs(fresh.path(), &state)
        });
        let got = outputs(dir, &state);
        prop_assert_eq!(
            &got,
            &*expected,
            "step {} ({:?}) diverged from a clean build;\nedits: {:?}\nmanifest:\n{}",
            step,
            e,
            edits,
            state.manifest()
        );
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("AMT_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn incremental_runs_equal_clean_builds(
        start in state(),
        edits in prop::collection::vec(edit(), 1..8),
        parallel in any::<bool>(),
    ) {
        check_sequence(start, edits, if parallel { "4" } else { "1" })?;
    }
}
