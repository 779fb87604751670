//! Reading a Standard MIDI File into a [`Score`]: notes paired per track,
//! plus the tempo map and the meta events the features need.
//!
//! Notes are paired exactly as the original AMT feature function did (and as
//! symusic does): one LIFO stack per (track, pitch), channels not separated.
//! A note-off with an empty stack is counted and ignored; note-ons still open
//! at the end of their track are counted and dropped; zero-length notes stay.

use midly::{MetaMessage, MidiMessage, TrackEventKind};

use super::gm::DRUM_CHANNEL;
use super::tempo::{Division, TempoMap};

/// One paired note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note {
    /// Onset tick.
    pub start: u64,
    /// Release tick (≥ start).
    pub end: u64,
    /// MIDI pitch, 0–127.
    pub pitch: u8,
    /// Note-on velocity, 1–127.
    pub velocity: u8,
    /// Program in effect on the note's channel at its onset.
    pub program: u8,
    /// MIDI channel, 0–15.
    pub channel: u8,
    /// Index of the track it came from.
    pub track: u16,
}

impl Note {
    /// True for notes on the General MIDI drum channel.
    pub fn is_drum(&self) -> bool {
        self.channel == DRUM_CHANNEL
    }
}

/// Counts of pairing anomalies, for diagnostics and cross-checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pairing {
    /// Note-offs that found no open note.
    pub unmatched_note_offs: u32,
    /// Note-ons never closed before the end of their track.
    pub unclosed_note_ons: u32,
    /// Paired notes whose off is on the same tick as their on.
    pub zero_length_notes: u32,
}

/// A parsed MIDI file.
#[derive(Clone, Debug)]
pub struct Score {
    /// 0, 1 or 2.
    pub format: u8,
    /// Ticks per quarter note, or SMPTE timing.
    pub division: Division,
    /// Number of track chunks.
    pub n_tracks: u32,
    /// Paired notes in (track, release) order.
    pub notes: Vec<Note>,
    /// Tick to seconds.
    pub tempo: TempoMap,
    /// Number of `set_tempo` events over all tracks, repeats included.
    pub n_set_tempo: u32,
    /// Every `set_tempo` value in BPM, in track then event order.
    pub tempo_events_bpm: Vec<f64>,
    /// `(tick, numerator, denominator)` in track then event order.
    pub time_signatures: Vec<(u64, u8, u32)>,
    /// `(tick, sharps (negative: flats), minor)` in track then event order.
    pub key_signatures: Vec<(u64, i8, bool)>,
    /// The tick of the last event of any track (End-of-Track included).
    pub end_tick: u64,
    /// The tick of the last control change of any track (0 if none); muspy counts it in a track's end.
    pub last_control_tick: u64,
    /// Pairing anomalies.
    pub pairing: Pairing,
}

/// Why a file could not be read as MIDI.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MidiError {
    /// The file does not start with an `MThd` chunk.
    #[error("not a MIDI file: {0}")]
    NotMidi(String),
    /// A chunk claims more bytes than the file has.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The bytes break the format in some other way.
    #[error("corrupt: {0}")]
    Corrupt(String),
}

impl MidiError {
    /// A short machine-readable kind: `not-midi`, `truncated` or `corrupt`.
    pub fn kind(&self) -> &'static str {
        match self {
            MidiError::NotMidi(_) => "not-midi",
            MidiError::Truncated(_) => "truncated",
            MidiError::Corrupt(_) => "corrupt",
        }
    }
}

/// Walks the chunk headers, which midly's lenient parser would let slide.
fn check_chunks(bytes: &[u8]) -> Result<(), MidiError> {
    if bytes.len() < 14 || &bytes[..4] != b"MThd" {
        let what = if bytes.is_empty() {
            "the file is empty".to_owned()
        } else {
            "no MThd header".to_owned()
        };
        return Err(MidiError::NotMidi(what));
    }
    let mut pos = 0usize;
    let mut index = 0usize;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_be_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = pos + 8;
        if body + len > bytes.len() {
            let name = String::from_utf8_lossy(id);
            return Err(MidiError::Truncated(format!(
                "chunk {index} ({name}) at byte {pos} declares {len} bytes but only {} remain",
                bytes.len() - body
            )));
        }
        pos = body + len;
        index += 1;
    }
    Ok(())
}

/// Parses a whole file.
pub fn parse(bytes: &[u8]) -> Result<Score, MidiError> {
    check_chunks(bytes)?;
    let (header, tracks) = midly::parse(bytes).map_err(|e| MidiError::Corrupt(e.to_string()))?;
    let format = match header.format {
        midly::Format::SingleTrack => 0,
        midly::Format::Parallel => 1,
        midly::Format::Sequential => 2,
    };
    let division = match header.timing {
        midly::Timing::Metrical(t) => Division::Metrical(t.as_int()),
        midly::Timing::Timecode(fps, sub) => Division::Timecode {
            fps: fps.as_f32() as f64,
            ticks_per_frame: sub,
        },
    };

    let mut notes = Vec::new();
    let mut tempo_events = Vec::new();
    let mut tempo_events_bpm = Vec::new();
    let mut time_signatures = Vec::new();
    let mut key_signatures = Vec::new();
    let mut pairing = Pairing::default();
    let mut end_tick = 0u64;
    let mut last_control_tick = 0u64;
    let mut n_tracks = 0u32;
    // One LIFO stack of (onset, velocity, program, channel) per pitch, reused across tracks.
    let mut stacks: Vec<Vec<(u64, u8, u8, u8)>> = vec![Vec::new(); 128];

    for (t, track) in tracks.enumerate() {
        let track = track.map_err(|e| MidiError::Corrupt(format!("track {t}: {e}")))?;
        n_tracks += 1;
        let mut programs = [0u8; 16];
        let mut tick = 0u64;
        for event in track {
            let event =
                event.map_err(|e| MidiError::Corrupt(format!("track {t} at tick {tick}: {e}")))?;
            tick += u64::from(event.delta.as_int());
            match event.kind {
                TrackEventKind::Midi { channel, message } => {
                    let ch = channel.as_int();
                    match message {
                        MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                            stacks[key.as_int() as usize].push((
                                tick,
                                vel.as_int(),
                                programs[ch as usize],
                                ch,
                            ));
                        }
                        MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                            let pitch = key.as_int();
                            match stacks[pitch as usize].pop() {
                                Some((start, velocity, program, channel)) => {
                                    if start == tick {
                                        pairing.zero_length_notes += 1;
                                    }
                                    notes.push(Note {
                                        start,
                                        end: tick,
                                        pitch,
                                        velocity,
                                        program,
                                        channel,
                                        track: t as u16,
                                    });
                                }
                                None => pairing.unmatched_note_offs += 1,
                            }
                        }
                        MidiMessage::ProgramChange { program } => {
                            programs[ch as usize] = program.as_int()
                        }
                        MidiMessage::Controller { .. } => {
                            last_control_tick = last_control_tick.max(tick)
                        }
                        _ => {}
                    }
                }
                TrackEventKind::Meta(meta) => match meta {
                    MetaMessage::Tempo(us) => {
                        let us = us.as_int().max(1);
                        tempo_events.push((tick, us));
                        tempo_events_bpm.push(60e6 / us as f64);
                    }
                    MetaMessage::TimeSignature(num, den_pow, _, _) => {
                        time_signatures.push((
                            tick,
                            num,
                            1u32.checked_shl(den_pow as u32).unwrap_or(0),
                        ));
                    }
                    MetaMessage::KeySignature(sharps, minor) => {
                        key_signatures.push((tick, sharps, minor))
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        end_tick = end_tick.max(tick);
        for stack in stacks.iter_mut() {
            pairing.unclosed_note_ons += stack.len() as u32;
            stack.clear();
        }
    }

    Ok(Score {
        format,
        division,
        n_tracks,
        notes,
        n_set_tempo: tempo_events.len() as u32,
        tempo: TempoMap::new(division, tempo_events),
        tempo_events_bpm,
        time_signatures,
        key_signatures,
        end_tick,
        last_control_tick,
        pairing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal format-0 file: tempo 100 BPM, C4 and E4 overlapping, then EOT.
    pub fn tiny() -> Vec<u8> {
        let mut track = vec![
            0x00, 0xFF, 0x51, 0x03, 0x09, 0x27, 0xC0, // tempo 600000 us
            0x00, 0xC0, 0x28, // program 40 (violin) on channel 0
            0x00, 0x90, 60, 90, // C4 on
            0x60, 0x90, 64, 70, // E4 on after 96 ticks
            0x60, 0x80, 60, 0, // C4 off at 192
            0x60, 0x90, 64, 0, // E4 off at 288 (note-on, velocity 0)
            0x00, 0x80, 67, 0, // unmatched off
            0x00, 0xFF, 0x2F, 0x00,
        ];
        let mut bytes = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk".to_vec();
        bytes.extend((track.len() as u32).to_be_bytes());
        bytes.append(&mut track);
        bytes
    }

    #[test]
    fn pairs_notes_and_reads_tempo() {
        let score = parse(&tiny()).unwrap();
        assert_eq!(score.notes.len(), 2);
        assert_eq!(
            score.notes[0],
            Note {
                start: 0,
                end: 192,
                pitch: 60,
                velocity: 90,
                program: 40,
                channel: 0,
                track: 0
            }
        );
        assert_eq!(score.pairing.unmatched_note_offs, 1);
        assert_eq!(score.end_tick, 288);
        assert_eq!(score.tempo.first_bpm(), 100.0);
        assert!((score.tempo.seconds(288) - 1.8).abs() < 1e-12);
    }

    #[test]
    fn reports_truncation_and_garbage_precisely() {
        let bytes = tiny();
        let err = parse(&bytes[..bytes.len() - 5]).unwrap_err();
        assert_eq!(err.kind(), "truncated");
        assert!(
            err.to_string()
                .contains("chunk 1 (MTrk) at byte 14 declares"),
            "{err}"
        );
        assert_eq!(parse(b"RIFF....").unwrap_err().kind(), "not-midi");
        assert_eq!(
            parse(b"").unwrap_err().to_string(),
            "not a MIDI file: the file is empty"
        );
    }
}
