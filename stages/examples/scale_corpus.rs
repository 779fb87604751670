//! Builds a benchmark corpus of N distinct, valid MIDI files from a source
//! corpus, deterministically from a seed (`scripts/scale.sh` runs it):
//!
//! `scale_corpus SOURCE OUT N SEED` writes `OUT/v{VARIANT}/{source path}` and
//! `OUT/manifest.jsonl`. File `i` derives from source file `i mod S`: variant
//! 0 is the file itself, and every later variant is transposed (by a shift
//! its variant number picks, key signatures and the manifest's key following)
//! and tempo-scaled, and, drawn from the seed, has its programs moved to
//! another General MIDI family and another source file spliced on after its
//! end. Each file also carries its index as a text event, so that no two are
//! the same bytes even where a transformation changes nothing (a drum groove
//! is not transposed).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use midly::num::{u7, u24, u28};
use midly::{Format, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use amt_stages::midi::key::Key;

/// Semitone shifts, in the order variants take them (0 is variant 0's).
const SHIFTS: [i8; 11] = [1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6];
/// Tempo factors, in the order variants take them.
const TEMPOS: [f64; 6] = [1.1, 0.9, 1.25, 0.8, 1.4, 0.7];

struct Source {
    rel: String,
    bytes: Vec<u8>,
    labels: Option<serde_json::Map<String, serde_json::Value>>,
}

fn sources(root: &Path) -> anyhow::Result<Vec<Source>> {
    let mut labels = std::collections::HashMap::new();
    if let Ok(text) = std::fs::read_to_string(root.join("manifest.jsonl")) {
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let mut record: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                .with_context(|| format!("{}/manifest.jsonl:{}", root.display(), i + 1))?;
            if let Some(serde_json::Value::String(path)) = record.remove("path") {
                labels.insert(path, record);
            }
        }
    }
    let mut out = Vec::new();
    for (rel, abs) in amt_stages::collect::find_midi_files(root)? {
        let bytes = std::fs::read(&abs).with_context(|| format!("reading {}", abs.display()))?;
        // Only files midly can rewrite: the transformations go through it.
        if Smf::parse(&bytes).is_ok() {
            out.push(Source {
                labels: labels.remove(&rel),
                rel,
                bytes,
            });
        }
    }
    if out.is_empty() {
        bail!("no MIDI file under {} that midly reads", root.display());
    }
    Ok(out)
}

fn transpose(events: &mut [TrackEvent], shift: i8) {
    for e in events {
        match &mut e.kind {
            TrackEventKind::Midi {
                channel,
                message:
                    MidiMessage::NoteOn { key, .. }
                    | MidiMessage::NoteOff { key, .. }
                    | MidiMessage::Aftertouch { key, .. },
            } if channel.as_int() != 9 => {
                // Clamped, so that a note-on and its note-off stay a pair.
                *key = u7::new((i16::from(key.as_int()) + i16::from(shift)).clamp(0, 127) as u8);
            }
            TrackEventKind::Meta(MetaMessage::KeySignature(sharps, _)) => {
                // Seven fifths per semitone, kept within six flats and six sharps.
                let fifths = (i16::from(*sharps) + 7 * i16::from(shift)).rem_euclid(12);
                *sharps = if fifths > 6 { fifths - 12 } else { fifths } as i8;
            }
            _ => {}
        }
    }
}

fn scale_tempo(events: &mut [TrackEvent], factor: f64) {
    for e in events {
        if let TrackEventKind::Meta(MetaMessage::Tempo(us)) = &mut e.kind {
            let scaled = (f64::from(us.as_int()) / factor)
                .round()
                .clamp(1.0, f64::from(0xFF_FFFFu32));
            *us = u24::new(scaled as u32);
        }
    }
}

fn move_programs(events: &mut [TrackEvent], families: u8) {
    for e in events {
        if let TrackEventKind::Midi {
            channel,
            message: MidiMessage::ProgramChange { program },
        } = &mut e.kind
            && channel.as_int() != 9
        {
            // Same place in another family of eight.
            *program = u7::new((program.as_int() + 8 * families) % 128);
        }
    }
}

/// The last tick of any track.
fn end_tick(tracks: &[Vec<TrackEvent>]) -> u64 {
    tracks
        .iter()
        .map(|t| t.iter().map(|e| u64::from(e.delta.as_int())).sum())
        .max()
        .unwrap_or(0)
}

/// `other`'s tracks, rescaled to `ticks` per beat and starting at `start`.
fn spliced<'a>(other: &Smf<'a>, ticks: u16, start: u64) -> Vec<Vec<TrackEvent<'a>>> {
    let Timing::Metrical(theirs) = other.header.timing else {
        return Vec::new();
    };
    let ratio = f64::from(ticks) / f64::from(theirs.as_int());
    other
        .tracks
        .iter()
        .map(|track| {
            let (mut at, mut placed) = (0u64, start);
            track
                .iter()
                .map(|e| {
                    at += u64::from(e.delta.as_int());
                    let target = start + (at as f64 * ratio).round() as u64;
                    let delta = (target - placed).min(u64::from(u28::max_value().as_int()));
                    placed += delta;
                    TrackEvent {
                        delta: u28::new(delta as u32),
                        kind: e.kind,
                    }
                })
                .collect()
        })
        .collect()
}

/// File `i`: its path, bytes and manifest line.
fn build(i: usize, sources: &[Source], seed: u64) -> anyhow::Result<(String, Vec<u8>, String)> {
    let source = &sources[i % sources.len()];
    let variant = i / sources.len();
    let rel = format!("v{variant:03}/{}", source.rel);
    let mut smf = Smf::parse(&source.bytes).with_context(|| source.rel.clone())?;
    let mut labels = source.labels.clone().unwrap_or_default();
    let marker = format!("amt scale corpus {i}").into_bytes();
    if variant > 0 {
        let mut rng =
            ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let shift = SHIFTS[(variant - 1) % SHIFTS.len()];
        let tempo = TEMPOS[(variant - 1) / SHIFTS.len() % TEMPOS.len()];
        for track in &mut smf.tracks {
            transpose(track, shift);
            scale_tempo(track, tempo);
        }
        if let Some(key) = labels
            .get("key")
            .and_then(|k| k.as_str())
            .and_then(Key::parse)
        {
            let moved = Key {
                tonic: (i16::from(key.tonic) + i16::from(shift)).rem_euclid(12) as u8,
                minor: key.minor,
            };
            labels.insert("key".into(), moved.name().into());
        }
        if let Some(bpm) = labels.get("tempo_bpm").and_then(|b| b.as_f64()) {
            labels.insert("tempo_bpm".into(), (bpm * tempo).into());
        }
        if rng.random_bool(0.5) {
            let families = rng.random_range(1..16u8);
            for track in &mut smf.tracks {
                move_programs(track, families);
            }
            labels.remove("instruments");
        }
        if rng.random_bool(0.25)
            && let Timing::Metrical(ticks) = smf.header.timing
        {
            let other = &sources[rng.random_range(0..sources.len())];
            let other = Smf::parse(&other.bytes).with_context(|| other.rel.clone())?;
            let start = end_tick(&smf.tracks);
            let extra = spliced(&other, ticks.as_int(), start);
            if !extra.is_empty() {
                smf.tracks.extend(extra);
                smf.header.format = Format::Parallel;
                labels.remove("instruments");
            }
        }
    }
    if smf.tracks.is_empty() {
        smf.tracks.push(vec![TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        }]);
    }
    smf.tracks[0].insert(
        0,
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::Text(&marker)),
        },
    );
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes)
        .with_context(|| format!("writing {rel}"))?;
    labels.insert("path".into(), rel.clone().into());
    Ok((rel, bytes, serde_json::to_string(&labels)?))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, out, n, seed] = args.as_slice() else {
        bail!("usage: scale_corpus SOURCE OUT N SEED");
    };
    let (n, seed): (usize, u64) = (n.parse()?, seed.parse()?);
    let sources = sources(Path::new(source))?;
    let out = PathBuf::from(out);
    let lines: Vec<String> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (rel, bytes, line) = build(i, &sources, seed)?;
            let path = out.join(&rel);
            std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            Ok(line)
        })
        .collect::<anyhow::Result<_>>()?;
    std::fs::write(out.join("manifest.jsonl"), lines.join("\n") + "\n")?;
    println!(
        "{n} files from {} sources in {}",
        sources.len(),
        out.display()
    );
    Ok(())
}
