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

mod materialize;

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
pub use materialize::LinkMethod;
use materialize::{clone_or_copy, materialize};

/// The most entries (files and directories) one restored tree may have.
pub const MAX_TREE_FILES: u64 = 10_000_000;

/// The deepest directory nesting a restored tree may have.
pub const MAX_TREE_DEPTH: usize = 256;

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

/// A store failure, naming the object or path involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cache I/O on `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cache object {0} is missing")]
    MissingObject(Digest),
    #[error("cache object {digest} is corrupt: {why}")]
    Corrupt { digest: Digest, why: String },
    #[error("`{path}` changed while amt stored it (it hashed to {expected} a moment before); nothing was cached")]
    Changed { path: PathBuf, expected: Digest },
    #[error("cache entry {digest} lists a tree of {what}, more than amt restores; it was not used")]
    TooLarge { digest: Digest, what: String },
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

    /// Where the action result for this key lives.
    pub fn action_path(&self, k: &ActionKey) -> PathBuf {
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

    /// Stores a copy of the file at `src`, whose digest is `d`. The copy is
    /// hashed again, so a file that changed after it was hashed is refused
    /// rather than stored under the old digest.
    pub fn put_file(&self, src: &Path, d: &Digest) -> Result<(), StoreError> {
        if self.has(d) {
            return Ok(());
        }
        let staged = self.staging_file()?;
        clone_or_copy(src, &staged).map_err(io_at(src))?;
        if Digest::of_file(&staged).map_err(io_at(&staged))? != *d {
            return Err(StoreError::Changed {
                path: src.to_owned(),
                expected: *d,
            });
        }
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

    /// True when every object reachable from `entry` is stored and the tree
    /// is one amt would restore (see [`Store::tree_size`]).
    pub fn is_complete(&self, entry: &Entry) -> bool {
        self.tree_size(entry).is_ok()
    }

    /// How many files the tree under `entry` restores to, checking on the
    /// way that every object is stored and every listing decodes. Listings
    /// can share subtrees, so a forged entry of a few objects could expand to
    /// billions of files; each distinct listing is visited once, and a tree
    /// of more than [`MAX_TREE_FILES`] files or [`MAX_TREE_DEPTH`] levels is refused.
    pub fn tree_size(&self, entry: &Entry) -> Result<u64, StoreError> {
        fn walk(
            store: &Store,
            entry: &Entry,
            depth: usize,
            seen: &mut HashMap<Digest, u64>,
        ) -> Result<u64, StoreError> {
            if entry.kind != Kind::Dir {
                return if store.has(&entry.digest) {
                    Ok(1)
                } else {
                    Err(StoreError::MissingObject(entry.digest))
                };
            }
            if let Some(&n) = seen.get(&entry.digest) {
                return Ok(n);
            }
            if depth > MAX_TREE_DEPTH {
                return Err(StoreError::TooLarge {
                    digest: entry.digest,
                    what: format!("more than {MAX_TREE_DEPTH} levels"),
                });
            }
            let manifest = store.manifest(&entry.digest)?;
            let mut n: u64 = 1;
            for (_, child) in &manifest.entries {
                n = n.saturating_add(walk(store, child, depth + 1, seen)?);
                if n > MAX_TREE_FILES {
                    return Err(StoreError::TooLarge {
                        digest: entry.digest,
                        what: format!("more than {MAX_TREE_FILES} entries"),
                    });
                }
            }
            seen.insert(entry.digest, n);
            Ok(n)
        }
        walk(self, entry, 0, &mut HashMap::new())
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

#[cfg(test)]
mod tests {
    use std::io::Write;

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
    fn a_tree_that_expands_beyond_the_limit_is_refused_without_expanding_it() {
        // 40 levels, each listing the next twice: 2^40 files from 41 objects.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let leaf = Digest::of_bytes(b"x");
        store.put_bytes(&leaf, b"x").unwrap();
        let mut entry = Entry {
            kind: Kind::File,
            digest: leaf,
        };
        for _ in 0..40 {
            let bytes = Manifest {
                entries: vec![("a".into(), entry), ("b".into(), entry)],
            }
            .encode();
            let d = Digest::of_bytes(&bytes);
            store.put_bytes(&d, &bytes).unwrap();
            entry = Entry {
                kind: Kind::Dir,
                digest: d,
            };
        }
        let started = std::time::Instant::now();
        assert!(matches!(
            store.tree_size(&entry),
            Err(StoreError::TooLarge { .. })
        ));
        assert!(!store.is_complete(&entry));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_restored_file_is_a_copy_that_an_edit_cannot_turn_into_the_cached_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("cache"));
        let d = Digest::of_bytes(b"good\n");
        store.put_bytes(&d, b"good\n").unwrap();
        let out = dir.path().join("o");
        let entry = Entry {
            kind: Kind::File,
            digest: d,
        };
        store.restore(&entry, &out).unwrap();
        // What root can do to any file, read-only or not.
        fs::set_permissions(&out, fs::Permissions::from_mode(0o644)).unwrap();
        fs::OpenOptions::new().append(true).open(&out).unwrap().write_all(b"EVIL\n").unwrap();
        assert_eq!(store.read(&d).unwrap(), b"good\n");
    }

    #[test]
    fn a_file_that_changes_while_it_is_stored_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&dir.path().join("cache"));
        let src = dir.path().join("f");
        fs::write(&src, b"now").unwrap();
        let stale = Digest::of_bytes(b"before");
        assert!(matches!(
            store.put_file(&src, &stale),
            Err(StoreError::Changed { .. })
        ));
        assert!(!store.has(&stale));
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
