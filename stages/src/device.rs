//! The torch device a stage runs on, and its thread counts, chosen once per process.
//!
//! Thread pools default to the CPU share amt gives the stage (`AMT_CPUS`, its
//! `cpus` in amt.toml), not to the whole machine: two stages running side by
//! side then share the cores instead of spinning on the same ones.

use std::sync::Once;

/// The CPUs this process may use: the share amt gives a stage (`AMT_CPUS`),
/// else every core.
pub fn cpu_share() -> usize {
    std::env::var("AMT_CPUS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Picks the torch device and sets torch's intra-op threads to `threads`
/// (0: the CPU share) and its inter-op threads to the same, since OpenMP's
/// defaults (one per core) make timings erratic on shared machines.
pub fn pick(name: &str, threads: usize) -> anyhow::Result<tch::Device> {
    let threads = if threads == 0 { cpu_share() } else { threads };
    tch::set_num_threads(threads as i32);
    static INTEROP: Once = Once::new();
    INTEROP.call_once(|| set_interop_threads(threads));
    match name {
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
        "cuda" => anyhow::bail!("device = \"cuda\" but CUDA is not available"),
        other => anyhow::bail!("device `{other}` is not one of auto, cpu, cuda"),
    }
}

/// Runs `f` under CUDA's bf16 autocast when `enabled` (and CUDA is there),
/// and restores autocast's state however `f` ends. `tch::autocast` restores
/// it only when `f` returns: after a caught out-of-memory panic, autocast
/// would stay on with its cast cache never cleared, so training would go on
/// from stale bf16 copies of the weights.
pub fn autocast<T>(enabled: bool, f: impl FnOnce() -> T) -> T {
    if !tch::Cuda::is_available() {
        return f();
    }
    struct Restore {
        prev: i32,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: plain FFI calls on libtorch's thread-local autocast state.
            unsafe {
                if torch_sys::at_autocast_decrement_nesting() == 0 {
                    torch_sys::at_autocast_clear_cache();
                }
                torch_sys::at_autocast_set_enabled(self.prev);
                drop_error();
            }
        }
    }
    // SAFETY: as above.
    let prev = unsafe {
        let prev = torch_sys::at_autocast_is_enabled();
        torch_sys::at_autocast_set_enabled(i32::from(enabled));
        torch_sys::at_autocast_increment_nesting();
        drop_error();
        prev
    };
    let _restore = Restore { prev };
    f()
}

/// Frees libtorch's last error message, if any.
fn drop_error() {
    // SAFETY: the string, if any, is ours to free.
    unsafe {
        let err = torch_sys::get_and_reset_last_err();
        if !err.is_null() {
            libc::free(err.cast());
        }
    }
}

/// Sets libtorch's inter-op pool size. libtorch refuses once inter-op work
/// has started (a library caller may already have run some); the pool then
/// keeps its size, which is harmless, so the refusal is dropped rather than
/// turned into a panic as `tch::set_num_interop_threads` would.
fn set_interop_threads(threads: usize) {
    // SAFETY: a plain FFI call.
    unsafe { torch_sys::at_set_num_interop_threads(threads as i32) };
    drop_error();
}
