//! `Generator`: text in, MIDI out. It embeds the text, maps it to the nearest
//! k-means centroid (the semantic token), reads the attributes the text
//! names, and samples music tokens after that prefix with a KV cache.

use std::path::Path;

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::grammar::Grammar;
use super::prompt;
use super::sample::{SampleOptions, sample};
use super::stream::Stream;
use super::strict::Strict;
use crate::bundle;
use crate::cluster::centroids::Centroids;
use crate::embed::Encoder;
use crate::midi::key::Key;
use crate::model::{Conditioning as ModelConditioning, Gpt};
use crate::tokenizer::{Conditioning, Header, Token, Tokenizer, decode};

/// Music whose prefix names no key comes out of the key frame with its
/// tonic on C; it is moved by these semitones (−6..=5, drawn from `seed`),
/// so that pieces that ask for no key are not all in C (or C minor). 0 when
/// the prefix names a key: the decoder has put the music in it already.
pub fn tonic_shift(key: Option<Key>, seed: u64) -> i8 {
    if key.is_some() {
        return 0;
    }
    // Salted, so the tonic is not a function of the sampler's first draws.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x746f_6e69_63);
    rand::Rng::random_range(&mut rng, -6..=5)
}

/// A trained model ready to write music: the train stage's output directory, loaded.
pub struct Generator {
    model: Gpt,
    tokenizer: Tokenizer,
    encoder: Encoder,
    centroids: Centroids,
    /// Tokens sampling may produce at each step: first the header every
    /// piece opens with (`Bar`, `TimeSig`, `Tempo`), then any music token or EOS.
    grammar: Grammar,
    /// False when the bundle says the model never trained unconditioned,
    /// so guidance would compare against a prefix it never saw.
    guidable: bool,
}

/// What a text asks for: its sentence embedding, the prefix (semantic token
/// and attributes), the distance to the semantic token's centroid, the
/// words that named no attribute, and the BPM it wrote.
struct Reading {
    vector: Vec<f32>,
    conditioning: Conditioning,
    distance: f64,
    unread: Vec<String>,
    bpm: Option<f64>,
}

/// Generation was stopped by its caller (a deadline, a client gone).
#[derive(Debug, thiserror::Error)]
#[error("generation was stopped before the piece was finished")]
pub struct Stopped;

/// One generated piece.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Generation {
    pub text: String,
    /// The prefix it was conditioned on (`None`: not named in the text).
    pub conditioning: Conditioning,
    /// Distance from the text's embedding to its centroid.
    pub semantic_distance: f64,
    /// The words that named no attribute (they shape only the semantic token).
    #[serde(default)]
    pub unread: Vec<String>,
    /// Prefix and music tokens.
    pub tokens: Vec<u16>,
    /// True if the model ended the piece itself (rather than `max_tokens`).
    pub ended: bool,
    /// Semitones the music was moved from the key frame's C because the
    /// text named no key ([`tonic_shift`]; 0 when it named one): the MIDI is
    /// the tokens decoded, then moved by this.
    #[serde(default)]
    pub transposed: i8,
    #[serde(skip)]
    pub midi: Vec<u8>,
}

impl Generator {
    /// Loads a model directory (on CUDA when present).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Self::load_on(dir, Device::cuda_if_available())
    }

    /// Loads a model bundle (see [`crate::bundle`]) onto a device.
    pub fn load_on(dir: &Path, device: Device) -> anyhow::Result<Self> {
        anyhow::ensure!(
            dir.join(bundle::MODEL).is_dir(),
            "{} is not a model bundle (the train stage's output): it has no {}/",
            dir.display(),
            bundle::MODEL
        );
        let model = Gpt::load(&dir.join(bundle::MODEL), device)?;
        let tokenizer = Tokenizer::read(dir, "this build cannot read the model; retrain it")?;
        anyhow::ensure!(
            model.config.vocab_size == tokenizer.vocab.len(),
            "{}: the model's vocabulary does not match vocab.json",
            dir.display()
        );
        // The prefix, a restated header and some music must fit in the context.
        let least = Conditioning::default().tokens(&tokenizer.vocab).len() + 8;
        anyhow::ensure!(
            model.config.context >= least,
            "{}: the model's context is {} tokens; generation needs at least {least}",
            dir.display(),
            model.config.context
        );
        let centroids = Centroids::load(&dir.join(bundle::CENTROIDS))?;
        let encoder_dir = dir.join(bundle::ENCODER);
        anyhow::ensure!(
            encoder_dir.is_dir(),
            "{} has no {}/ (a bundle from before bundles carried their sentence encoder); rerun train",
            dir.display(),
            bundle::ENCODER
        );
        let encoder = Encoder::load(&encoder_dir, device, centroids.pooling, centroids.normalize)
            .with_context(|| {
            format!("loading the sentence encoder in {}", encoder_dir.display())
        })?;
        let grammar = Grammar::new(&tokenizer);
        // A bundle without a summary (one a caller assembled), or with one
        // from before the share was recorded, is trusted.
        let guidable =
            bundle::Summary::read(dir)?.is_none_or(|s| s.uncondition.is_none_or(|u| u > 0.0));
        Ok(Self {
            model,
            tokenizer,
            encoder,
            centroids,
            grammar,
            guidable,
        })
    }

    /// The same generator with freshly initialised weights (seeded): the
    /// untrained baseline evaluate compares against.
    pub fn untrained(mut self, seed: u64) -> Self {
        tch::manual_seed(seed as i64);
        self.model = Gpt::new(self.model.config.clone(), self.model.device());
        self.guidable = false;
        self
    }

    /// The random-token baseline: tokens drawn uniformly from what the
    /// grammar allows (EOS included) after the prefix.
    pub fn sample_uniform(&self, prefix: &[u16], opts: &SampleOptions) -> (Vec<u16>, bool) {
        let eos = self.tokenizer.vocab.id(Token::Eos);
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let mut tokens = prefix.to_vec();
        for step in 0..opts.max_tokens {
            let allowed: Vec<u16> = (0..self.tokenizer.vocab.len() as u16)
                .filter(|&i| self.grammar.at(step)[usize::from(i)])
                .collect();
            let t = allowed[rand::Rng::random_range(&mut rng, 0..allowed.len())];
            tokens.push(t);
            if t == eos {
                return (tokens, true);
            }
        }
        (tokens, false)
    }

    /// False when the model never trained unconditioned (guidance must be 1).
    pub fn guidable(&self) -> bool {
        self.guidable
    }

    /// How many tokens sampling may choose from (the random baseline's perplexity).
    pub fn choices(&self) -> usize {
        self.grammar.music.iter().filter(|&&a| a).count()
    }

    /// The MIDI file of sampled `tokens` (prefix included), moved by
    /// [`tonic_shift`] when the prefix names no key.
    pub fn midi(&self, tokens: &[u16], seed: u64) -> Vec<u8> {
        let mut decoded = self.tokenizer.decode(tokens);
        decoded.transpose(tonic_shift(decoded.key, seed));
        decode::to_midi(&self.tokenizer.vocab, &decoded)
    }

    /// The tokenizer the model speaks.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The model.
    pub fn model(&self) -> &Gpt {
        &self.model
    }

    /// The text's sentence embedding, semantic token, distance to it, and the attributes it names.
    pub fn condition(&self, text: &str) -> anyhow::Result<(Vec<f32>, Conditioning, f64)> {
        self.read(text).map(|r| (r.vector, r.conditioning, r.distance))
    }

    /// What a text asks for, in full.
    fn read(&self, text: &str) -> anyhow::Result<Reading> {
        let vector = self
            .encoder
            .encode(&[text], 1)?
            .vectors
            .pop()
            .context("the encoder returned nothing")?;
        let (semantic, distance) = self.centroids.nearest(&vector);
        let a = prompt::parse(text, self.tokenizer.vocab.config.prefix_instruments);
        let unread = prompt::unread(text, &a.read);
        let conditioning = Conditioning {
            semantic: Some(semantic),
            tempo_class: a.tempo_class,
            key: a.key,
            time_signature: a.time_signature,
            instruments: a.instruments,
        };
        Ok(Reading {
            vector,
            conditioning,
            distance,
            unread,
            bpm: a.bpm,
        })
    }

    /// Writes a piece for a text; the same text and options give the same piece.
    pub fn generate(&self, text: &str, opts: &SampleOptions) -> anyhow::Result<Generation> {
        self.generate_unless(text, opts, &|| false)
    }

    /// [`Self::generate`], giving up with [`Stopped`] as soon as `stop()`
    /// says so (asked before every token).
    pub fn generate_unless(
        &self,
        text: &str,
        opts: &SampleOptions,
        stop: &dyn Fn() -> bool,
    ) -> anyhow::Result<Generation> {
        opts.validate()?;
        anyhow::ensure!(
            opts.guidance == 1.0 || self.guidable,
            "this model was trained without unconditioned windows (train.uncondition = 0), which \
             guidance compares against: generate with guidance 1, or retrain with train.uncondition > 0"
        );
        let Reading {
            vector,
            conditioning,
            distance: semantic_distance,
            unread,
            bpm,
        } = self.read(text)?;
        let prefix = conditioning.tokens(&self.tokenizer.vocab);
        let embedding = (self.model.config.conditioning == ModelConditioning::TokensAndEmbedding)
            .then(|| {
                Tensor::from_slice(&vector)
                    .view([1, -1])
                    .to_device(self.model.device())
            });
        let strict = if opts.strict {
            Strict::new(&self.tokenizer.vocab, &conditioning, bpm)
        } else {
            None
        };
        let (tokens, ended) = self
            .sample_unless(&prefix, embedding.as_ref(), strict.as_ref(), opts, true, stop)
            .ok_or(Stopped)?;
        let midi = self.midi(&tokens, opts.seed);
        Ok(Generation {
            transposed: tonic_shift(conditioning.key, opts.seed),
            text: text.to_owned(),
            conditioning,
            semantic_distance,
            unread,
            tokens,
            ended,
            midi,
        })
    }

    /// Samples music after `prefix`, with or without the KV cache (the two
    /// agree), guided as `opts.guidance` says. Nothing is kept strictly
    /// here (`opts.strict` needs the prompt; see [`Self::generate`]).
    ///
    /// Past the model's context the window slides: it keeps the prefix, the
    /// meter, tempo and program in force, and the latest half of the music,
    /// as the training windows do.
    pub fn sample(
        &self,
        prefix: &[u16],
        embedding: Option<&Tensor>,
        opts: &SampleOptions,
        cached: bool,
    ) -> (Vec<u16>, bool) {
        self.sample_unless(prefix, embedding, None, opts, cached, &|| false)
            .expect("never stopped")
    }

    /// [`Self::sample`] within `strict`'s constraints, or `None` as soon as
    /// `stop()` says so (asked before every token).
    pub fn sample_unless(
        &self,
        prefix: &[u16],
        embedding: Option<&Tensor>,
        strict: Option<&Strict>,
        opts: &SampleOptions,
        cached: bool,
        stop: &dyn Fn() -> bool,
    ) -> Option<(Vec<u16>, bool)> {
        let vocab = &self.tokenizer.vocab;
        let eos = vocab.id(Token::Eos);
        let body = self.model.config.context.saturating_sub(prefix.len()).max(8);
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        // Guidance asks the same model about the same music with nothing
        // asked: every attribute and the semantic token N/A, no sentence.
        let unconditioned = Conditioning::default().tokens(vocab);
        let blank = embedding.map(Tensor::zeros_like);
        let mut streams = vec![Stream::new(prefix, embedding)];
        if opts.guidance != 1.0 {
            streams.push(Stream::new(&unconditioned, blank.as_ref()));
        }
        let mix = |rows: Vec<Vec<f32>>| -> Vec<f32> {
            let s = opts.guidance as f32;
            match rows.as_slice() {
                [c, u] => c.iter().zip(u).map(|(c, u)| u + s * (c - u)).collect(),
                _ => rows.into_iter().next().expect("one stream"),
            }
        };
        let mut music: Vec<u16> = Vec::new();
        let (mut start, mut header) = (0, Vec::new());
        let mut program = None;
        let mut ended = false;
        let finished = tch::no_grad(|| {
            let refill = |streams: &mut Vec<Stream>, header: &[u16], music: &[u16]| {
                let window: Vec<u16> = header.iter().chain(music).copied().collect();
                mix(streams.iter_mut().map(|s| s.refill(&self.model, &window, cached)).collect())
            };
            let mut logits = refill(&mut streams, &header, &music);
            while music.len() < opts.max_tokens {
                if stop() {
                    return None;
                }
                let mut allowed = self.grammar.at(music.len()).to_vec();
                if let Some(strict) = strict {
                    strict.narrow(&mut allowed, &mut logits, program);
                }
                let next = sample(&logits, &allowed, opts, &mut rng) as u16;
                if matches!(vocab.token(next), Some(Token::Program(_))) {
                    program = Some(next);
                }
                music.push(next);
                if next == eos {
                    ended = true;
                    break;
                }
                if header.len() + music.len() - start > body {
                    start = music.len() - body / 2;
                    header = Header::after(vocab, &music[..start]).tokens();
                    logits = refill(&mut streams, &header, &music[start..]);
                } else if cached {
                    logits = mix(streams.iter_mut().map(|s| s.step(&self.model, next)).collect());
                } else {
                    logits = refill(&mut streams, &header, &music[start..]);
                }
            }
            Some(())
        });
        finished?;
        let mut tokens = prefix.to_vec();
        tokens.extend(music);
        Some((tokens, ended))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keyless_music_is_moved_and_the_seed_decides_where() {
        for seed in 0..64 {
            assert_eq!(tonic_shift(Key::parse("E minor"), seed), 0, "a key was asked");
        }
        let shifts: Vec<i8> = (0..64).map(|seed| tonic_shift(None, seed)).collect();
        assert!(shifts.iter().all(|s| (-6..=5).contains(s)), "{shifts:?}");
        let mut distinct = shifts.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 12, "every tonic is drawn: {distinct:?}");
        assert_eq!(shifts, (0..64).map(|seed| tonic_shift(None, seed)).collect::<Vec<_>>(), "by the seed alone");
    }
}
