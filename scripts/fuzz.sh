#!/usr/bin/env bash
# Fuzzes amt's MIDI reader against pretty_midi: writes N damaged copies of a few
# corpus files (bit flips, overwrites, truncations, splices, stray bytes; see
# stages/tests/common/mutate.rs), asks pretty_midi which it reads, and fails if
# amt refuses any of those or panics on any file.
#   scripts/fuzz.sh [N [SEED]]   the long run (default 20000 files, seed 7)
#   scripts/fuzz.sh --fixture    rewrites stages/tests/fixtures/fuzz_verdicts.json
#                                (1000 cases of seed 1), which the test suite checks
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_torch
ensure_venv midi-ref
cd "$AMT_REPO"
sources=(
    "classical/Johann Sebastian Bach/Chorale BWV 1.6.mid"
    "folk/Traditional (Ireland)/A Blast of Wind.mid"
    "mma/MMA BossaNova/BossaNova in G-sharp minor - 106 BPM - im6-iim7b5-V7-im6 - 24 bars.mid"
)
fixture=false
if [ "${1:-}" = --fixture ]; then fixture=true; n=1000; seed=1; else n=${1:-20000}; seed=${2:-7}; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --locked -q -p amt-stages --example fuzz
fuzz="${CARGO_TARGET_DIR:-$AMT_REPO/target}/debug/examples/fuzz"
"$fuzz" write "$work/cases" "$seed" "$n" "${sources[@]/#/data/corpus/}"
log "asking pretty_midi about $n damaged files"
"$AMT_HOME/venv-midi-ref/bin/python" scripts/reference/pretty_midi_verdicts.py "$work/cases" "$(nproc)" > "$work/verdicts.txt"
if $fixture; then
    "$AMT_HOME/venv-midi-ref/bin/python" - "$work" "$seed" "${sources[@]}" > "$work/fixture.json" <<'PY'
import json, sys
work, seed, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
digests = [line.split() for line in open(f"{work}/cases/cases.txt")]
verdicts = dict(line.split() for line in open(f"{work}/verdicts.txt"))
cases = [{"digest": d, "pretty_midi": verdicts[name] == "true"} for name, d in digests]
json.dump({"seed": seed, "sources": sources, "cases": cases}, sys.stdout, indent=0)
print()
PY
    mv "$work/fixture.json" stages/tests/fixtures/fuzz_verdicts.json
    log "wrote stages/tests/fixtures/fuzz_verdicts.json"
fi
"$fuzz" check "$work/cases" "$work/verdicts.txt"
