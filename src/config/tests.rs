use super::*;

fn err(text: &str) -> String {
    parse(Path::new("amt.toml"), text, &NoBuiltins)
        .unwrap_err()
        .to_string()
}

#[test]
fn unknown_keys_name_the_line_and_suggest() {
    let e = err("[stages.a]\ncmd = \"true\"\ndepz = [\"x\"]\n");
    assert!(
        e.starts_with("amt.toml:3:1: unknown key `depz` in [stages.a]; did you mean `deps`?"),
        "{e}"
    );
}

#[test]
fn syntax_errors_have_a_location() {
    let e = err("[stages.a\ncmd = 1\n");
    assert!(e.starts_with("amt.toml:1:"), "{e}");
}

#[test]
fn params_must_exist() {
    let e = err("[params]\ntrain.lr = 1\n[stages.a]\ncmd = \"true\"\nparams = [\"train.lrr\"]\n");
    assert!(
        e.contains("amt.toml:5:") && e.contains("did you mean `train.lr`?"),
        "{e}"
    );
}

#[test]
fn outs_must_be_unique_and_inside() {
    let e = err(
        "[stages.a]\ncmd = \"x\"\nouts = [\"o\"]\n[stages.b]\ncmd = \"y\"\nouts = [\"o/sub\"]\n",
    );
    assert!(
        e.contains("stages `a` and `b` claim overlapping outs"),
        "{e}"
    );
    let e = err("[stages.a]\ncmd = \"x\"\nouts = [\"../o\"]\n");
    assert!(
        e.contains("amt.toml:3:9") && e.contains("contains `..`"),
        "{e}"
    );
}

#[test]
fn outs_may_not_touch_amts_or_gits_files() {
    for out in [
        "cache",
        "cache/x",
        "amt.toml",
        ".git",
        ".git/hooks",
        "./.amt",
    ] {
        let e = err(&format!("[stages.a]\ncmd = \"x\"\nouts = [\"{out}\"]\n"));
        assert!(
            e.starts_with("amt.toml:3:9: stages.a.outs: `"),
            "{out}: {e}"
        );
        assert!(e.contains("amt deletes a stage's outs"), "{out}: {e}");
    }
    let e = err("[stages.a]\ncmd = \"x\"\nmetrics = [\"cache/m.json\"]\n");
    assert!(e.starts_with("amt.toml:3:"), "{e}");
    // A name that merely starts like a reserved one is fine.
    parse(
        Path::new("amt.toml"),
        "[stages.a]\ncmd = \"x\"\nouts = [\"cached\", \".gitkeep\"]\n",
        &NoBuiltins,
    )
    .unwrap();
}

#[test]
fn outs_under_a_symbolic_link_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
    let manifest = dir.path().join(MANIFEST);
    std::fs::write(
        &manifest,
        "[stages.a]\ncmd = \"x\"\nouts = [\"out/result.txt\"]\n",
    )
    .unwrap();
    let e = load(&manifest, &NoBuiltins).unwrap_err().to_string();
    assert!(
        e.contains(
            "amt.toml:3:9: stages.a.outs: `out/result.txt` lies under `out`, a symbolic link"
        ),
        "{e}"
    );
}

#[test]
fn profiles_override_params_and_name_their_mistakes() {
    let text = "[params]\ntrain.steps = 400\nmodel.preset = \"tiny\"\n\
                [profiles.dev]\ntrain.steps = 20\n[profiles.prod]\nmodel.preset = \"gpt2-small\"\n";
    let p = parse(Path::new("amt.toml"), text, &NoBuiltins).unwrap();
    let steps = |p: &Pipeline| {
        p.params
            .get(&ParamKey::parse("train.steps").unwrap())
            .and_then(|v| v.as_integer())
    };
    assert_eq!(steps(&p), Some(400));
    let dev = p.clone().with_profile("dev").unwrap();
    assert_eq!(
        (steps(&dev), dev.profile.as_deref()),
        (Some(20), Some("dev"))
    );
    assert_eq!(
        p.clone().with_profile("deb").unwrap_err().to_string(),
        "no profile is called `deb`; did you mean `dev`?"
    );
    let e = err("[params]\ntrain.steps = 1\n[profiles.dev]\ntrain.stepz = 2\n");
    assert!(
        e.starts_with("amt.toml:4:1: profiles.dev: `train.stepz` is not defined in [params]; did you mean `train.steps`?"),
        "{e}"
    );
}

#[test]
fn the_executor_and_a_stages_slurm_options_parse_and_merge() {
    let text = "[executor]\nkind = \"slurm\"\n[executor.slurm]\npartition = \"cpu\"\ntime = \"1:00:00\"\n\
                poll = \"500ms\"\nextra = [\"--nice=5\"]\n\
                [stages.a]\ncmd = \"x\"\nouts = [\"o\"]\nslurm = { partition = \"gpu\", extra = [\"--exclusive\"] }\n\
                [stages.b]\ncmd = \"y\"\nouts = [\"p\"]\nexecutor = \"local\"\n";
    let p = parse(Path::new("amt.toml"), text, &NoBuiltins).unwrap();
    assert_eq!(p.executor.kind, ExecutorKind::Slurm);
    assert_eq!(p.executor.slurm.poll, std::time::Duration::from_millis(500));
    assert_eq!(
        p.executor.slurm.poll_max,
        std::time::Duration::from_secs(180)
    );
    let a = p.stage("a").unwrap();
    let merged = p.executor.slurm.options.with(&a.slurm);
    assert_eq!(merged.partition.as_deref(), Some("gpu"));
    assert_eq!(merged.time.as_deref(), Some("1:00:00"));
    assert_eq!(merged.extra, ["--nice=5", "--exclusive"]);
    assert_eq!(p.stage("b").unwrap().executor, Some(ExecutorKind::Local));
}

#[test]
fn slurm_options_that_cannot_work_are_refused() {
    for word in [
        "--job-name=x",
        "-Jother",
        "--out=/tmp/x.log",
        "--array=0-3",
        "--hold",
        "-o",
        "--no-req",
    ] {
        let e = err(&format!("[executor.slurm]\nextra = [\"{word}\"]\n"));
        assert!(
            e.contains(&format!("executor.slurm.extra: `{word}` (")),
            "{word}: {e}"
        );
    }
    // Options amt leaves alone pass, abbreviated or not.
    parse(
        Path::new("amt.toml"),
        "[executor.slurm]\nextra = [\"--exclusive\", \"--nice=5\", \"-N1\"]\n",
        &NoBuiltins,
    )
    .unwrap();
    let e = err("[stages.a]\ncmd = \"x\"\nouts = [\"o\"]\nslurm = { time = \"an hour\" }\n");
    assert!(
        e.starts_with("amt.toml:4:9: stages.a.slurm.time: `an hour` is not a Slurm time"),
        "{e}"
    );
    let e = err("[executor]\nkind = \"k8s\"\n");
    assert!(e.contains("amt.toml:2:8"), "{e}");
    let e = err("[executor.slurm]\npoll = \"soon\"\n");
    assert!(
        e.contains("executor.slurm.poll: `soon` is not a duration"),
        "{e}"
    );
}

#[test]
fn a_profile_may_choose_the_executor() {
    let text = "[params]\nx = 1\n[profiles.cluster]\nexecutor = \"slurm\"\nx = 2\n";
    let p = parse(Path::new("amt.toml"), text, &NoBuiltins).unwrap();
    assert_eq!(p.executor.kind, ExecutorKind::Local);
    let c = p.with_profile("cluster").unwrap();
    assert_eq!(c.executor.kind, ExecutorKind::Slurm);
    assert_eq!(
        c.params
            .get(&ParamKey::parse("x").unwrap())
            .and_then(|v| v.as_integer()),
        Some(2)
    );
}

#[test]
fn sizes_parse() {
    assert_eq!(parse_size("512M"), Ok(512 << 20));
    assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
    assert_eq!(parse_size("12"), Ok(12));
    assert_eq!(parse_size("lots"), Err(NotASize("lots".into())));
    assert!(parse_size("-1G").is_err());
    assert!(parse_size("3 parsecs").is_err());
}

#[test]
fn executor_kinds_parse_and_others_are_named() {
    assert_eq!("local".parse(), Ok(ExecutorKind::Local));
    assert_eq!("slurm".parse(), Ok(ExecutorKind::Slurm));
    let e = "Slurm".parse::<ExecutorKind>().unwrap_err();
    assert_eq!(e.to_string(), "`Slurm` is not local or slurm");
}
