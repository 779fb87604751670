#!/usr/bin/env bash
# The Lakh-size scaling benchmark (BENCHMARKS.md "Lakh scale"). For each size
# it builds a corpus of that many distinct, valid MIDI files from the shared
# corpus (stages/examples/scale_corpus.rs, seed 1), runs collect → describe →
# embed → cluster → prepare with amt (each stage's wall time and peak memory
# come from the ledger) and one epoch of train's data loading, and, at the
# sizes in AMT_SCALE_PEERS_AT, the Python peers on the same work with the same
# threads (scripts/scale_peers.py). Then it prints the tables and draws the
# log-log plots into docs/benchmarks/.
#   AMT_SCALE_SIZES     default "1000 10000 100000"
#   AMT_SCALE_PEERS_AT  default "10000 100000"; empty: no peers
#   AMT_SCALE_DIR       where corpora and projects go (default $AMT_HOME/scale; about 2 GB at 100k)
#   AMT_SHARED          the shared data (default ../shared beside the clone)
#   AMT_SCALE_PROFILE   release (default; the figures) or debug (a quick check of the script)
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
ensure_rust
ensure_torch
ensure_venv bench
ensure_venv ref
sizes=${AMT_SCALE_SIZES:-"1000 10000 100000"}
peers_at=" ${AMT_SCALE_PEERS_AT-10000 100000} "
shared=${AMT_SHARED:-$AMT_REPO/../shared}
work=${AMT_SCALE_DIR:-$AMT_HOME/scale}
threads=2
[ -f "$shared/corpus/manifest.jsonl" ] || { echo "error: no corpus/manifest.jsonl under $shared" >&2; exit 2; }
cd "$AMT_REPO"
profile=${AMT_SCALE_PROFILE:-release}
cargo build --locked -q --profile "$([ "$profile" = debug ] && echo dev || echo release)" \
    -p amt -p amt-stages --bins --examples
bin="${CARGO_TARGET_DIR:-$AMT_REPO/target}/$profile"
model=$(readlink -f models/all-MiniLM-L6-v2)
mkdir -p "$work"
results="$work/results.jsonl"
: > "$results"
for n in $sizes; do
    project="$work/$n"
    if [ ! -f "$project/data/corpus/manifest.jsonl" ]; then
        log "building a corpus of $n files"
        rm -rf "$project/data/corpus"
        "$bin/examples/scale_corpus" "$shared/corpus" "$project/data/corpus" "$n" 1
    fi
    mkdir -p "$project/models"
    ln -sfn "$model" "$project/models/all-MiniLM-L6-v2"
    cat > "$project/amt.toml" <<'TOML'
# scripts/scale.sh: amt's stages up to prepare on a generated corpus.
[params]
collect.max_file_mib = 64
describe.sources = ["captions"]
describe.captions.seed = 0
embed.pooling = "mean"
embed.batch_size = 32
cluster.k_min = 2
cluster.k_max = 10
cluster.seed = 0
prepare.context = 256

[stages.collect]
builtin = "collect"
params = ["collect"]
cpus = 2
deps = { corpus = "data/corpus" }
outs = { dir = "artifacts/collect" }

[stages.describe]
builtin = "describe"
params = ["describe"]
cpus = 2
deps = { pieces = "artifacts/collect/midi.parquet", manifest = "data/corpus/manifest.jsonl" }
outs = { dir = "artifacts/texts" }

[stages.embed]
builtin = "embed"
params = ["embed"]
cpus = 2
deps = { texts = "artifacts/texts/texts.parquet", model = "models/all-MiniLM-L6-v2" }
outs = { dir = "artifacts/embed" }

[stages.cluster]
builtin = "cluster"
params = ["cluster"]
cpus = 2
deps = { embeddings = "artifacts/embed/embeddings.parquet", info = "artifacts/embed/embed.json" }
outs = { dir = "artifacts/cluster" }

[stages.prepare]
builtin = "prepare"
params = ["prepare"]
cpus = 2
deps = { pieces = "artifacts/collect/midi.parquet", corpus = "data/corpus", tokens = "artifacts/cluster/tokens.parquet" }
outs = { dir = "artifacts/prepare" }
TOML
    # Every stage gets both cores (cpus = 2), as the peers get two threads or
# processes. A fresh cache each time: every stage runs, none is restored.
    rm -rf "$project/cache" "$project/artifacts"
    log "amt on $n files"
    "$bin/amt" -C "$project" run prepare --no-remote
    "$bin/amt" -C "$project" runs --stages --json | "$bin/examples/scale" ledger "$n" >> "$results"
    "$bin/examples/scale" epoch "$project/artifacts/prepare" "$n" >> "$results"
    # collect again, in one process as the peers are clocked (no stage start).
    # (collect's own summary goes to stdout too: keep only the result line).
    RAYON_NUM_THREADS=$threads AMT_CPUS=$threads \
        "$bin/examples/scale" collect "$project" "$n" | grep '^{"size"' >> "$results"
    if [[ "$peers_at" == *" $n "* ]]; then
        log "the Python peers on $n files"
        "$bin/examples/scale" export "$project/artifacts/texts/texts.parquet" \
            "$project/artifacts/embed/embeddings.parquet" "$project/peers"
        py_bench="$AMT_HOME/venv-bench/bin/python" py_ref="$AMT_HOME/venv-ref/bin/python"
        "$py_bench" scripts/scale_peers.py parse "$project/data/corpus" "$n" "$threads" >> "$results"
        "$py_bench" scripts/scale_peers.py tokenize "$project/data/corpus" "$n" "$threads" >> "$results"
        "$py_ref" scripts/scale_peers.py embed "$project/peers" "$model" "$n" "$threads" >> "$results"
        "$py_ref" scripts/scale_peers.py cluster "$project/peers" "$n" "$threads" >> "$results"
    fi
done
"$bin/examples/scale" report "$results" docs/benchmarks
log "results in $results; plots in docs/benchmarks/scale-*.png"
