//! prepare: deterministic splits that augmented copies never cross, windows
//! that all repeat the prefix, and the stage's shards.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use amt_stages::StageContext;
use amt_stages::collect::find_midi_files;
use amt_stages::prepare::{PrepareParams, Split, prepare, split_of, windows};
use amt_stages::table::{column, read_parquet};
use amt_stages::tokenizer::{Config, Token, Tokenizer};
use arrow::array::{Array, StringArray};
use serde_json::json;

#[test]
fn splits_are_deterministic_and_near_their_fractions() {
    let files = find_midi_files(&common::corpus()).unwrap();
    let mut counts: HashMap<Split, usize> = HashMap::new();
    for (rel, _) in &files {
        let s = split_of(rel, 0, 0.1, 0.1);
        assert_eq!(s, split_of(rel, 0, 0.1, 0.1));
        *counts.entry(s).or_default() += 1;
    }
    let share = |s| counts[&s] as f64 / files.len() as f64;
    assert!((share(Split::Test) - 0.1).abs() < 0.02, "{counts:?}");
    assert!((share(Split::Val) - 0.1).abs() < 0.02, "{counts:?}");
    let moved = files
        .iter()
        .filter(|(rel, _)| split_of(rel, 0, 0.1, 0.1) != split_of(rel, 1, 0.1, 0.1))
        .count();
    assert!(moved > 0, "the seed changes the split");
}

#[test]
fn windows_repeat_the_prefix_restate_the_state_and_pad_the_end() {
    let v = Tokenizer::new(Config::default()).vocab;
    let id = |t| v.id(t);
    // A 10-token prefix, then a bar's header, a program and 30 pitches.
    let prefix: Vec<u16> = (0..10).map(|i| id(Token::Semantic(Some(i)))).collect();
    let header = [id(Token::Bar), id(Token::TimeSig(3, 4)), id(Token::Tempo(7))];
    let pitches: Vec<u16> = (40..70).map(|p| id(Token::Pitch(p))).collect();
    let ids: Vec<u16> = prefix
        .iter()
        .chain(&header)
        .chain(&[id(Token::Program(Some(41)))])
        .chain(&pitches)
        .copied()
        .collect();
    let w = windows(&v, &ids, 10, 26);
    assert!(w.iter().all(|w| w.len() == 26 && w[..10] == prefix[..]));
    assert_eq!(&w[0][10..], &ids[10..26], "the first window is the piece's start");
    let state = [id(Token::TimeSig(3, 4)), id(Token::Tempo(7)), id(Token::Program(Some(41)))];
    assert_eq!(&w[1][10..13], &state, "later windows restate meter, tempo and program");
    assert_eq!(&w[1][13..], &ids[26..39], "and go on where the last one stopped");
    assert_eq!(w.len(), 3);
    assert_eq!(&w[2][13..18], &ids[39..44]);
    assert_eq!(w[2][18..], [id(Token::Pad); 8], "the last window is padded");
}

#[test]
fn augmented_copies_stay_in_their_piece_split_and_rewrite_the_conditioning() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/corpus");
    let tok = Tokenizer::new(Config::default());
    let params = PrepareParams {
        context: 128,
        transpose: vec![-2, 3],
        tempo_scales: vec![1.1],
        ..PrepareParams::default()
    };
    let files = find_midi_files(&corpus).unwrap();
    let (by_split, summary) = prepare(&files, &HashMap::new(), &HashMap::new(), &params, &tok).unwrap();
    assert!(summary.skipped.is_empty(), "{:?}", summary.skipped);
    assert_eq!(summary.pieces.values().sum::<usize>(), 320);
    let mut seen: HashMap<&str, Split> = HashMap::new();
    for (split, windows) in &by_split {
        for w in windows {
            assert_eq!(
                *seen.entry(&w.path).or_insert(*split),
                *split,
                "{} crosses splits",
                w.path
            );
            assert_eq!(w.tokens.len(), 128);
            assert_eq!(w.tokens[0], tok.vocab.id(Token::Bos));
            if *split != Split::Train {
                assert_eq!(
                    (w.transpose, w.tempo_scale),
                    (0, 1.0),
                    "only training data is augmented"
                );
            }
        }
    }
    // A transposed copy carries its own key token; tempo scaling changes the tempo class or bins.
    let train = &by_split[&Split::Train];
    let first = &train[0].path;
    let copies: HashSet<Vec<u16>> = train
        .iter()
        .filter(|w| &w.path == first && w.index == 0)
        .map(|w| w.tokens[..10].to_vec())
        .collect();
    assert!(
        copies.len() >= 3,
        "the prefixes of the copies differ: {copies:?}"
    );
}

#[test]
fn the_stage_writes_shards_and_a_versioned_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/corpus/mma");
    // Semantic tokens as cluster writes them.
    let files = find_midi_files(&corpus).unwrap();
    let batch = arrow::record_batch::RecordBatch::try_from_iter(vec![
        (
            "path",
            std::sync::Arc::new(StringArray::from_iter_values(
                files.iter().map(|(r, _)| r.as_str()),
            )) as arrow::array::ArrayRef,
        ),
        (
            "token",
            std::sync::Arc::new(arrow::array::UInt32Array::from_iter_values(
                files.iter().map(|_| 5),
            )) as arrow::array::ArrayRef,
        ),
    ])
    .unwrap();
    amt_stages::table::write_parquet(&root.join("tokens.parquet"), batch).unwrap();
    // collect's table, less one piece, as if collect had rejected it: what
    // prepare trains on is what collect kept, not what the corpus holds.
    let mut collected = amt_stages::collect::scan(&corpus, &Default::default()).unwrap();
    assert!(collected.pieces.len() > 1 && collected.rejects.is_empty());
    let dropped = collected.pieces.remove(0).path;
    amt_stages::collect::table::write_pieces(&root.join("midi.parquet"), &collected.pieces).unwrap();
    // A manifest naming each file's source: its groove, whose variants are one group.
    let groove = |path: &str| path.split('/').next().unwrap().to_owned();
    let manifest: String = files
        .iter()
        .map(|(rel, _)| format!("{}\n", json!({"path": rel, "collection": groove(rel)})))
        .collect();
    std::fs::write(root.join("manifest.jsonl"), manifest).unwrap();
    let ctx = StageContext::new(
        root.to_owned(),
        root.join("scratch"),
        json!({"prepare": {"context": 64}}),
        json!({"pieces": "midi.parquet", "corpus": corpus.to_string_lossy(), "tokens": "tokens.parquet", "manifest": "manifest.jsonl"}),
        json!({"dir": "out"}),
    );
    amt_stages::prepare::run(&ctx).unwrap();
    let vocab: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("out/vocab.json")).unwrap()).unwrap();
    assert_eq!(vocab["version"], 4);
    assert_eq!(vocab["tokens"].as_array().unwrap().len(), 698);
    let mut rows = 0;
    let mut pieces = HashSet::new();
    let mut split_of_groove: HashMap<String, HashSet<&str>> = HashMap::new();
    for split in ["train", "val", "test"] {
        let file = root.join(format!("out/{split}.parquet"));
        for b in read_parquet(&file).unwrap() {
            let paths = column::<StringArray>(&b, "path", &file).unwrap();
            rows += paths.len();
            pieces.extend(paths.iter().flatten().map(str::to_owned));
            for p in paths.iter().flatten() {
                split_of_groove.entry(groove(p)).or_default().insert(split);
            }
        }
    }
    assert_eq!(pieces.len(), collected.pieces.len());
    // A groove's variants are held out together; split by path, some would not be.
    assert!(split_of_groove.values().all(|s| s.len() == 1), "{split_of_groove:?}");
    let used: HashSet<&str> = split_of_groove.values().flatten().copied().collect();
    assert_eq!(used.len(), 3, "grooves go to every split");
    let by_path_crosses = split_of_groove.keys().any(|g| {
        let splits: HashSet<Split> = files
            .iter()
            .filter(|(rel, _)| &groove(rel) == g)
            .map(|(rel, _)| split_of(rel, 0, 0.1, 0.1))
            .collect();
        splits.len() > 1
    });
    assert!(by_path_crosses, "the check above would pass without groups");
    assert!(!pieces.contains(&dropped), "{dropped} was not in collect's table");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("out/prepare.json")).unwrap()).unwrap();
    assert_eq!(
        rows as u64,
        summary["windows"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>()
    );
    assert!(
        std::fs::read_to_string(root.join("out/vocab.json"))
            .unwrap()
            .contains("\"Semantic_5\"")
    );
}

#[test]
fn windows_do_not_depend_on_how_many_pieces_a_round_holds() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/corpus");
    let tok = Tokenizer::new(Config::default());
    let params = PrepareParams {
        context: 64,
        transpose: vec![2],
        ..PrepareParams::default()
    };
    let files = &find_midi_files(&corpus).unwrap()[..40];
    let run = |round| {
        let mut windows = Vec::new();
        let summary = amt_stages::prepare::prepare_each(
            files,
            &HashMap::new(),
            &HashMap::new(),
            &params,
            &tok,
            round,
            &mut |split, w| {
                windows.push((split, w));
                Ok(())
            },
        )
        .unwrap();
        (windows, summary)
    };
    let (one_round, summary) = run(1000);
    let (rounds_of_three, summary_3) = run(3);
    assert_eq!(one_round, rounds_of_three);
    assert_eq!(summary, summary_3);
    assert_eq!(one_round.len(), 40);
}
