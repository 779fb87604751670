#!/usr/bin/env bash
# The main job: build amt and run the demo pipeline on the bundled corpus.
# Safe to repeat; a second run is a no-op. Arguments name the stages to run
# instead of `evaluate` (the last stage, so by default everything it needs).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_torch
# `amt serve`, `amt render` and `amt generate --wav` play music through a General MIDI SoundFont.
ensure_apt timgm6mb-soundfont
log "building amt (release)"
cargo build --release --locked --workspace --manifest-path "$AMT_REPO/Cargo.toml"
log "running the pipeline: amt run ${*:-evaluate}"
cd "$AMT_REPO"
"$CARGO_TARGET_DIR/release/amt" run "${@:-evaluate}"
echo
echo "generated MIDI: $AMT_REPO/artifacts/generate/*.mid (prompts: demo/prompts.txt)"
echo "report:         $AMT_REPO/artifacts/evaluate/report.md (metrics.json, pieces.parquet)"
echo "model:          $AMT_REPO/artifacts/train (Hugging Face export in hf/)"
echo "more music:     amt generate --text \"a calm waltz for piano in F major\" --out waltz.mid --wav"
echo "the studio:     amt serve   (then open http://127.0.0.1:8800/ to write, hear and watch)"
echo
echo "amt is in $CARGO_TARGET_DIR/release; put it on your PATH with:"
echo "  export PATH=\"$CARGO_TARGET_DIR/release:\$PATH\""
