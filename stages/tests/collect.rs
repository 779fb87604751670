//! collect and describe on real files of the corpus (see `common`) and on broken
//! files made here, with snapshots of metadata and captions.

mod common;

use std::collections::HashMap;
use std::fmt::Write;
use std::path::Path;

use amt_stages::StageContext;
use amt_stages::collect::table::read_pieces;
use amt_stages::collect::{self, Params, Piece};
use amt_stages::describe::captions::{CaptionParams, Captioner};
use amt_stages::manifest::read_manifest;
use amt_stages::table::{column, read_parquet};
use arrow::array::{Array, StringArray};
use serde_json::json;

/// A few real pieces of different kinds: a chorale, a jig, an MMA groove with drums.
const SAMPLES: &[&str] = &[
    "classical/Johann Sebastian Bach/Chorale BWV 1.6.mid",
    "folk/Traditional (Ireland)/A Blast of Wind.mid",
    "mma/MMA BossaNova/BossaNova in G-sharp minor - 106 BPM - im6-iim7b5-V7-im6 - 24 bars.mid",
];

fn copy_samples(into: &Path) -> Vec<String> {
    let corpus = common::corpus();
    let mut found = Vec::new();
    for rel in SAMPLES {
        std::fs::create_dir_all(into.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(corpus.join(rel), into.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        found.push((*rel).to_owned());
    }
    found
}

fn describe_piece(p: &Piece) -> String {
    let f = &p.features;
    let mut s = String::new();
    writeln!(s, "{}", p.path).unwrap();
    writeln!(
        s,
        "  artist {:?}, title {:?}, {} bytes",
        p.artist, p.title, p.file_bytes
    )
    .unwrap();
    writeln!(
        s,
        "  format {}, ticks/beat {:?}, tracks {}",
        f.format, f.ticks_per_beat, f.n_tracks
    )
    .unwrap();
    writeln!(
        s,
        "  duration {:.3} s, tempo first {:.3} mean {:.3} BPM, {} tempo events",
        f.duration_s, f.first_tempo_bpm, f.mean_tempo_bpm, f.n_tempo_changes
    )
    .unwrap();
    writeln!(
        s,
        "  time signatures {:?}, key signatures {:?}",
        f.time_signatures, f.key_signatures
    )
    .unwrap();
    writeln!(
        s,
        "  instruments {:?}, drums {}",
        f.instrument_names(),
        f.has_drums
    )
    .unwrap();
    writeln!(
        s,
        "  notes {}, pitch {:?}, velocity {:?}",
        f.n_notes,
        f.pitch_range,
        f.velocity
            .map(|(m, sd)| (format!("{m:.3}"), format!("{sd:.3}")))
    )
    .unwrap();
    writeln!(
        s,
        "  density {:?}/s, key estimate {:?}",
        f.note_density.map(|d| format!("{d:.3}")),
        f.estimated_key.map(|(k, r)| (k.name(), format!("{r:.3}")))
    )
    .unwrap();
    s
}

#[test]
fn metadata_of_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let picked = copy_samples(dir.path());
    let collected = collect::scan(dir.path(), &Params::default()).unwrap();
    assert!(collected.rejects.is_empty());
    assert_eq!(
        collected
            .pieces
            .iter()
            .map(|p| p.path.clone())
            .collect::<Vec<_>>(),
        {
            let mut p = picked.clone();
            p.sort();
            p
        }
    );
    let text: String = collected.pieces.iter().map(describe_piece).collect();
    insta::assert_snapshot!("metadata", text);
}

/// A valid format-0 file with one note.
fn one_note() -> Vec<u8> {
    let track = [
        0x00, 0x90, 60, 90, 0x60, 0x80, 60, 0, 0x00, 0xFF, 0x2F, 0x00,
    ];
    let mut b = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk".to_vec();
    b.extend((track.len() as u32).to_be_bytes());
    b.extend(track);
    b
}

#[test]
fn bad_files_are_rejected_with_a_precise_reason_and_never_stop_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |rel: &str, bytes: &[u8]| {
        std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
        std::fs::write(root.join(rel), bytes).unwrap();
    };
    write("A/good.mid", &one_note());
    write("A/Upper.MID", &one_note());
    write("A/long.midi", &one_note());
    write("A/notes.txt", b"not a candidate");
    write("B/empty.mid", b"");
    write("B/text.mid", b"hello, I am not MIDI at all");
    let good = one_note();
    write("B/truncated.mid", &good[..good.len() - 4]);
    let mut corrupt = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x08".to_vec();
    corrupt.extend([0x00, 0x3C, 0x40, 0x00, 0x00, 0xFF, 0x2F, 0x00]); // a data byte where a status byte must be
    write("B/corrupt.mid", &corrupt);
    write(
        "B/silent.mid",
        b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x04\x00\xFF\x2F\x00",
    );
    write("B/big.mid", &vec![0u8; 3 << 20]);

    let collected = collect::scan(root, &Params { max_file_mib: 2.0 }).unwrap();
    let good: Vec<&str> = collected.pieces.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(good, ["A/Upper.MID", "A/good.mid", "A/long.midi"]);
    let rejects: String = collected
        .rejects
        .iter()
        .map(|r| format!("{} [{}] {}\n", r.path, r.kind, r.reason))
        .collect();
    insta::assert_snapshot!("rejects", rejects);
}

#[test]
fn a_scan_in_rounds_finds_what_a_scan_at_once_finds() {
    let dir = tempfile::tempdir().unwrap();
    copy_samples(dir.path());
    std::fs::write(dir.path().join("bad.mid"), b"MThd").unwrap();
    let scan = |round| {
        let (mut pieces, mut rejects, mut rounds) = (Vec::new(), Vec::new(), 0);
        collect::scan_each(dir.path(), &Params::default(), round, &|_, _| {}, &mut |p, r| {
            pieces.extend(p.into_iter().map(|p| describe_piece(&p)));
            rejects.extend(r);
            rounds += 1;
            Ok(())
        })
        .unwrap();
        (pieces, rejects, rounds)
    };
    let (all, all_rejects, one) = scan(100);
    let (by_one, by_one_rejects, four) = scan(1);
    assert_eq!((one, four), (1, 4));
    assert_eq!(all, by_one);
    assert_eq!(all_rejects, by_one_rejects);
    assert_eq!((all.len(), all_rejects.len()), (3, 1));
}

#[test]
fn files_off_the_standard_that_other_readers_accept_are_kept_with_their_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    std::fs::create_dir_all(&root).unwrap();
    // Two newlines after the last chunk, as in a file of miditok's test set.
    let mut trailing = one_note();
    trailing.extend(b"\n\n");
    std::fs::write(root.join("trailing.mid"), &trailing).unwrap();
    std::fs::write(root.join("clean.mid"), one_note()).unwrap();
    let ctx = StageContext::new(
        dir.path().to_owned(),
        dir.path().join("scratch"),
        json!({}),
        json!({"corpus": root.to_string_lossy()}),
        json!({"dir": "out"}),
    );
    amt_stages::collect::run(&ctx).unwrap();
    let table = &read_parquet(&dir.path().join("out/midi.parquet")).unwrap()[0];
    let paths = column::<StringArray>(table, "path", Path::new("midi.parquet")).unwrap();
    let warnings = table
        .column_by_name("warnings")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::ListArray>()
        .unwrap();
    let by_path: HashMap<&str, Vec<String>> = (0..table.num_rows())
        .map(|i| {
            let list = warnings.value(i);
            let list = list.as_any().downcast_ref::<StringArray>().unwrap();
            (
                paths.value(i),
                list.iter().map(|w| w.unwrap().to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(by_path["clean.mid"], Vec::<String>::new());
    assert_eq!(
        by_path["trailing.mid"],
        vec![format!(
            "trailing-bytes: 2 bytes after the declared tracks, at byte {}, ignored",
            one_note().len()
        )]
    );
}

#[test]
fn the_stages_write_their_tables_and_captions_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let repo_corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/corpus");
    let ctx = |params: serde_json::Value, deps: serde_json::Value, outs: serde_json::Value| {
        StageContext::new(root.to_owned(), root.join("scratch"), params, deps, outs)
    };
    let corpus = repo_corpus.to_string_lossy().into_owned();
    let collect_ctx = ctx(
        json!({}),
        json!({"corpus": corpus}),
        json!({"dir": "out/collect"}),
    );
    amt_stages::collect::run(&collect_ctx).unwrap();
    let pieces = read_pieces(&root.join("out/collect/midi.parquet")).unwrap();
    assert_eq!(pieces.len(), 320, "the bundled demo corpus");
    let rejects = read_parquet(&root.join("out/collect/rejects.parquet")).unwrap();
    assert_eq!(rejects.iter().map(|b| b.num_rows()).sum::<usize>(), 0);

    let manifest = repo_corpus
        .join("manifest.jsonl")
        .to_string_lossy()
        .into_owned();
    let describe_ctx = ctx(
        json!({"describe": {"captions": {"seed": 3}}}),
        json!({"pieces": "out/collect/midi.parquet", "manifest": manifest}),
        json!({"dir": "out/texts"}),
    );
    amt_stages::describe::run(&describe_ctx).unwrap();
    let texts = &read_parquet(&root.join("out/texts/texts.parquet")).unwrap()[0];
    let path = Path::new("texts.parquet");
    let text = column::<StringArray>(texts, "text", path).unwrap();
    assert_eq!(texts.num_rows(), 320);
    assert_eq!(text.null_count(), 0, "captions describe every piece");

    // A few captions, one per kind of piece, as a reviewable snapshot.
    let labels = read_manifest(&repo_corpus.join("manifest.jsonl")).unwrap();
    let captioner = Captioner::new(&CaptionParams {
        seed: 3,
        ..CaptionParams::default()
    })
    .unwrap();
    let by_path: HashMap<&str, usize> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (p.path.as_str(), i))
        .collect();
    let mut sample = String::new();
    for prefix in [
        "classical/",
        "folk/Traditional (Ireland)",
        "folk/Traditional (Aird",
        "mma/MMA Tango",
        "mma/MMA Swing",
    ] {
        let p = pieces.iter().find(|p| p.path.starts_with(prefix)).unwrap();
        let caption = captioner.caption(p, labels.get(&p.path));
        assert_eq!(
            text.value(by_path[p.path.as_str()]),
            caption,
            "the stage wrote the same caption"
        );
        writeln!(sample, "{}\n  {caption}", p.path).unwrap();
    }
    insta::assert_snapshot!("captions", sample);
}
