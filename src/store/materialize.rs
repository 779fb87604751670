//! How a stored object becomes a file in the workspace again: a
//! copy-on-write clone where the filesystem can make one, else a copy;
//! never a link to the object itself.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// How a cached file was put back into the workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMethod {
    /// A copy-on-write clone (`FICLONE`).
    Reflink,
    /// A plain copy. Never a hard link: a file that shares the object's inode
    /// would let an edit in the workspace (by root, whom read-only bits do
    /// not stop) rewrite the cached object itself.
    Copy,
}

/// `ioctl(FICLONE)`: share the source's blocks copy-on-write (btrfs, XFS, …).
fn reflink(src: &Path, dst: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const FICLONE: libc::c_ulong = 0x4004_9409;
    let from = fs::File::open(src)?;
    let to = fs::File::create(dst)?;
    // SAFETY: both descriptors are open for the duration of the call.
    let rc = unsafe { libc::ioctl(to.as_raw_fd(), FICLONE as _, from.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        let err = io::Error::last_os_error();
        drop(to);
        let _ = fs::remove_file(dst);
        Err(err)
    }
}

/// A copy-on-write clone of `src` at `dst` where the filesystem can make one, else a copy.
pub(super) fn clone_or_copy(src: &Path, dst: &Path) -> io::Result<LinkMethod> {
    if reflink(src, dst).is_ok() {
        return Ok(LinkMethod::Reflink);
    }
    fs::copy(src, dst)?;
    Ok(LinkMethod::Copy)
}

/// Puts an object at `dst`: a copy-on-write clone if the filesystem can, else
/// a copy, writable like any output.
pub(super) fn materialize(object: &Path, dst: &Path, executable: bool) -> io::Result<LinkMethod> {
    let method = clone_or_copy(object, dst)?;
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
    Ok(method)
}

impl PartialOrd for LinkMethod {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LinkMethod {
    /// Orders by cost, so a directory reports the slowest method any file used.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |m: &LinkMethod| match m {
            LinkMethod::Reflink => 0,
            LinkMethod::Copy => 1,
        };
        rank(self).cmp(&rank(other))
    }
}
