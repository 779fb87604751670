//! Hashing files and directories into content digests.
//!
//! A directory's digest is the digest of its *manifest*: one sorted line per
//! entry giving kind, digest and name. Manifests nest, so the digests form a
//! Merkle tree: changing one file changes that file's digest and the manifests
//! on its path to the root, and nothing else is re-read.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::names::ProjectPath;
use crate::statcache::{Stamp, StatCache};

const MANIFEST_HEADER: &str = "amt-tree-v1\n";

/// What kind of thing a path is, as far as its digest is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A regular file with an executable bit.
    Exec,
    /// A directory; the digest is that of its manifest.
    Dir,
}

impl Kind {
    fn code(self) -> char {
        match self {
            Kind::File => 'f',
            Kind::Exec => 'x',
            Kind::Dir => 'd',
        }
    }

    fn from_code(c: &str) -> Option<Self> {
        match c {
            "f" => Some(Kind::File),
            "x" => Some(Kind::Exec),
            "d" => Some(Kind::Dir),
            _ => None,
        }
    }
}

/// A hashed path: its kind and digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// File, executable or directory.
    pub kind: Kind,
    /// The content digest (the manifest's digest for a directory).
    pub digest: Digest,
}

/// A directory listing in canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Entries sorted by name (byte order).
    pub entries: Vec<(String, Entry)>,
}

/// A manifest that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("malformed tree manifest at line {line}{}", why.map(|w| format!(": {w}")).unwrap_or_default())]
pub struct BadManifest {
    line: usize,
    why: Option<&'static str>,
}

/// Why an entry name cannot be a file in a directory, if it cannot. Names
/// come from caches, local or remote, and restoring joins them onto a path,
/// so anything but a single plain component would write elsewhere.
fn bad_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("an empty name")
    } else if name == "." || name == ".." {
        Some("a `.` or `..` name")
    } else if name.contains('/') {
        Some("a name with `/`")
    } else if name.contains('\0') {
        Some("a name with a NUL byte")
    } else {
        None
    }
}

impl Manifest {
    /// The canonical bytes whose digest is the directory's digest.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::with_capacity(MANIFEST_HEADER.len() + self.entries.len() * 80);
        out.push_str(MANIFEST_HEADER);
        for (name, e) in &self.entries {
            out.push(e.kind.code());
            out.push(' ');
            out.push_str(&e.digest.to_hex());
            out.push(' ');
            out.push_str(name);
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Parses bytes written by [`Manifest::encode`], refusing names that are
    /// not single path components and entries out of order (or repeated).
    pub fn decode(bytes: &[u8]) -> Result<Self, BadManifest> {
        let bad = |line, why| BadManifest { line, why };
        let text = std::str::from_utf8(bytes).map_err(|_| bad(0, Some("not UTF-8")))?;
        let body = text
            .strip_prefix(MANIFEST_HEADER)
            .ok_or(bad(1, Some("no header")))?;
        let mut entries: Vec<(String, Entry)> = Vec::new();
        for (i, line) in body.split_terminator('\n').enumerate() {
            let at = i + 2;
            let mut parts = line.splitn(3, ' ');
            let kind = parts.next().and_then(Kind::from_code).ok_or(bad(at, None))?;
            let digest = parts
                .next()
                .and_then(|d| d.parse().ok())
                .ok_or(bad(at, None))?;
            let name = parts.next().ok_or(bad(at, None))?;
            if let Some(why) = bad_name(name) {
                return Err(bad(at, Some(why)));
            }
            if entries.last().is_some_and(|(prev, _)| prev.as_str() >= name) {
                return Err(bad(at, Some("names out of order or repeated")));
            }
            entries.push((name.to_owned(), Entry { kind, digest }));
        }
        Ok(Self { entries })
    }
}

/// The result of hashing one path.
#[derive(Debug)]
pub struct Hashed {
    /// The path's kind and digest.
    pub entry: Entry,
    /// Every manifest in the tree (empty for a file), keyed by digest.
    pub manifests: Vec<(Digest, Vec<u8>)>,
}

/// Reading a path failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("`{0}` does not exist")]
    Missing(PathBuf),
    #[error("cannot read `{path}`: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("`{0}` has a newline in its name, which amt cannot record")]
    BadName(PathBuf),
    #[error("`{0}` is neither a file nor a directory")]
    Special(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> TreeError + '_ {
    move |source| {
        if source.kind() == io::ErrorKind::NotFound {
            TreeError::Missing(path.to_owned())
        } else {
            TreeError::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// Counts the files actually read (stat-cache misses), for reports and tests.
#[derive(Debug, Default)]
pub struct HashStats {
    files: AtomicU64,
    bytes: AtomicU64,
}

impl HashStats {
    /// Files read so far.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Hashes paths under a root, consulting and filling a [`StatCache`].
pub struct TreeHasher<'a> {
    root: &'a Path,
    cache: &'a StatCache,
    stats: &'a HashStats,
}

impl<'a> TreeHasher<'a> {
    /// A hasher for paths relative to `root`, counting its reads in `stats`.
    pub fn new(root: &'a Path, cache: &'a StatCache, stats: &'a HashStats) -> Self {
        Self { root, cache, stats }
    }

    /// Hashes a file or directory. Symbolic links are followed.
    pub fn hash(&self, path: &ProjectPath) -> Result<Hashed, TreeError> {
        let abs = path.to_fs(self.root);
        let meta = fs::metadata(&abs).map_err(io_err(&abs))?;
        let manifests = Mutex::new(Vec::new());
        let entry = self.hash_meta(path.as_str(), &abs, &meta, &manifests)?;
        Ok(Hashed {
            entry,
            manifests: manifests.into_inner().expect("manifest lock poisoned"),
        })
    }

    fn hash_meta(
        &self,
        rel: &str,
        abs: &Path,
        meta: &fs::Metadata,
        manifests: &Mutex<Vec<(Digest, Vec<u8>)>>,
    ) -> Result<Entry, TreeError> {
        if meta.is_dir() {
            return self.hash_dir(rel, abs, manifests);
        }
        if !meta.is_file() {
            return Err(TreeError::Special(abs.to_owned()));
        }
        use std::os::unix::fs::PermissionsExt;
        let kind = if meta.permissions().mode() & 0o111 != 0 {
            Kind::Exec
        } else {
            Kind::File
        };
        let stamp = Stamp::of(meta);
        let digest = match self.cache.get(rel, &stamp) {
            Some(d) => d,
            None => {
                let d = Digest::of_file(abs).map_err(io_err(abs))?;
                self.stats.files.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes.fetch_add(meta.len(), Ordering::Relaxed);
                self.cache.insert(rel.to_owned(), stamp, d);
                d
            }
        };
        Ok(Entry { kind, digest })
    }

    fn hash_dir(
        &self,
        rel: &str,
        abs: &Path,
        manifests: &Mutex<Vec<(Digest, Vec<u8>)>>,
    ) -> Result<Entry, TreeError> {
        let mut items = Vec::new();
        for item in fs::read_dir(abs).map_err(io_err(abs))? {
            let item = item.map_err(io_err(abs))?;
            let name = item
                .file_name()
                .into_string()
                .map_err(|_| TreeError::BadName(item.path()))?;
            if name.contains('\n') {
                return Err(TreeError::BadName(item.path()));
            }
            items.push((name, item));
        }
        items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let entries = items
            .into_par_iter()
            .map(|(name, item)| {
                let child_abs = item.path();
                // fstatat on the open directory is cheaper than resolving the whole
                // path again; only symbolic links need a second, following stat.
                let mut meta = item.metadata().map_err(io_err(&child_abs))?;
                if meta.file_type().is_symlink() {
                    meta = fs::metadata(&child_abs).map_err(io_err(&child_abs))?;
                }
                let entry =
                    self.hash_meta(&format!("{rel}/{name}"), &child_abs, &meta, manifests)?;
                Ok((name, entry))
            })
            .collect::<Result<Vec<_>, TreeError>>()?;
        let bytes = Manifest { entries }.encode();
        let digest = Digest::of_bytes(&bytes);
        manifests
            .lock()
            .expect("manifest lock poisoned")
            .push((digest, bytes));
        Ok(Entry {
            kind: Kind::Dir,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("a.txt"), b"a").unwrap();
        fs::write(d.join("sub/b.txt"), b"b").unwrap();
        let cache = dir.path().join("stat");
        (dir, cache)
    }

    #[test]
    fn directory_digest_changes_with_content_and_names_only() {
        let (dir, cache_file) = setup();
        let cache = StatCache::load(&cache_file);
        let stats = HashStats::default();
        let h = TreeHasher::new(dir.path(), &cache, &stats);
        let p = ProjectPath::parse("data").unwrap();
        let first = h.hash(&p).unwrap();
        assert_eq!(first.entry.kind, Kind::Dir);
        assert_eq!(first.manifests.len(), 2);
        assert_eq!(
            h.hash(&p).unwrap().entry,
            first.entry,
            "hashing is deterministic"
        );

        fs::write(dir.path().join("data/sub/b.txt"), b"B").unwrap();
        assert_ne!(h.hash(&p).unwrap().entry, first.entry);
        fs::write(dir.path().join("data/sub/b.txt"), b"b").unwrap();
        assert_eq!(h.hash(&p).unwrap().entry, first.entry);
        fs::rename(dir.path().join("data/a.txt"), dir.path().join("data/c.txt")).unwrap();
        assert_ne!(h.hash(&p).unwrap().entry, first.entry);
    }

    #[test]
    fn manifests_round_trip() {
        let (dir, cache_file) = setup();
        let cache = StatCache::load(&cache_file);
        let hashed = TreeHasher::new(dir.path(), &cache, &HashStats::default())
            .hash(&ProjectPath::parse("data").unwrap())
            .unwrap();
        for (digest, bytes) in &hashed.manifests {
            let m = Manifest::decode(bytes).unwrap();
            assert_eq!(Digest::of_bytes(&m.encode()), *digest);
        }
        assert!(Manifest::decode(b"nope").is_err());
    }

    #[test]
    fn manifests_with_names_that_leave_the_directory_are_refused() {
        let d = Digest::of_bytes(b"x").to_hex();
        for name in ["..", ".", "", "a/../../b", "/abs", "sub/x", "nul\0"] {
            let bytes = format!("{MANIFEST_HEADER}f {d} {name}\n");
            assert!(Manifest::decode(bytes.as_bytes()).is_err(), "{name:?} was accepted");
        }
        let repeated = format!("{MANIFEST_HEADER}f {d} a\nf {d} a\n");
        assert!(Manifest::decode(repeated.as_bytes()).is_err());
        let unsorted = format!("{MANIFEST_HEADER}f {d} b\nf {d} a\n");
        assert!(Manifest::decode(unsorted.as_bytes()).is_err());
        let fine = format!("{MANIFEST_HEADER}f {d} a b\nf {d} b..c\n");
        assert_eq!(Manifest::decode(fine.as_bytes()).unwrap().entries.len(), 2);
    }

    #[test]
    fn missing_paths_are_reported_by_name() {
        let (dir, cache_file) = setup();
        let cache = StatCache::load(&cache_file);
        let err = TreeHasher::new(dir.path(), &cache, &HashStats::default())
            .hash(&ProjectPath::parse("nope").unwrap())
            .unwrap_err();
        assert!(matches!(err, TreeError::Missing(p) if p.ends_with("nope")));
    }
}
