//! Garbage collection: removes cache entries that no stage record reaches.
//!
//! With a size cap, the most recent unreachable action results are kept too
//! (so reverting a parameter still restores instead of rerunning) as long as
//! the whole cache fits under the cap.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::digest::{ActionKey, Digest};
use crate::state::StateDir;
use crate::store::Store;
use crate::tree::Kind;

/// What `gc` did (or would do).
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// Objects removed.
    pub objects_removed: usize,
    /// Action results removed.
    pub actions_removed: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Bytes still in the cache.
    pub bytes_kept: u64,
}

fn size_of(p: &PathBuf) -> u64 {
    fs::metadata(p).map_or(0, |m| m.len())
}

fn mtime_of(p: &PathBuf) -> SystemTime {
    fs::metadata(p)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Collects garbage in `store`, keeping everything reachable from `state`.
pub fn collect(
    store: &Store,
    state: &StateDir,
    max_size: Option<u64>,
    dry_run: bool,
) -> std::io::Result<GcReport> {
    let records = state.all();
    let mut live_objects: HashSet<Digest> = HashSet::new();
    let mut live_actions: HashSet<ActionKey> = HashSet::new();
    for r in &records {
        live_actions.insert(r.action_key);
        for out in &r.outs {
            store.reachable(&out.entry, &mut live_objects);
        }
        for dep in r.inputs.deps.values().filter(|e| e.kind == Kind::Dir) {
            store.reachable(dep, &mut live_objects);
        }
    }

    let objects = store.objects();
    let object_size: std::collections::HashMap<Digest, u64> =
        objects.iter().map(|(d, p)| (*d, size_of(p))).collect();
    let mut actions = store.action_keys();
    let objects_bytes =
        |live: &HashSet<Digest>| live.iter().filter_map(|d| object_size.get(d)).sum::<u64>();

    if let Some(cap) = max_size {
        // Newest first: keep unreachable results while everything still fits.
        actions.sort_by_key(|(_, p)| std::cmp::Reverse(mtime_of(p)));
        let mut actions_bytes: u64 = actions
            .iter()
            .filter(|(k, _)| live_actions.contains(k))
            .map(|(_, p)| size_of(p))
            .sum();
        for (key, path) in &actions {
            if live_actions.contains(key) {
                continue;
            }
            let Some(result) = store.get_action(key) else {
                continue;
            };
            let mut with_this = live_objects.clone();
            for out in &result.outs {
                store.reachable(&out.entry, &mut with_this);
            }
            let with_this_actions = actions_bytes + size_of(path);
            if objects_bytes(&with_this) + with_this_actions > cap {
                break;
            }
            live_objects = with_this;
            actions_bytes = with_this_actions;
            live_actions.insert(*key);
        }
    }

    let mut report = GcReport::default();
    for (key, path) in &actions {
        if live_actions.contains(key) {
            report.bytes_kept += size_of(path);
        } else {
            report.actions_removed += 1;
            report.bytes_freed += size_of(path);
            if !dry_run {
                fs::remove_file(path)?;
            }
        }
    }
    for (digest, path) in &objects {
        let size = object_size[digest];
        if live_objects.contains(digest) {
            report.bytes_kept += size;
        } else {
            report.objects_removed += 1;
            report.bytes_freed += size;
            if !dry_run {
                fs::remove_file(path)?;
            }
        }
    }
    Ok(report)
}
