# Shared, idempotent set-up for the scripts in this folder. Source it.
#
# Everything that outlives a clone lives under $AMT_HOME (default
# ~/.cache/amt): the cargo target dir and the Python venv, so a second clone
# (CI) reuses the build instead of starting from nothing.

set -euo pipefail

AMT_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AMT_HOME=${AMT_HOME:-$HOME/.cache/amt}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$AMT_HOME/target}
AMT_VENV=${AMT_VENV:-$AMT_HOME/venv}
mkdir -p "$AMT_HOME"

log() { if [ -t 2 ]; then printf "\033[1m==> %s\033[0m\n" "$*" >&2; else printf "==> %s\n" "$*" >&2; fi; }

# Debian packages, installed only when missing.
ensure_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
    fi
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || {
        echo "error: cargo not found; install Rust 1.89 or newer (https://rustup.rs)" >&2
        exit 1
    }
    command -v cc >/dev/null 2>&1 || ensure_apt build-essential
}

# A Python venv with the pinned packages of requirements/$1.txt; reinstalls
# only when that file changes.
ensure_venv() {
    local req="$AMT_REPO/requirements/$1.txt"
    command -v python3 >/dev/null 2>&1 || ensure_apt python3
    python3 -c 'import venv, ensurepip' 2>/dev/null || ensure_apt python3-venv
    [ -x "$AMT_VENV/bin/python" ] || { log "creating the venv in $AMT_VENV"; python3 -m venv "$AMT_VENV"; }
    local stamp="$AMT_VENV/.amt-$1-$(sha256sum "$req" | cut -c1-16)"
    if [ ! -e "$stamp" ]; then
        log "installing requirements/$1.txt into the venv"
        "$AMT_VENV/bin/pip" install -q --disable-pip-version-check -r "$req"
        touch "$stamp"
    fi
}
