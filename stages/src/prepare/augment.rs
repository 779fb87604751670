//! Augmented copies of a score: transposed (drums untouched) or at a scaled tempo.

use crate::midi::Score;
use crate::midi::tempo::TempoMap;

/// The score moved by `semitones` and played `tempo_scale` times as fast, or
/// `None` when a transposed pitch would leave 0–127.
pub fn variant(score: &Score, semitones: i8, tempo_scale: f64) -> Option<Score> {
    if semitones == 0 && tempo_scale == 1.0 {
        return Some(score.clone());
    }
    let mut out = score.clone();
    for n in out.notes.iter_mut().filter(|n| !n.is_drum()) {
        n.pitch = u8::try_from(i16::from(n.pitch) + i16::from(semitones))
            .ok()
            .filter(|p| *p < 128)?;
    }
    for k in &mut out.key_signatures {
        // Seven fifths per semitone, folded into −7..=7 sharps.
        let fifths = (i32::from(k.1) + 7 * i32::from(semitones)).rem_euclid(12);
        k.1 = if fifths > 6 {
            (fifths - 12) as i8
        } else {
            fifths as i8
        };
    }
    if tempo_scale != 1.0 {
        let events: Vec<(u64, u32)> = score
            .tempo
            .changes()
            .map(|(tick, bpm)| (tick, (60e6 / (bpm * tempo_scale)).round() as u32))
            .collect();
        out.tempo = TempoMap::new(score.division, events);
        out.tempo_events_bpm = score
            .tempo_events_bpm
            .iter()
            .map(|b| b * tempo_scale)
            .collect();
    }
    Some(out)
}
