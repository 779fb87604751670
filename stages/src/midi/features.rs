//! Per-file summary features: what collect writes for every piece.

use super::gm;
use super::key::{self, Key};
use super::score::{Pairing, Score};
use super::tempo::Division;

/// Everything collect records about one file's music.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// SMF format: 0, 1 or 2.
    pub format: u8,
    /// Ticks per quarter note (`None` for SMPTE timing).
    pub ticks_per_beat: Option<u16>,
    /// Track chunks.
    pub n_tracks: u32,
    /// Seconds to the last event of any track, following the tempo map (mido's `length`).
    pub duration_s: f64,
    /// Tempo at tick 0 (120 when none is set).
    pub first_tempo_bpm: f64,
    /// Mean tempo weighted by how long each one lasts.
    pub mean_tempo_bpm: f64,
    /// `set_tempo` events over all tracks, repeats included.
    pub n_tempo_changes: u32,
    /// `"n/d"` for each time-signature event, in track then event order.
    pub time_signatures: Vec<String>,
    /// `"G Major"` / `"E minor"` for each key-signature event.
    pub key_signatures: Vec<String>,
    /// Sorted programs of the non-drum notes.
    pub programs: Vec<u8>,
    /// Whether any note is on the drum channel.
    pub has_drums: bool,
    /// Paired notes, drums included.
    pub n_notes: u32,
    /// Lowest and highest non-drum pitch.
    pub pitch_range: Option<(u8, u8)>,
    /// Mean and population standard deviation of the velocities of all notes.
    pub velocity: Option<(f64, f64)>,
    /// Notes per second (`None` when the duration is 0).
    pub note_density: Option<f64>,
    /// Seconds of sounding notes per program (non-drum), longest first.
    pub program_seconds: Vec<(u8, f64)>,
    /// Seconds of sounding drum notes.
    pub drum_seconds: f64,
    /// The key estimated from the notes (Krumhansl–Kessler), with its correlation.
    pub estimated_key: Option<(Key, f64)>,
    /// Pairing anomalies.
    pub pairing: Pairing,
}

/// Computes the features of a parsed score.
pub fn features(score: &Score) -> Features {
    let tempo = &score.tempo;
    let duration_s = tempo.seconds(score.end_tick);
    let n = score.notes.len();

    let mut programs: Vec<u8> = score
        .notes
        .iter()
        .filter(|n| !n.is_drum())
        .map(|n| n.program)
        .collect();
    programs.sort_unstable();
    programs.dedup();

    let pitched = || score.notes.iter().filter(|n| !n.is_drum());
    let pitch_range = pitched()
        .map(|n| n.pitch)
        .min()
        .zip(pitched().map(|n| n.pitch).max());

    let velocity = (n > 0).then(|| {
        let mean = score
            .notes
            .iter()
            .map(|n| f64::from(n.velocity))
            .sum::<f64>()
            / n as f64;
        let var = score
            .notes
            .iter()
            .map(|n| (f64::from(n.velocity) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        (mean, var.sqrt())
    });

    let mut seconds_by_program = [0.0f64; 128];
    let mut drum_seconds = 0.0;
    let mut pitch_classes = [0.0f64; 12];
    for note in &score.notes {
        let secs = tempo.seconds(note.end) - tempo.seconds(note.start);
        if note.is_drum() {
            drum_seconds += secs;
        } else {
            seconds_by_program[note.program as usize] += secs;
            pitch_classes[(note.pitch % 12) as usize] += secs;
        }
    }
    let mut program_seconds: Vec<(u8, f64)> = programs
        .iter()
        .map(|&p| (p, seconds_by_program[p as usize]))
        .collect();
    program_seconds.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

    Features {
        format: score.format,
        ticks_per_beat: match score.division {
            Division::Metrical(t) => Some(t),
            Division::Timecode { .. } => None,
        },
        n_tracks: score.n_tracks,
        duration_s,
        first_tempo_bpm: tempo.first_bpm(),
        mean_tempo_bpm: tempo.weighted_mean_bpm(score.end_tick),
        n_tempo_changes: score.n_set_tempo,
        time_signatures: score
            .time_signatures
            .iter()
            .map(|(_, n, d)| format!("{n}/{d}"))
            .collect(),
        key_signatures: score
            .key_signatures
            .iter()
            .map(|&(_, s, m)| Key::from_signature(s, m).name())
            .collect(),
        has_drums: score.notes.iter().any(|n| n.is_drum()),
        programs,
        n_notes: n as u32,
        pitch_range,
        velocity,
        note_density: (duration_s > 0.0).then(|| n as f64 / duration_s),
        program_seconds,
        drum_seconds,
        estimated_key: key::estimate(&pitch_classes, &key::KRUMHANSL_KESSLER),
        pairing: score.pairing,
    }
}

impl Features {
    /// General MIDI names of the programs, longest-playing first.
    pub fn instrument_names(&self) -> Vec<&'static str> {
        self.program_seconds
            .iter()
            .map(|&(p, _)| gm::name(p))
            .collect()
    }
}
