//! What a stage's command is given besides its params: the invocation's
//! keyed variables (its name, bindings and CPU share; see
//! `amt_registry::invocation`), the thread-pool variables sized to its share,
//! and while it runs, a reader of the file it reports progress through.

use std::collections::BTreeMap;
use std::path::Path;

use amt_registry::invocation::{Bindings, Given};
use amt_registry::progress::Progress;

use crate::config::{Run, Stage};
use crate::names::ProjectPath;

/// Runs `work` while a second thread reads the progress file every quarter
/// second and passes on each report that differs from the last, and once
/// more when `work` ends (so the stage's last report, often "all done", is
/// not lost).
pub fn watch_progress<T>(
    path: &Path,
    on_progress: &(dyn Fn(&Progress) + Sync),
    work: impl FnOnce() -> T,
) -> T {
    use std::sync::mpsc::{RecvTimeoutError, channel};
    let (stop, stopped) = channel::<()>();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut last: Option<Progress> = None;
            // The reader wakes as soon as `work` ends (its sender is dropped
            // then, a panic included), not at its next tick: a stage takes
            // no longer than its command.
            loop {
                let ended = stopped.recv_timeout(PROGRESS_EVERY) != Err(RecvTimeoutError::Timeout);
                if let Some(p) = Progress::read(path)
                    && last.as_ref() != Some(&p)
                {
                    on_progress(&p);
                    last = Some(p);
                }
                if ended {
                    return;
                }
            }
        });
        let _stop = stop;
        work()
    })
}

/// How often a running stage's progress file is read.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The variables amt gives a stage's command besides its params and where it
/// runs (see [`Given`]), with the thread-pool variables set to its CPU share.
/// They are part of the action key, since a command may write any of them
/// into its outputs.
pub fn given_vars(stage: &Stage) -> BTreeMap<String, String> {
    let text = |paths: &[ProjectPath]| paths.iter().map(ProjectPath::to_string).collect();
    let bindings = |roles: &Option<Vec<(String, ProjectPath)>>, paths: &[ProjectPath]| match roles {
        Some(named) => Bindings::Roles(
            named
                .iter()
                .map(|(r, p)| (r.clone(), p.to_string()))
                .collect(),
        ),
        None => Bindings::Paths(text(paths)),
    };
    let plain_outs: Vec<ProjectPath> = stage
        .outs
        .iter()
        .filter(|o| !stage.metrics.contains(o))
        .cloned()
        .collect();
    let given = Given {
        stage: stage.name.to_string(),
        deps: bindings(&stage.dep_roles, &stage.deps),
        outs: bindings(&stage.out_roles, &plain_outs),
        metrics: text(&stage.metrics),
        cpus: stage.resources.cpus,
        code_version: match &stage.run {
            Run::Builtin { version, .. } => Some(version.clone()),
            Run::Shell(_) => None,
        },
    };
    let mut vars = given.vars();
    vars.extend(thread_vars(stage.resources.cpus, |v| {
        std::env::var_os(v).is_some()
    }));
    vars
}

/// An environment value as key text; bytes that are not UTF-8 are escaped
/// (`\xff`), so two different values never look alike.
pub fn env_text(value: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    match value.to_str() {
        Some(s) => s.to_owned(),
        None => value
            .as_bytes()
            .iter()
            .map(|&b| {
                if b.is_ascii() && b != b'\\' {
                    (b as char).to_string()
                } else {
                    format!("\\x{b:02x}")
                }
            })
            .collect(),
    }
}

/// Variables through which common thread pools (OpenMP, MKL, OpenBLAS, rayon)
/// size themselves; amt sets each to the stage's share unless the user did.
pub const THREAD_VARS: &[&str] = &[
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "RAYON_NUM_THREADS",
];

/// The thread-pool variables the user has not set (`user_set` says which
/// they have), each set to the stage's CPU share: its declared `cpus`, also
/// when `-j` is smaller, so that a stage whose bytes depend on its thread
/// count computes the same bytes whatever `-j` a run was given.
pub fn thread_vars(cpus: u32, user_set: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let share = cpus.max(1).to_string();
    THREAD_VARS
        .iter()
        .filter(|v| !user_set(v))
        .map(|v| ((*v).to_owned(), share.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_report_is_passed_on_when_the_work_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.json");
        let heard = std::sync::Mutex::new(Vec::new());
        let report = |done| Progress {
            done,
            total: Some(3),
            unit: "steps".into(),
            message: String::new(),
        };
        let answer = watch_progress(&path, &|p| heard.lock().unwrap().push(p.done), || {
            // The work ends long before the reader's first tick: the report
            // is read only because the end of the work is a reason to look.
            report(3).write(&path).unwrap();
            42
        });
        assert_eq!(answer, 42);
        assert_eq!(*heard.lock().unwrap(), [3]);
        // Nothing new at the end, nothing passed on twice.
        let again = std::sync::Mutex::new(0);
        watch_progress(&path, &|_| *again.lock().unwrap() += 1, || ());
        assert_eq!(*again.lock().unwrap(), 1, "read once, at the end");
    }

    #[test]
    fn a_stage_learns_its_share_and_the_users_own_settings_stay() {
        let env = thread_vars(1, |v| v == "OMP_NUM_THREADS");
        assert_eq!(
            env,
            [
                ("MKL_NUM_THREADS".to_owned(), "1".to_owned()),
                ("OPENBLAS_NUM_THREADS".to_owned(), "1".to_owned()),
                ("RAYON_NUM_THREADS".to_owned(), "1".to_owned()),
            ]
        );
    }
}
