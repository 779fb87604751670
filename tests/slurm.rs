//! The Slurm executor against a real single-node cluster on 127.0.0.1
//! (`common::slurm` starts it): stages run as jobs and Slurm's own records
//! say so, parallel branches run as concurrent jobs, failures, cancellations
//! and time limits become precise stage failures, Ctrl-C and `kill -9` leave
//! nothing running twice, and a second run submits nothing.

mod common;

use std::time::{Duration, Instant};

use common::TestProject;
use common::slurm::Cluster;

/// `[executor]` for the test cluster: a quick poll (the back-off still grows).
const EXECUTOR: &str = r#"
[executor]
kind = "slurm"
[executor.slurm]
poll = "200ms"
poll_max = "1s"
"#;

fn amt(p: &TestProject, args: &[&str]) -> std::process::Command {
    let mut c = p.command(args);
    c.envs(Cluster::get().env());
    c
}

fn run(p: &TestProject, args: &[&str]) -> common::Run {
    common::Run::from(amt(p, args).output().unwrap())
}

fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `a`, then `b` and `c` side by side (each notes when it starts and ends).
const DIAMOND: &str = r#"
[stages.a]
cmd = "echo $SLURM_JOB_ID > a.txt"
outs = ["a.txt"]
[stages.b]
cmd = "date +%s.%N > b.start; sleep 2; cat a.txt > b.txt; echo $SLURM_JOB_ID >> b.txt; date +%s.%N > b.end"
deps = ["a.txt"]
outs = ["b.txt", "b.start", "b.end"]
[stages.c]
cmd = "date +%s.%N > c.start; sleep 2; cat a.txt > c.txt; echo $SLURM_JOB_ID >> c.txt; date +%s.%N > c.end"
deps = ["a.txt"]
outs = ["c.txt", "c.start", "c.end"]
"#;

#[test]
fn stages_run_as_concurrent_jobs_and_a_second_run_submits_nothing() {
    let cluster = Cluster::get();
    let p = TestProject::new(&format!("{EXECUTOR}{DIAMOND}"));
    // Jobs of this pipeline, by the stage in their comment (other tests' jobs
    // share the cluster, under other stage names).
    let ours = || {
        cluster
            .command("squeue", &["--noheader", "--states=all", "--format=%k"])
            .lines()
            .filter(|c| ["a", "b", "c"].iter().any(|s| c.starts_with(&format!("amt stage={s} "))))
            .count()
    };
    let r = run(&p, &["--json", "run"]).expect_code(0);
    let outcomes = r.outcomes();
    assert!(outcomes.values().all(|o| o == "ran"), "{}", r.stdout);

    // Each stage ran in a job of its own, which Slurm recorded and saw complete.
    let ledger = run(&p, &["--json", "runs", "--stages"]).expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&ledger.stdout).unwrap();
    let jobs: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["executor"], "slurm", "{r}");
            r["job_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(jobs.len(), 3);
    let submitted = cluster.submitted_jobs();
    for job in &jobs {
        assert!(submitted.contains(job), "slurmctld never saw job {job}");
        assert_eq!(cluster.state(job), "COMPLETED");
    }
    assert!(jobs.contains(&p.read("a.txt").trim().to_owned()), "SLURM_JOB_ID was the job's");
    // b and c overlapped in time: the branch ran as concurrent jobs.
    let t = |f: &str| p.read(f).trim().parse::<f64>().unwrap();
    assert!(
        t("b.start") < t("c.end") && t("c.start") < t("b.end"),
        "b ran {}..{}, c ran {}..{}",
        t("b.start"),
        t("b.end"),
        t("c.start"),
        t("c.end")
    );

    assert_eq!(ours(), 3);
    let again = run(&p, &["--json", "run"]).expect_code(0);
    assert!(again.outcomes().values().all(|o| o == "fresh"), "{}", again.stdout);
    assert_eq!(ours(), 3, "nothing was submitted again");
}

#[test]
fn a_failing_job_fails_its_stage_with_the_state_and_exit_code() {
    let p = TestProject::new(&format!(
        "{EXECUTOR}[stages.bad]\ncmd = \"echo doomed; exit 3\"\nouts = [\"x\"]\n"
    ));
    let r = run(&p, &["run"]).expect_code(1);
    assert!(
        r.stderr.contains("✗ bad failed: the command failed (Slurm job ")
            && r.stderr.contains(" ended FAILED (NonZeroExitCode), exit code 3)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("│ doomed"), "the job's log is shown: {}", r.stderr);
}

#[test]
fn a_job_that_exits_zero_without_its_outs_fails() {
    let p = TestProject::new(&format!("{EXECUTOR}[stages.lazy]\ncmd = \"true\"\nouts = [\"x\"]\n"));
    let r = run(&p, &["run"]).expect_code(1);
    assert!(r.stderr.contains("did not produce its declared out `x`"), "{}", r.stderr);
}

#[test]
fn a_job_cancelled_with_scancel_fails_its_stage() {
    let cluster = Cluster::get();
    let p = TestProject::new(&format!(
        "{EXECUTOR}[stages.victim]\ncmd = \"echo $SLURM_JOB_ID > started; sleep 120\"\nouts = [\"x\"]\n"
    ));
    let child = amt(&p, &["run"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    wait_for(|| p.exists("started"), "the job to start");
    let job = p.read("started").trim().to_owned();
    cluster.command("scancel", &[&job]);
    let r = common::Run::from(child.wait_with_output().unwrap()).expect_code(1);
    assert!(
        r.stderr.contains(&format!("Slurm job {job} ended CANCELLED")),
        "{}",
        r.stderr
    );
}

/// Slurm enforces time limits once a minute or so: this test takes that long.
#[test]
fn a_job_over_its_time_limit_fails_with_timeout() {
    let p = TestProject::new(&format!(
        "{EXECUTOR}[stages.slow]\ncmd = \"sleep 300\"\nouts = [\"x\"]\nslurm = {{ time = \"0:05\" }}\n"
    ));
    let r = run(&p, &["run"]).expect_code(1);
    assert!(r.stderr.contains("ended TIMEOUT (TimeLimit)"), "{}", r.stderr);
}

#[test]
fn ctrl_c_cancels_the_runs_jobs() {
    let cluster = Cluster::get();
    let p = TestProject::new(&format!(
        "{EXECUTOR}[stages.one]\ncmd = \"echo $SLURM_JOB_ID > one.id; sleep 120\"\nouts = [\"x\"]\n\
         [stages.two]\ncmd = \"echo $SLURM_JOB_ID > two.id; sleep 120\"\nouts = [\"y\"]\n"
    ));
    let child = amt(&p, &["run", "-j", "2"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    wait_for(|| p.exists("one.id") && p.exists("two.id"), "both jobs to start");
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let r = common::Run::from(child.wait_with_output().unwrap());
    assert_eq!(r.code, 130, "{}", r.stderr);
    for id in ["one.id", "two.id"] {
        let job = p.read(id).trim().to_owned();
        wait_for(|| cluster.state(&job) == "CANCELLED", "the job to be cancelled");
    }
}

/// `kill -9` of amt leaves its job running; the next run cancels it before it
/// submits the stage again, so the stage never runs twice at once.
#[test]
fn after_kill_9_the_next_run_cancels_the_leftover_and_runs_once() {
    let cluster = Cluster::get();
    let p = TestProject::new(&format!(
        "{EXECUTOR}[stages.long]\n\
         cmd = \"echo $SLURM_JOB_ID >> jobs; sleep 4; echo $SLURM_JOB_ID > done.txt\"\nouts = [\"done.txt\"]\n"
    ));
    let mut child = amt(&p, &["run"]).spawn().unwrap();
    wait_for(|| p.exists("jobs"), "the job to start");
    child.kill().unwrap();
    child.wait().unwrap();
    let first = p.read("jobs").trim().to_owned();
    assert_ne!(cluster.state(&first), "COMPLETED");

    let r = run(&p, &["--json", "run"]).expect_code(0);
    assert_eq!(r.outcomes()["long"], "ran", "{}", r.stderr);
    assert_eq!(cluster.state(&first), "CANCELLED", "the leftover was cancelled");
    let jobs: Vec<String> = p.read("jobs").lines().map(str::to_owned).collect();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(p.read("done.txt").trim(), jobs[1], "only the second job finished");
    assert!(!p.exists("cache/slurm") || std::fs::read_dir(p.path("cache/slurm")).unwrap().next().is_none());
}

#[test]
fn a_stage_may_stay_local_and_a_dry_run_prints_the_submissions() {
    let p = TestProject::new(&format!(
        "{EXECUTOR}[stages.here]\ncmd = \"echo ${{SLURM_JOB_ID:-local}} > here.txt\"\nouts = [\"here.txt\"]\nexecutor = \"local\"\n\
         [stages.there]\ncmd = \"echo $SLURM_JOB_ID > there.txt\"\nouts = [\"there.txt\"]\ncpus = 2\nmem = \"1G\"\n\
         slurm = {{ time = \"10:00\", extra = [\"--nice=10\"] }}\n"
    ));
    let dry = run(&p, &["run", "--dry-run"]).expect_code(0).stdout;
    let line = dry.lines().find(|l| l.starts_with("sbatch ")).unwrap_or_else(|| panic!("{dry}"));
    for part in [
        "--parsable",
        "--job-name=amt-",
        "'--comment=amt stage=there key=",
        "--cpus-per-task=2",
        "--mem=1024M",
        "--time=10:00",
        "--nice=10",
        "--wrap=",
    ] {
        assert!(line.contains(part), "{part} missing from: {line}");
    }
    assert_eq!(dry.lines().filter(|l| l.starts_with("sbatch ")).count(), 1, "here stays local: {dry}");
    assert!(!p.exists("cache/slurm"), "a dry run touches nothing");

    run(&p, &["run"]).expect_code(0);
    assert_eq!(p.read("here.txt"), "local\n");
    assert!(p.read("there.txt").trim().parse::<u64>().is_ok());
}

#[test]
fn sweep_points_run_as_jobs_in_parallel() {
    let p = TestProject::new(&format!(
        "{EXECUTOR}[params]\nx = 1\n[stages.point]\ncmd = \"echo $AMT_PARAM_X $SLURM_JOB_ID > out.txt; sleep 1\"\nparams = [\"x\"]\nouts = [\"out.txt\"]\n"
    ));
    let r = run(&p, &["sweep", "-S", "x=1,2,3,4", "--jobs", "4"]).expect_code(0);
    let ledger = run(&p, &["--json", "runs", "--stages"]).expect_code(0);
    let rows: serde_json::Value = serde_json::from_str(&ledger.stdout).unwrap();
    let jobs: std::collections::BTreeSet<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["job_id"].as_str())
        .collect();
    assert_eq!(jobs.len(), 4, "{}\n{}", r.stderr, ledger.stdout);
}

/// The demo pipeline, once here and once as Slurm jobs: the same bytes.
#[test]
fn the_demo_on_slurm_gives_the_bytes_it_gives_locally() {
    let local = common::demo_project(&[]);
    let cluster = common::demo_project(&[]);
    let manifest = format!("{EXECUTOR}{}", cluster.read("amt.toml"));
    cluster.write("amt.toml", &manifest);
    local.run_ok(&["evaluate"]);
    let r = run(&cluster, &["--json", "run", "evaluate"]).expect_code(0);
    assert!(r.outcomes().values().all(|o| o == "ran"), "{}", r.stdout);

    let files = |p: &TestProject| -> Vec<(String, Vec<u8>)> {
        let root = p.path("artifacts");
        let mut out: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(&root)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let rel = e.path().strip_prefix(&root).unwrap().display().to_string();
                (rel, std::fs::read(e.path()).unwrap())
            })
            .collect();
        out.sort();
        out
    };
    let (a, b) = (files(&local), files(&cluster));
    assert_eq!(
        a.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        b.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "artifacts/{name} differs between the local and the Slurm run");
    }
    assert!(a.iter().any(|(n, _)| n.ends_with(".mid")) && a.iter().any(|(n, _)| n == "evaluate/metrics.json"));
}
