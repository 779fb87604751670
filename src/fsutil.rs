//! Small filesystem helpers shared by the engine: atomic writes and removal.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::names::ProjectPath;

/// Writes `bytes` to `path` through a temp file in the same directory and a
/// rename, so readers see the old content or the new, never a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Removes a file or a directory tree; a missing path is not an error.
/// Read-only files (restored from the cache) are removed too.
pub fn remove_path(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The first directory on the way to `path` (below `root`, `path` itself
/// excluded) that is a symbolic link, if any. amt deletes and writes outs,
/// so an out reached through a link could land outside the project.
pub fn linked_ancestor(root: &Path, path: &ProjectPath) -> Option<ProjectPath> {
    let parts: Vec<&str> = path.as_str().split('/').collect();
    for n in 1..parts.len() {
        let prefix = parts[..n].join("/");
        match fs::symlink_metadata(root.join(&prefix)) {
            Ok(m) if m.file_type().is_symlink() => return ProjectPath::parse(&prefix).ok(),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn remove_path_handles_files_dirs_and_absence() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        fs::create_dir_all(d.join("e")).unwrap();
        fs::write(d.join("e/f"), b"x").unwrap();
        remove_path(&d).unwrap();
        assert!(!d.exists());
        remove_path(&d).unwrap();
    }

    #[test]
    fn linked_ancestors_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("real/sub")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let p = |s: &str| ProjectPath::parse(s).unwrap();
        assert_eq!(linked_ancestor(dir.path(), &p("real/sub/x")), None);
        assert_eq!(linked_ancestor(dir.path(), &p("link/x")), Some(p("link")));
        assert_eq!(linked_ancestor(dir.path(), &p("link")), None, "the out itself may be a link");
        assert_eq!(linked_ancestor(dir.path(), &p("missing/x/y")), None);
    }
}
