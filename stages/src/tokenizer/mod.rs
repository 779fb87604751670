//! amt's MIDI tokenizer: REMI+ style, lossless on its grid, with a
//! conditioning prefix, and a decoder that never fails.
//!
//! A sequence is `prefix (BOS … SEP) + music + EOS`. Music tokens are
//! `Bar`, `Position`, `Program` (drums included), `Pitch`, `Velocity` (binned),
//! `Duration` (on the grid), `Tempo` (binned) and `TimeSig`. Pitches are
//! written in the prefix's key frame ([`frame`]).

pub mod decode;
pub mod encode;
pub mod frame;
pub mod grid;
pub mod header;
pub mod prefix;
pub mod vocab;

pub use decode::Decoded;
pub use header::Header;
pub use prefix::{Conditioning, prefix_len};
pub use vocab::{Config, Token, Vocab};

use std::path::Path;

use anyhow::Context;

use crate::midi::Score;

/// The tokenizer: a vocabulary and the rules to use it.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    pub vocab: Vocab,
}

impl Tokenizer {
    /// A tokenizer for a configuration.
    pub fn new(config: Config) -> Self {
        Self {
            vocab: Vocab::new(config),
        }
    }

    /// Reads `vocab.json` from a directory (prepare's output or a model
    /// bundle) and checks that it is this build's vocabulary; `remedy` says
    /// what to rerun if not.
    pub fn read(dir: &Path, remedy: &str) -> anyhow::Result<Self> {
        let path = dir.join(vocab::FILE);
        let file: vocab::VocabFile = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?;
        let tok = Self::new(Config::default());
        let ours = tok.vocab.file();
        let differs = if file.version != ours.version {
            format!(
                "is vocabulary version {}, this build's is {}",
                file.version, ours.version
            )
        } else if file.config != ours.config {
            "has another tokenizer configuration than this build".to_owned()
        } else {
            "lists other tokens than this build".to_owned()
        };
        anyhow::ensure!(file == ours, "{} {differs}: {remedy}", path.display());
        Ok(tok)
    }

    /// `prefix + music + EOS` for a score, its pitches in the frame of
    /// the conditioning's key.
    pub fn encode(&self, score: &Score, conditioning: &Conditioning) -> Vec<u16> {
        let mut ids = conditioning.tokens(&self.vocab);
        ids.extend(encode::encode_music(
            &self.vocab,
            score,
            frame::to_c(conditioning.key),
        ));
        ids.push(self.vocab.id(Token::Eos));
        ids
    }

    /// The notes, tempi and meters in any token sequence, pitches moved
    /// back from the frame of the key its prefix names.
    pub fn decode(&self, ids: &[u16]) -> Decoded {
        decode::decode_tokens(&self.vocab, ids)
    }

    /// Any token sequence as a valid MIDI file.
    pub fn to_midi(&self, ids: &[u16]) -> Vec<u8> {
        decode::to_midi(&self.vocab, &self.decode(ids))
    }

    /// The text of each token, for snapshots and debugging.
    pub fn texts(&self, ids: &[u16]) -> Vec<String> {
        ids.iter()
            .map(|&id| {
                self.vocab
                    .token(id)
                    .map_or_else(|| format!("<{id}?>"), |t| t.text())
            })
            .collect()
    }
}
