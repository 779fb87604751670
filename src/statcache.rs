//! The stat cache: remembers the digest of every file hashed, keyed by its
//! path and `(device, inode, size, mtime_ns, ctime_ns)`, so an unchanged file
//! is never read again. This is what makes a no-op run cost one `stat` per file.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::fsutil::write_atomic;

/// Bumped whenever the on-disk layout changes; an old file is then ignored.
const FORMAT: u32 = 1;

/// A file modified this recently may still change within the filesystem's
/// timestamp granularity without its stamp changing ("racy clean" in git), so
/// its digest is used but not remembered.
const RACY_WINDOW: Duration = Duration::from_millis(100);

/// What `stat` says about a file; if any field changes the file is re-hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    /// Reads the stamp from metadata.
    pub fn of(m: &Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        }
    }

    fn is_racy(&self, now: SystemTime) -> bool {
        let now_ns = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let window = RACY_WINDOW.as_nanos() as i64;
        self.mtime_ns.max(self.ctime_ns) + window > now_ns
    }
}

#[derive(Default, Serialize, Deserialize)]
struct OnDisk {
    format: u32,
    entries: HashMap<String, (Stamp, Digest)>,
}

/// The cache, shared by the threads that hash files.
pub struct StatCache {
    file: PathBuf,
    entries: RwLock<HashMap<String, (Stamp, Digest)>>,
    dirty: AtomicBool,
}

impl StatCache {
    /// Loads the cache from `file`. A missing or unreadable cache is empty:
    /// it only ever saves work, so losing it costs time, never correctness.
    pub fn load(file: &Path) -> Self {
        let entries = std::fs::read(file)
            .ok()
            .and_then(|bytes| postcard::from_bytes::<OnDisk>(&bytes).ok())
            .filter(|d| d.format == FORMAT)
            .map(|d| d.entries)
            .unwrap_or_default();
        Self {
            file: file.to_owned(),
            entries: RwLock::new(entries),
            dirty: AtomicBool::new(false),
        }
    }

    /// The remembered digest of `path`, if its stamp is unchanged.
    pub fn get(&self, path: &str, stamp: &Stamp) -> Option<Digest> {
        match self
            .entries
            .read()
            .expect("stat cache lock poisoned")
            .get(path)
        {
            Some((s, d)) if s == stamp => Some(*d),
            _ => None,
        }
    }

    /// Remembers a freshly computed digest, unless the file is too new to trust.
    pub fn insert(&self, path: String, stamp: Stamp, digest: Digest) {
        if stamp.is_racy(SystemTime::now()) {
            return;
        }
        self.entries
            .write()
            .expect("stat cache lock poisoned")
            .insert(path, (stamp, digest));
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Drops entries for which `keep` is false (used by `amt gc`).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> usize {
        let mut entries = self.entries.write().expect("stat cache lock poisoned");
        let before = entries.len();
        entries.retain(|k, _| keep(k));
        let removed = before - entries.len();
        if removed > 0 {
            self.dirty.store(true, Ordering::Relaxed);
        }
        removed
    }

    /// Writes the cache back if anything changed.
    pub fn save(self) -> std::io::Result<()> {
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let disk = OnDisk {
            format: FORMAT,
            entries: self.entries.into_inner().expect("stat cache lock poisoned"),
        };
        let bytes = postcard::to_stdvec(&disk).map_err(std::io::Error::other)?;
        write_atomic(&self.file, &bytes)
    }

    /// The number of remembered files.
    pub fn len(&self) -> usize {
        self.entries.read().expect("stat cache lock poisoned").len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_old_files_and_forgets_racy_ones() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let fresh = Stamp::of(&std::fs::metadata(&f).unwrap());
        let old = Stamp {
            mtime_ns: 1,
            ctime_ns: 1,
            ..fresh
        };
        let d = Digest::of_bytes(b"x");

        let cache_file = dir.path().join("stat");
        let cache = StatCache::load(&cache_file);
        cache.insert("f".into(), fresh, d);
        cache.insert("g".into(), old, d);
        cache.save().unwrap();

        let cache = StatCache::load(&cache_file);
        assert_eq!(cache.get("g", &old), Some(d));
        assert_eq!(
            cache.get("f", &fresh),
            None,
            "a racy file must not be remembered"
        );
        let changed = Stamp { size: 2, ..old };
        assert_eq!(cache.get("g", &changed), None);
    }

    #[test]
    fn a_corrupt_cache_is_treated_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cache_file = dir.path().join("stat");
        std::fs::write(&cache_file, b"\xff\xff garbage").unwrap();
        assert!(StatCache::load(&cache_file).is_empty());
    }
}
