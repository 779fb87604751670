#!/usr/bin/env bash
# The long run of tests/differential.rs: random pipelines and edit sequences,
# each step compared with a from-scratch build. CI runs 100 sequences; this
# runs ${1:-2000} (about a second each: the time goes to running amt and sh,
# so a release build is no faster). Safe to repeat.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_torch
cd "$AMT_REPO"
log "differential test: ${1:-2000} sequences"
AMT_DIFF_CASES="${1:-2000}" cargo test --locked -p amt --test differential -- --nocapture
