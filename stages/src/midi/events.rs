//! Decoding the events of one track chunk, with the running-status rules that
//! mido (and so pretty_midi) follows: a meta event neither sets nor clears
//! running status, every other status byte sets it. midly, which writes our
//! files, clears it at meta events, and so refuses real files that rely on it.
//!
//! Only what the score needs is decoded; everything else is skipped by length.

/// One decoded event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A note-on (velocity 0 included: the pairing treats it as an off).
    NoteOn {
        channel: u8,
        key: u8,
        velocity: u8,
    },
    NoteOff {
        channel: u8,
        key: u8,
    },
    ProgramChange {
        channel: u8,
        program: u8,
    },
    Controller {
        channel: u8,
    },
    /// Microseconds per quarter note.
    Tempo(u32),
    /// Numerator and the power of two of the denominator.
    TimeSignature {
        numerator: u8,
        denominator_power: u8,
    },
    /// Sharps (negative: flats) and whether the key is minor.
    KeySignature {
        sharps: i8,
        minor: bool,
    },
    EndOfTrack,
    /// Any other event (sysex, text, pitch bend, system messages…).
    Other,
}

/// Why a track's events cannot be read; offsets are in bytes from the file's start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the track ends inside an event at byte {0}")]
    Ends(usize),
    #[error("an event's data at byte {at} is declared as {len} bytes but the track has {left} left")]
    Overlong { at: usize, len: usize, left: usize },
    #[error("data byte 0x{byte:02X} at byte {at} has its top bit set")]
    NotData { at: usize, byte: u8 },
    #[error("a data byte at byte {0} where a status byte must be (no running status)")]
    NoRunningStatus(usize),
    #[error("undefined status byte 0x{status:02X} at byte {at}")]
    UndefinedStatus { at: usize, status: u8 },
}

/// Reads the events of a track chunk's body, in order, with their delta ticks.
pub struct TrackReader<'a> {
    raw: &'a [u8],
    pos: usize,
    /// Where `raw` starts in the file, so that errors give file offsets.
    base: usize,
    running: Option<u8>,
}

impl<'a> TrackReader<'a> {
    /// A reader over one `MTrk` chunk's body, which starts at byte `base` of the file.
    pub fn new(raw: &'a [u8], base: usize) -> Self {
        Self {
            raw,
            pos: 0,
            base,
            running: None,
        }
    }

    /// The file offset of the next byte.
    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn byte(&mut self) -> Result<u8, EventError> {
        let b = *self
            .raw
            .get(self.pos)
            .ok_or(EventError::Ends(self.offset()))?;
        self.pos += 1;
        Ok(b)
    }

    /// A variable-length quantity; longer than four bytes is accepted, as
    /// mido does, and saturates.
    fn varlen(&mut self) -> Result<u64, EventError> {
        let mut value = 0u64;
        loop {
            let b = self.byte()?;
            value = value
                .saturating_mul(128)
                .saturating_add(u64::from(b & 0x7F));
            if b < 0x80 {
                return Ok(value);
            }
        }
    }

    fn bytes(&mut self, len: u64) -> Result<&'a [u8], EventError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.raw.len() - self.pos {
            return Err(EventError::Overlong {
                at: self.offset(),
                len,
                left: self.raw.len() - self.pos,
            });
        }
        let data = &self.raw[self.pos..self.pos + len];
        self.pos += len;
        Ok(data)
    }

    fn data_byte(&mut self) -> Result<u8, EventError> {
        let at = self.offset();
        match self.byte()? {
            b if b < 0x80 => Ok(b),
            byte => Err(EventError::NotData { at, byte }),
        }
    }

    fn event(&mut self) -> Result<(u64, Event), EventError> {
        let delta = self.varlen()?;
        let at = self.offset();
        let first = self.byte()?;
        let (status, mut pending) = if first < 0x80 {
            let status = self.running.ok_or(EventError::NoRunningStatus(at))?;
            (status, Some(first))
        } else {
            (first, None)
        };
        if status != 0xFF {
            self.running = Some(status);
        }
        let mut data = |reader: &mut Self| match pending.take() {
            Some(b) => Ok(b),
            None => reader.data_byte(),
        };
        let channel = status & 0x0F;
        let event = match status {
            0x80..=0x8F => {
                let key = data(self)?;
                data(self)?;
                Event::NoteOff { channel, key }
            }
            0x90..=0x9F => Event::NoteOn {
                channel,
                key: data(self)?,
                velocity: data(self)?,
            },
            0xA0..=0xAF | 0xE0..=0xEF => {
                data(self)?;
                data(self)?;
                Event::Other
            }
            0xB0..=0xBF => {
                data(self)?;
                data(self)?;
                Event::Controller { channel }
            }
            0xC0..=0xCF => Event::ProgramChange {
                channel,
                program: data(self)?,
            },
            0xD0..=0xDF => {
                data(self)?;
                Event::Other
            }
            0xF0 | 0xF7 => {
                let len = self.varlen()?;
                self.bytes(len)?;
                Event::Other
            }
            0xFF => {
                let kind = self.byte()?;
                let len = self.varlen()?;
                meta(kind, self.bytes(len)?)
            }
            // System common and real-time messages, with mido's lengths.
            0xF1 | 0xF3 => {
                data(self)?;
                Event::Other
            }
            0xF2 => {
                data(self)?;
                data(self)?;
                Event::Other
            }
            0xF6 | 0xF8 | 0xFA | 0xFB | 0xFC | 0xFE => Event::Other,
            _ => return Err(EventError::UndefinedStatus { at, status }),
        };
        Ok((delta, event))
    }
}

/// A meta event; one too short for its kind is ignored, as the score cannot use it.
fn meta(kind: u8, data: &[u8]) -> Event {
    match (kind, data) {
        (0x2F, _) => Event::EndOfTrack,
        (0x51, [a, b, c, ..]) => Event::Tempo(u32::from_be_bytes([0, *a, *b, *c])),
        (0x58, [n, d, ..]) => Event::TimeSignature {
            numerator: *n,
            denominator_power: *d,
        },
        (0x59, [s, m, ..]) => Event::KeySignature {
            sharps: *s as i8,
            minor: *m != 0,
        },
        _ => Event::Other,
    }
}

impl Iterator for TrackReader<'_> {
    type Item = Result<(u64, Event), EventError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.raw.len() {
            return None;
        }
        let result = self.event();
        if result.is_err() {
            self.pos = self.raw.len();
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(raw: &[u8]) -> Result<Vec<(u64, Event)>, EventError> {
        TrackReader::new(raw, 0).collect()
    }

    #[test]
    fn running_status_survives_meta_events_as_in_mido() {
        let raw = [
            0x00, 0x90, 60, 90, // note-on
            0x10, 0xFF, 0x01, 0x02, b'h', b'i', // a text event
            0x10, 62, 80, // running status: another note-on
        ];
        assert_eq!(
            events(&raw).unwrap(),
            vec![
                (
                    0,
                    Event::NoteOn {
                        channel: 0,
                        key: 60,
                        velocity: 90
                    }
                ),
                (16, Event::Other),
                (
                    16,
                    Event::NoteOn {
                        channel: 0,
                        key: 62,
                        velocity: 80
                    }
                ),
            ]
        );
    }

    #[test]
    fn decodes_the_meta_events_the_score_needs() {
        let raw = [
            0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20, // 500000 us
            0x00, 0xFF, 0x58, 0x04, 6, 3, 24, 8, // 6/8
            0x00, 0xFF, 0x59, 0x02, 0xFE, 1, // two flats, minor
            0x00, 0xFF, 0x51, 0x01, 0x07, // a tempo too short to use
            0x81, 0x00, 0xFF, 0x2F, 0x00,
        ];
        assert_eq!(
            events(&raw).unwrap(),
            vec![
                (0, Event::Tempo(500_000)),
                (
                    0,
                    Event::TimeSignature {
                        numerator: 6,
                        denominator_power: 3
                    }
                ),
                (
                    0,
                    Event::KeySignature {
                        sharps: -2,
                        minor: true
                    }
                ),
                (0, Event::Other),
                (128, Event::EndOfTrack),
            ]
        );
    }

    #[test]
    fn broken_events_are_errors_with_their_position() {
        assert_eq!(
            events(&[0x00, 0x3C, 0x40]).unwrap_err().to_string(),
            "a data byte at byte 1 where a status byte must be (no running status)"
        );
        assert_eq!(
            events(&[0x00, 0x90, 0x3C, 0xC0]).unwrap_err().to_string(),
            "data byte 0xC0 at byte 3 has its top bit set"
        );
        assert_eq!(
            events(&[0x00, 0xFF, 0x01, 0x05, b'a']).unwrap_err().to_string(),
            "an event's data at byte 4 is declared as 5 bytes but the track has 1 left"
        );
        assert_eq!(
            events(&[0x00, 0xF4]).unwrap_err().to_string(),
            "undefined status byte 0xF4 at byte 1"
        );
        assert_eq!(
            events(&[0x00, 0x90, 0x3C]).unwrap_err().to_string(),
            "the track ends inside an event at byte 3"
        );
    }
}
