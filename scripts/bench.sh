#!/usr/bin/env bash
# Runs the benchmarks against their peers (DVC, symusic), installed into the venv. Safe to repeat.
# AMT_BENCH_RUNS sets the repetitions per case (default 10 for amt, 3 for DVC).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_torch
ensure_venv bench
export AMT_BENCH_DVC="$AMT_VENV/bin/dvc" AMT_BENCH_PYTHON="$AMT_VENV/bin/python"
cd "$AMT_REPO"
case "${1:-all}" in
    engine) cargo bench --locked -p amt --bench engine -- "${@:2}" ;;
    collect) cargo bench --locked -p amt-stages --bench collect ;;
    all) cargo bench --locked -p amt --bench engine && cargo bench --locked -p amt-stages --bench collect ;;
    *) echo "usage: scripts/bench.sh [engine [CASE…] | collect | all]" >&2; exit 2 ;;
esac
