//! Text adherence: does a generated piece have what its prompt asked for?
//! The field's measures (text2midi, on MidiCaps): tempo-bin match and match
//! within one bin, key match (Krumhansl–Schmuckler keys) and a relaxed key
//! match, time-signature match, instrument precision/recall/F1, and the share
//! of requested attributes that are satisfied. Unrequested attributes are not scored.

use serde::{Deserialize, Serialize};

use crate::midi::Features;
use crate::midi::key::Key;
use crate::tokenizer::Conditioning;
use crate::tokenizer::grid::nearest_time_signature;
use crate::tokenizer::prefix::tempo_class;

/// The MidiCaps tempo bin of a BPM (the prefix's tempo classes are MidiCaps' bins).
pub fn tempo_bin(bpm: f64) -> i32 {
    tempo_class(bpm) as i32
}

/// What was asked of a piece.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    pub bpm: Option<f64>,
    pub key: Option<Key>,
    pub time_signature: Option<(u8, u32)>,
    /// Instrument families (program / 8, 16 for drums).
    pub instruments: Vec<u8>,
}

impl Request {
    /// The request behind a generation's conditioning, with the BPM its prompt named.
    pub fn new(c: &Conditioning, bpm: Option<f64>) -> Self {
        Self {
            bpm,
            key: c.key,
            time_signature: c.time_signature,
            instruments: c.instruments.clone(),
        }
    }
}

/// One piece's adherence; `None` where the attribute was not requested.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Adherence {
    pub tempo_bin_match: Option<bool>,
    pub tempo_bin_within_one: Option<bool>,
    pub key_match: Option<bool>,
    /// The same key, or its relative major/minor (the same scale).
    pub key_match_relaxed: Option<bool>,
    pub time_signature_match: Option<bool>,
    pub instrument_precision: Option<f64>,
    pub instrument_recall: Option<f64>,
    pub instrument_f1: Option<f64>,
    /// Satisfied requested attributes (tempo bin, key, meter, each instrument) over requested ones.
    pub attributes_satisfied: Option<f64>,
}

/// The held-out measures the run ledger tracks, by [`Adherence::measures`]
/// name, with the shorter name `amt runs` shows.
pub const TRACKED: [(&str, &str); 4] = [
    ("tempo_bin_match", "tempo_bin"),
    ("key_match", "key"),
    ("time_signature_match", "meter"),
    ("instrument_f1", "instrument_f1"),
];

impl Adherence {
    /// Every measure by name, in field order: a match as 1 or 0, a rate as
    /// itself, `None` where the prompt did not ask. `metrics.json`'s
    /// adherence block, `pieces.parquet`'s columns and the held-out scores
    /// are derived from this list.
    pub fn measures(&self) -> [(&'static str, Option<f64>); 9] {
        let flag = |b: Option<bool>| b.map(|b| f64::from(u8::from(b)));
        [
            ("tempo_bin_match", flag(self.tempo_bin_match)),
            ("tempo_bin_within_one", flag(self.tempo_bin_within_one)),
            ("key_match", flag(self.key_match)),
            ("key_match_relaxed", flag(self.key_match_relaxed)),
            ("time_signature_match", flag(self.time_signature_match)),
            ("instrument_precision", self.instrument_precision),
            ("instrument_recall", self.instrument_recall),
            ("instrument_f1", self.instrument_f1),
            ("attributes_satisfied", self.attributes_satisfied),
        ]
    }
}

/// The instrument families a piece plays.
pub fn families(f: &Features) -> Vec<u8> {
    let mut fam: Vec<u8> = f.programs.iter().map(|p| p / 8).collect();
    if f.has_drums {
        fam.push(16);
    }
    fam.sort_unstable();
    fam.dedup();
    fam
}

/// Scores a generated piece's features against its request.
pub fn adherence(req: &Request, f: &Features) -> Adherence {
    let mut a = Adherence::default();
    let (mut asked, mut met) = (0usize, 0usize);
    let mut tally = |ok: bool| {
        asked += 1;
        met += usize::from(ok);
    };
    if let Some(bpm) = req.bpm {
        let d = (tempo_bin(bpm) - tempo_bin(f.mean_tempo_bpm)).abs();
        a.tempo_bin_match = Some(d == 0);
        a.tempo_bin_within_one = Some(d <= 1);
        tally(d == 0);
    }
    if let Some(want) = req.key {
        let got = f.estimated_key.map(|(k, _)| k);
        a.key_match = Some(got == Some(want));
        // The relative key shares the scale: C major ~ A minor.
        a.key_match_relaxed = Some(got.is_some_and(|g| g == want || g == want.relative()));
        tally(got == Some(want));
    }
    if let Some(want) = req.time_signature {
        let got = f.time_signatures.first().and_then(|ts| {
            let (n, d) = ts.split_once('/')?;
            Some(nearest_time_signature(n.parse().ok()?, d.parse().ok()?))
        });
        a.time_signature_match = Some(got == Some(want));
        tally(got == Some(want));
    }
    if !req.instruments.is_empty() {
        let played = families(f);
        let hits = req
            .instruments
            .iter()
            .filter(|i| played.contains(i))
            .count() as f64;
        let precision = if played.is_empty() {
            0.0
        } else {
            hits / played.len() as f64
        };
        let recall = hits / req.instruments.len() as f64;
        a.instrument_precision = Some(precision);
        a.instrument_recall = Some(recall);
        a.instrument_f1 = Some(if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        });
        for i in &req.instruments {
            tally(played.contains(i));
        }
    }
    a.attributes_satisfied = (asked > 0).then(|| met as f64 / asked as f64);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measures_are_the_fields_in_order_each_reading_its_own() {
        let names: Vec<&str> = Adherence::default().measures().map(|(n, _)| n).to_vec();
        let fields = serde_json::to_value(Adherence::default()).unwrap();
        assert_eq!(
            fields.as_object().unwrap().len(),
            names.len(),
            "a field is not measured"
        );
        // Field order, as serde writes a struct: it seeds the intervals and
        // orders pieces.parquet's columns.
        let text = serde_json::to_string(&Adherence::default()).unwrap();
        let at: Vec<usize> = names
            .iter()
            .map(|n| {
                text.find(&format!("\"{n}\":"))
                    .unwrap_or_else(|| panic!("{n} is no field"))
            })
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "not in field order: {names:?}"
        );
        // Each name reads its own field: with only that field set, only it is measured.
        for name in &names {
            let only = |v: serde_json::Value| {
                serde_json::from_value::<Adherence>(serde_json::Value::Object(
                    [(name.to_string(), v)].into_iter().collect(),
                ))
            };
            let one = only(true.into()).or_else(|_| only(0.5.into())).unwrap();
            let set: Vec<&str> = one
                .measures()
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(n, _)| *n)
                .collect();
            assert_eq!(set, [*name]);
        }
    }

    #[test]
    fn midicaps_bins() {
        assert_eq!(
            [30.0, 40.0, 65.0, 120.0, 139.9, 140.0, 220.0].map(tempo_bin),
            [0, 1, 2, 5, 5, 6, 8]
        );
    }
}
