//! The key frame: the pitches of pitched notes are written relative to the
//! key the prefix names, moved so that its tonic is C (a piece in D major is
//! written as if in C major, one in A minor as if in C minor). The model so
//! learns one tonal language for all twelve tonics instead of twelve, and the
//! tonic a prompt asks for is where the decoder puts the music back. The mode
//! is still the model's to follow (`CondKey` names it). Drums are not moved:
//! their "pitch" is an instrument. A prefix with no key leaves pitches as
//! they are.

use crate::midi::key::Key;

/// The semitones that move `key`'s tonic to C by the shorter way (−6..=5);
/// 0 when there is no key.
pub fn to_c(key: Option<Key>) -> i8 {
    key.map_or(0, |k| {
        let tonic = (k.tonic % 12) as i8;
        if tonic <= 6 { -tonic } else { 12 - tonic }
    })
}

/// `pitch` moved by `semitones`, folded by octaves into 0–127 where it would
/// leave it (only notes within six semitones of the MIDI range's ends are).
pub fn moved(pitch: u8, semitones: i8) -> u8 {
    let mut p = i16::from(pitch) + i16::from(semitones);
    while p < 0 {
        p += 12;
    }
    while p > 127 {
        p -= 12;
    }
    p as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tonic_moves_to_c_the_short_way() {
        for tonic in 0..12u8 {
            for minor in [false, true] {
                let m = to_c(Some(Key { tonic, minor }));
                assert!((-6..=5).contains(&m), "{tonic}: {m}");
                assert_eq!(
                    (i16::from(tonic) + i16::from(m)).rem_euclid(12),
                    0,
                    "{tonic}"
                );
            }
        }
        assert_eq!(to_c(Key::parse("D major")), -2);
        assert_eq!(to_c(Key::parse("A minor")), 3);
        assert_eq!(to_c(Key::parse("F# major")), -6);
        assert_eq!(to_c(Key::parse("G major")), 5);
        assert_eq!(to_c(None), 0);
    }

    #[test]
    fn pitches_fold_into_range_by_octaves() {
        assert_eq!(moved(62, -2), 60);
        assert_eq!(moved(3, -6), 9, "up an octave rather than below 0");
        assert_eq!(moved(125, 5), 118, "down an octave rather than above 127");
        assert_eq!(moved(127, 0), 127);
        for p in 6..=122u8 {
            for m in -6..=5i8 {
                assert_eq!(moved(moved(p, m), -m), p, "{p} {m}");
            }
        }
    }
}
