//! Augmented copies of a score: transposed (drums untouched), at a scaled
//! tempo, or played on another instrument.

use crate::midi::Score;
use crate::midi::gm;
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

/// The score with every pitched note played on `program` (0–127), when that
/// is musically plausible: all its pitched notes are of one instrument
/// family (a solo, a chorale, a string quartet; not a band), another than
/// `program`'s, and they lie in `program`'s range ([`gm::range`]). `None` otherwise.
pub fn reassigned(score: &Score, program: u8) -> Option<Score> {
    let family = usize::from(program / 8);
    let (lo, hi) = gm::range(program);
    let mut pitched = score.notes.iter().filter(|n| !n.is_drum()).peekable();
    let first = pitched.peek()?.program / 8;
    let plausible = pitched.all(|n| n.program / 8 == first && (lo..=hi).contains(&n.pitch));
    if !plausible || usize::from(first) == family {
        return None;
    }
    let mut out = score.clone();
    for n in out.notes.iter_mut().filter(|n| !n.is_drum()) {
        n.program = program;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::score::Note;

    fn note(pitch: u8, program: u8, channel: u8) -> Note {
        Note { start: 0, end: 10, pitch, velocity: 80, program, channel, track: 0 }
    }

    #[test]
    fn only_a_one_family_piece_in_range_changes_instrument() {
        let mut s = crate::midi::parse(&crate::tokenizer::decode::to_midi(
            &crate::tokenizer::Tokenizer::new(crate::tokenizer::Config::default()).vocab,
            &Default::default(),
        ))
        .unwrap();
        s.notes = vec![note(62, 0, 0), note(74, 1, 0), note(36, 0, 9)];
        let flute = reassigned(&s, 73).expect("a piano piece in D4–D5 fits the flute");
        assert_eq!(flute.notes.iter().map(|n| n.program).collect::<Vec<_>>(), [73, 73, 0], "drums stay");
        assert!(reassigned(&s, 4).is_none(), "already piano");
        s.notes.push(note(55, 0, 0));
        assert!(reassigned(&s, 73).is_none(), "G3 is below the flute");
        assert!(reassigned(&s, 40).is_some(), "but not below the violin");
        s.notes.push(note(40, 0, 0));
        assert!(reassigned(&s, 40).is_none(), "E2 is below the violin");
        assert!(reassigned(&s, 42).is_some(), "not below the cello");
        s.notes.push(note(60, 33, 1));
        assert!(reassigned(&s, 40).is_none(), "a piece with a bass part is a band");
    }
}
