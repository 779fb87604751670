//! A bounded worker pool for the heavy requests (generating, rendering).
//!
//! A fixed number of threads take jobs from a queue of fixed length. When the
//! queue is full a request is refused at once (the server answers 429) rather
//! than waiting: a burst never grows memory or latency without bound. A job
//! whose client has gone, or whose deadline has passed, is skipped or stopped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job was not queued.
#[derive(Debug)]
pub enum Refused {
    /// The queue is full.
    Busy {
        /// A guess at when a place will be free: one job at the recent pace.
        retry_after: Duration,
    },
    /// No worker is left (they only end if the pool is being dropped).
    Closed,
}

/// What a job is told while it runs.
pub struct Ticket {
    deadline: Instant,
    reply: oneshot::Sender<()>,
}

impl Ticket {
    /// True once the deadline has passed or the client has gone.
    pub fn should_stop(&self) -> bool {
        Instant::now() >= self.deadline || self.reply.is_closed()
    }
}

/// A job's answer, or why there is none.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    Done(T),
    /// The deadline passed before the job finished.
    TimedOut,
    /// The job panicked; the message says where. The worker lives on.
    Panicked(String),
}

/// The pool.
pub struct Pool {
    sender: SyncSender<Job>,
    workers: usize,
    /// Jobs queued or running.
    pending: Arc<AtomicUsize>,
    /// An exponential average of job durations, in milliseconds.
    pace_ms: Arc<AtomicU64>,
}

impl Pool {
    /// Starts `workers` threads (named `name-N`) behind a queue of `queue` jobs.
    pub fn new(name: &str, workers: usize, queue: usize) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..workers.max(1) {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || work(&receiver))?;
        }
        Ok(Self {
            sender,
            workers: workers.max(1),
            pending: Arc::new(AtomicUsize::new(0)),
            pace_ms: Arc::new(AtomicU64::new(1000)),
        })
    }

    /// Queues `job`, which must return by `deadline`; its answer comes back
    /// through the returned future. `job` is given a [`Ticket`] to ask whether
    /// to stop; it is never started if its client has gone or its time is up.
    pub fn submit<T, F>(
        &self,
        deadline: Instant,
        job: F,
    ) -> Result<impl Future<Output = Outcome<T>> + use<T, F>, Refused>
    where
        T: Send + 'static,
        F: FnOnce(&Ticket) -> T + Send + 'static,
    {
        let (answer_tx, answer_rx) = oneshot::channel::<Result<T, String>>();
        // Dropped with the request's future when the client goes.
        let (alive_tx, alive_rx) = oneshot::channel::<()>();
        let pending = Pending(Arc::clone(&self.pending));
        let pace = Arc::clone(&self.pace_ms);
        let run: Job = Box::new(move || {
            // Counted out however the job ends, panics included.
            let _pending = pending;
            let ticket = Ticket {
                deadline,
                reply: alive_tx,
            };
            if ticket.should_stop() {
                return;
            }
            let started = Instant::now();
            // A panicking job must not take its worker with it: the pool
            // would shrink until every request was refused.
            let value = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&ticket)))
                .map_err(|panic| {
                    panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".to_owned())
                });
            let ms = started.elapsed().as_millis() as u64;
            let old = pace.load(Ordering::Relaxed);
            pace.store((old * 3 + ms) / 4, Ordering::Relaxed);
            let _ = answer_tx.send(value);
        });
        self.pending.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(run) {
            Ok(()) => {}
            // The job (and its `Pending`) is dropped here, which counts it out.
            Err(TrySendError::Full(_)) => {
                let ms = self.pace_ms.load(Ordering::Relaxed);
                return Err(Refused::Busy {
                    retry_after: Duration::from_millis(ms.max(1000)),
                });
            }
            Err(TrySendError::Disconnected(_)) => return Err(Refused::Closed),
        }
        Ok(async move {
            let _alive = alive_rx;
            let wait = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(wait, answer_rx).await {
                Ok(Ok(Ok(value))) => Outcome::Done(value),
                Ok(Ok(Err(panic))) => Outcome::Panicked(panic),
                // Dropped unanswered: skipped for its deadline.
                Ok(Err(_)) | Err(_) => Outcome::TimedOut,
            }
        })
    }

    /// Jobs queued or running now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }
}

/// One job counted in `pending` until this is dropped.
struct Pending(Arc<AtomicUsize>);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(queue) = receiver.lock() else { return };
            match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn later(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[tokio::test]
    async fn answers_come_back() {
        let pool = Pool::new("t", 2, 4).unwrap();
        let a = pool.submit(later(10), |_| 1 + 1).unwrap();
        let b = pool.submit(later(10), |_| "b").unwrap();
        assert_eq!(a.await, Outcome::Done(2));
        assert_eq!(b.await, Outcome::Done("b"));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = Pool::new("t", 1, 1).unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let running = pool
            .submit(later(10), move |_| {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
            .unwrap();
        started_rx.recv().unwrap();
        let queued = pool.submit(later(10), |_| 2).unwrap();
        let refused = pool
            .submit(later(10), |_| 3)
            .err()
            .expect("the queue is full");
        assert!(
            matches!(refused, Refused::Busy { retry_after } if retry_after >= Duration::from_secs(1))
        );
        release_tx.send(()).unwrap();
        assert_eq!(running.await, Outcome::Done(()));
        assert_eq!(queued.await, Outcome::Done(2));
        assert_eq!(pool.pending(), 0);
    }

    #[tokio::test]
    async fn a_panicking_job_neither_kills_its_worker_nor_leaks_its_place() {
        let pool = Pool::new("t", 1, 1).unwrap();
        for _ in 0..3 {
            let outcome = pool
                .submit(later(10), |_| -> u32 { panic!("bad input") })
                .unwrap()
                .await;
            assert_eq!(outcome, Outcome::Panicked("bad input".into()));
        }
        assert_eq!(
            pool.submit(later(10), |_| 7).unwrap().await,
            Outcome::Done(7)
        );
        assert_eq!(pool.pending(), 0);
    }

    #[tokio::test]
    async fn a_job_is_told_to_stop_at_its_deadline() {
        let pool = Pool::new("t", 1, 1).unwrap();
        let deadline = Instant::now() + Duration::from_millis(100);
        let stopped = pool
            .submit(deadline, |ticket| {
                while !ticket.should_stop() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                "stopped"
            })
            .unwrap();
        // The job returns only once told to stop; its answer may beat the timer.
        let outcome = stopped.await;
        assert!(
            matches!(outcome, Outcome::TimedOut | Outcome::Done("stopped")),
            "{outcome:?}"
        );
        // The worker is free again.
        assert_eq!(
            pool.submit(later(10), |_| 7).unwrap().await,
            Outcome::Done(7)
        );
    }

    #[tokio::test]
    async fn a_client_that_goes_stops_its_job() {
        let pool = Pool::new("t", 1, 1).unwrap();
        let (saw_tx, saw_rx) = std::sync::mpsc::channel::<bool>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let gone = pool
            .submit(later(60), move |ticket| {
                started_tx.send(()).unwrap();
                let t0 = Instant::now();
                while !ticket.should_stop() && t0.elapsed() < Duration::from_secs(30) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                saw_tx.send(ticket.should_stop()).unwrap();
            })
            .unwrap();
        // Poll once so the job is waited on, then drop it as a gone client would.
        let handle = tokio::spawn(gone);
        started_rx.recv().unwrap();
        handle.abort();
        // Let the runtime drop the aborted future.
        assert!(handle.await.unwrap_err().is_cancelled());
        assert!(saw_rx.recv_timeout(Duration::from_secs(20)).unwrap());
    }
}
