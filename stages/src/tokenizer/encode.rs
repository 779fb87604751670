//! Score → tokens: one REMI+ stream with every track merged in time order.
//!
//! Per bar: `Bar`, then `TimeSig` and `Tempo` where they change, then for each
//! note `Position` (when it moves), `Program` (when it changes), `Pitch`,
//! `Velocity` and `Duration`. Pitched notes are moved by `shift` semitones
//! (the key frame, see [`super::frame`]).

use crate::midi::Score;

use super::frame;
use super::grid::{bar_positions, quantize, tempos, time_signatures};
use super::vocab::{Token, Vocab};

/// The music tokens of a score (no prefix, no BOS/EOS), its pitched notes
/// moved by `shift` semitones.
pub fn encode_music(vocab: &Vocab, score: &Score, shift: i8) -> Vec<u16> {
    let cfg = &vocab.config;
    let notes = quantize(cfg, score);
    let signatures = time_signatures(cfg, score);
    let tempo_events = tempos(cfg, score);
    let Some(last_onset) = notes.iter().map(|n| n.onset).max() else {
        return Vec::new();
    };

    let mut out = Vec::with_capacity(notes.len() * 5 + 64);
    let mut push = |t: Token| out.push(vocab.id(t));
    let mut signature = (4u8, 4u32);
    let mut next_signature = 0usize;
    let mut emitted_signature = None;
    let mut emitted_tempo = None;
    let mut next_tempo = 0usize;
    let mut tempo = 0u32;
    let mut bar_start = 0u64;
    let mut note = 0usize;
    let mut program: Option<Option<u8>> = None;
    while bar_start <= last_onset {
        // Events at or before this bar's start take effect from this bar.
        while next_signature < signatures.len() && signatures[next_signature].0 <= bar_start {
            signature = signatures[next_signature].1;
            next_signature += 1;
        }
        while next_tempo < tempo_events.len() && tempo_events[next_tempo].0 <= bar_start {
            tempo = tempo_events[next_tempo].1;
            next_tempo += 1;
        }
        let len = u64::from(bar_positions(cfg, signature));
        push(Token::Bar);
        if emitted_signature != Some(signature) {
            push(Token::TimeSig(signature.0, signature.1));
            emitted_signature = Some(signature);
        }
        if emitted_tempo != Some(tempo) {
            push(Token::Tempo(tempo));
            emitted_tempo = Some(tempo);
        }
        let mut position = None;
        while note < notes.len() && notes[note].onset < bar_start + len {
            let n = notes[note];
            let p = (n.onset - bar_start) as u32;
            if position != Some(p) {
                push(Token::Position(p));
                position = Some(p);
            }
            if program != Some(n.program) {
                push(Token::Program(n.program));
                program = Some(n.program);
            }
            push(Token::Pitch(match n.program {
                Some(_) => frame::moved(n.pitch, shift),
                None => n.pitch,
            }));
            push(Token::Velocity(n.velocity));
            push(Token::Duration(n.duration));
            note += 1;
        }
        bar_start += len;
    }
    out
}
