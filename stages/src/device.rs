//! The torch device a stage runs on, chosen once per process.

/// Picks the torch device and sets the CPU thread count explicitly, since
/// OpenMP's defaults make timings erratic on shared machines.
pub fn pick(name: &str, threads: usize) -> anyhow::Result<tch::Device> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    tch::set_num_threads(threads as i32);
    match name {
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
        "cuda" => anyhow::bail!("device = \"cuda\" but CUDA is not available"),
        other => anyhow::bail!("device `{other}` is not one of auto, cpu, cuda"),
    }
}
