//! Music-quality metrics with muspy's definitions (muspy 0.5), computed on
//! our parsed notes so that the two agree file for file: pitch range and
//! usage, polyphony, scale fit, entropies, empty beats and groove consistency.
//!
//! As in muspy, "non-drum" notes are those off the drum channel; a piece's
//! length L is the latest note end or control change; time is in ticks at the
//! file's own resolution. Where muspy returns NaN, so do these.

use serde::{Deserialize, Serialize};

use crate::midi::Score;
use crate::midi::key::{Key, MAJOR_SCALE, MINOR_SCALE};
use crate::midi::tempo::Division;


/// One piece's quality metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub pitch_range: f64,
    pub n_pitches_used: f64,
    pub n_pitch_classes_used: f64,
    pub polyphony: f64,
    /// Share of ticks with more than two pitches sounding (muspy's default threshold).
    pub polyphony_rate: f64,
    /// Share of notes in the scale of the piece's (requested or estimated) key.
    pub pitch_in_scale_rate: f64,
    pub scale_consistency: f64,
    pub pitch_entropy: f64,
    pub pitch_class_entropy: f64,
    pub empty_beat_rate: f64,
    /// With 4/4 bars, as muspy's default.
    pub groove_consistency: f64,
}

/// The metric names in [`Quality`]'s field order.
pub const NAMES: [&str; 11] = [
    "pitch_range",
    "n_pitches_used",
    "n_pitch_classes_used",
    "polyphony",
    "polyphony_rate",
    "pitch_in_scale_rate",
    "scale_consistency",
    "pitch_entropy",
    "pitch_class_entropy",
    "empty_beat_rate",
    "groove_consistency",
];

impl Quality {
    /// The values in [`NAMES`] order.
    pub fn values(&self) -> [f64; 11] {
        [
            self.pitch_range,
            self.n_pitches_used,
            self.n_pitch_classes_used,
            self.polyphony,
            self.polyphony_rate,
            self.pitch_in_scale_rate,
            self.scale_consistency,
            self.pitch_entropy,
            self.pitch_class_entropy,
            self.empty_beat_rate,
            self.groove_consistency,
        ]
    }
}

fn entropy(counts: &[f64]) -> f64 {
    let total: f64 = counts.iter().sum();
    if total < 1.0 {
        return f64::NAN;
    }
    -counts
        .iter()
        .filter(|&&c| c > 0.0)
        .map(|c| (c / total) * (c / total).log2())
        .sum::<f64>()
}

fn in_scale_share(pitch_classes: &[f64; 12], root: u8, scale: &[u8; 7]) -> f64 {
    let total: f64 = pitch_classes.iter().sum();
    let inside: f64 = scale
        .iter()
        .map(|s| pitch_classes[usize::from((root + s) % 12)])
        .sum();
    if total == 0.0 {
        f64::NAN
    } else {
        inside / total
    }
}

/// The metrics of a piece; `key` is the scale of the pitch-in-scale rate.
pub fn quality(score: &Score, key: Option<Key>) -> Quality {
    let pitched: Vec<_> = score.notes.iter().filter(|n| !n.is_drum()).collect();
    let mut pitches = [0.0f64; 128];
    let mut classes = [0.0f64; 12];
    for n in &pitched {
        pitches[usize::from(n.pitch)] += 1.0;
        classes[usize::from(n.pitch % 12)] += 1.0;
    }
    let pitch_range = match (
        pitched.iter().map(|n| n.pitch).min(),
        pitched.iter().map(|n| n.pitch).max(),
    ) {
        (Some(lo), Some(hi)) => f64::from(hi - lo),
        // muspy's max() − min() over no pitched notes: 0 − 127 when only drums play.
        _ if !score.notes.is_empty() => -127.0,
        _ => 0.0,
    };
    let length = score
        .notes
        .iter()
        .map(|n| n.end)
        .max()
        .unwrap_or(0)
        .max(score.last_control_tick);

    // Sweep the piano roll [0, L) × 128 of pitched notes: cells are on or off.
    let mut edges: Vec<(u64, i32, u8)> = Vec::with_capacity(2 * pitched.len());
    for n in pitched.iter().filter(|n| n.end > n.start) {
        edges.push((n.start, 1, n.pitch));
        edges.push((n.end, -1, n.pitch));
    }
    edges.sort_unstable();
    let (mut cover, mut distinct) = ([0i32; 128], 0u64);
    let (mut cells, mut active, mut polyphonic, mut at) = (0u64, 0u64, 0u64, 0u64);
    for (tick, delta, pitch) in edges {
        let span = tick.min(length).saturating_sub(at);
        cells += distinct * span;
        if distinct > 0 {
            active += span;
        }
        if distinct > 2 {
            polyphonic += span;
        }
        at = at.max(tick.min(length));
        let c = &mut cover[usize::from(pitch)];
        let was = *c > 0;
        *c += delta;
        match (was, *c > 0) {
            (false, true) => distinct += 1,
            (true, false) => distinct -= 1,
            _ => {}
        }
    }

    let resolution = match score.division {
        Division::Metrical(tpq) if tpq > 0 => Some(u64::from(tpq)),
        _ => None,
    };
    let (empty_beat_rate, groove_consistency) = match resolution {
        Some(res) => (
            empty_beats(score, length, res),
            groove(score, length, 4 * res),
        ),
        None => (f64::NAN, f64::NAN),
    };
    let scale_consistency = (0..12u8)
        .flat_map(|root| {
            [
                in_scale_share(&classes, root, &MAJOR_SCALE),
                in_scale_share(&classes, root, &MINOR_SCALE),
            ]
        })
        .fold(f64::NAN, f64::max);
    Quality {
        pitch_range,
        n_pitches_used: pitches.iter().filter(|&&c| c > 0.0).count() as f64,
        n_pitch_classes_used: classes.iter().filter(|&&c| c > 0.0).count() as f64,
        polyphony: if active == 0 {
            f64::NAN
        } else {
            cells as f64 / active as f64
        },
        polyphony_rate: if length == 0 {
            f64::NAN
        } else {
            polyphonic as f64 / length as f64
        },
        pitch_in_scale_rate: key.map_or(f64::NAN, |k| {
            in_scale_share(&classes, k.tonic, k.scale())
        }),
        scale_consistency,
        pitch_entropy: entropy(&pitches),
        pitch_class_entropy: entropy(&classes),
        empty_beat_rate,
        groove_consistency,
    }
}

/// 1 − non-empty beats / beats, where a note marks beats `start/res ..= end/res` (all notes, drums included).
fn empty_beats(score: &Score, length: u64, res: u64) -> f64 {
    if length < 1 {
        return f64::NAN;
    }
    let beats = length / res + 1;
    let mut filled = vec![false; beats as usize];
    for n in &score.notes {
        for b in n.start / res..=(n.end / res).min(beats - 1) {
            filled[b as usize] = true;
        }
    }
    1.0 - filled.iter().filter(|&&f| f).count() as f64 / beats as f64
}

/// 1 − Σ Hamming(onsets of bar i, of bar i+1) / (bar length · (bars − 1)), over every note's onset.
fn groove(score: &Score, length: u64, bar: u64) -> f64 {
    let bars = length / bar + 1;
    if bars < 2 {
        return f64::NAN;
    }
    let mut onsets: Vec<Vec<u64>> = vec![Vec::new(); bars as usize];
    for n in &score.notes {
        if let Some(m) = onsets.get_mut((n.start / bar) as usize) {
            m.push(n.start % bar);
        }
    }
    onsets.iter_mut().for_each(|m| {
        m.sort_unstable();
        m.dedup();
    });
    let hamming: usize = onsets
        .windows(2)
        .map(|w| {
            let common = w[0]
                .iter()
                .filter(|p| w[1].binary_search(p).is_ok())
                .count();
            w[0].len() + w[1].len() - 2 * common
        })
        .sum();
    1.0 - hamming as f64 / (bar * (bars - 1)) as f64
}
