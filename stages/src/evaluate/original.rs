//! The original AMT system's five similarity metrics and its overall score,
//! computed as its `evaluation/metrics.py` defined them, on a generated piece
//! and a reference piece.
//!
//! Its feature extractor (mido) counted every note-on with velocity > 0,
//! drums included; density is notes per second of file length; velocity
//! spread is the population standard deviation; note range is the inclusive
//! `[min, max]` pitch span; time signatures are the set of `n/d` events; tempo
//! is the mean of the `set_tempo` events. A missing feature scores 0, as it did.

use serde::{Deserialize, Serialize};

use crate::midi::Score;

/// The features those metrics read.
#[derive(Clone, Debug, PartialEq)]
pub struct OriginalFeatures {
    pub note_density: f64,
    pub velocity_mean: f64,
    pub velocity_std: f64,
    pub note_range: Option<(u8, u8)>,
    pub time_signatures: Vec<String>,
    pub tempo_mean_bpm: f64,
}

impl OriginalFeatures {
    /// The features of a parsed piece.
    pub fn of(score: &Score) -> Self {
        let n = score.notes.len() as f64;
        let length = score.tempo.seconds(score.end_tick);
        let (mean, std) = if score.notes.is_empty() {
            (0.0, 0.0)
        } else {
            let mean = score
                .notes
                .iter()
                .map(|x| f64::from(x.velocity))
                .sum::<f64>()
                / n;
            let var = score
                .notes
                .iter()
                .map(|x| (f64::from(x.velocity) - mean).powi(2))
                .sum::<f64>()
                / n;
            (mean, var.sqrt())
        };
        let note_range = score.notes.iter().fold(None, |r: Option<(u8, u8)>, x| {
            Some(r.map_or((x.pitch, x.pitch), |(lo, hi)| {
                (lo.min(x.pitch), hi.max(x.pitch))
            }))
        });
        let mut time_signatures: Vec<String> = score
            .time_signatures
            .iter()
            .map(|(_, n, d)| format!("{n}/{d}"))
            .collect();
        time_signatures.sort();
        time_signatures.dedup();
        let tempo_mean_bpm = if score.tempo_events_bpm.is_empty() {
            0.0
        } else {
            score.tempo_events_bpm.iter().sum::<f64>() / score.tempo_events_bpm.len() as f64
        };
        Self {
            note_density: if length > 0.0 { n / length } else { 0.0 },
            velocity_mean: mean,
            velocity_std: std,
            note_range,
            time_signatures,
            tempo_mean_bpm,
        }
    }
}

/// The five metrics and the weighted overall score.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OriginalScores {
    pub note_density_ratio: f64,
    pub velocity_similarity: f64,
    pub note_range_similarity: f64,
    pub time_signature_match: f64,
    pub tempo_similarity: f64,
    pub overall_score: f64,
}

impl OriginalScores {
    /// Every score by name, in field order: `metrics.json` and
    /// `pieces.parquet` derive theirs from this one list.
    pub fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("note_density_ratio", self.note_density_ratio),
            ("velocity_similarity", self.velocity_similarity),
            ("note_range_similarity", self.note_range_similarity),
            ("time_signature_match", self.time_signature_match),
            ("tempo_similarity", self.tempo_similarity),
            ("overall_score", self.overall_score),
        ]
    }
}

/// The original weights, in the field order above.
pub const WEIGHTS: [f64; 5] = [0.30, 0.20, 0.20, 0.15, 0.15];

fn ratio(a: f64, b: f64) -> f64 {
    if a == 0.0 || b == 0.0 {
        0.0
    } else {
        (a / b).min(b / a)
    }
}

/// Scores a generated piece against its reference.
pub fn compare(reference: &OriginalFeatures, generated: &OriginalFeatures) -> OriginalScores {
    let (r, g) = (reference, generated);
    let velocity_similarity = if r.velocity_mean == 0.0 || g.velocity_mean == 0.0 {
        0.0
    } else {
        1.0 - ((r.velocity_mean - g.velocity_mean).abs() / 127.0
            + (r.velocity_std - g.velocity_std).abs() / 127.0)
            / 2.0
    };
    let note_range_similarity = match (r.note_range, g.note_range) {
        (Some((rlo, rhi)), Some((glo, ghi))) => {
            let (lo, hi) = (rlo.max(glo), rhi.min(ghi));
            if hi < lo {
                0.0
            } else {
                let overlap = f64::from(hi - lo) + 1.0;
                let (rs, gs) = (f64::from(rhi - rlo) + 1.0, f64::from(ghi - glo) + 1.0);
                overlap / (rs + gs - overlap)
            }
        }
        _ => 0.0,
    };
    let time_signature_match = if r.time_signatures.is_empty() || g.time_signatures.is_empty() {
        0.0
    } else {
        let common = r
            .time_signatures
            .iter()
            .filter(|t| g.time_signatures.contains(t))
            .count();
        let total = r.time_signatures.len() + g.time_signatures.len() - common;
        common as f64 / total as f64
    };
    let mut s = OriginalScores {
        note_density_ratio: ratio(r.note_density, g.note_density),
        velocity_similarity,
        note_range_similarity,
        time_signature_match,
        tempo_similarity: ratio(r.tempo_mean_bpm, g.tempo_mean_bpm),
        overall_score: 0.0,
    };
    let parts = [
        s.note_density_ratio,
        s.velocity_similarity,
        s.note_range_similarity,
        s.time_signature_match,
        s.tempo_similarity,
    ];
    s.overall_score = parts.iter().zip(WEIGHTS).map(|(v, w)| v * w).sum();
    s
}

/// The original's quality level for an overall score.
pub fn quality_level(overall: f64) -> &'static str {
    match overall {
        s if s > 0.8 => "Excellent",
        s if s >= 0.6 => "Good",
        s if s >= 0.4 => "Acceptable",
        _ => "Poor",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_scores_are_the_fields_in_order() {
        let names: Vec<&str> = OriginalScores::default().named().map(|(n, _)| n).to_vec();
        // Every field its own value, so a name read from the wrong field shows.
        let distinct: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), (i as f64 + 1.0).into()))
            .collect();
        let s: OriginalScores = serde_json::from_value(distinct.into()).unwrap();
        let expected: Vec<(&str, f64)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i as f64 + 1.0))
            .collect();
        assert_eq!(s.named().to_vec(), expected);
        // And in field order, as serde writes the struct.
        let text = serde_json::to_string(&s).unwrap();
        let at: Vec<usize> = names
            .iter()
            .map(|n| text.find(&format!("\"{n}\":")).unwrap())
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "not in field order: {names:?}"
        );
    }

    fn f(
        density: f64,
        vel: (f64, f64),
        range: Option<(u8, u8)>,
        ts: &[&str],
        tempo: f64,
    ) -> OriginalFeatures {
        OriginalFeatures {
            note_density: density,
            velocity_mean: vel.0,
            velocity_std: vel.1,
            note_range: range,
            time_signatures: ts.iter().map(|s| s.to_string()).collect(),
            tempo_mean_bpm: tempo,
        }
    }

    #[test]
    fn the_formulas_and_weights_are_the_originals() {
        let r = f(4.0, (80.0, 10.0), Some((60, 71)), &["4/4"], 120.0);
        let g = f(2.0, (70.0, 20.0), Some((66, 77)), &["3/4", "4/4"], 90.0);
        let s = compare(&r, &g);
        assert_eq!(s.note_density_ratio, 0.5);
        assert!(
            (s.velocity_similarity - (1.0 - (10.0 / 127.0 + 10.0 / 127.0) / 2.0)).abs() < 1e-12
        );
        assert!(
            (s.note_range_similarity - 6.0 / 18.0).abs() < 1e-12,
            "pitches 66–71 of 60–77"
        );
        assert_eq!(s.time_signature_match, 0.5);
        assert_eq!(s.tempo_similarity, 0.75);
        let overall =
            0.3 * 0.5 + 0.2 * s.velocity_similarity + 0.2 * (6.0 / 18.0) + 0.15 * 0.5 + 0.15 * 0.75;
        assert!((s.overall_score - overall).abs() < 1e-12);
        assert_eq!(compare(&r, &r).overall_score, 1.0);
    }

    #[test]
    fn missing_features_score_zero_and_levels_follow_the_thresholds() {
        let r = f(4.0, (80.0, 10.0), Some((60, 71)), &[], 0.0);
        let s = compare(&r, &r);
        assert_eq!((s.time_signature_match, s.tempo_similarity), (0.0, 0.0));
        assert_eq!(
            compare(&r, &f(1.0, (0.0, 0.0), Some((80, 90)), &[], 0.0)).velocity_similarity,
            0.0
        );
        assert_eq!(
            compare(&r, &f(1.0, (9.0, 0.0), Some((80, 90)), &[], 0.0)).note_range_similarity,
            0.0
        );
        assert_eq!(
            [0.81, 0.8, 0.6, 0.59, 0.4, 0.39].map(quality_level),
            [
                "Excellent",
                "Good",
                "Good",
                "Acceptable",
                "Acceptable",
                "Poor"
            ]
        );
    }
}
