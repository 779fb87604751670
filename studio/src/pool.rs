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

/// The queue is full.
#[derive(Debug)]
pub struct Busy {
    /// A guess at when a slot will be free: the queue ahead at the recent pace.
    pub retry_after: Duration,
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
    ) -> Result<impl Future<Output = Outcome<T>> + use<T, F>, Busy>
    where
        T: Send + 'static,
        F: FnOnce(&Ticket) -> T + Send + 'static,
    {
        let (answer_tx, answer_rx) = oneshot::channel::<T>();
        // Dropped with the request's future when the client goes.
        let (alive_tx, alive_rx) = oneshot::channel::<()>();
        let pending = Arc::clone(&self.pending);
        let pace = Arc::clone(&self.pace_ms);
        let run: Job = Box::new(move || {
            let ticket = Ticket {
                deadline,
                reply: alive_tx,
            };
            if !ticket.should_stop() {
                let started = Instant::now();
                let value = job(&ticket);
                let ms = started.elapsed().as_millis() as u64;
                let old = pace.load(Ordering::Relaxed);
                pace.store((old * 3 + ms) / 4, Ordering::Relaxed);
                let _ = answer_tx.send(value);
            }
            pending.fetch_sub(1, Ordering::SeqCst);
        });
        self.pending.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(run) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.pending.fetch_sub(1, Ordering::SeqCst);
                let ahead = self.pending.load(Ordering::SeqCst) as u64;
                let ms = self.pace_ms.load(Ordering::Relaxed) * ahead.div_ceil(self.workers as u64);
                return Err(Busy {
                    retry_after: Duration::from_millis(ms.max(1000)),
                });
            }
        }
        Ok(async move {
            let _alive = alive_rx;
            let wait = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(wait, answer_rx).await {
                Ok(Ok(value)) => Outcome::Done(value),
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
        assert!(refused.retry_after >= Duration::from_secs(1));
        release_tx.send(()).unwrap();
        assert_eq!(running.await, Outcome::Done(()));
        assert_eq!(queued.await, Outcome::Done(2));
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
