//! The tokenizer: lossless round trip on the grid over the whole corpus (see
//! `common`), property tests on random notes and random tokens, and a snapshot.

mod common;

use std::collections::HashMap;

use amt_stages::collect::find_midi_files;
use amt_stages::midi::{self, features};
use amt_stages::tokenizer::decode::{Decoded, to_midi};
use amt_stages::tokenizer::grid::{GridNote, quantize};
use amt_stages::tokenizer::{Conditioning, Config, Tokenizer};
use proptest::prelude::*;

/// Notes as a multiset, for order-free comparison.
fn multiset(notes: &[GridNote]) -> HashMap<GridNote, usize> {
    let mut m = HashMap::new();
    for n in notes {
        *m.entry(*n).or_insert(0) += 1;
    }
    m
}

#[test]
fn round_trip_over_the_whole_corpus() {
    let tok = Tokenizer::new(Config::default());
    let cfg = &tok.vocab.config;
    let (mut total, mut exact, mut files_exact) = (0usize, 0usize, 0usize);
    let files = find_midi_files(&common::corpus()).unwrap();
    for (rel, path) in &files {
        let score = midi::parse(&std::fs::read(path).unwrap()).unwrap();
        let expected = quantize(cfg, &score);
        let ids = tok.encode(
            &score,
            &Conditioning::from_features(&features(&score), None, cfg.prefix_instruments),
        );
        let back = midi::parse(&tok.to_midi(&ids))
            .unwrap_or_else(|e| panic!("{rel}: decoded MIDI does not parse: {e}"));
        let mut got = multiset(&quantize(cfg, &back));
        let mut file_exact = 0;
        for n in &expected {
            if let Some(c) = got.get_mut(n).filter(|c| **c > 0) {
                *c -= 1;
                file_exact += 1;
            }
        }
        total += expected.len();
        exact += file_exact;
        files_exact += usize::from(file_exact == expected.len());
    }
    let share = exact as f64 / total as f64;
    eprintln!(
        "round trip: {exact} of {total} notes exact ({:.3} %), {files_exact} of {} files entirely exact",
        share * 100.0,
        files.len()
    );
    assert!(share >= 0.99, "{:.3} % of notes exact", share * 100.0);
}

/// Random notes that a MIDI file can hold unambiguously: no two notes of the
/// same program and pitch overlap (MIDI pairs such notes by order, not identity).
fn notes() -> impl Strategy<Value = Vec<GridNote>> {
    let note = (
        0u64..600,
        prop_oneof![Just(None), (0u8..128).prop_map(Some)],
        0u8..128,
        0u32..=96,
        0u32..32,
    )
        .prop_map(|(onset, program, pitch, duration, velocity)| GridNote {
            onset,
            program,
            pitch,
            duration,
            velocity,
        });
    prop::collection::vec(note, 0..80).prop_map(|mut v| {
        v.sort_by_key(|n| (n.program, n.pitch, n.onset));
        let mut kept: Vec<GridNote> = Vec::new();
        for n in v {
            let clash = kept.last().is_some_and(|p| {
                p.program == n.program
                    && p.pitch == n.pitch
                    && n.onset < p.onset + u64::from(p.duration.max(1))
            });
            if !clash {
                kept.push(n);
            }
        }
        kept.sort_unstable();
        kept
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_notes_survive_midi_and_tokens(notes in notes()) {
        let tok = Tokenizer::new(Config::default());
        let cfg = &tok.vocab.config;
        let decoded = Decoded { notes: notes.clone(), tempos: vec![(0, 10)], time_signatures: vec![(0, (4, 4))], skipped: 0 };
        let score = midi::parse(&to_midi(&tok.vocab, &decoded)).unwrap();
        prop_assert_eq!(&quantize(cfg, &score), &notes);
        let ids = tok.encode(&score, &Conditioning::default());
        prop_assert_eq!(&tok.decode(&ids).notes, &notes);
    }

    #[test]
    fn any_token_sequence_decodes_to_valid_midi(ids in prop::collection::vec(0u16..1100, 0..400)) {
        let tok = Tokenizer::new(Config::default());
        let bytes = tok.to_midi(&ids);
        let score = midi::parse(&bytes);
        prop_assert!(score.is_ok(), "{:?}", score.err());
    }
}

#[test]
fn tokens_of_short_pieces() {
    let tok = Tokenizer::new(Config::default());
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/corpus");
    let mut text = String::new();
    for folder in [
        "folk/Traditional (Ireland)",
        "classical/Johann Sebastian Bach",
        "mma/MMA Tango",
    ] {
        let mut files: Vec<_> = std::fs::read_dir(corpus.join(folder))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        let score = midi::parse(&std::fs::read(&files[0]).unwrap()).unwrap();
        let ids = tok.encode(
            &score,
            &Conditioning::from_features(&features(&score), Some(3), 3),
        );
        let head: Vec<String> = tok.texts(&ids).into_iter().take(40).collect();
        text.push_str(&format!(
            "{folder}/{}\n{}\n… {} tokens in all\n\n",
            files[0].file_name().unwrap().to_string_lossy(),
            head.join(" "),
            ids.len()
        ));
    }
    insta::assert_snapshot!("short_piece_tokens", text);
}
