//! The trained model, loaded once and used by every worker at once.

use amt_stages::generate::{Generation, Generator, SampleOptions};

/// A [`Generator`] several threads use at the same time. It exposes only
/// what reads the model.
pub struct SharedGenerator(Generator);

// SAFETY: tch leaves `Tensor` !Sync because a `&Tensor` can be shallow-cloned
// and the clone mutated in place. Through this wrapper the only access is
// `generate_unless`, `vocab_len` and `guidable`: forward passes under `no_grad` that read
// the weights and the encoder and neither clone nor change them. Everything a
// call writes (its KV cache, RNG and outputs) is its own. libtorch allows
// concurrent reads of a tensor.
unsafe impl Sync for SharedGenerator {}

impl SharedGenerator {
    /// Wraps a loaded generator.
    pub fn new(generator: Generator) -> Self {
        Self(generator)
    }

    /// [`Generator::generate_unless`].
    pub fn generate_unless(
        &self,
        text: &str,
        opts: &SampleOptions,
        stop: &dyn Fn() -> bool,
    ) -> anyhow::Result<Generation> {
        self.0.generate_unless(text, opts, stop)
    }

    /// The size of the model's vocabulary.
    pub fn vocab_len(&self) -> usize {
        self.0.tokenizer().vocab.len()
    }

    /// [`Generator::guidable`].
    pub fn guidable(&self) -> bool {
        self.0.guidable()
    }
}
