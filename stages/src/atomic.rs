//! Atomic file writes: a temporary file in the destination's directory,
//! renamed into place, so readers and killed runs never see half a file.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use tempfile::NamedTempFile;

/// A temporary file beside `path`, to fill and then [`persist`].
pub fn temp_beside(path: &Path) -> anyhow::Result<NamedTempFile> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// Renames a filled temporary file onto `path`, readable by all like any other output
/// (temporary files are created private).
pub fn persist(tmp: NamedTempFile, path: &Path) -> anyhow::Result<()> {
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    persist(tmp, path)
}

/// Pretty JSON with a trailing newline, written atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write(path, &bytes)
}
