//! Deterministic damage to MIDI files, for the fuzz tests (`tests/fuzz.rs`)
//! and the longer run in `scripts/fuzz.sh`: bit flips, byte overwrites,
//! truncations, splices of two files and stray bytes after the end.
//!
//! Case `i` of seed `s` is the same bytes forever: the fuzz fixture stores
//! each case's digest next to pretty_midi's verdict, so changing this file
//! means regenerating the fixture (`scripts/fuzz.sh --fixture`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Case `index` of `seed`: one to three kinds of damage to one source file
/// (two for a splice).
pub fn case(sources: &[Vec<u8>], seed: u64, index: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut bytes = sources[rng.random_range(0..sources.len())].clone();
    for _ in 0..rng.random_range(1..=3) {
        damage(&mut bytes, sources, &mut rng);
    }
    bytes
}

fn damage(bytes: &mut Vec<u8>, sources: &[Vec<u8>], rng: &mut ChaCha8Rng) {
    if bytes.is_empty() {
        bytes.push(rng.random());
        return;
    }
    let at = rng.random_range(0..bytes.len());
    match rng.random_range(0..5) {
        0 => {
            for _ in 0..rng.random_range(1..=8) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => bytes[at] = rng.random(),
        2 => bytes.truncate(at),
        3 => {
            let other = &sources[rng.random_range(0..sources.len())];
            let from = rng.random_range(0..other.len());
            bytes.truncate(at);
            bytes.extend_from_slice(&other[from..]);
        }
        _ => {
            let n = rng.random_range(1..=16);
            bytes.extend((0..n).map(|_| rng.random::<u8>()));
        }
    }
}
