//! Following a run's jobs: one `squeue` query per tick, by the run's job
//! name, for all of them, on a back-off from `poll` to `poll_max` while
//! nothing ends, with `sacct` asked about jobs squeue no longer shows.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::LOST_AFTER;
use super::query::{End, ask_accounting, parse_squeue, run_command, terminal};
use crate::config::SlurmConfig;

/// The jobs of a run that are in flight, and what the poller learnt of them.
#[derive(Default)]
pub(super) struct Board {
    /// Job id → its end, once known.
    pub(super) jobs: HashMap<String, Option<End>>,
    pub(super) poller: bool,
}

/// One status query for every job of the run, on a back-off.
pub(super) fn poll(board: Arc<(Mutex<Board>, Condvar)>, job_name: String, config: SlurmConfig) {
    let (lock, cond) = &*board;
    let mut wait = config.poll;
    let mut unseen_since: HashMap<String, Instant> = HashMap::new();
    let mut answered = Instant::now();
    loop {
        {
            let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            if guard.jobs.values().all(Option::is_some) {
                // Nothing in flight: the next submission starts a poller again.
                guard.poller = false;
                return;
            }
            let (_guard, timeout) = cond
                .wait_timeout(guard, wait)
                .unwrap_or_else(|e| e.into_inner());
            if !timeout.timed_out() {
                // Woken by a cancellation: the next waits are short again.
                wait = config.poll;
            }
        }
        let answer = run_command(
            Command::new("squeue").args([
                "--all",
                "--noheader",
                "--states=all",
                "--format=%i|%T|%r",
                &format!("--name={job_name}"),
            ]),
            "squeue",
        );
        let mut ended = Vec::new();
        match answer {
            Err(e) => {
                // A busy controller: ask again later, no sooner; one that
                // never answers loses the run's jobs (their records stay).
                wait = (wait.mul_f64(1.5)).min(config.poll_max);
                if answered.elapsed() > LOST_AFTER {
                    let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                    for (id, end) in &guard.jobs {
                        if end.is_none() {
                            ended.push((
                                id.clone(),
                                End::unconfirmed(
                                    "LOST",
                                    format!("squeue has failed for 10 minutes: {e}"),
                                ),
                            ));
                        }
                    }
                }
            }
            Ok(text) => {
                answered = Instant::now();
                let mut states = parse_squeue(&text);
                let unseen: Vec<String> = {
                    let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                    guard
                        .jobs
                        .iter()
                        .filter(|(id, end)| end.is_none() && !states.contains_key(*id))
                        .map(|(id, _)| id.clone())
                        .collect()
                };
                if !unseen.is_empty() {
                    states.extend(ask_accounting(&unseen));
                }
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                for (id, end) in &guard.jobs {
                    if end.is_some() {
                        continue;
                    }
                    match states.get(id) {
                        Some(e) if terminal(&e.state).is_some() => {
                            ended.push((id.clone(), e.clone()))
                        }
                        Some(_) => {
                            unseen_since.remove(id);
                        }
                        None => {
                            let since = unseen_since.entry(id.clone()).or_insert_with(Instant::now);
                            if since.elapsed() > LOST_AFTER {
                                ended.push((
                                    id.clone(),
                                    End::unconfirmed("LOST", "squeue no longer knows the job"),
                                ));
                            }
                        }
                    }
                }
            }
        }
        if ended.is_empty() {
            wait = (wait.mul_f64(1.5)).min(config.poll_max);
            continue;
        }
        wait = config.poll;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        for (id, end) in ended {
            guard.jobs.insert(id, Some(end));
        }
        cond.notify_all();
    }
}
