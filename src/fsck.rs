//! Checking the cache against its own digests, and repairing it: an object
//! whose bytes no longer hash to its name, an action result that does not
//! parse, or one whose tree lost an object, is damaged. amt never restores a
//! damaged entry (restores check that every object is there, and every stored
//! file was hashed as it was stored), but bit rot or a hand edit under
//! `cache/` can still leave one; `amt doctor --deep` finds them and
//! `amt gc --repair` removes them, so the stages they served run again.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::digest::{ActionKey, Digest};
use crate::store::{ActionResult, Store};

/// What a check of the cache found.
#[derive(Debug, Default, serde::Serialize)]
pub struct FsckReport {
    /// Objects read and hashed.
    pub objects_checked: usize,
    /// Action results read.
    pub actions_checked: usize,
    /// Objects whose bytes do not hash to their name.
    pub damaged_objects: Vec<Digest>,
    /// Action results that do not parse, or whose outputs lack an object.
    pub damaged_actions: Vec<ActionKey>,
}

impl FsckReport {
    /// True when nothing is damaged.
    pub fn is_clean(&self) -> bool {
        self.damaged_objects.is_empty() && self.damaged_actions.is_empty()
    }
}

/// Hashes every object and checks every action result.
pub fn check(store: &Store) -> std::io::Result<FsckReport> {
    let mut report = FsckReport::default();
    let mut damaged: Vec<(Digest, PathBuf)> = Vec::new();
    for (digest, path) in store.objects() {
        report.objects_checked += 1;
        // An object that cannot be read (I/O error, permissions) is as good as damaged.
        if Digest::of_file(&path).ok() != Some(digest) {
            damaged.push((digest, path));
        }
    }
    report.damaged_objects = damaged.iter().map(|(d, _)| *d).collect();
    let bad: HashSet<Digest> = report.damaged_objects.iter().copied().collect();
    for (key, path) in store.action_keys() {
        report.actions_checked += 1;
        let usable = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<ActionResult>(&b).ok())
            .is_some_and(|result| {
                result.outs.iter().all(|o| {
                    let mut reached = HashSet::new();
                    store.tree_size(&o.entry).is_ok() && {
                        store.reachable(&o.entry, &mut reached);
                        reached.is_disjoint(&bad)
                    }
                })
            });
        if !usable {
            report.damaged_actions.push(key);
        }
    }
    Ok(report)
}

/// Removes what [`check`] found damaged; returns how many files it removed.
pub fn repair(store: &Store, report: &FsckReport) -> std::io::Result<usize> {
    let mut removed = 0;
    for d in &report.damaged_objects {
        if remove(&store.object_path(d))? {
            removed += 1;
        }
    }
    for k in &report.damaged_actions {
        if remove(&store.action_path(k))? {
            removed += 1;
        }
    }
    Ok(removed)
}

fn remove(path: &std::path::Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::names::ProjectPath;
    use crate::names::StageName;
    use crate::store::OutRecord;
    use crate::tree::{Entry, Kind};

    #[test]
    fn a_damaged_object_and_the_result_that_needs_it_are_found_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (good, bad) = (Digest::of_bytes(b"good"), Digest::of_bytes(b"bad"));
        store.put_bytes(&good, b"good").unwrap();
        store.put_bytes(&bad, b"bad").unwrap();
        let result = |d: Digest| ActionResult {
            stage: StageName::parse("s").unwrap(),
            outs: vec![OutRecord {
                path: ProjectPath::parse("o").unwrap(),
                entry: Entry { kind: Kind::File, digest: d },
            }],
        };
        let (k_good, k_bad) = (ActionKey(Digest::of_bytes(b"1")), ActionKey(Digest::of_bytes(b"2")));
        store.put_action(&k_good, &result(good)).unwrap();
        store.put_action(&k_bad, &result(bad)).unwrap();
        // Bit rot in one object.
        let p = store.object_path(&bad);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(&p, b"rotten").unwrap();

        let report = check(&store).unwrap();
        assert_eq!(report.damaged_objects, vec![bad]);
        assert_eq!(report.damaged_actions, vec![k_bad]);
        assert_eq!(repair(&store, &report).unwrap(), 2);
        assert!(check(&store).unwrap().is_clean());
        assert!(store.get_action(&k_good).is_some() && store.get_action(&k_bad).is_none());
    }
}
