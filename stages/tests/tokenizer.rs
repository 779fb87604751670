//! The tokenizer: lossless round trip on the grid over the whole corpus (see
//! `common`), property tests on random notes and random tokens, and a snapshot.

mod common;

use std::collections::HashMap;

use amt_stages::collect::find_midi_files;
use amt_stages::midi::key::Key;
use amt_stages::midi::{self, features};
use amt_stages::tokenizer::decode::{Decoded, to_midi};
use amt_stages::tokenizer::grid::{GridNote, quantize};
use amt_stages::tokenizer::{Conditioning, Config, Token, Tokenizer};
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
        let decoded = Decoded { notes: notes.clone(), tempos: vec![(0, 10)], time_signatures: vec![(0, (4, 4))], ..Decoded::default() };
        let score = midi::parse(&to_midi(&tok.vocab, &decoded)).unwrap();
        prop_assert_eq!(&quantize(cfg, &score), &notes);
        let ids = tok.encode(&score, &Conditioning::default());
        prop_assert_eq!(&tok.decode(&ids).notes, &notes);
    }

    #[test]
    fn a_keyed_prefix_moves_pitches_into_its_frame_and_decoding_moves_them_back(
        notes in notes(),
        key in 0u32..24,
    ) {
        // A pitched note within six semitones of the MIDI range's ends may fold by an octave.
        let notes: Vec<GridNote> = notes
            .into_iter()
            .filter(|n| n.program.is_none() || (6..=122).contains(&n.pitch))
            .collect();
        let tok = Tokenizer::new(Config::default());
        let decoded = Decoded { notes: notes.clone(), tempos: vec![(0, 10)], time_signatures: vec![(0, (4, 4))], ..Decoded::default() };
        let score = midi::parse(&to_midi(&tok.vocab, &decoded)).unwrap();
        let key = Key::from_index(key);
        let ids = tok.encode(&score, &Conditioning { key, ..Conditioning::default() });
        let back = tok.decode(&ids);
        prop_assert_eq!(&back.notes, &notes);
        prop_assert_eq!(back.key, key);
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
fn pitches_are_written_with_the_tonic_on_c() {
    let tok = Tokenizer::new(Config::default());
    let note = |onset, program, pitch| GridNote { onset, program, pitch, duration: 8, velocity: 20 };
    // D major's scale on a violin, and a kick drum (36) that must not move.
    let d_major = [62u8, 64, 66, 67, 69, 71, 73, 74];
    let mut notes: Vec<GridNote> = d_major.iter().zip(0..).map(|(&p, i)| note(i * 8, Some(40), p)).collect();
    notes.push(note(0, None, 36));
    let decoded = Decoded { notes, tempos: vec![(0, 10)], time_signatures: vec![(0, (4, 4))], ..Decoded::default() };
    let score = midi::parse(&to_midi(&tok.vocab, &decoded)).unwrap();
    let ids = tok.encode(&score, &Conditioning { key: Key::parse("D major"), ..Conditioning::default() });
    let pitches: Vec<String> = tok.texts(&ids).into_iter().filter(|t| t.starts_with("Pitch_")).collect();
    assert_eq!(pitches, ["Pitch_36", "Pitch_60", "Pitch_62", "Pitch_64", "Pitch_65", "Pitch_67", "Pitch_69", "Pitch_71", "Pitch_72"]);
    let pitches_of = |d: &Decoded| d.notes.iter().map(|n| n.pitch).collect::<Vec<u8>>();
    let mut back = tok.decode(&ids);
    assert_eq!(pitches_of(&back), [36, 62, 64, 66, 67, 69, 71, 73, 74], "decoded in D again");
    // Only the prefix sets the frame: a key token among the music does not fit.
    let sep = ids.iter().position(|&id| tok.vocab.token(id) == Some(Token::Sep)).unwrap();
    let mut stray = ids.clone();
    stray.insert(sep + 3, tok.vocab.id(Token::CondKey(Some(0))));
    let strayed = tok.decode(&stray);
    assert_eq!((strayed.notes.as_slice(), strayed.skipped), (back.notes.as_slice(), back.skipped + 1));
    back.transpose(3);
    assert_eq!(pitches_of(&back), [36, 65, 67, 69, 70, 72, 74, 76, 77], "drums stay where they are");
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
            &Conditioning::from_features(&features(&score), Some(3), tok.vocab.config.prefix_instruments),
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
