//! The vocabulary: every token amt's REMI+ tokenizer can emit, with stable ids.
//!
//! The layout is fixed by [`Config`] and versioned: `vocab.json` records the
//! version and every token's text, and a model trained on one version is not
//! fed another.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Bumped whenever the token layout, what a token means or the windows'
/// shape changes (2: MidiCaps tempo bins in the prefix, and every window
/// restates the meter, tempo and program it starts in; 3: tempo tokens from
/// 30 BPM, so MidiCaps' lowest bin has some; 4: pitches in the key frame of
/// the prefix's key, see [`super::frame`], and six instrument slots).
pub const VERSION: u32 = 4;

/// Time signatures with their own token; others are written as the nearest in bar length.
pub const TIME_SIGNATURES: &[(u8, u32)] = &[
    (2, 4),
    (3, 4),
    (4, 4),
    (5, 4),
    (6, 4),
    (2, 2),
    (3, 2),
    (4, 2),
    (3, 8),
    (5, 8),
    (6, 8),
    (7, 8),
    (9, 8),
    (12, 8),
];

/// The prefix's tempo classes: MidiCaps' tempo bin edges in BPM, the bins
/// text2midi's tempo-bin metric (and evaluate) scores, so a model that obeys
/// its prefix also scores.
pub const TEMPO_CLASSES: &[f64] = &[40.0, 60.0, 70.0, 90.0, 110.0, 140.0, 160.0, 210.0];

/// The tokenizer's knobs. The defaults give about 800 tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Positions per quarter note (the onset and duration grid).
    pub positions_per_beat: u32,
    /// Longest duration token, in positions; longer notes are clipped.
    pub max_duration: u32,
    /// Velocity bins over 1–127.
    pub velocity_bins: u32,
    /// Tempo bins, geometric between `tempo_min` and `tempo_max` BPM.
    pub tempo_bins: u32,
    pub tempo_min: f64,
    pub tempo_max: f64,
    /// Semantic tokens (the k of process's k-means, at most).
    pub semantic_tokens: u32,
    /// Instruments named in the conditioning prefix.
    pub prefix_instruments: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            positions_per_beat: 8,
            max_duration: 96,
            velocity_bins: 32,
            tempo_bins: 32,
            // Below MidiCaps' lowest tempo bin edge (40 BPM), so that bin has tokens.
            tempo_min: 30.0,
            tempo_max: 250.0,
            semantic_tokens: 128,
            // Enough for nearly every piece's whole band, so that a slot
            // left N/A means "no more instruments", as a prompt means it.
            prefix_instruments: 6,
        }
    }
}

impl Config {
    /// The most positions a bar can have (4/2 is eight quarters).
    pub fn max_positions(&self) -> u32 {
        8 * self.positions_per_beat
    }
}

/// A token's meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Token {
    Pad,
    Bos,
    Eos,
    Sep,
    Bar,
    /// Onset within the bar, in positions.
    Position(u32),
    /// General MIDI program, or `None` for drums.
    Program(Option<u8>),
    Pitch(u8),
    Velocity(u32),
    /// In positions (0: a zero-length note).
    Duration(u32),
    Tempo(u32),
    TimeSig(u8, u32),
    /// Conditioning: the semantic token (`None`: unknown).
    Semantic(Option<u32>),
    /// Conditioning: tempo class, 0..=TEMPO_CLASSES.len().
    CondTempo(Option<u32>),
    /// Conditioning: key as tonic pitch class + 12 for minor.
    CondKey(Option<u32>),
    CondTimeSig(Option<(u8, u32)>),
    /// Conditioning: instrument family (program / 8), 16 for drums.
    CondInstrument(Option<u8>),
}

impl Token {
    /// The token's type, for per-type losses and perplexities.
    pub fn kind(&self) -> &'static str {
        match self {
            Token::Pad | Token::Bos | Token::Sep => "special",
            Token::Eos => "EOS",
            Token::Bar => "Bar",
            Token::Position(_) => "Position",
            Token::Program(_) => "Program",
            Token::Pitch(_) => "Pitch",
            Token::Velocity(_) => "Velocity",
            Token::Duration(_) => "Duration",
            Token::Tempo(_) => "Tempo",
            Token::TimeSig(..) => "TimeSig",
            Token::Semantic(_)
            | Token::CondTempo(_)
            | Token::CondKey(_)
            | Token::CondTimeSig(_)
            | Token::CondInstrument(_) => "conditioning",
        }
    }

    /// The token's text, as written in `vocab.json`.
    pub fn text(&self) -> String {
        let na = |o: Option<String>| o.unwrap_or_else(|| "NA".into());
        match *self {
            Token::Pad => "PAD".into(),
            Token::Bos => "BOS".into(),
            Token::Eos => "EOS".into(),
            Token::Sep => "SEP".into(),
            Token::Bar => "Bar".into(),
            Token::Position(p) => format!("Position_{p}"),
            Token::Program(Some(p)) => format!("Program_{p}"),
            Token::Program(None) => "Program_Drums".into(),
            Token::Pitch(p) => format!("Pitch_{p}"),
            Token::Velocity(v) => format!("Velocity_{v}"),
            Token::Duration(d) => format!("Duration_{d}"),
            Token::Tempo(t) => format!("Tempo_{t}"),
            Token::TimeSig(n, d) => format!("TimeSig_{n}/{d}"),
            Token::Semantic(s) => format!("Semantic_{}", na(s.map(|s| s.to_string()))),
            Token::CondTempo(t) => format!("CondTempo_{}", na(t.map(|t| t.to_string()))),
            Token::CondKey(k) => format!("CondKey_{}", na(k.map(|k| k.to_string()))),
            Token::CondTimeSig(ts) => {
                format!("CondTimeSig_{}", na(ts.map(|(n, d)| format!("{n}/{d}"))))
            }
            Token::CondInstrument(i) => format!("CondInstrument_{}", na(i.map(|i| i.to_string()))),
        }
    }
}

/// Every token in id order, and the reverse map.
#[derive(Clone, Debug)]
pub struct Vocab {
    pub config: Config,
    tokens: Vec<Token>,
    ids: HashMap<Token, u16>,
}

/// The vocabulary's file name, in prepare's output and in a model bundle.
pub const FILE: &str = "vocab.json";

/// `vocab.json`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct VocabFile {
    pub version: u32,
    pub config: Config,
    pub tokens: Vec<String>,
}

impl Vocab {
    /// The vocabulary for a configuration.
    pub fn new(config: Config) -> Self {
        let mut tokens = vec![Token::Pad, Token::Bos, Token::Eos, Token::Sep, Token::Bar];
        tokens.extend((0..config.max_positions()).map(Token::Position));
        tokens.extend((0..128).map(|p| Token::Program(Some(p))));
        tokens.push(Token::Program(None));
        tokens.extend((0..128).map(Token::Pitch));
        tokens.extend((0..config.velocity_bins).map(Token::Velocity));
        tokens.extend((0..=config.max_duration).map(Token::Duration));
        tokens.extend((0..config.tempo_bins).map(Token::Tempo));
        tokens.extend(TIME_SIGNATURES.iter().map(|&(n, d)| Token::TimeSig(n, d)));
        tokens.push(Token::Semantic(None));
        tokens.extend((0..config.semantic_tokens).map(|s| Token::Semantic(Some(s))));
        tokens.push(Token::CondTempo(None));
        tokens.extend((0..=TEMPO_CLASSES.len() as u32).map(|t| Token::CondTempo(Some(t))));
        tokens.push(Token::CondKey(None));
        tokens.extend((0..24).map(|k| Token::CondKey(Some(k))));
        tokens.push(Token::CondTimeSig(None));
        tokens.extend(
            TIME_SIGNATURES
                .iter()
                .map(|&ts| Token::CondTimeSig(Some(ts))),
        );
        tokens.push(Token::CondInstrument(None));
        tokens.extend((0..=16).map(|i| Token::CondInstrument(Some(i))));
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, i as u16))
            .collect();
        Self {
            config,
            tokens,
            ids,
        }
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: every vocabulary has the special tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of a token; panics on a token outside this vocabulary (a tokenizer bug).
    pub fn id(&self, t: Token) -> u16 {
        self.ids[&t]
    }

    /// The token with an id, if there is one.
    pub fn token(&self, id: u16) -> Option<Token> {
        self.tokens.get(id as usize).copied()
    }

    /// The `vocab.json` contents.
    pub fn file(&self) -> VocabFile {
        VocabFile {
            version: VERSION,
            config: self.config.clone(),
            tokens: self.tokens.iter().map(Token::text).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vocabulary_is_small_and_ids_round_trip() {
        let v = Vocab::new(Config::default());
        assert_eq!(v.len(), 698, "README.md states the vocabulary size");
        for id in 0..v.len() as u16 {
            assert_eq!(v.id(v.token(id).unwrap()), id);
        }
        let texts = v.file().tokens;
        let unique: std::collections::HashSet<&String> = texts.iter().collect();
        assert_eq!(unique.len(), texts.len(), "token texts are unique");
        assert_eq!(v.token(0), Some(Token::Pad));
    }
}
