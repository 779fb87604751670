#!/usr/bin/env bash
# Runs the benchmarks against their peers (DVC, symusic, sentence-transformers,
# scikit-learn, transformers), installed into venvs. Safe to repeat.
# AMT_BENCH_RUNS sets the repetitions per case (default 10 for amt, 3 for DVC).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_torch
ensure_venv bench
ensure_venv ref
ensure_venv moto
export AMT_MOTO_SERVER="$AMT_HOME/venv-moto/bin/moto_server"
export AMT_BENCH_DVC="$AMT_HOME/venv-bench/bin/dvc" AMT_BENCH_PYTHON="$AMT_HOME/venv-bench/bin/python"
export AMT_BENCH_REF_PYTHON="$AMT_HOME/venv-ref/bin/python"
cd "$AMT_REPO"
case "${1:-all}" in
    engine) cargo bench --locked -p amt --bench engine -- "${@:2}" ;;
    collect) cargo bench --locked -p amt-stages --bench collect ;;
    process) cargo bench --locked -p amt-stages --bench process ;;
    tokenize) cargo bench --locked -p amt-stages --bench tokenize ;;
    model) cargo bench --locked -p amt-stages --bench model ;;
    experiments) cargo bench --locked -p amt --bench experiments ;;
    shares) cargo build --locked --release -p amt-stages --bins; cargo bench --locked -p amt --bench shares ;;
    slurm) ensure_apt slurm-wlm munge; cargo bench --locked -p amt --bench slurm ;;
    studio) ensure_apt timgm6mb-soundfont; cargo build --locked --release --workspace --bins; cargo bench --locked -p amt --bench studio ;;
    all)
        cargo bench --locked -p amt --bench engine
        cargo bench --locked -p amt-stages --bench collect
        cargo bench --locked -p amt-stages --bench process
        cargo bench --locked -p amt-stages --bench tokenize
        cargo bench --locked -p amt-stages --bench model
        cargo bench --locked -p amt --bench experiments
        cargo build --locked --release -p amt-stages --bins
        cargo bench --locked -p amt --bench shares
        ensure_apt slurm-wlm munge
        cargo bench --locked -p amt --bench slurm
        ensure_apt timgm6mb-soundfont
        cargo build --locked --release --workspace --bins
        cargo bench --locked -p amt --bench studio
        ;;
    *) echo "usage: scripts/bench.sh [engine [CASE…] | collect | process | tokenize | model | experiments | shares | slurm | studio | all]" >&2; exit 2 ;;
esac
