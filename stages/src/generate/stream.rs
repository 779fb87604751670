//! One conditioning's pass over the music being written, with its own KV
//! cache: classifier-free guidance runs two, the asked prefix and the blank
//! one, and mixes their logits.

use tch::{Device, Kind, Tensor};

use crate::model::{Gpt, KvCache};

/// One conditioning's view of the music being written: its prefix, its
/// sentence embedding and its KV cache.
pub(super) struct Stream<'a> {
    prefix: &'a [u16],
    embedding: Option<&'a Tensor>,
    cache: Option<KvCache>,
}

impl<'a> Stream<'a> {
    pub(super) fn new(prefix: &'a [u16], embedding: Option<&'a Tensor>) -> Self {
        Self {
            prefix,
            embedding,
            cache: None,
        }
    }

    /// The next token's logits after the prefix and `music`, refilling the cache if `cached`.
    pub(super) fn refill(&mut self, model: &Gpt, music: &[u16], cached: bool) -> Vec<f32> {
        let mut w = self.prefix.to_vec();
        w.extend_from_slice(music);
        self.cache = cached.then(|| model.cache(1));
        last_row(&model.forward(&ids(model, &w), self.embedding, false, self.cache.as_mut()))
    }

    /// The next token's logits after one more token, from the cache.
    pub(super) fn step(&mut self, model: &Gpt, next: u16) -> Vec<f32> {
        last_row(&model.forward(&ids(model, &[next]), None, false, self.cache.as_mut()))
    }
}

/// The logits at the last position, as CPU floats.
fn last_row(logits: &Tensor) -> Vec<f32> {
    let v = logits
        .get(0)
        .get(-1)
        .to_kind(Kind::Float)
        .to_device(Device::Cpu);
    Vec::<f32>::try_from(v).expect("a CPU f32 tensor converts")
}

/// Token ids as a `[1, n]` tensor on the model's device.
fn ids(model: &Gpt, t: &[u16]) -> Tensor {
    Tensor::from_slice(&t.iter().map(|&i| i64::from(i)).collect::<Vec<_>>())
        .view([1, -1])
        .to_device(model.device())
}
