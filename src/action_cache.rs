//! The action cache in two tiers: the local store first, then a remote one
//! (S3 or a directory) read and written through. One interface for the
//! engine: look a key up, publish a result.
//!
//! A remote that cannot be reached is given up for the rest of the
//! invocation (every engine sharing it: each sweep point), with one warning;
//! a bad entry in a remote that answers (corrupt, forged, incomplete) is
//! skipped, with a warning naming the stage and key, and the remote stays in
//! use. Warnings go to the caller's [`Warnings`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Stage;
use crate::digest::ActionKey;
use crate::remote::{Remote, RemoteError};
use crate::store::{ActionResult, Store, StoreError};
use crate::warning::{Warning, Warnings};

/// A remote cache in use by an invocation, shared by its engines.
pub struct RemoteCache {
    remote: Remote,
    /// Upload what runs here (false: read only).
    push: bool,
    /// Set when the remote failed once: then nobody uses it any more.
    given_up: AtomicBool,
}

impl RemoteCache {
    /// A remote to read through, and to write through when `push`.
    pub fn new(remote: Remote, push: bool) -> Self {
        Self {
            remote,
            push,
            given_up: AtomicBool::new(false),
        }
    }
}

/// The two tiers.
pub struct ActionCache {
    store: Store,
    remote: Option<Arc<RemoteCache>>,
}

impl ActionCache {
    /// The local tier alone.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            remote: None,
        }
    }

    /// With a remote tier.
    pub fn with_remote(self, remote: Arc<RemoteCache>) -> Self {
        Self {
            remote: Some(remote),
            ..self
        }
    }

    /// The remote, unless it has failed.
    fn remote(&self) -> Option<&RemoteCache> {
        self.remote
            .as_deref()
            .filter(|r| !r.given_up.load(Ordering::SeqCst))
    }

    /// Gives the remote up, with a warning the first time.
    fn remote_failed(&self, e: RemoteError, warnings: &Warnings) {
        if let Some(r) = &self.remote
            && !r.given_up.swap(true, Ordering::SeqCst)
        {
            warnings.push(Warning::RemoteGivenUp(e));
        }
    }

    /// A result for `key` that can be restored as `stage`'s outs: from the
    /// local tier, else from the remote one (its objects fetched and verified
    /// into the local tier first).
    pub fn lookup(&self, stage: &Stage, key: &ActionKey, warnings: &Warnings) -> Option<ActionResult> {
        if let Some(result) = self.store.get_action(key).filter(|r| self.usable(stage, r)) {
            return Some(result);
        }
        let r = self.remote()?;
        let found = r.remote.get_action(key).and_then(|found| match found {
            Some(result) => r
                .remote
                .fetch(key, &result, &self.store)
                .map(|_| Some(result)),
            None => Ok(None),
        });
        match found {
            Ok(found) => found.filter(|r| self.usable(stage, r)),
            Err(e) if e.is_entry_fault() => {
                warnings.push(Warning::RemoteEntry {
                    stage: stage.name.clone(),
                    key: key.0.short().to_string(),
                    error: e,
                });
                None
            }
            Err(e) => {
                self.remote_failed(e, warnings);
                None
            }
        }
    }

    /// Records a result a stage just produced (its objects already stored):
    /// in the local tier, then uploaded when the remote takes uploads.
    pub fn publish(
        &self,
        key: &ActionKey,
        result: &ActionResult,
        warnings: &Warnings,
    ) -> Result<(), StoreError> {
        self.store.put_action(key, result)?;
        if let Some(r) = self.remote().filter(|r| r.push)
            && let Err(e) = r.remote.upload(key, result, &self.store)
        {
            self.remote_failed(e, warnings);
        }
        Ok(())
    }

    /// A result is usable when it has the stage's outs and all their objects,
    /// in a tree amt would restore.
    fn usable(&self, stage: &Stage, result: &ActionResult) -> bool {
        result.outs.iter().map(|o| &o.path).eq(stage.outs.iter())
            && result.outs.iter().all(|o| self.store.is_complete(&o.entry))
    }
}
