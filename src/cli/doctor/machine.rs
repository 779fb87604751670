//! The machine's own checks: free disk space and memory against what the
//! stages declare.

use std::path::Path;

use amt::config::ExecutorKind;
use amt::project::Project;

use super::{Check, Status, check};

/// The free and total bytes of the file system holding `path`.
fn statvfs(path: &Path) -> Option<(u64, u64)> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs fills a plain struct for a NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let unit = s.f_frsize as u64;
    Some((s.f_bavail as u64 * unit, s.f_blocks as u64 * unit))
}

const GIB: f64 = (1u64 << 30) as f64;

/// The free space where the project and its cache live.
pub(super) fn disk(root: &Path) -> Check {
    match statvfs(root) {
        None => check("disk", Status::Warn, "cannot read the free space"),
        Some((free, total)) => {
            let text = format!(
                "{:.1} GiB free of {:.1} GiB where the project and its cache live",
                free as f64 / GIB,
                total as f64 / GIB
            );
            if free < 1 << 30 {
                check("disk", Status::Fail, text).fix("free space, or `amt gc --max-size SIZE`")
            } else if free < 5 << 30 {
                check("disk", Status::Warn, text).fix("`amt gc` removes cache entries nothing uses")
            } else {
                check("disk", Status::Ok, text)
            }
        }
    }
}

fn meminfo(field: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// The largest `mem` a stage declares against the machine's memory.
pub(super) fn memory(project: &Project) -> Check {
    let (Some(total), Some(available)) = (meminfo("MemTotal:"), meminfo("MemAvailable:")) else {
        return check("memory", Status::Warn, "cannot read /proc/meminfo");
    };
    // Stages a cluster runs need the memory there, not here.
    let kind = project.pipeline.executor.kind;
    let need = project
        .pipeline
        .stages
        .iter()
        .filter(|s| s.executor.unwrap_or(kind) == ExecutorKind::Local)
        .max_by_key(|s| s.resources.mem)
        .filter(|s| s.resources.mem > 0);
    let text = |extra: String| {
        format!(
            "{:.1} GiB available of {:.1} GiB{extra}",
            available as f64 / GIB,
            total as f64 / GIB
        )
    };
    match need {
        None => check("memory", Status::Ok, text("; no stage declares `mem`".into())),
        Some(s) if s.resources.mem > total => check(
            "memory",
            Status::Fail,
            text(format!("; stage {} declares {:.1} GiB", s.name, s.resources.mem as f64 / GIB)),
        )
        .fix(format!("lower stages.{}.mem, or run it on a larger machine", s.name)),
        Some(s) if s.resources.mem > available => check(
            "memory",
            Status::Warn,
            text(format!(
                "; stage {} declares {:.1} GiB, more than is free now",
                s.name,
                s.resources.mem as f64 / GIB
            )),
        ),
        Some(s) => check(
            "memory",
            Status::Ok,
            text(format!("; the most any stage declares is {:.1} GiB ({})", s.resources.mem as f64 / GIB, s.name)),
        ),
    }
}
