#!/usr/bin/env bash
# Runs the stage tests that compare amt with pretty_midi, mido and muspy on a
# larger corpus in the repository's data layout (corpus/ with manifest.jsonl,
# reference/corpus_features.parquet): by default the shared 3,913-file corpus
# in ../shared beside the clone, or the folder given as $1 or $AMT_SHARED.
# The test suite runs the same tests on the repository's own 320 files.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_torch
data=${1:-${AMT_SHARED:-$AMT_REPO/../shared}}
if [ ! -f "$data/corpus/manifest.jsonl" ] || [ ! -f "$data/reference/corpus_features.parquet" ]; then
    echo "error: no corpus/manifest.jsonl and reference/corpus_features.parquet under $data" >&2
    exit 2
fi
cd "$AMT_REPO"
log "parity checks on $(cd "$data" && pwd)"
AMT_DATA=$(cd "$data" && pwd) cargo test --locked -p amt-stages \
    --test reference --test tokenizer --test evaluate -- --nocapture
