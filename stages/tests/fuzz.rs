//! Damaged MIDI files: amt never panics on them, and reads every one that
//! pretty_midi reads (the verdicts in `fixtures/fuzz_verdicts.json`, made by
//! `scripts/fuzz.sh --fixture` with pretty_midi 0.2.11).

mod common;

use std::path::Path;

use proptest::prelude::*;
use serde::Deserialize;

#[path = "common/mutate.rs"]
mod mutate;

/// The damaged files start from these (small, of every kind of the corpus).
fn sources() -> Vec<Vec<u8>> {
    let fixture: Fixture = load_fixture();
    fixture
        .sources
        .iter()
        .map(|rel| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../data/corpus")
                .join(rel);
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    seed: u64,
    sources: Vec<String>,
    cases: Vec<Verdict>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Verdict {
    /// blake3 of the case's bytes, first 16 hex digits.
    digest: String,
    /// Whether `pretty_midi.PrettyMIDI` read the file.
    pretty_midi: bool,
}

fn load_fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz_verdicts.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// Parses under `catch_unwind`: `Err` holds the panic message.
fn parse_without_panic(bytes: &[u8]) -> Result<bool, String> {
    std::panic::catch_unwind(|| amt_stages::midi::parse(bytes).is_ok()).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

#[test]
fn amt_reads_every_damaged_file_that_pretty_midi_reads() {
    let fixture = load_fixture();
    let sources = sources();
    let mut refused = Vec::new();
    let mut read_by_both = 0;
    for (i, verdict) in fixture.cases.iter().enumerate() {
        let bytes = mutate::case(&sources, fixture.seed, i as u64);
        let digest = blake3::hash(&bytes).to_hex()[..16].to_owned();
        assert_eq!(
            digest, verdict.digest,
            "case {i} is not the file pretty_midi judged: tests/common/mutate.rs or the \
             sources changed; regenerate the fixture with scripts/fuzz.sh --fixture"
        );
        let ours = parse_without_panic(&bytes).unwrap_or_else(|p| panic!("case {i} panicked: {p}"));
        if verdict.pretty_midi {
            if ours {
                read_by_both += 1;
            } else {
                let err = amt_stages::midi::parse(&bytes).unwrap_err();
                refused.push(format!("case {i}: {err}"));
            }
        }
    }
    assert!(
        refused.is_empty(),
        "pretty_midi reads {} damaged files amt refuses:\n{}",
        refused.len(),
        refused.join("\n")
    );
    // The fixture must exercise both verdicts, or it proves nothing.
    let rejected = fixture.cases.iter().filter(|c| !c.pretty_midi).count();
    assert!(
        read_by_both >= 100 && rejected >= 100,
        "{read_by_both} read, {rejected} rejected"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn damaged_files_never_panic(seed in any::<u64>(), index in 0u64..1_000_000) {
        let bytes = mutate::case(&sources(), seed, index);
        prop_assert!(parse_without_panic(&bytes).is_ok());
    }

    #[test]
    fn arbitrary_bytes_after_a_header_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0".to_vec();
        bytes.extend(body);
        prop_assert!(parse_without_panic(&bytes).is_ok());
    }
}
