//! Generated pieces, kept in memory under a size cap and addressed by id.
//! When the cap is reached the oldest go first; a request names a result
//! only by its id, never by a path.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

/// A result's id: 16 lowercase hex digits, random.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResultId(u64);

impl ResultId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// Parses the form [`std::fmt::Display`] writes; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 16
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(Self)
    }
}

impl std::fmt::Display for ResultId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for ResultId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One kept piece: what the API shows, its MIDI, and its audio once rendered.
/// Cloning it is cheap (shared buffers).
#[derive(Clone)]
pub struct Entry {
    pub piece: Arc<serde_json::Value>,
    pub midi: Arc<[u8]>,
    pub wav: Option<Arc<[u8]>>,
}

impl Entry {
    fn bytes(&self) -> usize {
        self.midi.len() + self.wav.as_ref().map_or(0, |w| w.len()) + self.piece.to_string().len()
    }
}

/// The store.
pub struct Results {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Oldest first.
    order: VecDeque<ResultId>,
    entries: HashMap<ResultId, Entry>,
    bytes: usize,
}

impl Results {
    /// An empty store holding at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps half-updated: every update
        // below is done before the guard drops.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a piece, dropping the oldest to stay under the cap. A piece larger
    /// than the cap on its own is not kept.
    pub fn insert(&self, id: ResultId, piece: serde_json::Value, midi: Vec<u8>) {
        let entry = Entry {
            piece: Arc::new(piece),
            midi: midi.into(),
            wav: None,
        };
        let size = entry.bytes();
        if size > self.cap {
            return;
        }
        let mut inner = self.lock();
        inner.bytes += size;
        inner.order.push_back(id);
        inner.entries.insert(id, entry);
        inner.evict(self.cap, id);
    }

    /// Attaches rendered audio to a kept piece (if it is still kept and fits).
    pub fn set_wav(&self, id: ResultId, wav: Arc<[u8]>) {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(&id) else {
            return;
        };
        if entry.wav.is_some() || entry.bytes() + wav.len() > self.cap {
            return;
        }
        let added = wav.len();
        entry.wav = Some(wav);
        inner.bytes += added;
        inner.evict(self.cap, id);
    }

    /// A kept piece.
    pub fn get(&self, id: ResultId) -> Option<Entry> {
        self.lock().entries.get(&id).cloned()
    }

    /// Every kept piece, newest first.
    pub fn list(&self) -> Vec<Arc<serde_json::Value>> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.entries.get(id).map(|e| Arc::clone(&e.piece)))
            .collect()
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

impl Inner {
    /// Drops the oldest pieces but `keep` until the rest fit in `cap`.
    fn evict(&mut self, cap: usize, keep: ResultId) {
        while self.bytes > cap {
            let Some(at) = self.order.iter().position(|&i| i != keep) else {
                break;
            };
            let Some(oldest) = self.order.remove(at) else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.bytes();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_nothing_else_parses() {
        let id = ResultId::random();
        assert_eq!(ResultId::parse(&id.to_string()), Some(id));
        for bad in [
            "",
            "../etc/passwd",
            "0123456789ABCDEF",
            "0123456789abcde",
            "+123456789abcdef",
        ] {
            assert_eq!(ResultId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_oldest_go_first_and_the_cap_holds() {
        let store = Results::new(1000);
        let ids: Vec<ResultId> = (0..5).map(|_| ResultId::random()).collect();
        for &id in &ids {
            store.insert(id, serde_json::json!({"id": id}), vec![0; 300]);
            assert!(store.bytes() <= 1000);
        }
        assert!(store.get(ids[0]).is_none());
        assert!(store.get(ids[4]).is_some());
        let listed: Vec<_> = store.list().iter().map(|p| p["id"].clone()).collect();
        assert_eq!(listed[0], serde_json::json!(ids[4]));
        // Audio for a kept piece may push older ones out, never the piece itself,
        // and the list stays in the order the pieces were made.
        store.set_wav(ids[3], vec![1; 400].into());
        assert!(store.get(ids[3]).unwrap().wav.is_some());
        assert!(store.get(ids[4]).is_none());
        assert!(store.bytes() <= 1000);
        store.insert(ids[0], serde_json::json!({"id": ids[0]}), vec![0; 100]);
        let listed: Vec<_> = store.list().iter().map(|p| p["id"].clone()).collect();
        assert_eq!(
            listed,
            [serde_json::json!(ids[0]), serde_json::json!(ids[3])]
        );
        // A piece larger than the cap is not kept at all.
        let huge = ResultId::random();
        store.insert(huge, serde_json::json!({}), vec![0; 2000]);
        assert!(store.get(huge).is_none());
    }
}
