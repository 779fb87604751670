//! The cache's promise: a stage is skipped or restored only when running it
//! would give the same bytes, and nothing amt does touches a file outside the
//! project. Each test here failed on the code before the fix it names.

mod common;

use std::time::{Duration, Instant};

use common::{TestProject, settle};

/// Swapping two named deps changes what the stage computes: it must rerun.
#[test]
fn swapping_role_bindings_reruns_the_stage() {
    let manifest = |first: &str, second: &str| {
        format!(
            "[stages.join]\ncmd = \"echo \\\"$AMT_DEPS\\\" > out.txt\"\n\
             deps = {{ first = \"{first}\", second = \"{second}\" }}\nouts = [\"out.txt\"]\n"
        )
    };
    let p = TestProject::new(&manifest("d/a.txt", "d/b.txt"));
    p.write("d/a.txt", "a");
    p.write("d/b.txt", "b");
    p.run_ok(&[]);
    let before = p.read("out.txt");
    assert!(before.contains(r#""first":"d/a.txt""#), "{before}");

    p.write("amt.toml", &manifest("d/b.txt", "d/a.txt"));
    settle();
    let status = p.amt(&["status"]).expect_code(0);
    assert!(status.stdout.contains("stale"), "{}", status.stdout);
    let why = p.amt(&["why", "join"]).expect_code(0);
    assert!(
        why.stdout.contains("role deps.first changed: d/a.txt → d/b.txt")
            && why.stdout.contains("role deps.second changed: d/b.txt → d/a.txt"),
        "{}",
        why.stdout
    );
    assert_eq!(p.run_ok(&[])["join"], "ran");
    assert!(p.read("out.txt").contains(r#""first":"d/b.txt""#));

    // And back: the first result is restored, not recomputed.
    p.write("amt.toml", &manifest("d/a.txt", "d/b.txt"));
    assert_eq!(p.run_ok(&[])["join"], "restored");
    assert_eq!(p.read("out.txt"), before);
}

/// The scratch directory holds work on one action only: `--force` and any
/// change of action start from an empty one; an interrupted run of the same
/// action finds its work again.
#[test]
fn scratch_work_is_kept_only_for_the_same_action() {
    // Counts its own runs in scratch, as a resumable stage counts steps.
    let manifest = |tag: &str| {
        format!(
            "[stages.count]\ncmd = \"n=$(cat $AMT_SCRATCH/n 2>/dev/null || echo 0); \
             echo $((n+1)) > $AMT_SCRATCH/n; echo {tag} $((n+1)) > out.txt\"\nouts = [\"out.txt\"]\n"
        )
    };
    let p = TestProject::new(&manifest("a"));
    p.run_ok(&[]);
    assert_eq!(p.read("out.txt"), "a 1\n");
    // `--force` really reruns: nothing resumes from the scratch work.
    p.run_ok(&["--force"]);
    assert_eq!(p.read("out.txt"), "a 1\n");
    // Another action (here: another command) starts afresh too.
    p.write("amt.toml", &manifest("b"));
    p.run_ok(&[]);
    assert_eq!(p.read("out.txt"), "b 1\n");

    // A failed run of the same action leaves its work for the next try.
    let flaky = "[stages.count]\ncmd = \"n=$(cat $AMT_SCRATCH/n 2>/dev/null || echo 0); \
                 echo $((n+1)) > $AMT_SCRATCH/n; test $n -ge 1 && echo done $((n+1)) > out.txt\"\n\
                 outs = [\"out.txt\"]\n";
    p.write("amt.toml", flaky);
    p.amt(&["run"]).expect_code(1);
    p.run_ok(&[]);
    assert_eq!(p.read("out.txt"), "done 2\n", "the second try resumed the first's work");
}

/// Memos survive a change of action (describe keeps its HTTP cache there).
#[test]
fn memos_survive_a_change_of_action() {
    let manifest = |tag: &str| {
        format!(
            "[stages.m]\ncmd = \"echo {tag} >> $AMT_MEMO/seen; cat $AMT_MEMO/seen > out.txt\"\n\
             outs = [\"out.txt\"]\n"
        )
    };
    let p = TestProject::new(&manifest("a"));
    p.run_ok(&[]);
    p.write("amt.toml", &manifest("b"));
    p.run_ok(&[]);
    assert_eq!(p.read("out.txt"), "a\nb\n");
}

#[test]
fn outs_that_touch_amts_own_files_are_refused_and_nothing_is_lost() {
    for out in ["cache", "amt.toml", ".git", "cache/ledger.sqlite"] {
        let manifest = format!("[stages.x]\ncmd = \"echo hi > out\"\nouts = [\"{out}\"]\n");
        let p = TestProject::new(&manifest);
        std::fs::create_dir_all(p.path(".git")).unwrap();
        p.write(".git/HEAD", "ref: refs/heads/main\n");
        let r = p.amt(&["run"]).expect_code(2);
        assert!(
            r.stderr.contains("amt.toml:3:9: stages.x.outs:")
                && r.stderr.contains("amt deletes a stage's outs"),
            "{out}: {}",
            r.stderr
        );
        assert_eq!(p.read("amt.toml"), manifest);
        assert_eq!(p.read(".git/HEAD"), "ref: refs/heads/main\n");
    }
}

#[test]
fn an_out_under_a_symlink_to_elsewhere_is_refused_and_elsewhere_is_untouched() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious.txt"), "keep me").unwrap();
    let p = TestProject::new(
        "[stages.x]\ncmd = \"mkdir -p out/sub && echo new > out/sub/f\"\nouts = [\"out/sub\"]\n",
    );
    std::os::unix::fs::symlink(outside.path(), p.path("out")).unwrap();
    std::fs::create_dir_all(outside.path().join("sub")).unwrap();
    std::fs::write(outside.path().join("sub/old"), "old").unwrap();
    let r = p.amt(&["run"]).expect_code(2);
    assert!(
        r.stderr.contains("`out/sub` lies under `out`, a symbolic link"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(outside.path().join("sub/old")).unwrap(), "old");
    assert_eq!(
        std::fs::read_to_string(outside.path().join("precious.txt")).unwrap(),
        "keep me"
    );
    assert!(!outside.path().join("sub/f").exists());
}

/// `kill -9` of amt ends the whole stage: a background grandchild that
/// escaped the shell (and its process group) writes nothing afterwards.
#[test]
fn killing_amt_ends_every_process_the_stage_started() {
    let p = TestProject::new(
        "[stages.slow]\n\
         cmd = \"setsid sh -c 'sleep 3; echo late > late.txt' & echo started > started.txt; sleep 60\"\n\
         outs = [\"out.txt\"]\n",
    );
    let mut child = p.command(&["run"]).spawn().unwrap();
    wait_for(|| p.exists("started.txt"), "the stage to start");
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !p.exists("late.txt"),
        "a process the stage started kept running after amt died"
    );
}

/// A stage's shell that exits leaves nothing behind that could write its
/// outputs after they were hashed.
#[test]
fn processes_a_finished_stage_left_behind_are_ended() {
    let p = TestProject::new(
        "[stages.leaky]\n\
         cmd = \"(sleep 2; echo late > late.txt) & echo done > out.txt\"\n\
         outs = [\"out.txt\"]\n",
    );
    p.run_ok(&[]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!p.exists("late.txt"));
}

/// The exit status and signal of the stage's shell come through the guard.
#[test]
fn the_guard_reports_the_stages_own_status() {
    let p = TestProject::new("[stages.bad]\ncmd = \"exit 7\"\nouts = [\"x\"]\n");
    let r = p.amt(&["run"]).expect_code(1);
    assert!(r.stderr.contains("exit code 7") || r.stdout.contains("exit code 7"), "{r:?}");
    let p = TestProject::new("[stages.bad]\ncmd = \"kill -9 $$\"\nouts = [\"x\"]\n");
    let r = p.amt(&["run"]).expect_code(1);
    assert!(
        r.stderr.contains("killed by signal 9") || r.stdout.contains("killed by signal 9"),
        "{r:?}"
    );
}

fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--verify` executes fresh and cached stages again and names the ones whose
/// bytes differ; the cache keeps what it had.
#[test]
fn verify_names_nondeterministic_stages() {
    let p = TestProject::new(
        "[stages.steady]\ncmd = \"echo same > steady.txt\"\nouts = [\"steady.txt\"]\n\
         [stages.noisy]\ncmd = \"cat /proc/sys/kernel/random/uuid > noisy.txt\"\nouts = [\"noisy.txt\"]\n",
    );
    p.run_ok(&[]);
    let first = p.read("noisy.txt");
    let r = p.amt(&["--json", "run", "--verify"]).expect_code(1);
    let out = r.outcomes();
    assert_eq!(
        (out["steady"].as_str(), out["noisy"].as_str()),
        ("verified", "nondeterministic"),
        "{}",
        r.stdout
    );
    let r = p.amt(&["run", "--verify", "steady"]).expect_code(0);
    assert!(r.stderr.contains("steady verified"), "{}", r.stderr);
    let r = p.amt(&["run", "--verify"]).expect_code(1);
    assert!(
        r.stderr.contains("noisy is nondeterministic") && r.stderr.contains("nondeterministic: noisy"),
        "{}",
        r.stderr
    );
    // A cached result is verified against the cache, which keeps its entry.
    std::fs::remove_file(p.path("noisy.txt")).unwrap();
    std::fs::remove_file(p.path("cache/state/noisy.json")).unwrap();
    assert_eq!(p.run_ok(&[])["noisy"], "restored");
    assert_eq!(p.read("noisy.txt"), first, "the first result is still the cached one");
}
