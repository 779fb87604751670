//! A generated piece as the API shows it: what amt understood from the text,
//! the options, and the notes in seconds for the piano roll.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use amt_stages::generate::{Generation, SampleOptions};
use amt_stages::midi::{self, gm};
use amt_stages::tokenizer::prefix::Words;

/// One note of the piano roll.
#[derive(Serialize)]
struct Note {
    /// Onset and release, in seconds.
    start: f64,
    end: f64,
    pitch: u8,
    velocity: u8,
    /// General MIDI program; `null` on the drum channel.
    program: Option<u8>,
    /// Its General MIDI family ("drums" on the drum channel).
    family: &'static str,
}

#[derive(Serialize)]
struct Understood<'a> {
    #[serde(flatten)]
    words: Words,
    /// Distance from the text's embedding to its semantic token's centroid.
    semantic_distance: f64,
    /// The words that named no attribute (only the semantic token hears them).
    unread: &'a [String],
    /// The same, in one line.
    summary: String,
}

#[derive(Serialize)]
struct Piece<'a> {
    text: &'a str,
    options: &'a SampleOptions,
    understood: Understood<'a>,
    /// Tokens, the conditioning prefix included (as `amt generate` counts them).
    tokens: usize,
    /// True if the model ended the piece itself (rather than `max_tokens`).
    ended: bool,
    seconds: f64,
    notes: Vec<Note>,
    generation_ms: u128,
}

/// The JSON for a generation (the server adds its id and links).
pub fn describe(g: &Generation, options: &SampleOptions, took: Duration) -> anyhow::Result<Value> {
    let score = midi::parse(&g.midi)
        .map_err(|e| anyhow::anyhow!("the generated MIDI does not parse: {e}"))?;
    let seconds = |tick| score.tempo.seconds(tick);
    let mut notes: Vec<Note> = score
        .notes
        .iter()
        .map(|n| Note {
            start: seconds(n.start),
            end: seconds(n.end),
            pitch: n.pitch,
            velocity: n.velocity,
            program: (!n.is_drum()).then_some(n.program),
            family: if n.is_drum() {
                "drums"
            } else {
                gm::family(n.program)
            },
        })
        .collect();
    notes.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.pitch.cmp(&b.pitch)));
    let piece = Piece {
        text: &g.text,
        options,
        understood: Understood {
            words: g.conditioning.words(),
            semantic_distance: g.semantic_distance,
            unread: &g.unread,
            summary: g.conditioning.describe(),
        },
        tokens: g.tokens.len(),
        ended: g.ended,
        seconds: notes.iter().map(|n| n.end).fold(0.0, f64::max),
        notes,
        generation_ms: took.as_millis(),
    };
    Ok(serde_json::to_value(piece)?)
}
