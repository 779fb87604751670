#!/usr/bin/env bash
# Sets up what the tests need and runs the whole test suite. Safe to repeat.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_torch
cd "$AMT_REPO"
log "running the tests"
cargo test --workspace --locked --no-fail-fast "$@"
