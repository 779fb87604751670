//! Notes on the tokenizer's grid: onsets and durations in positions,
//! velocities in bins. Round-trip exactness is measured on this form.

use crate::midi::{Score, tempo::Division};

use super::vocab::{Config, TIME_SIGNATURES};

/// A note after quantisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GridNote {
    /// Onset in positions from the start.
    pub onset: u64,
    /// `None` for drums.
    pub program: Option<u8>,
    pub pitch: u8,
    /// Duration in positions, clipped to the longest token.
    pub duration: u32,
    pub velocity: u32,
}

/// The velocity bin of a MIDI velocity (1–127).
pub fn velocity_bin(cfg: &Config, velocity: u8) -> u32 {
    (u32::from(velocity.clamp(1, 127)) - 1) * cfg.velocity_bins / 127
}

/// A velocity inside a bin (the bin's middle), which quantises back to it.
pub fn bin_velocity(cfg: &Config, bin: u32) -> u8 {
    let bin = bin.min(cfg.velocity_bins - 1);
    let lo = (bin * 127).div_ceil(cfg.velocity_bins) + 1;
    let hi = ((bin + 1) * 127).div_ceil(cfg.velocity_bins);
    ((lo + hi.max(lo)) / 2).clamp(1, 127) as u8
}

/// The tempo bin of a BPM (geometric bins).
pub fn tempo_bin(cfg: &Config, bpm: f64) -> u32 {
    let x = (bpm.clamp(cfg.tempo_min, cfg.tempo_max) / cfg.tempo_min).ln()
        / (cfg.tempo_max / cfg.tempo_min).ln();
    (x * f64::from(cfg.tempo_bins - 1)).round() as u32
}

/// The BPM at the centre of a tempo bin.
pub fn bin_tempo(cfg: &Config, bin: u32) -> f64 {
    let x = f64::from(bin.min(cfg.tempo_bins - 1)) / f64::from(cfg.tempo_bins - 1);
    cfg.tempo_min * (cfg.tempo_max / cfg.tempo_min).powf(x)
}

/// The supported time signature closest to `n/d`: itself, else one with the same bar length, else the nearest.
pub fn nearest_time_signature(n: u8, d: u32) -> (u8, u32) {
    if TIME_SIGNATURES.contains(&(n, d)) {
        return (n, d);
    }
    let quarters = |(n, d): (u8, u32)| f64::from(n) * 4.0 / f64::from(d.max(1));
    let want = quarters((n, d));
    *TIME_SIGNATURES
        .iter()
        .min_by(|a, b| {
            (quarters(**a) - want)
                .abs()
                .total_cmp(&(quarters(**b) - want).abs())
        })
        .expect("the table is not empty")
}

/// Positions in a bar of `n/d`.
pub fn bar_positions(cfg: &Config, (n, d): (u8, u32)) -> u32 {
    (u32::from(n) * 4 * cfg.positions_per_beat / d.max(1)).max(1)
}

/// Ticks per position for a score, or `None` for SMPTE timing (not tokenisable).
fn ticks_per_position(cfg: &Config, score: &Score) -> Option<f64> {
    match score.division {
        Division::Metrical(tpq) => Some(f64::from(tpq.max(1)) / f64::from(cfg.positions_per_beat)),
        Division::Timecode { .. } => None,
    }
}

/// The score's notes on the grid, sorted in token order.
pub fn quantize(cfg: &Config, score: &Score) -> Vec<GridNote> {
    let Some(tpp) = ticks_per_position(cfg, score) else {
        return Vec::new();
    };
    let mut notes: Vec<GridNote> = score
        .notes
        .iter()
        .map(|n| {
            let onset = (n.start as f64 / tpp).round() as u64;
            let end = (n.end as f64 / tpp).round() as u64;
            GridNote {
                onset,
                program: if n.is_drum() { None } else { Some(n.program) },
                pitch: n.pitch,
                duration: end.saturating_sub(onset).min(u64::from(cfg.max_duration)) as u32,
                velocity: velocity_bin(cfg, n.velocity),
            }
        })
        .collect();
    notes.sort_unstable();
    notes
}

/// `(position, supported signature)` changes, from the score's time-signature events.
pub fn time_signatures(cfg: &Config, score: &Score) -> Vec<(u64, (u8, u32))> {
    let Some(tpp) = ticks_per_position(cfg, score) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, (u8, u32))> = score
        .time_signatures
        .iter()
        .map(|&(tick, n, d)| {
            (
                (tick as f64 / tpp).round() as u64,
                nearest_time_signature(n, d),
            )
        })
        .collect();
    out.sort_by_key(|&(p, _)| p); // stable: the last event on a position wins below
    out
}

/// `(position, tempo bin)` changes.
pub fn tempos(cfg: &Config, score: &Score) -> Vec<(u64, u32)> {
    let Some(tpp) = ticks_per_position(cfg, score) else {
        return Vec::new();
    };
    let mut events: Vec<(u64, u32)> = Vec::new();
    for (tick, bpm) in score.tempo.changes() {
        events.push(((tick as f64 / tpp).round() as u64, tempo_bin(cfg, bpm)));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_round_trip() {
        let cfg = Config::default();
        for v in 1..=127u8 {
            let b = velocity_bin(&cfg, v);
            assert!(b < cfg.velocity_bins);
            assert_eq!(velocity_bin(&cfg, bin_velocity(&cfg, b)), b, "velocity {v}");
        }
        for b in 0..cfg.tempo_bins {
            assert_eq!(tempo_bin(&cfg, bin_tempo(&cfg, b)), b);
        }
        assert_eq!(nearest_time_signature(4, 4), (4, 4));
        assert_eq!(nearest_time_signature(12, 16), (3, 4));
        assert_eq!(bar_positions(&cfg, (6, 8)), 24);
    }
}
