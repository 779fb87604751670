//! Strict mode: what a prompt names explicitly is written exactly. The
//! model still chooses every token, but only among those that keep the
//! request: the asked-for time signature and tempo wherever one is written,
//! programs of the asked-for instrument families only, and pitches of pitched
//! instruments in the asked-for key's scale unless the model is confident
//! otherwise (it puts at least [`CONFIDENT`] of its probability on one
//! pitch outside it, as on a leading tone). Within the scale, each pitch's
//! probability is weighted by its degree's Krumhansl–Kessler rating, so the
//! tonic and dominant stand out as they do in music in that key (a scale
//! alone is shared by seven modes). Pitch tokens are in the key frame
//! ([`crate::tokenizer::frame`]): what is kept is the pitch a token sounds as.

use crate::midi::key::{KRUMHANSL_KESSLER, Key};
use crate::tokenizer::frame;
use crate::tokenizer::grid::{bin_tempo, tempo_bin};
use crate::tokenizer::prefix::tempo_class;
use crate::tokenizer::{Conditioning, Token, Vocab};

/// The probability of an out-of-scale pitch that keeps it allowed.
pub const CONFIDENT: f64 = 0.5;

/// The tokens a request rules out.
#[derive(Clone, Debug)]
pub struct Strict {
    /// Per token id: false where a written token would contradict the request.
    allowed: Vec<bool>,
    /// The ids of the pitches outside the requested key's scale.
    out_of_key: Option<Vec<u16>>,
    /// Each pitch token's log weight in the requested key (id, weight).
    lean: Vec<(u16, f32)>,
    /// The ids of the pitch tokens.
    pitches: Vec<u16>,
    /// The ids of the asked programs' tokens.
    programs: Vec<u16>,
    drums: u16,
    /// What a note before any `Program` token plays on (as the decoder reads it).
    piano: u16,
}

impl Strict {
    /// The constraints of a request; `bpm` is the tempo the prompt wrote,
    /// if any (else the middle of its tempo class). `None` when it names nothing to keep.
    pub fn new(vocab: &Vocab, asked: &Conditioning, bpm: Option<f64>) -> Option<Self> {
        let tempo = asked
            .tempo_class
            .map(|class| tempo_token(vocab, class, bpm));
        let families: Vec<u8> = asked
            .instruments
            .iter()
            .copied()
            .filter(|&f| f <= 16)
            .collect();
        if tempo.is_none()
            && asked.time_signature.is_none()
            && families.is_empty()
            && asked.key.is_none()
        {
            return None;
        }
        let allowed: Vec<bool> = (0..vocab.len() as u16)
            .map(|id| match vocab.token(id) {
                Some(Token::TimeSig(n, d)) => asked.time_signature.is_none_or(|ts| ts == (n, d)),
                Some(Token::Tempo(t)) => tempo.is_none_or(|want| want == t),
                Some(Token::Program(p)) => {
                    families.is_empty() || families.contains(&p.map_or(16, |p| p / 8))
                }
                _ => true,
            })
            .collect();
        // The pitch each pitch token sounds as, once decoded out of the key frame.
        let back = -frame::to_c(asked.key);
        let sounding = |token: u8| frame::moved(token, back);
        let out_of_key = asked.key.map(|k: Key| {
            (0..128u8)
                .filter(|&p| !k.contains(sounding(p) % 12))
                .map(|p| vocab.id(Token::Pitch(p)))
                .collect()
        });
        let lean = asked.key.map_or_else(Vec::new, |k| {
            let profile = if k.minor {
                &KRUMHANSL_KESSLER.minor
            } else {
                &KRUMHANSL_KESSLER.major
            };
            let mean = profile.iter().sum::<f64>() / 12.0;
            (0..128u8)
                .map(|p| {
                    let degree = usize::from((sounding(p) % 12 + 12 - k.tonic % 12) % 12);
                    (
                        vocab.id(Token::Pitch(p)),
                        (profile[degree] / mean).ln() as f32,
                    )
                })
                .collect()
        });
        let programs = (0..vocab.len() as u16)
            .filter(|&id| {
                matches!(vocab.token(id), Some(Token::Program(_))) && allowed[usize::from(id)]
            })
            .collect();
        Some(Self {
            allowed,
            out_of_key,
            lean,
            pitches: (0..128).map(|p| vocab.id(Token::Pitch(p))).collect(),
            programs,
            drums: vocab.id(Token::Program(None)),
            piano: vocab.id(Token::Program(Some(0))),
        })
    }

    /// Narrows `allowed` (the grammar's choice for the next token) given the
    /// model's `logits` and the program playing (`None`: none yet), and
    /// leans the pitch logits towards the asked-for key.
    pub fn narrow(&self, allowed: &mut [bool], logits: &mut [f32], program: Option<u16>) {
        for (a, keep) in allowed.iter_mut().zip(&self.allowed) {
            *a &= keep;
        }
        let playing = program.unwrap_or(self.piano);
        if !self.allowed[usize::from(playing)] {
            // An instrument that was not asked for writes no note: where
            // the grammar allows a program, the next token is an asked one
            // (as a restated window begins), so the piece cannot stay silent.
            for &id in &self.pitches {
                allowed[usize::from(id)] = false;
            }
            if self.programs.iter().any(|&id| allowed[usize::from(id)]) {
                let programs: Vec<usize> =
                    self.programs.iter().map(|&id| usize::from(id)).collect();
                for (i, a) in allowed.iter_mut().enumerate() {
                    *a &= programs.contains(&i);
                }
            }
            return;
        }
        let Some(out) = &self.out_of_key else { return };
        if playing == self.drums {
            return; // a drum's "pitch" is an instrument, not a note
        }
        // Probabilities over what is still allowed, to judge confidence.
        let top = logits
            .iter()
            .zip(allowed.iter())
            .filter(|(l, a)| **a && l.is_finite())
            .map(|(l, _)| f64::from(*l))
            .fold(f64::NEG_INFINITY, f64::max);
        let weight = |l: f32| (f64::from(l) - top).exp();
        let total: f64 = logits
            .iter()
            .zip(allowed.iter())
            .filter(|(l, a)| **a && l.is_finite())
            .map(|(l, _)| weight(*l))
            .sum();
        for &id in out {
            let i = usize::from(id);
            if allowed[i] && !(logits[i].is_finite() && weight(logits[i]) / total >= CONFIDENT) {
                allowed[i] = false;
            }
        }
        // Shifted by c = ln Σ π_p·e^{w_p} (π: the model's probabilities
        // over the allowed pitches), so that the lean moves probability
        // between pitches and leaves the chance of a note as it was.
        let kept: Vec<(f64, f64)> = self
            .lean
            .iter()
            .filter(|(id, _)| allowed[usize::from(*id)] && logits[usize::from(*id)].is_finite())
            .map(|&(id, w)| (f64::from(logits[usize::from(id)]), f64::from(w)))
            .collect();
        let top = kept.iter().map(|k| k.0).fold(f64::NEG_INFINITY, f64::max);
        let (z, zw) = kept.iter().fold((0.0, 0.0), |(z, zw), &(l, w)| {
            let e = (l - top).exp();
            (z + e, zw + e * w.exp())
        });
        let c = if z > 0.0 { (zw / z).ln() } else { 0.0 };
        for &(id, w) in &self.lean {
            logits[usize::from(id)] += (f64::from(w) - c) as f32;
        }
    }
}

/// The tempo token for a request: of the tokens whose BPM lies in the
/// requested class, the one nearest the asked-for BPM.
fn tempo_token(vocab: &Vocab, class: u32, bpm: Option<f64>) -> u32 {
    let cfg = &vocab.config;
    let want = bpm.unwrap_or_else(|| crate::tokenizer::prefix::typical_bpm(class));
    (0..cfg.tempo_bins)
        .filter(|&b| tempo_class(bin_tempo(cfg, b)) == class)
        .min_by(|&a, &b| {
            let d = |x: u32| (bin_tempo(cfg, x) / want).ln().abs();
            d(a).total_cmp(&d(b))
        })
        .unwrap_or_else(|| tempo_bin(cfg, want))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Config;

    /// The token of a sounding pitch in D major's key frame, where D is written as C.
    fn in_d(pitch: u8) -> Token {
        Token::Pitch(pitch - 2)
    }

    fn asked() -> Conditioning {
        Conditioning {
            semantic: None,
            tempo_class: Some(tempo_class(139.0)),
            key: Key::parse("D major"),
            time_signature: Some((6, 8)),
            instruments: vec![5, 16],
        }
    }

    #[test]
    fn keeps_only_what_the_request_allows() {
        let v = Vocab::new(Config::default());
        let s = Strict::new(&v, &asked(), Some(139.0)).unwrap();
        let mut allowed = vec![true; v.len()];
        let mut logits = vec![0.0f32; v.len()];
        s.narrow(
            &mut allowed,
            &mut logits,
            Some(v.id(Token::Program(Some(40)))),
        );
        let ok = |t| allowed[usize::from(v.id(t))];
        assert!(ok(Token::TimeSig(6, 8)) && !ok(Token::TimeSig(4, 4)));
        assert!(
            ok(Token::Program(Some(40)))
                && ok(Token::Program(Some(47)))
                && ok(Token::Program(None))
        );
        assert!(!ok(Token::Program(Some(0))) && !ok(Token::Program(Some(48))));
        assert!(
            ok(in_d(62)) && ok(in_d(66)) && !ok(in_d(65)),
            "D major has F#, not F"
        );
        let tempi: Vec<u32> = (0..v.config.tempo_bins)
            .filter(|&b| ok(Token::Tempo(b)))
            .collect();
        assert_eq!(tempi.len(), 1);
        let bpm = bin_tempo(&v.config, tempi[0]);
        assert_eq!(
            tempo_class(bpm),
            tempo_class(139.0),
            "{bpm} stays in the asked bin"
        );
        assert!(ok(Token::Bar) && ok(Token::Eos));
        let logit = |t| logits[usize::from(v.id(t))];
        assert!(
            logit(in_d(62)) > logit(in_d(64)),
            "the tonic D over E"
        );
        assert!(
            logit(in_d(69)) > logit(in_d(71)),
            "the dominant A over B"
        );
        assert_eq!(logit(Token::Bar), 0.0, "only pitches lean");
    }

    #[test]
    fn a_confident_model_keeps_its_out_of_key_pitch_and_drums_are_free() {
        let v = Vocab::new(Config::default());
        let s = Strict::new(&v, &asked(), None).unwrap();
        let f = usize::from(v.id(in_d(65)));
        let mut logits = vec![-10.0f32; v.len()];
        logits[f] = 10.0;
        let mut allowed = vec![true; v.len()];
        s.narrow(
            &mut allowed,
            &mut logits.clone(),
            Some(v.id(Token::Program(Some(40)))),
        );
        assert!(allowed[f], "nearly all the mass is on F");
        logits[f] = -10.0;
        let mut allowed = vec![true; v.len()];
        s.narrow(
            &mut allowed,
            &mut logits.clone(),
            Some(v.id(Token::Program(Some(40)))),
        );
        assert!(!allowed[f]);
        let mut allowed = vec![true; v.len()];
        let mut drums = logits.clone();
        s.narrow(&mut allowed, &mut drums, Some(v.id(Token::Program(None))));
        assert!(allowed[f], "drum notes are not in a key");
        assert_eq!(drums, logits, "nor do they lean");
    }

    #[test]
    fn no_note_sounds_on_an_instrument_not_asked_for() {
        let v = Vocab::new(Config::default());
        let s = Strict::new(&v, &asked(), None).unwrap();
        let pitch = usize::from(v.id(Token::Pitch(62)));
        for (playing, sounds) in [
            (None, false), // before any Program token a note is a piano note
            (Some(v.id(Token::Program(Some(0)))), false),
            (Some(v.id(Token::Program(Some(41)))), true),
            (Some(v.id(Token::Program(None))), true),
        ] {
            let mut allowed = vec![true; v.len()];
            s.narrow(&mut allowed, &mut vec![0.0; v.len()], playing);
            assert_eq!(allowed[pitch], sounds, "{playing:?}");
            assert!(
                allowed[usize::from(v.id(Token::Program(Some(41))))],
                "an asked program may follow"
            );
        }
        let no_instruments = Conditioning {
            instruments: vec![],
            ..asked()
        };
        let s = Strict::new(&v, &no_instruments, None).unwrap();
        let mut allowed = vec![true; v.len()];
        s.narrow(&mut allowed, &mut vec![0.0; v.len()], None);
        assert!(allowed[pitch], "with no instrument asked, piano is fine");
    }

    #[test]
    fn an_unasked_instrument_must_give_way_to_an_asked_one() {
        let v = Vocab::new(Config::default());
        let drums_only = Conditioning {
            instruments: vec![16],
            ..Conditioning::default()
        };
        let s = Strict::new(&v, &drums_only, None).unwrap();
        // Mid-piece, on piano (no program yet): only the drums' program may come next.
        let mut allowed = vec![true; v.len()];
        s.narrow(&mut allowed, &mut vec![0.0; v.len()], None);
        let open: Vec<u16> = (0..v.len() as u16)
            .filter(|&i| allowed[usize::from(i)])
            .collect();
        assert_eq!(open, [v.id(Token::Program(None))]);
        // Where the grammar allows no program (the opening Bar), it is left alone.
        let mut allowed: Vec<bool> = (0..v.len() as u16).map(|i| i == v.id(Token::Bar)).collect();
        s.narrow(&mut allowed, &mut vec![0.0; v.len()], None);
        assert!(allowed[usize::from(v.id(Token::Bar))]);
        // On drums, any drum note.
        let mut allowed = vec![true; v.len()];
        s.narrow(
            &mut allowed,
            &mut vec![0.0; v.len()],
            Some(v.id(Token::Program(None))),
        );
        assert!(
            allowed[usize::from(v.id(Token::Pitch(36)))] && allowed[usize::from(v.id(Token::Bar))]
        );
    }

    #[test]
    fn the_key_lean_keeps_the_chance_of_a_note() {
        let v = Vocab::new(Config::default());
        let s = Strict::new(
            &v,
            &Conditioning {
                key: Key::parse("D major"),
                ..Conditioning::default()
            },
            None,
        )
        .unwrap();
        let pitch_mass = |logits: &[f32], allowed: &[bool]| {
            let z: f64 = (0..v.len())
                .filter(|&i| allowed[i])
                .map(|i| f64::from(logits[i]).exp())
                .sum();
            let p: f64 = (0..128u8)
                .map(|p| usize::from(v.id(Token::Pitch(p))))
                .filter(|&i| allowed[i])
                .map(|i| f64::from(logits[i]).exp())
                .sum();
            p / z
        };
        // A model sure of the tonic, and one sure of the leading tone.
        for sure in [62u8, 73] {
            let mut logits = vec![0.0f32; v.len()];
            logits[usize::from(v.id(in_d(sure)))] = 4.0;
            let mut allowed = vec![true; v.len()];
            let mut leaned = logits.clone();
            s.narrow(
                &mut allowed,
                &mut leaned,
                Some(v.id(Token::Program(Some(0)))),
            );
            let (before, after) = (pitch_mass(&logits, &allowed), pitch_mass(&leaned, &allowed));
            assert!(
                (before - after).abs() < 1e-6,
                "pitch {sure}: {before} → {after}"
            );
        }
    }

    #[test]
    fn the_slowest_and_fastest_bins_have_a_tempo() {
        let v = Vocab::new(Config::default());
        for bpm in [30.0, 35.0, 39.0, 215.0, 240.0] {
            let asked = Conditioning {
                tempo_class: Some(tempo_class(bpm)),
                ..Conditioning::default()
            };
            let s = Strict::new(&v, &asked, Some(bpm)).unwrap();
            let mut allowed = vec![true; v.len()];
            s.narrow(&mut allowed, &mut vec![0.0; v.len()], None);
            let t = (0..v.config.tempo_bins)
                .find(|&b| allowed[usize::from(v.id(Token::Tempo(b)))])
                .unwrap();
            assert_eq!(
                tempo_class(bin_tempo(&v.config, t)),
                tempo_class(bpm),
                "{bpm} BPM"
            );
        }
    }

    #[test]
    fn nothing_asked_nothing_kept() {
        let v = Vocab::new(Config::default());
        assert!(
            Strict::new(
                &v,
                &Conditioning {
                    semantic: Some(2),
                    ..Conditioning::default()
                },
                None
            )
            .is_none()
        );
    }
}
