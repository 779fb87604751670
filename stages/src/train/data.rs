//! Training windows from prepare's shards, as tensors, and the order they are
//! drawn in: a fresh permutation per epoch seeded by `(seed, epoch)`, so any
//! step's batch can be rebuilt after a resume without saved RNG state.

use std::collections::HashMap;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::prepare::shard;
use crate::tokenizer::{Conditioning, Token, Vocab};

/// Targets that take no part in the loss (the prefix and padding).
pub const IGNORE: i64 = -100;

/// Conditioning dropout. A prompt names only some attributes and gets N/A
/// for the rest, but a window's prefix is always complete. So, each with
/// probability `p`, a training window's tempo, key, meter and instrument
/// list are replaced by their N/A tokens, and the model learns the prefixes
/// prompts give it. With probability `q` a window is unconditioned instead:
/// its whole prefix (the semantic token too) is N/A and its sentence
/// embedding zero, which is what classifier-free guidance samples against.
/// The draws are a function of `(seed, update step, row)`, so a resumed run,
/// or one that halved its micro-batches, drops what an uninterrupted one would.
#[derive(Clone, Debug)]
pub struct ConditionDrop {
    probability: f64,
    unconditioned: f64,
    seed: u64,
    /// Each attribute's prefix positions and their N/A ids.
    attributes: Vec<Vec<(usize, u16)>>,
    /// The semantic token's position and its N/A id.
    semantic: Option<(usize, u16)>,
}

impl ConditionDrop {
    /// Finds each attribute's positions in the vocabulary's prefix layout;
    /// `probability` is `p` and `unconditioned` is `q` (see the type).
    pub fn new(vocab: &Vocab, probability: f64, unconditioned: f64, seed: u64) -> Self {
        let none = Conditioning::default().tokens(vocab);
        let mut attributes: Vec<(&str, Vec<(usize, u16)>)> = Vec::new();
        let mut semantic = None;
        for (at, &id) in none.iter().enumerate() {
            let name = match vocab.token(id) {
                Some(Token::Semantic(_)) => {
                    semantic = Some((at, id));
                    continue;
                }
                Some(Token::CondTempo(_)) => "tempo",
                Some(Token::CondKey(_)) => "key",
                Some(Token::CondTimeSig(_)) => "meter",
                Some(Token::CondInstrument(_)) => "instruments",
                _ => continue,
            };
            match attributes.iter_mut().find(|(n, _)| *n == name) {
                Some((_, positions)) => positions.push((at, id)),
                None => attributes.push((name, vec![(at, id)])),
            }
        }
        // Outside [0, 1] a probability means never or always; NaN, never.
        let clamp = |p: f64| if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        Self {
            probability: clamp(probability),
            unconditioned: clamp(unconditioned),
            seed,
            attributes: attributes.into_iter().map(|(_, p)| p).collect(),
            semantic,
        }
    }

    fn rng(&self, step: u64, row: usize) -> ChaCha8Rng {
        let mixed = self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ step.wrapping_mul(0xbf58_476d_1ce4_e5b9)
            ^ (row as u64).wrapping_mul(0x94d0_49bb_1331_11eb);
        ChaCha8Rng::seed_from_u64(mixed)
    }

    /// True when the window `row` of update `step` trains unconditioned.
    pub fn unconditioned(&self, step: u64, row: usize) -> bool {
        // The first draw of the window's stream, whatever the probabilities.
        self.rng(step, row).random::<f64>() < self.unconditioned
    }

    /// Drops attributes of one window (its tokens, prefix first) at update `step`.
    pub fn apply(&self, window: &mut [u16], step: u64, row: usize) {
        if self.probability <= 0.0 && self.unconditioned <= 0.0 {
            return;
        }
        let mut rng = self.rng(step, row);
        if rng.random::<f64>() < self.unconditioned {
            for &(at, na) in self.attributes.iter().flatten().chain(&self.semantic) {
                window[at] = na;
            }
            return;
        }
        for positions in &self.attributes {
            if rng.random_bool(self.probability) {
                for &(at, na) in positions {
                    window[at] = na;
                }
            }
        }
    }
}

/// One split's windows: `rows × width` token ids, and each window's piece.
/// Ids stay `u16` as prepare stores them (a quarter of `i64`'s memory: the
/// whole split is held, since every step draws windows from all of it) and
/// widen when a batch is built.
#[derive(Clone, Debug)]
pub struct Windows {
    pub tokens: Vec<u16>,
    pub width: usize,
    pub paths: Vec<String>,
}

impl Windows {
    /// Reads a shard written by prepare; every window must have the same length.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let shard::Rows {
            tokens,
            width,
            paths,
        } = shard::read(path)?;
        Ok(Self {
            tokens,
            width,
            paths,
        })
    }

    /// How many windows there are.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when the split has no windows.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Inputs `[B, width-1]` and targets `[B, width-1]` for some rows. The
    /// targets of the conditioning prefix and of padding are [`IGNORE`]d, so
    /// the loss is over music (and EOS) only. With `drop`, the batch of an
    /// update step has attributes of its prefixes replaced by N/A (see [`ConditionDrop`]).
    pub fn batch(
        &self,
        rows: &[usize],
        prefix_len: usize,
        pad: i64,
        device: Device,
        drop: Option<(&ConditionDrop, u64)>,
    ) -> (Tensor, Tensor) {
        let w = self.width;
        let mut x = Vec::with_capacity(rows.len() * (w - 1));
        let mut y = Vec::with_capacity(rows.len() * (w - 1));
        let mut dropped = Vec::new();
        for &r in rows {
            let mut row = &self.tokens[r * w..(r + 1) * w];
            if let Some((d, step)) = drop {
                dropped.clear();
                dropped.extend_from_slice(row);
                d.apply(&mut dropped, step, r);
                row = &dropped;
            }
            x.extend(row[..w - 1].iter().map(|&t| i64::from(t)));
            y.extend(row[1..].iter().enumerate().map(|(j, &t)| {
                let t = i64::from(t);
                if j + 1 < prefix_len || t == pad {
                    IGNORE
                } else {
                    t
                }
            }));
        }
        let shape = [rows.len() as i64, (w - 1) as i64];
        let x = Tensor::from_slice(&x).view(shape).to_device(device);
        let y = Tensor::from_slice(&y).view(shape).to_device(device);
        (x, y)
    }

    /// The sentence embedding of each row's piece, `[B, dim]`; zeros for a
    /// piece without one, and for a row `drop` unconditions at its step.
    pub fn embeddings(
        &self,
        rows: &[usize],
        table: &HashMap<String, Vec<f32>>,
        dim: usize,
        device: Device,
        drop: Option<(&ConditionDrop, u64)>,
    ) -> Tensor {
        let mut v = Vec::with_capacity(rows.len() * dim);
        for &r in rows {
            let blank = drop.is_some_and(|(d, step)| d.unconditioned(step, r));
            match table.get(&self.paths[r]).filter(|_| !blank) {
                Some(e) => v.extend_from_slice(e),
                None => v.extend(std::iter::repeat_n(0.0, dim)),
            }
        }
        Tensor::from_slice(&v)
            .view([rows.len() as i64, dim as i64])
            .to_kind(Kind::Float)
            .to_device(device)
    }
}

/// The rows of each batch, walking seeded per-epoch permutations. Each
/// epoch's permutation is shuffled once and kept (not once per batch, which
/// made an epoch quadratic); batch `i` is the same rows whatever was asked
/// before, so a resumed run draws what an uninterrupted one would.
pub struct BatchOrder {
    n: usize,
    size: usize,
    seed: u64,
    epoch: u64,
    order: Vec<usize>,
}

impl BatchOrder {
    /// Batches of `size` rows out of `n`, in the order `seed` gives.
    pub fn new(n: usize, size: usize, seed: u64) -> Self {
        Self {
            n,
            size,
            seed,
            epoch: u64::MAX,
            order: Vec::new(),
        }
    }

    /// The rows of the `index`-th batch.
    pub fn rows(&mut self, index: u64) -> Vec<usize> {
        let mut rows = Vec::with_capacity(self.size);
        let mut at = index * self.size as u64;
        while rows.len() < self.size {
            let epoch = at / self.n as u64;
            if epoch != self.epoch {
                self.epoch = epoch;
                self.order = (0..self.n).collect();
                self.order.shuffle(&mut ChaCha8Rng::seed_from_u64(
                    self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch,
                ));
            }
            rows.push(self.order[(at % self.n as u64) as usize]);
            at += 1;
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of one batch, from a fresh order.
    fn batch_rows(n: usize, size: usize, seed: u64, index: u64) -> Vec<usize> {
        BatchOrder::new(n, size, seed).rows(index)
    }

    #[test]
    fn every_window_is_seen_once_per_epoch_and_batches_are_reproducible() {
        let n = 10;
        let epoch: Vec<usize> = (0..5).flat_map(|i| batch_rows(n, 2, 7, i)).collect();
        let mut sorted = epoch.clone();
        sorted.sort();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        assert_eq!(batch_rows(n, 3, 7, 4), batch_rows(n, 3, 7, 4));
        assert_ne!(
            batch_rows(n, 10, 7, 0),
            batch_rows(n, 10, 7, 1),
            "each epoch is shuffled afresh"
        );
    }

    #[test]
    fn a_kept_order_gives_the_batches_of_a_fresh_one() {
        let mut order = BatchOrder::new(7, 3, 5);
        // Forwards across epochs, then back.
        for index in (0..20).chain([3, 0, 12]) {
            assert_eq!(order.rows(index), batch_rows(7, 3, 5, index), "batch {index}");
        }
    }

    #[test]
    fn prefix_and_padding_targets_are_ignored() {
        let w = Windows {
            tokens: vec![1, 5, 6, 3, 10, 11, 0, 0],
            width: 8,
            paths: vec!["a".into()],
        };
        let (x, y) = w.batch(&[0], 4, 0, Device::Cpu, None);
        assert_eq!(
            Vec::<i64>::try_from(x.view(-1)).unwrap(),
            vec![1, 5, 6, 3, 10, 11, 0]
        );
        assert_eq!(
            Vec::<i64>::try_from(y.view(-1)).unwrap(),
            vec![IGNORE, IGNORE, IGNORE, 10, 11, IGNORE, IGNORE]
        );
    }

    #[test]
    fn dropped_attributes_become_na_and_nothing_else_changes() {
        use crate::midi::key::Key;
        let vocab = crate::tokenizer::Tokenizer::new(crate::tokenizer::Config::default()).vocab;
        let full = Conditioning {
            semantic: Some(1),
            tempo_class: Some(3),
            key: Key::parse("D minor"),
            time_signature: Some((6, 8)),
            instruments: vec![0, 5],
        }
        .tokens(&vocab);
        let none = Conditioning { semantic: Some(1), ..Conditioning::default() }.tokens(&vocab);
        let mut window = full.clone();
        window.extend([7, 8, 9]);
        // Always: every attribute is N/A; the semantic token, BOS, SEP and the music stay.
        let mut all = window.clone();
        ConditionDrop::new(&vocab, 1.0, 0.0, 0).apply(&mut all, 3, 4);
        assert_eq!(all[..none.len()], none[..]);
        assert_eq!(all[none.len()..], [7, 8, 9]);
        // Never: unchanged.
        let mut kept = window.clone();
        ConditionDrop::new(&vocab, 0.0, 0.0, 0).apply(&mut kept, 3, 4);
        assert_eq!(kept, window);
        // Half the time, per attribute, and the same draw for the same (index, row).
        let half = ConditionDrop::new(&vocab, 0.5, 0.0, 7);
        let mut na = 0;
        for row in 0..400 {
            let mut a = window.clone();
            half.apply(&mut a, 11, row);
            let mut b = window.clone();
            half.apply(&mut b, 11, row);
            assert_eq!(a, b);
            na += usize::from(a[2] != window[2]);
            // An instrument list is dropped whole.
            assert_eq!(a[5] == window[5], a[6] == window[6]);
        }
        assert!((150..250).contains(&na), "tempo dropped in {na} of 400");
        // Unconditioned: the whole prefix is N/A, the semantic token too, and
        // the rows whose embedding is zeroed are the same rows.
        let blank = Conditioning::default().tokens(&vocab);
        let some = ConditionDrop::new(&vocab, 0.0, 0.3, 7);
        let mut uncond = 0;
        for row in 0..400 {
            let mut a = window.clone();
            some.apply(&mut a, 5, row);
            let u = some.unconditioned(5, row);
            uncond += usize::from(u);
            assert_eq!(a[..blank.len()] == blank[..], u, "row {row}");
            assert!(u || a == window, "row {row}: nothing else is dropped");
            assert_eq!(a[blank.len()..], [7, 8, 9]);
        }
        assert!((80..160).contains(&uncond), "unconditioned {uncond} of 400");
        let w = Windows { tokens: vec![0; 8 * 400], width: 8, paths: vec!["a".into(); 400] };
        let table: HashMap<String, Vec<f32>> = [("a".to_owned(), vec![1.0, 2.0])].into();
        let rows: Vec<usize> = (0..400).collect();
        let e = Vec::<f32>::try_from(w.embeddings(&rows, &table, 2, Device::Cpu, Some((&some, 5))).view(-1)).unwrap();
        for row in 0..400 {
            let want = if some.unconditioned(5, row) { [0.0, 0.0] } else { [1.0, 2.0] };
            assert_eq!(e[2 * row..2 * row + 2], want);
        }
    }
}
