//! Running out of memory in a training step, as something to recover from.
//! An allocation that fails inside libtorch panics in tch; [`catch`] turns
//! that panic into [`OutOfMemory`], and the stage resumes from the last
//! checkpoint with smaller micro-batches.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

thread_local! {
    /// True while [`catch`] runs a step, where an out-of-memory panic is
    /// recovered from, so the panic hook need not print it.
    static RECOVERABLE: Cell<bool> = const { Cell::new(false) };
}

/// A training step ran out of memory (CUDA's or, under a memory limit, the CPU's).
#[derive(Debug, thiserror::Error)]
#[error("out of memory at step {step} with a micro-batch of {micro_batch} windows: {detail}")]
pub struct OutOfMemory {
    pub step: u64,
    pub micro_batch: usize,
    pub detail: String,
}

/// Runs training step `step` (micro-batches of `micro_batch` windows);
/// libtorch's out-of-memory panic becomes [`OutOfMemory`], any other panic
/// goes on.
pub fn catch<T>(step: u64, micro_batch: usize, work: impl FnOnce() -> T) -> Result<T, OutOfMemory> {
    RECOVERABLE.set(true);
    let attempt = catch_unwind(AssertUnwindSafe(work));
    RECOVERABLE.set(false);
    attempt.map_err(|panic| match panic_text(panic.as_ref()) {
        Some(text) if is_out_of_memory(&text) => OutOfMemory {
            step,
            micro_batch,
            // libtorch appends a C++ backtrace; its first line says it all.
            detail: text.lines().next().unwrap_or("").to_owned(),
        },
        _ => resume_unwind(panic),
    })
}

/// Keeps the panic hook quiet about the panics [`catch`] recovers from: they
/// are expected, and the stage says what it does about them.
pub fn quiet_when_caught() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let quiet =
            RECOVERABLE.get() && panic_text(info.payload()).is_some_and(|t| is_out_of_memory(&t));
        if !quiet {
            hook(info);
        }
    }));
}

/// The micro-batch and accumulation to retry with: the largest micro-batch
/// below `micro_batch` that divides the effective batch (half of it, when it
/// is even), so that every update still sees the same windows and the
/// checkpoint resumes. `None` when one window per micro-batch did not fit.
pub fn smaller(micro_batch: usize, accumulation: usize) -> Option<(usize, usize)> {
    let effective = micro_batch * accumulation;
    (1..=micro_batch / 2)
        .rev()
        .find(|b| effective % b == 0)
        .map(|b| (b, effective / b))
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
}

/// libtorch's messages for a failed allocation, on the CPU and on CUDA.
fn is_out_of_memory(text: &str) -> bool {
    text.contains("can't allocate memory") || text.contains("out of memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smaller_micro_batch_keeps_the_effective_batch() {
        assert_eq!(smaller(16, 1), Some((8, 2)));
        assert_eq!(smaller(6, 2), Some((3, 4)));
        // 9 windows per update: 4 does not divide them, 3 does.
        assert_eq!(smaller(9, 1), Some((3, 3)));
        assert_eq!(smaller(1, 4), None);
    }

    #[test]
    fn an_allocation_failure_is_caught_and_other_panics_go_on() {
        let caught = catch(7, 16, || -> u32 {
            std::panic::panic_any("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes\nbacktrace…".to_owned())
        });
        let oom = caught.unwrap_err();
        assert_eq!((oom.step, oom.micro_batch), (7, 16));
        assert!(
            oom.detail.ends_with("you tried to allocate 1 bytes"),
            "{}",
            oom.detail
        );
        assert_eq!(catch(1, 1, || 5).unwrap(), 5);
        let other =
            std::panic::catch_unwind(|| catch(1, 1, || -> u32 { panic!("index out of bounds") }));
        assert!(
            other.is_err(),
            "a panic that is not about memory is not swallowed"
        );
        assert!(!RECOVERABLE.get());
    }
}
