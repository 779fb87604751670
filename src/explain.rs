//! File-level differences between two versions of a directory, for `amt why`.

use std::collections::HashMap;

use crate::digest::Digest;
use crate::store::Store;
use crate::tree::{Entry, Kind, Manifest};

/// How one file differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileChange {
    /// Present only in the new version.
    Added,
    /// Present only in the old version.
    Removed,
    /// Present in both with different content or kind.
    Modified,
}

impl FileChange {
    /// A fixed-width word for listings.
    pub fn word(self) -> &'static str {
        match self {
            FileChange::Added => "added   ",
            FileChange::Removed => "removed ",
            FileChange::Modified => "modified",
        }
    }
}

/// The files that differ between `old` and `new` under `prefix`. The old
/// listing comes from the cache; the new one from `fresh` or the cache. Returns
/// `None` when the old listing is no longer cached.
pub fn diff_trees(
    store: &Store,
    fresh: &HashMap<Digest, Vec<u8>>,
    prefix: &str,
    old: &Entry,
    new: &Entry,
) -> Option<Vec<(FileChange, String)>> {
    let mut out = Vec::new();
    walk(store, fresh, prefix, Some(old), Some(new), &mut out)?;
    Some(out)
}

fn listing(store: &Store, fresh: &HashMap<Digest, Vec<u8>>, d: &Digest) -> Option<Manifest> {
    match fresh.get(d) {
        Some(bytes) => Manifest::decode(bytes).ok(),
        None => store.manifest(d).ok(),
    }
}

fn walk(
    store: &Store,
    fresh: &HashMap<Digest, Vec<u8>>,
    path: &str,
    old: Option<&Entry>,
    new: Option<&Entry>,
    out: &mut Vec<(FileChange, String)>,
) -> Option<()> {
    if old == new {
        return Some(());
    }
    let is_dir = |e: Option<&Entry>| e.is_some_and(|e| e.kind == Kind::Dir);
    if !is_dir(old) && !is_dir(new) {
        let change = match (old, new) {
            (None, _) => FileChange::Added,
            (_, None) => FileChange::Removed,
            _ => FileChange::Modified,
        };
        out.push((change, path.to_owned()));
        return Some(());
    }
    let old_m = match old {
        Some(e) if e.kind == Kind::Dir => listing(store, fresh, &e.digest)?,
        Some(_) => {
            out.push((FileChange::Removed, path.to_owned()));
            Manifest::default()
        }
        None => Manifest::default(),
    };
    let new_m = match new {
        Some(e) if e.kind == Kind::Dir => listing(store, fresh, &e.digest)?,
        Some(_) => {
            out.push((FileChange::Added, path.to_owned()));
            Manifest::default()
        }
        None => Manifest::default(),
    };
    let old_map: HashMap<&str, &Entry> =
        old_m.entries.iter().map(|(n, e)| (n.as_str(), e)).collect();
    let new_map: HashMap<&str, &Entry> =
        new_m.entries.iter().map(|(n, e)| (n.as_str(), e)).collect();
    let mut names: Vec<&str> = old_map.keys().chain(new_map.keys()).copied().collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        walk(
            store,
            fresh,
            &format!("{path}/{name}"),
            old_map.get(name).copied(),
            new_map.get(name).copied(),
            out,
        )?;
    }
    Some(())
}
