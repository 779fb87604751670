//! The local cache: a content-addressed store of objects plus an action cache
//! that maps an [`ActionKey`] to the outputs that action produced.
//!
//! ```text
//! cache/cas/blake3/ab/cdef…      objects, read-only, named by digest
//! cache/ac/blake3/ab/cdef….json  action results
//! cache/tmp/                     staging for atomic renames
//! ```
//! Objects are written to `tmp/` and renamed into place, and an action entry is
//! written only after every object it names is stored, so a crash at any
//! instant leaves either a complete entry or none.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{ALGORITHM, ActionKey, Digest};
use crate::fsutil::{remove_path, write_atomic};
use crate::names::{ProjectPath, StageName};
use crate::tree::{Entry, Kind, Manifest};

/// One declared output and what it hashed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutRecord {
    /// The declared path.
    pub path: ProjectPath,
    /// Its kind and digest.
    #[serde(flatten)]
    pub entry: Entry,
}

/// What an action produced; stored in the action cache under its key.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionResult {
    /// The stage that first produced it (informational).
    pub stage: StageName,
    /// The outputs, in declaration order.
    pub outs: Vec<OutRecord>,
}

/// How a cached file was put back into the workspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMethod {
    /// A copy-on-write clone (`FICLONE`).
    Reflink,
    /// A hard link to the read-only object.
    Hardlink,
    /// A plain copy.
    Copy,
}

/// A store failure, naming the object or path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cache I/O on `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cache object {0} is missing")]
    MissingObject(Digest),
    #[error("cache object {digest} is corrupt: {why}")]
    Corrupt { digest: Digest, why: String },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The cache directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// A store rooted at `root` (normally `<project>/cache`).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object with this digest lives.
    pub fn object_path(&self, d: &Digest) -> PathBuf {
        let hex = d.to_hex();
        self.root
            .join("cas")
            .join(ALGORITHM)
            .join(&hex[..2])
            .join(&hex[2..])
    }

    fn action_path(&self, k: &ActionKey) -> PathBuf {
        let hex = k.0.to_hex();
        self.root
            .join("ac")
            .join(ALGORITHM)
            .join(&hex[..2])
            .join(format!("{}.json", &hex[2..]))
    }

    /// The staging directory for atomic writes.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Removes staging files left behind by a killed process. Call with the project lock held.
    pub fn clean_tmp(&self) -> Result<(), StoreError> {
        let tmp = self.tmp_dir();
        remove_path(&tmp).map_err(io_at(&tmp))
    }

    /// True when the object is stored.
    pub fn has(&self, d: &Digest) -> bool {
        self.object_path(d).exists()
    }

    fn staging_file(&self) -> Result<tempfile::TempPath, StoreError> {
        let tmp = self.tmp_dir();
        fs::create_dir_all(&tmp).map_err(io_at(&tmp))?;
        let file = tempfile::NamedTempFile::new_in(&tmp).map_err(io_at(&tmp))?;
        Ok(file.into_temp_path())
    }

    fn publish(&self, staged: tempfile::TempPath, d: &Digest) -> Result<(), StoreError> {
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o444)).map_err(io_at(&staged))?;
        let dst = self.object_path(d);
        let parent = dst.parent().expect("object paths have a parent");
        fs::create_dir_all(parent).map_err(io_at(parent))?;
        staged.persist(&dst).map_err(|e| StoreError::Io {
            path: dst,
            source: e.error,
        })
    }

    /// Stores bytes whose digest is `d` (the caller computed it).
    pub fn put_bytes(&self, d: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        if self.has(d) {
            return Ok(());
        }
        let staged = self.staging_file()?;
        fs::write(&staged, bytes).map_err(io_at(&staged))?;
        self.publish(staged, d)
    }

    /// Stores a copy of the file at `src`, whose digest is `d`.
    pub fn put_file(&self, src: &Path, d: &Digest) -> Result<(), StoreError> {
        if self.has(d) {
            return Ok(());
        }
        let staged = self.staging_file()?;
        clone_or_copy(src, &staged).map_err(io_at(src))?;
        self.publish(staged, d)
    }

    /// Reads a whole object.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.object_path(d);
        fs::read(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingObject(*d),
            _ => StoreError::Io { path: p, source: e },
        })
    }

    /// Reads and decodes a directory manifest.
    pub fn manifest(&self, d: &Digest) -> Result<Manifest, StoreError> {
        let bytes = self.read(d)?;
        Manifest::decode(&bytes).map_err(|e| StoreError::Corrupt {
            digest: *d,
            why: e.to_string(),
        })
    }

    /// Stores the output at `path` (already hashed into `entry`, with the
    /// given directory manifests) so that it can be restored later.
    pub fn ingest(
        &self,
        root: &Path,
        path: &ProjectPath,
        entry: &Entry,
        manifests: &[(Digest, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let by_digest: HashMap<&Digest, &Vec<u8>> = manifests.iter().map(|(d, b)| (d, b)).collect();
        self.ingest_entry(&path.to_fs(root), entry, &by_digest)
    }

    fn ingest_entry(
        &self,
        abs: &Path,
        entry: &Entry,
        manifests: &HashMap<&Digest, &Vec<u8>>,
    ) -> Result<(), StoreError> {
        match entry.kind {
            Kind::File | Kind::Exec => self.put_file(abs, &entry.digest),
            Kind::Dir => {
                let bytes = manifests
                    .get(&entry.digest)
                    .ok_or(StoreError::MissingObject(entry.digest))?;
                let manifest = Manifest::decode(bytes).map_err(|e| StoreError::Corrupt {
                    digest: entry.digest,
                    why: e.to_string(),
                })?;
                for (name, child) in &manifest.entries {
                    self.ingest_entry(&abs.join(name), child, manifests)?;
                }
                self.put_bytes(&entry.digest, bytes)
            }
        }
    }

    /// True when every object reachable from `entry` is stored.
    pub fn is_complete(&self, entry: &Entry) -> bool {
        match entry.kind {
            Kind::File | Kind::Exec => self.has(&entry.digest),
            Kind::Dir => match self.manifest(&entry.digest) {
                Ok(m) => m.entries.iter().all(|(_, e)| self.is_complete(e)),
                Err(_) => false,
            },
        }
    }

    /// Every object digest reachable from `entry`, manifests included.
    pub fn reachable(&self, entry: &Entry, into: &mut std::collections::HashSet<Digest>) {
        if !into.insert(entry.digest) || entry.kind != Kind::Dir {
            return;
        }
        if let Ok(m) = self.manifest(&entry.digest) {
            for (_, e) in &m.entries {
                self.reachable(e, into);
            }
        }
    }

    /// Replaces whatever is at `dst` with the stored `entry`.
    pub fn restore(&self, entry: &Entry, dst: &Path) -> Result<LinkMethod, StoreError> {
        remove_path(dst).map_err(io_at(dst))?;
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        self.restore_entry(entry, dst)
    }

    fn restore_entry(&self, entry: &Entry, dst: &Path) -> Result<LinkMethod, StoreError> {
        match entry.kind {
            Kind::Dir => {
                let manifest = self.manifest(&entry.digest)?;
                fs::create_dir(dst).map_err(io_at(dst))?;
                let mut method = LinkMethod::Reflink;
                for (name, child) in &manifest.entries {
                    method = method.max(self.restore_entry(child, &dst.join(name))?);
                }
                Ok(method)
            }
            Kind::File | Kind::Exec => {
                let src = self.object_path(&entry.digest);
                if !src.exists() {
                    return Err(StoreError::MissingObject(entry.digest));
                }
                materialize(&src, dst, entry.kind == Kind::Exec).map_err(io_at(dst))
            }
        }
    }

    /// Looks up an action result.
    pub fn get_action(&self, k: &ActionKey) -> Option<ActionResult> {
        let bytes = fs::read(self.action_path(k)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records an action result; call only after its objects are stored.
    pub fn put_action(&self, k: &ActionKey, result: &ActionResult) -> Result<(), StoreError> {
        let p = self.action_path(k);
        let bytes = serde_json::to_vec_pretty(result).expect("action results serialise");
        write_atomic(&p, &bytes).map_err(io_at(&p))
    }

    /// Every stored action key.
    pub fn action_keys(&self) -> Vec<(ActionKey, PathBuf)> {
        fanout(&self.root.join("ac").join(ALGORITHM))
            .into_iter()
            .filter_map(|(name, path)| {
                Some((ActionKey(name.strip_suffix(".json")?.parse().ok()?), path))
            })
            .collect()
    }

    /// Every stored object with its path.
    pub fn objects(&self) -> Vec<(Digest, PathBuf)> {
        fanout(&self.root.join("cas").join(ALGORITHM))
            .into_iter()
            .filter_map(|(name, path)| Some((name.parse().ok()?, path)))
            .collect()
    }
}

/// The files of a two-level `ab/cdef…` layout, each with its name rejoined (`abcdef…`).
fn fanout(base: &Path) -> Vec<(String, PathBuf)> {
    walkdir::WalkDir::new(base)
        .min_depth(2)
        .max_depth(2)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let dir = entry.path().parent()?.file_name()?.to_str()?.to_owned();
            let name = entry.file_name().to_str()?.to_owned();
            Some((dir + &name, entry.into_path()))
        })
        .collect()
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

fn clone_or_copy(src: &Path, dst: &Path) -> io::Result<LinkMethod> {
    if reflink(src, dst).is_ok() {
        return Ok(LinkMethod::Reflink);
    }
    fs::copy(src, dst)?;
    Ok(LinkMethod::Copy)
}

/// Puts an object at `dst`: a reflink if the filesystem can, else a hard link
/// (objects are read-only, so the link is too), else a copy.
fn materialize(object: &Path, dst: &Path, executable: bool) -> io::Result<LinkMethod> {
    if reflink(object, dst).is_ok() {
        let mode = if executable { 0o755 } else { 0o644 };
        fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
        return Ok(LinkMethod::Reflink);
    }
    // An executable needs its own mode bits, which a shared inode cannot give it.
    if !executable && fs::hard_link(object, dst).is_ok() {
        return Ok(LinkMethod::Hardlink);
    }
    fs::copy(object, dst)?;
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(dst, fs::Permissions::from_mode(mode))?;
    Ok(LinkMethod::Copy)
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
            LinkMethod::Hardlink => 1,
            LinkMethod::Copy => 2,
        };
        rank(self).cmp(&rank(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statcache::StatCache;
    use crate::tree::{HashStats, TreeHasher};

    #[test]
    fn a_directory_round_trips_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("out/sub")).unwrap();
        fs::write(root.join("out/a"), b"alpha").unwrap();
        fs::write(root.join("out/sub/b"), b"beta").unwrap();
        fs::write(root.join("out/run.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("out/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();

        let cache = StatCache::load(&root.join("stat"));
        let stats = HashStats::default();
        let hasher = TreeHasher::new(root, &cache, &stats);
        let out = ProjectPath::parse("out").unwrap();
        let hashed = hasher.hash(&out).unwrap();
        let store = Store::new(&root.join("cache"));
        store
            .ingest(root, &out, &hashed.entry, &hashed.manifests)
            .unwrap();
        assert!(store.is_complete(&hashed.entry));

        fs::remove_dir_all(root.join("out")).unwrap();
        store.restore(&hashed.entry, &out.to_fs(root)).unwrap();
        assert_eq!(fs::read(root.join("out/sub/b")).unwrap(), b"beta");
        let mode = fs::metadata(root.join("out/run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "executables stay executable");
        assert_eq!(hasher.hash(&out).unwrap().entry, hashed.entry);

        let object_mode = fs::metadata(store.object_path(&Digest::of_bytes(b"alpha")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(object_mode & 0o222, 0, "objects are read-only");
    }

    #[test]
    fn a_missing_object_makes_the_entry_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let d = Digest::of_bytes(b"x");
        assert!(!store.is_complete(&Entry {
            kind: Kind::File,
            digest: d
        }));
        store.put_bytes(&d, b"x").unwrap();
        assert!(store.is_complete(&Entry {
            kind: Kind::File,
            digest: d
        }));
        assert_eq!(store.objects().len(), 1);
    }
}
