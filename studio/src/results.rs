//! Generated pieces, kept in memory under a size cap and addressed by id.
//! When the cap is reached the oldest go first; a request names a result
//! only by its id, never by a path.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use axum::body::Bytes;
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

/// One kept piece: what the API shows (as JSON text), its MIDI, and its
/// audio once rendered. Cloning it is cheap: the buffers are shared.
#[derive(Clone)]
pub struct Entry {
    pub piece: Bytes,
    pub midi: Bytes,
    pub wav: Option<Bytes>,
}

impl Entry {
    /// What it holds, which is what it costs (the buffers are all there is).
    fn bytes(&self) -> usize {
        self.piece.len() + self.midi.len() + self.wav.as_ref().map_or(0, Bytes::len)
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
    /// than the cap on its own is not kept (false).
    pub fn insert(&self, id: ResultId, piece: Bytes, midi: Bytes) -> bool {
        let entry = Entry {
            piece,
            midi,
            wav: None,
        };
        let size = entry.bytes();
        if size > self.cap {
            return false;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.entries.insert(id, entry) {
            inner.bytes -= old.bytes();
            inner.order.retain(|&i| i != id);
        }
        inner.bytes += size;
        inner.order.push_back(id);
        inner.evict(self.cap, id);
        true
    }

    /// Attaches rendered audio to a kept piece (if it is still kept and fits).
    pub fn set_wav(&self, id: ResultId, wav: Bytes) {
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

    /// The newest `n` kept pieces' JSON, newest first.
    pub fn newest(&self, n: usize) -> Vec<Bytes> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.entries.get(id).map(|e| e.piece.clone()))
            .take(n)
            .collect()
    }

    /// Pieces kept now.
    pub fn count(&self) -> usize {
        self.lock().entries.len()
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
        let piece = |id: ResultId| Bytes::from(serde_json::json!({"id": id}).to_string());
        let ids: Vec<ResultId> = (0..5).map(|_| ResultId::random()).collect();
        for &id in &ids {
            assert!(store.insert(id, piece(id), Bytes::from(vec![0; 300])));
            assert!(store.bytes() <= 1000);
        }
        // 325 bytes each: three fit.
        assert_eq!(store.count(), 3);
        assert!(store.get(ids[1]).is_none());
        assert_eq!(store.newest(1), [piece(ids[4])]);
        // Audio for a kept piece may push older ones out, never the piece itself,
        // and the list stays in the order the pieces were made.
        store.set_wav(ids[3], Bytes::from(vec![1; 400]));
        assert!(store.get(ids[3]).unwrap().wav.is_some());
        assert!(store.get(ids[4]).is_none());
        assert!(store.bytes() <= 1000);
        assert!(store.insert(ids[0], piece(ids[0]), Bytes::from(vec![0; 100])));
        assert_eq!(store.newest(10), [piece(ids[0]), piece(ids[3])]);
        assert_eq!(store.bytes(), 25 + 100 + 25 + 300 + 400);
        // A piece larger than the cap is not kept at all.
        let huge = ResultId::random();
        assert!(!store.insert(huge, piece(huge), Bytes::from(vec![0; 2000])));
        assert!(store.get(huge).is_none());
    }
}
