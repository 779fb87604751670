#!/usr/bin/env bash
# Runs the engine benchmark against DVC (installed into the venv). Safe to repeat.
# AMT_BENCH_RUNS sets the repetitions per case (default 10 for amt, 3 for DVC).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_venv bench
export AMT_BENCH_DVC="$AMT_VENV/bin/dvc"
cd "$AMT_REPO"
cargo bench --locked --bench engine -- "$@"
