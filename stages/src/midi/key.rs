//! Key finding by correlating a pitch-class profile with rotated key profiles
//! (the Krumhansl–Schmuckler method).

/// Tonic names of major keys, as pretty_midi spells them.
pub const MAJOR_TONICS: [&str; 12] = [
    "C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B",
];

/// Tonic names of minor keys, as pretty_midi spells them.
pub const MINOR_TONICS: [&str; 12] = [
    "C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B",
];

/// A key profile: weights for the 12 degrees of a major and a minor key.
#[derive(Clone, Copy, Debug)]
pub struct Profiles {
    pub major: [f64; 12],
    pub minor: [f64; 12],
}

/// Krumhansl & Kessler (1982) probe-tone ratings.
pub const KRUMHANSL_KESSLER: Profiles = Profiles {
    major: [
        6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
    ],
    minor: [
        6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
    ],
};

/// Aarden–Essen weights, which music21's `analyze('key')` uses.
pub const AARDEN_ESSEN: Profiles = Profiles {
    major: [
        17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062, 0.145624,
        8.15494, 0.232998, 4.95122,
    ],
    minor: [
        18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161, 4.56621,
        1.93186, 7.37619, 1.75623,
    ],
};

/// The major scale's steps above its tonic.
pub const MAJOR_SCALE: [u8; 7] = [0, 2, 4, 5, 7, 9, 11];
/// The natural minor scale's steps above its tonic.
pub const MINOR_SCALE: [u8; 7] = [0, 2, 3, 5, 7, 8, 10];

/// A key: tonic pitch class (0 = C) and mode. The one key type of the
/// music code: features estimate it, prompts ask for it, the conditioning
/// token carries its [`Key::index`], and JSON writes its [`Key::words`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Key {
    pub tonic: u8,
    pub minor: bool,
}

impl Key {
    /// The key's number among the 24: tonic pitch class, + 12 for minor.
    pub fn index(self) -> u32 {
        u32::from(self.tonic) + if self.minor { 12 } else { 0 }
    }

    /// The key numbered `index` by [`Key::index`].
    pub fn from_index(index: u32) -> Option<Self> {
        (index < 24).then(|| Self {
            tonic: (index % 12) as u8,
            minor: index >= 12,
        })
    }

    /// The key whose tonic is spelled `tonic` (`C`, `F#`, `Bb`, `e♭`; any case).
    pub fn from_tonic(tonic: &str, minor: bool) -> Option<Self> {
        let mut chars = tonic.chars();
        let base: i32 = match chars.next()?.to_ascii_lowercase() {
            'c' => 0,
            'd' => 2,
            'e' => 4,
            'f' => 5,
            'g' => 7,
            'a' => 9,
            'b' => 11,
            _ => return None,
        };
        let shift = match chars.as_str() {
            "" => 0,
            "#" | "♯" => 1,
            "b" | "♭" => -1,
            _ => return None,
        };
        Some(Self {
            tonic: (base + shift).rem_euclid(12) as u8,
            minor,
        })
    }

    /// Reads [`Key::name`] or [`Key::words`] back (`Bb Major`, `C# minor`).
    pub fn parse(text: &str) -> Option<Self> {
        let (tonic, mode) = text.trim().split_once(' ')?;
        let minor = match mode.to_ascii_lowercase().as_str() {
            "major" => false,
            "minor" => true,
            _ => return None,
        };
        Self::from_tonic(tonic, minor)
    }

    /// The key a MIDI key-signature event names (`sharps` < 0 for flats).
    pub fn from_signature(sharps: i8, minor: bool) -> Self {
        let major_tonic = (i32::from(sharps) * 7).rem_euclid(12) as u8;
        Self {
            tonic: if minor {
                (major_tonic + 9) % 12
            } else {
                major_tonic
            },
            minor,
        }
    }

    fn tonic_name(&self) -> &'static str {
        if self.minor {
            MINOR_TONICS[self.tonic as usize]
        } else {
            MAJOR_TONICS[self.tonic as usize]
        }
    }

    /// `"Bb Major"` / `"C# minor"`, as pretty_midi writes key names.
    pub fn name(&self) -> String {
        format!(
            "{} {}",
            self.tonic_name(),
            if self.minor { "minor" } else { "Major" }
        )
    }

    /// Plain words for captions: `"Bb major"`, `"C# minor"`.
    pub fn words(&self) -> String {
        format!(
            "{} {}",
            self.tonic_name(),
            if self.minor { "minor" } else { "major" }
        )
    }

    /// The scale's steps above the tonic: major, or natural minor (muspy's scales).
    pub fn scale(&self) -> &'static [u8; 7] {
        if self.minor { &MINOR_SCALE } else { &MAJOR_SCALE }
    }

    /// True when pitch class `pc` (0 = C) is in the key's scale.
    pub fn contains(&self, pc: u8) -> bool {
        self.scale().contains(&((pc + 12 - self.tonic % 12) % 12))
    }

    /// The relative major or minor.
    pub fn relative(&self) -> Self {
        if self.minor {
            Self {
                tonic: (self.tonic + 3) % 12,
                minor: false,
            }
        } else {
            Self {
                tonic: (self.tonic + 9) % 12,
                minor: true,
            }
        }
    }
}

impl From<Key> for String {
    fn from(k: Key) -> Self {
        k.words()
    }
}

/// Text that is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a key such as `D major`")]
pub struct NotAKey(pub String);

impl TryFrom<String> for Key {
    type Error = NotAKey;
    fn try_from(text: String) -> Result<Self, NotAKey> {
        Key::parse(&text).ok_or(NotAKey(text))
    }
}

fn pearson(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    let ma = a.iter().sum::<f64>() / 12.0;
    let mb = b.iter().sum::<f64>() / 12.0;
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for i in 0..12 {
        num += (a[i] - ma) * (b[i] - mb);
        da += (a[i] - ma).powi(2);
        db += (b[i] - mb).powi(2);
    }
    if da == 0.0 || db == 0.0 {
        0.0
    } else {
        num / (da * db).sqrt()
    }
}

/// The best-correlated key for a pitch-class histogram, with its correlation.
/// `None` when the histogram is empty. Ties go to the lower tonic, major first.
pub fn estimate(histogram: &[f64; 12], profiles: &Profiles) -> Option<(Key, f64)> {
    if histogram.iter().all(|&w| w == 0.0) {
        return None;
    }
    let mut best: Option<(Key, f64)> = None;
    for minor in [false, true] {
        let profile = if minor {
            &profiles.minor
        } else {
            &profiles.major
        };
        for tonic in 0..12u8 {
            let rotated: [f64; 12] =
                std::array::from_fn(|pc| profile[(pc + 12 - tonic as usize) % 12]);
            let r = pearson(histogram, &rotated);
            if best.is_none_or(|(_, b)| r > b) {
                best = Some((Key { tonic, minor }, r));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_name_keys_like_pretty_midi() {
        assert_eq!(Key::from_signature(-2, false).name(), "Bb Major");
        assert_eq!(Key::from_signature(1, true).name(), "E minor");
        assert_eq!(Key::from_signature(6, false).name(), "Gb Major");
        assert_eq!(Key::from_signature(-6, false).name(), "Gb Major");
        assert_eq!(Key::from_signature(4, true).name(), "C# minor");
        assert_eq!(
            Key::from_signature(0, true).relative(),
            Key::from_signature(0, false)
        );
    }

    #[test]
    fn every_key_survives_its_index_its_name_and_json() {
        for index in 0..24 {
            let k = Key::from_index(index).unwrap();
            assert_eq!(k.index(), index);
            assert_eq!(Key::parse(&k.name()), Some(k));
            assert_eq!(Key::parse(&k.words()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<Key>(&json).unwrap(), k);
        }
        assert_eq!(Key::from_index(24), None);
        assert_eq!(Key::parse("A# major"), Key::parse("Bb major"));
        assert_eq!(Key::parse("H major"), None);
        let e = serde_json::from_str::<Key>("\"D dorian\"").unwrap_err();
        assert!(e.to_string().contains("`D dorian` is not a key such as `D major`"), "{e}");
    }

    #[test]
    fn a_scale_finds_its_key() {
        // D major scale, tonic weighted.
        let mut h = [0.0; 12];
        for (pc, w) in [
            (2, 3.0),
            (4, 1.0),
            (6, 1.5),
            (7, 1.0),
            (9, 2.0),
            (11, 1.0),
            (1, 1.0),
        ] {
            h[pc] = w;
        }
        let (key, r) = estimate(&h, &KRUMHANSL_KESSLER).unwrap();
        assert_eq!(
            key,
            Key {
                tonic: 2,
                minor: false
            }
        );
        assert!(r > 0.8);
        assert!(estimate(&[0.0; 12], &KRUMHANSL_KESSLER).is_none());
    }
}
