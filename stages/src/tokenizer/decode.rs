//! Tokens → notes → a Standard MIDI File. Decoding never fails: a token that
//! does not fit the grammar where it appears is skipped, so even an untrained
//! model's output becomes a valid (if odd) MIDI file.

use midly::num::{u4, u7, u15, u24, u28};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use crate::midi::key::Key;

use super::frame;
use super::grid::{GridNote, bar_positions, bin_tempo, bin_velocity};
use super::vocab::{Token, Vocab};

/// Ticks per quarter note of decoded files.
pub const TICKS_PER_BEAT: u16 = 480;

/// What decoding recovered: the notes plus the tempo and meter changes.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    pub notes: Vec<GridNote>,
    /// `(position, tempo bin)`.
    pub tempos: Vec<(u64, u32)>,
    /// `(position, (numerator, denominator))`.
    pub time_signatures: Vec<(u64, (u8, u32))>,
    /// Tokens skipped because they did not fit.
    pub skipped: usize,
    /// The key the prefix named; the notes are already moved back from its frame.
    pub key: Option<Key>,
}

impl Decoded {
    /// Moves every pitched note by `semitones` (folded into 0–127).
    pub fn transpose(&mut self, semitones: i8) {
        for n in self.notes.iter_mut().filter(|n| n.program.is_some()) {
            n.pitch = frame::moved(n.pitch, semitones);
        }
        self.notes.sort_unstable();
    }
}

/// Reads notes from token ids, skipping whatever does not fit.
pub fn decode_tokens(vocab: &Vocab, ids: &[u16]) -> Decoded {
    let cfg = &vocab.config;
    let mut d = Decoded::default();
    let mut signature = (4u8, 4u32);
    let mut bar_len = u64::from(bar_positions(cfg, signature));
    let mut bar_start: Option<u64> = None;
    let mut position: Option<u64> = None;
    let mut program: Option<u8> = Some(0);
    let mut pitch: Option<u8> = None;
    let mut velocity: Option<u32> = None;
    let mut in_music = false;
    for &id in ids {
        let Some(token) = vocab.token(id) else {
            d.skipped += 1;
            continue;
        };
        let fits = match token {
            Token::Eos => break,
            // The conditioning prefix and padding carry no music.
            Token::Pad | Token::Bos => true,
            Token::Sep => {
                in_music = true;
                true
            }
            // The key frame is the prefix's: a key token among the music does not fit.
            Token::CondKey(k) if !in_music => {
                d.key = k.and_then(Key::from_index);
                true
            }
            Token::Semantic(_)
            | Token::CondTempo(_)
            | Token::CondTimeSig(_)
            | Token::CondInstrument(_) => true,
            Token::Bar => {
                bar_start = Some(bar_start.map_or(0, |s| s + bar_len));
                position = None;
                pitch = None;
                true
            }
            Token::TimeSig(n, den) if position.is_none() => {
                signature = (n, den);
                bar_len = u64::from(bar_positions(cfg, signature));
                d.time_signatures.push((bar_start.unwrap_or(0), signature));
                true
            }
            Token::Tempo(b) if position.is_none() => {
                d.tempos.push((bar_start.unwrap_or(0), b));
                true
            }
            Token::Position(p) if u64::from(p) < bar_len => {
                position = Some(bar_start.unwrap_or(0) + u64::from(p));
                pitch = None;
                true
            }
            Token::Program(p) => {
                program = p;
                true
            }
            Token::Pitch(p) if position.is_some() => {
                pitch = Some(p);
                velocity = None;
                true
            }
            Token::Velocity(v) if pitch.is_some() => {
                velocity = Some(v);
                true
            }
            Token::Duration(dur) => match (position, pitch, velocity) {
                (Some(onset), Some(p), Some(v)) => {
                    d.notes.push(GridNote {
                        onset,
                        program,
                        pitch: match program {
                            Some(_) => frame::moved(p, -frame::to_c(d.key)),
                            None => p,
                        },
                        duration: dur,
                        velocity: v,
                    });
                    pitch = None;
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !fits {
            d.skipped += 1;
        }
    }
    d.notes.sort_unstable();
    d
}

/// Writes decoded notes as a format-1 MIDI file: a conductor track with tempo
/// and meter, then one track per program (drums on channel 10).
pub fn to_midi(vocab: &Vocab, decoded: &Decoded) -> Vec<u8> {
    let cfg = &vocab.config;
    let tpp = u64::from(TICKS_PER_BEAT) / u64::from(cfg.positions_per_beat);
    let mut conductor: Vec<(u64, TrackEventKind<'static>)> = Vec::new();
    for &(pos, (n, d)) in &decoded.time_signatures {
        let pow = d.trailing_zeros() as u8;
        conductor.push((
            pos * tpp,
            TrackEventKind::Meta(MetaMessage::TimeSignature(n, pow, 24, 8)),
        ));
    }
    for &(pos, bin) in &decoded.tempos {
        let us = (60e6 / bin_tempo(cfg, bin)).round() as u32;
        conductor.push((
            pos * tpp,
            TrackEventKind::Meta(MetaMessage::Tempo(u24::new(us.min(0xFF_FFFF)))),
        ));
    }
    let mut tracks = vec![finish(conductor)];

    let mut programs: Vec<Option<u8>> = decoded.notes.iter().map(|n| n.program).collect();
    programs.sort_unstable_by_key(|p| p.map_or(256, u16::from));
    programs.dedup();
    let mut next_channel = 0u8;
    for program in programs {
        let channel = match program {
            None => 9,
            Some(_) => {
                let c = next_channel;
                next_channel = (next_channel + 1) % 16;
                if next_channel == 9 {
                    next_channel = 10;
                }
                if c == 9 { 10 } else { c }
            }
        };
        let ch = u4::new(channel);
        // Offs sort before ons on a tick, except a zero-length note's own off, which follows its on.
        let mut events: Vec<(u64, u8, TrackEventKind<'static>)> = Vec::new();
        if let Some(p) = program {
            events.push((
                0,
                0,
                TrackEventKind::Midi {
                    channel: ch,
                    message: MidiMessage::ProgramChange {
                        program: u7::new(p),
                    },
                },
            ));
        }
        for n in decoded.notes.iter().filter(|n| n.program == program) {
            let on = n.onset * tpp;
            let off = (n.onset + u64::from(n.duration)) * tpp;
            let key = u7::new(n.pitch.min(127));
            let vel = u7::new(bin_velocity(cfg, n.velocity));
            events.push((
                on,
                2,
                TrackEventKind::Midi {
                    channel: ch,
                    message: MidiMessage::NoteOn { key, vel },
                },
            ));
            let order = if n.duration == 0 { 3 } else { 1 };
            events.push((
                off,
                order,
                TrackEventKind::Midi {
                    channel: ch,
                    message: MidiMessage::NoteOff {
                        key,
                        vel: u7::new(0),
                    },
                },
            ));
        }
        events.sort_by_key(|&(t, o, _)| (t, o));
        tracks.push(finish(events.into_iter().map(|(t, _, e)| (t, e)).collect()));
    }
    let smf = Smf {
        header: Header::new(Format::Parallel, Timing::Metrical(u15::new(TICKS_PER_BEAT))),
        tracks,
    };
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes)
        .expect("writing to memory cannot fail");
    bytes
}

/// Absolute-tick events → a track with deltas and End-of-Track.
fn finish(mut events: Vec<(u64, TrackEventKind<'static>)>) -> Vec<TrackEvent<'static>> {
    events.sort_by_key(|&(t, _)| t); // stable
    let mut track = Vec::with_capacity(events.len() + 1);
    let mut last = 0u64;
    for (t, kind) in events {
        track.push(TrackEvent {
            delta: u28::new((t - last).min(0x0FFF_FFFF) as u32),
            kind,
        });
        last = t;
    }
    track.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    track
}
