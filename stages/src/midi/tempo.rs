//! The tempo map: converts ticks to seconds the way mido's `MidiFile.length`
//! does, with `set_tempo` events from every track merged in tick order.

/// Microseconds per quarter note when a file sets no tempo (120 BPM).
pub const DEFAULT_TEMPO_US: u32 = 500_000;

/// The Italian tempo terms, slowest first, each with the lowest BPM it
/// covers. Captions name a piece's tempo with them and prompts are read with them.
pub const TEMPO_TERMS: [(&str, f64); 10] = [
    ("Grave", 0.0),
    ("Largo", 40.0),
    ("Larghetto", 60.0),
    ("Adagio", 66.0),
    ("Andante", 76.0),
    ("Moderato", 108.0),
    ("Allegro", 120.0),
    ("Vivace", 156.0),
    ("Presto", 176.0),
    ("Prestissimo", 200.0),
];

/// The Italian term for a BPM.
pub fn tempo_term(bpm: f64) -> &'static str {
    TEMPO_TERMS.iter().rev().find(|(_, lo)| bpm >= *lo).unwrap_or(&TEMPO_TERMS[0]).0
}

/// The plain word captions use for a BPM: slow, moderate, fast or very fast.
pub fn tempo_plain(bpm: f64) -> &'static str {
    match bpm {
        b if b < 76.0 => "slow",
        b if b < 120.0 => "moderate",
        b if b < 168.0 => "fast",
        _ => "very fast",
    }
}

/// A BPM typical of the `i`-th term: the middle of its range (10 BPM inside the open ends).
pub fn typical_bpm(i: usize) -> f64 {
    let lo = TEMPO_TERMS[i].1;
    match TEMPO_TERMS.get(i + 1) {
        Some(&(_, hi)) if i == 0 => hi - 10.0,
        Some(&(_, hi)) => (lo + hi) / 2.0,
        None => lo + 10.0,
    }
}

/// How a file measures time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Division {
    /// Ticks per quarter note; tempo events apply.
    Metrical(u16),
    /// SMPTE: frames per second times ticks per frame; tempo events do not apply.
    Timecode { fps: f64, ticks_per_frame: u8 },
}

/// Piecewise-constant tempo over ticks.
#[derive(Clone, Debug)]
pub struct TempoMap {
    division: Division,
    /// (start tick, microseconds per quarter, seconds at start tick), sorted by tick.
    segments: Vec<(u64, u32, f64)>,
}

impl TempoMap {
    /// Builds the map from `(tick, microseconds per quarter)` events in any
    /// order; events on the same tick keep their given order, the last wins.
    pub fn new(division: Division, mut events: Vec<(u64, u32)>) -> Self {
        events.sort_by_key(|&(tick, _)| tick); // stable: same-tick order is kept
        let mut segments: Vec<(u64, u32, f64)> = vec![(0, DEFAULT_TEMPO_US, 0.0)];
        for (tick, tempo) in events {
            let &(last_tick, last_tempo, last_s) = segments.last().expect("never empty");
            if tick == last_tick {
                segments.last_mut().expect("never empty").1 = tempo;
            } else {
                let s = last_s + Self::span(division, tick - last_tick, last_tempo);
                segments.push((tick, tempo, s));
            }
        }
        Self { division, segments }
    }

    fn span(division: Division, ticks: u64, tempo_us: u32) -> f64 {
        match division {
            Division::Metrical(tpq) => ticks as f64 * tempo_us as f64 * 1e-6 / tpq.max(1) as f64,
            Division::Timecode {
                fps,
                ticks_per_frame,
            } => ticks as f64 / (fps * ticks_per_frame.max(1) as f64),
        }
    }

    /// Seconds from the start of the file to `tick`.
    pub fn seconds(&self, tick: u64) -> f64 {
        let i = self
            .segments
            .partition_point(|&(t, _, _)| t <= tick)
            .saturating_sub(1);
        let (start, tempo, s) = self.segments[i];
        s + Self::span(self.division, tick - start, tempo)
    }

    /// Every tempo change as `(tick, BPM)`, starting with the tempo at tick 0.
    pub fn changes(&self) -> impl Iterator<Item = (u64, f64)> + '_ {
        self.segments
            .iter()
            .map(|&(tick, us, _)| (tick, 60e6 / f64::from(us)))
    }

    /// The tempo in effect at tick 0, in BPM.
    pub fn first_bpm(&self) -> f64 {
        60e6 / self.segments[0].1 as f64
    }

    /// The mean BPM weighted by how long each tempo lasts before `end_tick`.
    pub fn weighted_mean_bpm(&self, end_tick: u64) -> f64 {
        let total = self.seconds(end_tick);
        if total <= 0.0 {
            return self.first_bpm();
        }
        let mut sum = 0.0;
        for (i, &(tick, tempo, s)) in self.segments.iter().enumerate() {
            if tick >= end_tick {
                break;
            }
            let next_s = self
                .segments
                .get(i + 1)
                .map_or(total, |&(t, _, ns)| if t >= end_tick { total } else { ns });
            sum += 60e6 / tempo as f64 * (next_s - s);
        }
        sum / total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_follow_tempo_changes() {
        // 120 BPM for 480 ticks (0.5 s), then 60 BPM.
        let map = TempoMap::new(Division::Metrical(480), vec![(480, 1_000_000)]);
        assert!((map.seconds(480) - 0.5).abs() < 1e-12);
        assert!((map.seconds(960) - 1.5).abs() < 1e-12);
        assert!((map.weighted_mean_bpm(960) - (120.0 * 0.5 + 60.0 * 1.0) / 1.5).abs() < 1e-9);
        assert_eq!(map.first_bpm(), 120.0);
    }

    #[test]
    fn the_last_tempo_on_a_tick_wins() {
        let map = TempoMap::new(Division::Metrical(96), vec![(0, 400_000), (0, 600_000)]);
        assert_eq!(map.first_bpm(), 100.0);
    }

    #[test]
    fn timecode_ignores_tempo() {
        let map = TempoMap::new(
            Division::Timecode {
                fps: 25.0,
                ticks_per_frame: 40,
            },
            vec![(0, 1)],
        );
        assert!((map.seconds(1000) - 1.0).abs() < 1e-12);
    }
}
