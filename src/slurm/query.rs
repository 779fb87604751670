//! What Slurm's commands say, parsed: job states from `squeue` and
//! `sacct`, exit codes from `scontrol`, and the cluster's `MinJobAge`.

use std::collections::HashMap;
use std::io;
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// How a job ended, as Slurm says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct End {
    pub(super) state: String,
    pub(super) reason: String,
    /// False when amt gave the job up without Slurm saying it ended (lost,
    /// or a cancellation Slurm did not confirm): it may still run.
    pub(super) confirmed: bool,
    /// `code:signal`, when accounting told it (slurmctld has forgotten the job).
    pub(super) exit_code: Option<String>,
}

impl End {
    pub(super) fn unconfirmed(state: &str, reason: impl Into<String>) -> Self {
        Self {
            state: state.into(),
            reason: reason.into(),
            confirmed: false,
            exit_code: None,
        }
    }
}

/// Runs a Slurm command; its stdout, or an error with its stderr.
pub(super) fn run_command(cmd: &mut Command, what: &str) -> io::Result<String> {
    let out = cmd
        .output()
        .map_err(|e| io::Error::other(format!("cannot run {what}: {e} (is Slurm installed?)")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True for the error Slurm gives for a job it no longer knows.
pub(super) fn forgotten(e: &io::Error) -> bool {
    e.to_string().contains("Invalid job id")
}

/// Slurm's states that end a job, and whether it succeeded. (`SPECIAL_EXIT`
/// holds a job for requeueing; `REQUEUED` comes back: neither is an end.)
pub(super) fn terminal(state: &str) -> Option<bool> {
    match state {
        "COMPLETED" => Some(true),
        "FAILED" | "CANCELLED" | "TIMEOUT" | "OUT_OF_MEMORY" | "NODE_FAIL" | "BOOT_FAIL"
        | "DEADLINE" | "PREEMPTED" | "REVOKED" => Some(false),
        _ => None,
    }
}

/// The ends Slurm's accounting (`sacct`, where slurmdbd runs) records for
/// jobs squeue no longer shows. Only ends count: a job accounting still
/// calls running (a runaway record) stays unseen, and is lost after
/// [`LOST_AFTER`](super::LOST_AFTER), as it is where there is no accounting at all.
pub(super) fn ask_accounting(ids: &[String]) -> HashMap<String, End> {
    let text = run_command(
        // A hung slurmdbd must not stall the poller.
        Command::new("timeout").args([
            "30",
            "sacct",
            "--allocations",
            "--noheader",
            "--parsable2",
            "--format=JobID,State,Reason,ExitCode",
            &format!("--jobs={}", ids.join(",")),
        ]),
        "sacct",
    );
    text.map(|t| parse_accounting(&t)).unwrap_or_default()
}

/// `42|FAILED|NonZeroExitCode|1:0` lines → job id → its end, for ended jobs.
pub(super) fn parse_accounting(text: &str) -> HashMap<String, End> {
    let exit_codes: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            Some((*f.first()?, *f.get(3)?))
        })
        .collect();
    parse_squeue(text)
        .into_iter()
        .filter(|(_, end)| terminal(&end.state).is_some())
        .map(|(id, mut end)| {
            end.exit_code = exit_codes.get(id.as_str()).map(|c| c.trim().to_owned());
            (id, end)
        })
        .collect()
}

/// `42|CANCELLED by 0|None` lines → job id → (state, reason). A state is
/// its first word, without a trailing `+`.
pub(super) fn parse_squeue(text: &str) -> HashMap<String, End> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split('|');
            let id = f.next()?.trim().to_owned();
            let state = f
                .next()?
                .split_whitespace()
                .next()?
                .trim_end_matches('+')
                .to_owned();
            let reason = f.next().unwrap_or("").trim().to_owned();
            (!id.is_empty()).then_some((
                id,
                End {
                    state,
                    reason,
                    confirmed: true,
                    exit_code: None,
                },
            ))
        })
        .collect()
}

/// A `Key=Value` field of `scontrol show` output.
pub(super) fn field<'t>(scontrol: &'t str, key: &str) -> Option<&'t str> {
    scontrol
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// `ExitCode=3:0` in `scontrol show job` → exit code 3 (or signal).
pub(super) fn exit_status(scontrol: &str) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    let code = field(scontrol, "ExitCode").unwrap_or("0:0");
    let (code, signal) = code.split_once(':').unwrap_or((code, "0"));
    let (code, signal): (i32, i32) = (code.parse().unwrap_or(0), signal.parse().unwrap_or(0));
    if signal != 0 {
        ExitStatus::from_raw(signal)
    } else {
        ExitStatus::from_raw(code << 8)
    }
}

/// `MinJobAge` from slurmctld's configuration, when it says.
pub(super) fn min_job_age() -> Option<Duration> {
    let config = run_command(
        Command::new("scontrol").args(["show", "config"]),
        "scontrol",
    )
    .ok()?;
    let line = config
        .lines()
        .find(|l| l.trim_start().starts_with("MinJobAge"))?;
    let secs = line
        .split('=')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_become_states() {
        let s = parse_squeue(
            "41|COMPLETED|None\n42|CANCELLED by 0|None\n43|RUNNING|None\n44|FAILED+|NonZeroExitCode\n",
        );
        assert_eq!(s["41"].state, "COMPLETED");
        assert_eq!(
            s["42"].state, "CANCELLED",
            "`CANCELLED by UID` is CANCELLED"
        );
        assert_eq!(s["44"].state, "FAILED");
        assert_eq!(s["44"].reason, "NonZeroExitCode");
        assert_eq!(terminal("RUNNING"), None);
        assert_eq!(terminal("COMPLETING"), None);
        assert_eq!(
            terminal("SPECIAL_EXIT"),
            None,
            "held for requeueing, not ended"
        );
        assert_eq!(terminal("TIMEOUT"), Some(false));
        assert_eq!(terminal("REVOKED"), Some(false));
        assert_eq!(terminal("COMPLETED"), Some(true));
    }

    #[test]
    fn accounting_gives_ends_with_exit_codes_and_ignores_runaway_records() {
        let a = parse_accounting(
            "41|FAILED|NonZeroExitCode|3:0\n42|RUNNING|None|0:0\n43|COMPLETED|None|0:0\n",
        );
        assert_eq!(a["41"].state, "FAILED");
        assert_eq!(a["41"].exit_code.as_deref(), Some("3:0"));
        assert_eq!(exit_status("ExitCode=3:0").code(), Some(3));
        assert!(
            !a.contains_key("42"),
            "a job accounting calls running is not an end"
        );
        assert!(a["43"].confirmed);
    }

    #[test]
    fn exit_codes_and_signals_come_from_scontrol() {
        assert_eq!(exit_status("JobState=FAILED ExitCode=3:0").code(), Some(3));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_status("ExitCode=0:15").signal(), Some(15));
        assert_eq!(
            field("JobState=TIMEOUT Reason=TimeLimit", "Reason"),
            Some("TimeLimit")
        );
    }
}
