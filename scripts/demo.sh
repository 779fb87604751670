#!/usr/bin/env bash
# The main job: build amt and run the demo pipeline on the bundled corpus.
# Safe to repeat; a second run is a no-op.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_torch
log "building amt (release)"
cargo build --release --locked --workspace --manifest-path "$AMT_REPO/Cargo.toml"
log "running the pipeline"
cd "$AMT_REPO"
"$CARGO_TARGET_DIR/release/amt" run "$@"
echo
echo "MIDI metadata: $AMT_REPO/artifacts/collect/midi.parquet (rejects: rejects.parquet)"
echo "texts:         $AMT_REPO/artifacts/texts/texts.parquet"
echo "report:        $AMT_REPO/artifacts/report.md"
echo "metrics:       $AMT_REPO/artifacts/metrics.json"
