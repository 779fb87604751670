#!/usr/bin/env bash
# Sets up what the tests need and runs the whole test suite. Safe to repeat.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_torch
# The remote-cache tests start moto's S3 server on 127.0.0.1 themselves, and
# the Slurm tests a single-node cluster (munged, slurmctld, slurmd) the same way.
ensure_venv moto
ensure_apt slurm-wlm munge
# The studio's tests render audio with a General MIDI SoundFont and drive the
# page in headless chromium through chromedriver.
ensure_apt timgm6mb-soundfont chromium chromium-driver
export AMT_MOTO_SERVER="$AMT_HOME/venv-moto/bin/moto_server"
cd "$AMT_REPO"
# The tests run amt as users do, and amt runs its sibling binaries
# (amt-stage, amt-generate, amt-studio) from beside itself: `cargo test`
# builds only the binaries of packages with integration tests, so build all
# (with the tests, so that dev-dependencies' features are the same and
# nothing is compiled twice).
log "building the workspace"
cargo build --workspace --locked --bins --tests
log "running the tests"
cargo test --workspace --locked --no-fail-fast "$@"
# The same parity tests on the larger shared corpus, when it is beside the clone.
shared=${AMT_SHARED:-$AMT_REPO/../shared}
if [ -f "$shared/reference/corpus_features.parquet" ]; then
    "$AMT_REPO/scripts/parity.sh" "$shared"
fi
