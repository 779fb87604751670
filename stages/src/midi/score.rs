//! Reading a Standard MIDI File into a [`Score`]: notes paired per track,
//! plus the tempo map and the meta events the features need.
//!
//! Notes are paired exactly as the original AMT feature function did (and as
//! symusic does): one LIFO stack per (track, pitch), channels not separated.
//! A note-off with an empty stack is counted and ignored; note-ons still open
//! at the end of their track are counted and dropped; zero-length notes stay.

use super::events::{Event, TrackReader};

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
    /// What the reader let pass, in the order it was found.
    pub leniencies: Vec<Leniency>,
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

/// A departure from the standard that the reader let pass, as pretty_midi,
/// mido and symusic do; collect records each one beside the piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leniency {
    /// Bytes after the declared tracks.
    TrailingBytes { offset: usize, len: usize },
    /// Track chunks after the declared ones (mido and symusic ignore them too).
    ExtraTracks { offset: usize, len: usize },
    /// A chunk that is neither `MThd` nor `MTrk`, skipped.
    UnknownChunk { id: String, offset: usize },
    /// The file has fewer track chunks than its header declares.
    TrackCount { declared: u16, found: u32 },
    /// A track whose last event is not End-of-Track.
    MissingEndOfTrack { track: u32 },
    /// A header format other than 0, 1 or 2, read as 1.
    UnknownFormat { format: u16 },
}

impl Leniency {
    /// A short machine-readable kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Leniency::TrailingBytes { .. } => "trailing-bytes",
            Leniency::UnknownChunk { .. } => "unknown-chunk",
            Leniency::TrackCount { .. } => "track-count",
            Leniency::MissingEndOfTrack { .. } => "missing-end-of-track",
            Leniency::UnknownFormat { .. } => "unknown-format",
            Leniency::ExtraTracks { .. } => "extra-tracks",
        }
    }
}

impl std::fmt::Display for Leniency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.kind())?;
        match self {
            Leniency::TrailingBytes { offset, len } => {
                write!(f, "{len} bytes after the declared tracks, at byte {offset}, ignored")
            }
            Leniency::UnknownChunk { id, offset } => {
                write!(f, "chunk `{id}` at byte {offset} skipped")
            }
            Leniency::TrackCount { declared, found } => {
                write!(f, "the header declares {declared} tracks, the file has {found}; read all {found}")
            }
            Leniency::MissingEndOfTrack { track } => {
                write!(f, "track {track} does not end with End-of-Track")
            }
            Leniency::UnknownFormat { format } => {
                write!(f, "format {format} is not 0, 1 or 2; read as 1")
            }
            Leniency::ExtraTracks { offset, len } => write!(
                f,
                "{len} bytes of track chunks after the declared tracks, at byte {offset}, ignored"
            ),
        }
    }
}

/// The header and the raw track chunks of a file.
struct Chunks<'a> {
    format: u8,
    division: Division,
    /// Each track chunk's body and its offset in the file.
    tracks: Vec<(usize, &'a [u8])>,
    leniencies: Vec<Leniency>,
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Walks the chunks leniently where the other readers are (see [`Leniency`])
/// and strictly where data would be lost: a track chunk cut short is an error.
fn read_chunks(bytes: &[u8]) -> Result<Chunks<'_>, MidiError> {
    if bytes.len() < 14 || &bytes[..4] != b"MThd" {
        let what = if bytes.is_empty() {
            "the file is empty".to_owned()
        } else {
            "no MThd header".to_owned()
        };
        return Err(MidiError::NotMidi(what));
    }
    let header_len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if header_len < 6 {
        return Err(MidiError::Corrupt(format!(
            "the header declares {header_len} bytes where 6 are needed"
        )));
    }
    let mut leniencies = Vec::new();
    let format = match be_u16(&bytes[8..]) {
        f @ 0..=2 => f as u8,
        f => {
            leniencies.push(Leniency::UnknownFormat { format: f });
            1
        }
    };
    let declared = be_u16(&bytes[10..]);
    let division = be_u16(&bytes[12..]);
    let division = if division & 0x8000 == 0 {
        if division == 0 {
            return Err(MidiError::Corrupt("the division is 0 ticks per beat".into()));
        }
        Division::Metrical(division)
    } else {
        // The high byte is minus the frame rate, in two's complement.
        let fps = match (division >> 8) as u8 {
            0xE8 => 24.0,
            0xE7 => 25.0,
            // SMPTE's drop-frame rate, written as 29.
            0xE3 => 30.0 / 1.001,
            0xE2 => 30.0,
            other => {
                return Err(MidiError::Corrupt(format!(
                    "SMPTE division with frame-rate byte 0x{other:02X} (not 24, 25, 29 or 30 frames per second)"
                )));
            }
        };
        Division::Timecode {
            fps,
            ticks_per_frame: division as u8,
        }
    };
    let mut chunks = Chunks {
        format,
        division,
        tracks: Vec::new(),
        leniencies,
    };
    let mut pos = 8usize.saturating_add(header_len);
    if pos > bytes.len() {
        return Err(MidiError::Truncated(format!(
            "the header declares {header_len} bytes but only {} remain",
            bytes.len() - 8
        )));
    }
    let mut index = 1usize;
    // mido reads the declared tracks and nothing after them (nor does
    // symusic): what follows is left out, and recorded.
    while pos < bytes.len() && chunks.tracks.len() < usize::from(declared) {
        if bytes.len() - pos < 8 {
            break;
        }
        let id = &bytes[pos..pos + 4];
        let len = u32::from_be_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = pos + 8;
        let name = String::from_utf8_lossy(id).into_owned();
        if len > bytes.len() - body {
            return Err(MidiError::Truncated(format!(
                "chunk {index} ({name}) at byte {pos} declares {len} bytes but only {} remain",
                bytes.len() - body
            )));
        }
        if id == b"MTrk" {
            chunks.tracks.push((body, &bytes[body..body + len]));
        } else {
            chunks.leniencies.push(Leniency::UnknownChunk {
                id: name,
                offset: pos,
            });
        }
        pos = body + len;
        index += 1;
    }
    if chunks.tracks.len() < usize::from(declared) {
        chunks.leniencies.push(Leniency::TrackCount {
            declared,
            found: chunks.tracks.len() as u32,
        });
    }
    if pos < bytes.len() {
        let len = bytes.len() - pos;
        chunks.leniencies.push(if bytes[pos..].starts_with(b"MTrk") {
            Leniency::ExtraTracks { offset: pos, len }
        } else {
            Leniency::TrailingBytes { offset: pos, len }
        });
    }
    Ok(chunks)
}

/// Parses a whole file.
pub fn parse(bytes: &[u8]) -> Result<Score, MidiError> {
    let Chunks {
        format,
        division,
        tracks,
        mut leniencies,
    } = read_chunks(bytes)?;

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

    for (t, &(offset, track)) in tracks.iter().enumerate() {
        n_tracks += 1;
        let mut programs = [0u8; 16];
        let mut tick = 0u64;
        let mut ended = false;
        for event in TrackReader::new(track, offset) {
            let (delta, event) =
                event.map_err(|e| MidiError::Corrupt(format!("track {t} at tick {tick}: {e}")))?;
            tick = tick.saturating_add(delta);
            ended = event == Event::EndOfTrack;
            match event {
                Event::NoteOn {
                    channel,
                    key,
                    velocity,
                } if velocity > 0 => {
                    stacks[key as usize].push((tick, velocity, programs[channel as usize], channel));
                }
                Event::NoteOn { key: pitch, .. } | Event::NoteOff { key: pitch, .. } => {
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
                Event::ProgramChange { channel, program } => programs[channel as usize] = program,
                Event::Controller { .. } => last_control_tick = last_control_tick.max(tick),
                Event::Tempo(us) => {
                    let us = us.max(1);
                    tempo_events.push((tick, us));
                    tempo_events_bpm.push(60e6 / f64::from(us));
                }
                Event::TimeSignature {
                    numerator,
                    denominator_power,
                } => time_signatures.push((
                    tick,
                    numerator,
                    1u32.checked_shl(u32::from(denominator_power)).unwrap_or(0),
                )),
                Event::KeySignature { sharps, minor } => key_signatures.push((tick, sharps, minor)),
                Event::EndOfTrack | Event::Other => {}
            }
        }
        if !ended {
            leniencies.push(Leniency::MissingEndOfTrack { track: t as u32 });
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
        leniencies,
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

    /// `tiny()` with its track count, the bytes between header and track, and
    /// the bytes after the track replaced.
    fn variant(count: u16, before: &[u8], after: &[u8]) -> Vec<u8> {
        let t = tiny();
        let mut bytes = t[..14].to_vec();
        bytes[10..12].copy_from_slice(&count.to_be_bytes());
        bytes.extend_from_slice(before);
        bytes.extend_from_slice(&t[14..]);
        bytes.extend_from_slice(after);
        bytes
    }

    #[test]
    fn a_clean_file_needs_no_leniency() {
        assert_eq!(parse(&tiny()).unwrap().leniencies, vec![]);
    }

    #[test]
    fn stray_bytes_after_the_last_track_are_ignored_and_recorded() {
        let score = parse(&variant(1, b"", b"\n\n")).unwrap();
        assert_eq!(score.notes.len(), 2);
        let offset = tiny().len();
        assert_eq!(
            score.leniencies,
            vec![Leniency::TrailingBytes { offset, len: 2 }]
        );
        assert_eq!(
            score.leniencies[0].to_string(),
            format!("trailing-bytes: 2 bytes after the declared tracks, at byte {offset}, ignored")
        );
        // Junk that reads as a chunk header claiming more than the file has.
        let score = parse(&variant(1, b"", b"\xff\xff\xff\xff\xff\xff\xff\xffabc")).unwrap();
        assert_eq!(score.leniencies, vec![Leniency::TrailingBytes { offset, len: 11 }]);
    }

    #[test]
    fn unknown_chunks_are_skipped() {
        let score = parse(&variant(1, b"XFIH\x00\x00\x00\x03abc", b"")).unwrap();
        assert_eq!(score.notes.len(), 2);
        assert_eq!(
            score.leniencies,
            vec![Leniency::UnknownChunk { id: "XFIH".into(), offset: 14 }]
        );
    }

    #[test]
    fn a_track_count_that_disagrees_is_recorded() {
        let score = parse(&variant(2, b"", b"")).unwrap();
        assert_eq!(score.n_tracks, 1);
        assert_eq!(
            score.leniencies,
            vec![Leniency::TrackCount { declared: 2, found: 1 }]
        );
        // More track chunks than declared: the extra ones are ignored, as by mido.
        let t = tiny();
        let score = parse(&variant(1, b"", &t[14..])).unwrap();
        assert_eq!(score.notes.len(), 2);
        assert_eq!(
            score.leniencies,
            vec![Leniency::ExtraTracks { offset: t.len(), len: t.len() - 14 }]
        );
        // Even one that could not be read.
        let broken = b"MTrk\x00\x00\x00\x03\x00\x3C\x40";
        assert_eq!(parse(&variant(1, b"", broken)).unwrap().notes.len(), 2);
        // Within the declared count the same track fails the file.
        assert_eq!(parse(&variant(2, b"", broken)).unwrap_err().kind(), "corrupt");
    }

    #[test]
    fn every_frame_rate_byte_is_an_answer_not_a_panic() {
        for high in 0x80..=0xFFu8 {
            let mut bytes = tiny();
            bytes[12] = high;
            let parsed = parse(&bytes);
            let fps = match parsed {
                Ok(score) => match score.division {
                    Division::Timecode { fps, .. } => fps,
                    other => panic!("{other:?}"),
                },
                Err(e) => {
                    assert_eq!(e.kind(), "corrupt");
                    continue;
                }
            };
            let expected = match high {
                0xE8 => 24.0,
                0xE7 => 25.0,
                0xE3 => 30.0 / 1.001,
                0xE2 => 30.0,
                _ => panic!("0x{high:02X} read as {fps} fps"),
            };
            assert_eq!(fps, expected);
        }
    }

    #[test]
    fn a_missing_end_of_track_is_recorded() {
        let mut bytes = tiny();
        bytes.truncate(bytes.len() - 4);
        let len = (bytes.len() - 22) as u32;
        bytes[18..22].copy_from_slice(&len.to_be_bytes());
        let score = parse(&bytes).unwrap();
        assert_eq!(score.notes.len(), 2);
        assert_eq!(
            score.leniencies,
            vec![Leniency::MissingEndOfTrack { track: 0 }]
        );
    }

    #[test]
    fn a_bad_header_is_an_error() {
        let mut bytes = tiny();
        bytes[8..10].copy_from_slice(&[0, 3]);
        assert_eq!(
            parse(&bytes).unwrap().leniencies,
            vec![Leniency::UnknownFormat { format: 3 }]
        );
        let mut bytes = tiny();
        bytes[12..14].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&bytes).unwrap_err().kind(), "corrupt");
        let mut bytes = tiny();
        bytes[7] = 5;
        assert_eq!(parse(&bytes).unwrap_err().kind(), "corrupt");
    }
}
