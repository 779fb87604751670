//! A shared remote cache: the same action cache and content-addressed objects
//! as the local store, kept in S3 (or any S3-compatible service) or a plain
//! directory, through the object_store crate.
//!
//! Layout under the URL's prefix: `cas/blake3/<hex>` for objects and
//! `ac/blake3/<hex>.json` for action results. Writes are create-only, so a
//! remote entry is never overwritten. Every downloaded object is hashed and
//! compared with its digest before it is stored locally; a corrupted or forged
//! object is rejected. Transfers run in parallel.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as RemotePath;
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
};

use crate::digest::{ALGORITHM, ActionKey, Digest};
use crate::store::{ActionResult, Store, StoreError};
use crate::tree::{Entry, Kind, Manifest};

/// Transfers in flight at once.
const PARALLEL: usize = 16;

/// A remote-cache failure.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("remote cache `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error("remote cache {url} is unreachable: {source}")]
    Unreachable {
        url: String,
        source: object_store::Error,
    },
    #[error("remote object {digest} is corrupt: its content hashes to {actual}; it was not used")]
    Corrupt { digest: Digest, actual: Digest },
    #[error("remote action result {key} is malformed: {reason}; it was not used")]
    BadAction { key: String, reason: String },
    #[error("remote directory listing {digest} is malformed ({why}); it was not used")]
    BadListing { digest: Digest, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RemoteError {
    /// True when one entry is bad (corrupt, forged, incomplete) but the
    /// remote itself answers, so it stays in use for other stages.
    pub fn is_entry_fault(&self) -> bool {
        !matches!(
            self,
            RemoteError::Unreachable { .. }
                | RemoteError::Url { .. }
                | RemoteError::Store(StoreError::Io { .. })
        )
    }
}

/// What a push or pull moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    pub actions: usize,
    pub objects: usize,
    pub bytes: u64,
    /// Entries the other side already had.
    pub skipped: usize,
}

/// An open remote cache.
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: RemotePath,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    /// Opens `s3://bucket/prefix` (endpoint, region and credentials from the
    /// `AWS_*` environment) or a directory (`file:///path` or a plain path).
    pub fn open(url: &str) -> Result<Self, RemoteError> {
        let bad = |reason: String| RemoteError::Url {
            url: url.to_owned(),
            reason,
        };
        let (store, prefix): (Arc<dyn ObjectStore>, String) = if let Some(rest) =
            url.strip_prefix("s3://")
        {
            // rustls needs a process-wide crypto provider; installing it twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket (expected s3://bucket/prefix)".into()));
            }
            // A few quick retries: an unreachable cache should cost seconds, not minutes.
            let retry = RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            };
            let client = ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(3))
                .with_timeout(Duration::from_secs(60));
            // Client options replace the builder's, so allow plain HTTP (local servers) after them.
            let s3 = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry)
                .with_client_options(client)
                .with_allow_http(true)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            (Arc::new(s3), prefix.to_owned())
        } else if url.contains("://") && !url.starts_with("file://") {
            return Err(bad("only s3:// URLs and directories are supported".into()));
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
            (
                Arc::new(LocalFileSystem::new_with_prefix(dir).map_err(|e| bad(e.to_string()))?),
                String::new(),
            )
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            url: url.to_owned(),
            store,
            prefix: RemotePath::from(prefix.trim_matches('/')),
            runtime,
        })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn path(&self, parts: &[&str]) -> RemotePath {
        parts
            .iter()
            .fold(self.prefix.clone(), |p, part| p.join(*part))
    }

    fn object_path(&self, d: &Digest) -> RemotePath {
        self.path(&["cas", ALGORITHM, &d.to_hex()])
    }

    fn action_path(&self, k: &ActionKey) -> RemotePath {
        self.path(&["ac", ALGORITHM, &format!("{}.json", k.0.to_hex())])
    }

    fn unreachable(&self, source: object_store::Error) -> RemoteError {
        RemoteError::Unreachable {
            url: self.url.clone(),
            source,
        }
    }

    async fn get(&self, path: &RemotePath) -> Result<Option<Vec<u8>>, RemoteError> {
        match self.store.get(path).await {
            Ok(r) => Ok(Some(
                r.bytes().await.map_err(|e| self.unreachable(e))?.to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.unreachable(e)),
        }
    }

    /// Writes unless the path exists; returns whether it wrote.
    async fn put_new(&self, path: &RemotePath, bytes: Vec<u8>) -> Result<bool, RemoteError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(path, PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(false),
            Err(e) => Err(self.unreachable(e)),
        }
    }

    /// Downloads an object, verifies its digest (and, for a directory, that
    /// its listing names only plain entries) and stores it locally.
    async fn fetch_object(&self, e: Entry, local: &Store) -> Result<u64, RemoteError> {
        let d = e.digest;
        if local.has(&d) {
            return Ok(0);
        }
        let bytes = self
            .get(&self.object_path(&d))
            .await?
            .ok_or(StoreError::MissingObject(d))?;
        let actual = Digest::of_bytes(&bytes);
        if actual != d {
            return Err(RemoteError::Corrupt { digest: d, actual });
        }
        // A self-consistent but forged listing (`..`, `/abs`) must never reach the store.
        if e.kind == Kind::Dir
            && let Err(why) = Manifest::decode(&bytes)
        {
            return Err(RemoteError::BadListing {
                digest: d,
                why: why.to_string(),
            });
        }
        local.put_bytes(&d, &bytes)?;
        Ok(bytes.len() as u64)
    }

    /// The action result for a key, if the remote has one (not its objects).
    pub fn get_action(&self, key: &ActionKey) -> Result<Option<ActionResult>, RemoteError> {
        self.runtime.block_on(async {
            let Some(bytes) = self.get(&self.action_path(key)).await? else {
                return Ok(None);
            };
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| RemoteError::BadAction {
                    key: key.to_string(),
                    reason: e.to_string(),
                })
        })
    }

    /// Downloads every object an action result needs into the local store, then its result.
    pub fn fetch(
        &self,
        key: &ActionKey,
        result: &ActionResult,
        local: &Store,
    ) -> Result<Transfer, RemoteError> {
        self.runtime.block_on(async {
            let mut t = Transfer::default();
            // Breadth-first: a directory's manifest must arrive before its children are known.
            let mut level: Vec<Entry> = result.outs.iter().map(|o| o.entry).collect();
            let mut seen = HashSet::new();
            while !level.is_empty() {
                let todo: Vec<Entry> = level.drain(..).filter(|e| seen.insert(e.digest)).collect();
                let fetched: Vec<u64> =
                    stream::iter(todo.iter().map(|e| self.fetch_object(*e, local)))
                        .buffer_unordered(PARALLEL)
                        .try_collect()
                        .await?;
                t.objects += fetched.iter().filter(|&&b| b > 0).count();
                t.bytes += fetched.iter().sum::<u64>();
                for e in todo.iter().filter(|e| e.kind == Kind::Dir) {
                    let manifest: Manifest = local.manifest(&e.digest)?;
                    level.extend(manifest.entries.iter().map(|(_, c)| *c));
                }
            }
            local.put_action(key, result)?;
            t.actions = 1;
            Ok(t)
        })
    }

    /// Uploads an action result's objects, then the result itself (so a
    /// reader never sees a result whose objects are missing).
    pub fn upload(
        &self,
        key: &ActionKey,
        result: &ActionResult,
        local: &Store,
    ) -> Result<Transfer, RemoteError> {
        let mut digests = HashSet::new();
        for out in &result.outs {
            local.reachable(&out.entry, &mut digests);
        }
        let mut digests: Vec<Digest> = digests.into_iter().collect();
        digests.sort();
        self.runtime.block_on(async {
            let mut t = Transfer::default();
            let sent: Vec<Option<u64>> = stream::iter(digests.iter().map(|d| async move {
                let bytes = local.read(d)?;
                let n = bytes.len() as u64;
                Ok::<_, RemoteError>(
                    self.put_new(&self.object_path(d), bytes)
                        .await?
                        .then_some(n),
                )
            }))
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await?;
            t.objects = sent.iter().flatten().count();
            t.bytes = sent.iter().flatten().sum();
            t.skipped = sent.iter().filter(|s| s.is_none()).count();
            let bytes = serde_json::to_vec_pretty(result).expect("action results serialise");
            if self.put_new(&self.action_path(key), bytes).await? {
                t.actions = 1;
            } else {
                t.skipped += 1;
            }
            Ok(t)
        })
    }

    /// Asks the remote for an entry no one writes, and times the answer: a
    /// "not found" proves it answers.
    pub fn ping(&self) -> Result<Duration, RemoteError> {
        let started = std::time::Instant::now();
        self.runtime
            .block_on(self.get(&self.path(&["amt-ping"])))
            .map(|_| started.elapsed())
    }

    /// Every action key the remote holds.
    pub fn action_keys(&self) -> Result<Vec<ActionKey>, RemoteError> {
        self.runtime.block_on(async {
            let prefix = self.path(&["ac", ALGORITHM]);
            let metas: Vec<_> = self
                .store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|e| self.unreachable(e))?;
            Ok(metas
                .iter()
                .filter_map(|m| {
                    m.location
                        .filename()?
                        .strip_suffix(".json")?
                        .parse()
                        .ok()
                        .map(ActionKey)
                })
                .collect())
        })
    }
}
