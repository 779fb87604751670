//! Train/val/test by a hash of the piece's source group (or its path):
//! deterministic, independent of the order or number of pieces, the same
//! for every piece of a group and every augmented copy.

/// A data split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    /// `train`, `val` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// The split of a group (or a piece): a blake3 of (seed, key) mapped to [0, 1).
pub fn split_of(key: &str, seed: u64, val_fraction: f64, test_fraction: f64) -> Split {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(key.as_bytes());
    let bytes: [u8; 8] = h.finalize().as_bytes()[..8].try_into().expect("8 bytes");
    let x = u64::from_le_bytes(bytes) as f64 / 2f64.powi(64);
    if x < test_fraction {
        Split::Test
    } else if x < test_fraction + val_fraction {
        Split::Val
    } else {
        Split::Train
    }
}
