//! The conditioning prefix: `BOS, Semantic, CondTempo, CondKey, CondTimeSig,
//! CondInstrument × n, SEP`. Unknown attributes get their N/A token, so the
//! prefix always has the same length and shape.

use crate::midi::Features;
use crate::midi::key::Key;

use super::grid::nearest_time_signature;
use super::vocab::{TEMPO_CLASSES, Token, Vocab};

/// What a piece (or a prompt) asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conditioning {
    /// The k-means semantic token of its text.
    pub semantic: Option<u32>,
    /// Index into the tempo classes, MidiCaps' bins (0 = below 40 BPM).
    pub tempo_class: Option<u32>,
    pub key: Option<Key>,
    pub time_signature: Option<(u8, u32)>,
    /// Instrument families (program / 8, 16 for drums), most played first.
    pub instruments: Vec<u8>,
}

/// The tempo class (MidiCaps bin) of a BPM.
pub fn tempo_class(bpm: f64) -> u32 {
    TEMPO_CLASSES.iter().filter(|&&b| bpm >= b).count() as u32
}

/// The BPM range of a tempo class: its lower and upper edge, `None` at an open end.
pub fn class_range(class: u32) -> (Option<f64>, Option<f64>) {
    let c = class as usize;
    (
        c.checked_sub(1).and_then(|i| TEMPO_CLASSES.get(i)).copied(),
        TEMPO_CLASSES.get(c).copied(),
    )
}

/// A BPM typical of a tempo class: the middle of its range (10 BPM inside an open end).
pub fn typical_bpm(class: u32) -> f64 {
    match class_range(class) {
        (Some(lo), Some(hi)) => (lo + hi) / 2.0,
        (None, Some(hi)) => hi - 10.0,
        (Some(lo), None) => lo + 10.0,
        (None, None) => 120.0,
    }
}

/// The length of every conditioning prefix (BOS … SEP).
pub fn prefix_len(vocab: &Vocab) -> usize {
    Conditioning::default().tokens(vocab).len()
}

impl Conditioning {
    /// The attributes of a piece from its features.
    pub fn from_features(f: &Features, semantic: Option<u32>, instruments: usize) -> Self {
        let mut families: Vec<(u8, f64)> = Vec::new();
        for &(program, secs) in &f.program_seconds {
            let family = program / 8;
            match families.iter_mut().find(|(fam, _)| *fam == family) {
                Some(e) => e.1 += secs,
                None => families.push((family, secs)),
            }
        }
        if f.has_drums {
            families.push((16, f.drum_seconds));
        }
        families.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Self {
            semantic,
            tempo_class: Some(tempo_class(f.mean_tempo_bpm)),
            key: f.estimated_key.map(|(k, _)| k),
            time_signature: f.time_signatures.first().and_then(|ts| {
                let (n, d) = ts.split_once('/')?;
                Some(nearest_time_signature(n.parse().ok()?, d.parse().ok()?))
            }),
            instruments: families
                .into_iter()
                .map(|(f, _)| f)
                .take(instruments)
                .collect(),
        }
    }

    /// The prefix's token ids.
    pub fn tokens(&self, vocab: &Vocab) -> Vec<u16> {
        let semantic = self.semantic.filter(|&s| s < vocab.config.semantic_tokens);
        let mut t = vec![
            Token::Bos,
            Token::Semantic(semantic),
            Token::CondTempo(self.tempo_class),
            Token::CondKey(self.key.map(Key::index)),
            Token::CondTimeSig(self.time_signature),
        ];
        for i in 0..vocab.config.prefix_instruments {
            t.push(Token::CondInstrument(
                self.instruments.get(i).copied().filter(|&f| f <= 16),
            ));
        }
        t.push(Token::Sep);
        t.into_iter().map(|t| vocab.id(t)).collect()
    }

    /// What it asks for, in words, attribute by attribute ("any" where it
    /// names nothing).
    pub fn words(&self) -> Words {
        let tempo = self.tempo_class.map_or_else(
            || "any".to_owned(),
            |c| match class_range(c) {
                (Some(lo), Some(hi)) => format!("{lo:.0}–{hi:.0} BPM"),
                (None, Some(hi)) => format!("below {hi:.0} BPM"),
                (Some(lo), None) => format!("{lo:.0} BPM or faster"),
                (None, None) => "any".to_owned(),
            },
        );
        let family = |f: u8| if f == 16 { "drums" } else { crate::midi::gm::family(f * 8) };
        Words {
            tempo,
            key: self.key.map_or_else(|| "any".to_owned(), |k| k.words()),
            meter: self
                .time_signature
                .map_or_else(|| "any".to_owned(), |(n, d)| format!("{n}/{d}")),
            instruments: self.instruments.iter().map(|&f| family(f).to_owned()).collect(),
            semantic_token: self.semantic,
        }
    }

    /// What it asks for, in one line: `"tempo 110–140 BPM; key D minor; meter
    /// 6/8; instruments strings, drums; semantic token 3"`.
    pub fn describe(&self) -> String {
        let w = self.words();
        let instruments = if w.instruments.is_empty() {
            "any".to_owned()
        } else {
            w.instruments.join(", ")
        };
        let semantic = w.semantic_token.map_or_else(|| "none".to_owned(), |s| s.to_string());
        format!(
            "tempo {}; key {}; meter {}; instruments {instruments}; semantic token {semantic}",
            w.tempo, w.key, w.meter
        )
    }
}

/// A [`Conditioning`] in words, as `amt generate` and the studio show it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Words {
    /// A BPM range, or "any".
    pub tempo: String,
    /// "D minor", or "any".
    pub key: String,
    /// "6/8", or "any".
    pub meter: String,
    /// General MIDI family names ("drums" for percussion); empty: any.
    pub instruments: Vec<String>,
    pub semantic_token: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_what_it_asks_for_in_words() {
        let asked = Conditioning {
            semantic: Some(3),
            tempo_class: Some(tempo_class(110.0)),
            key: Key::parse("D minor"),
            time_signature: Some((6, 8)),
            instruments: vec![5, 16],
        };
        assert_eq!(
            asked.describe(),
            "tempo 110–140 BPM; key D minor; meter 6/8; instruments strings, drums; semantic token 3"
        );
        assert_eq!(
            Conditioning::default().describe(),
            "tempo any; key any; meter any; instruments any; semantic token none"
        );
        let edges = |bpm| Conditioning { tempo_class: Some(tempo_class(bpm)), ..Conditioning::default() };
        assert!(edges(30.0).describe().starts_with("tempo below 40 BPM;"));
        assert!(edges(230.0).describe().starts_with("tempo 210 BPM or faster;"));
    }
}
