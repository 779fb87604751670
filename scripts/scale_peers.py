"""The Python peers of scripts/scale.sh, each on the same work as an amt stage
and with the same number of threads. Prints one result line (JSON) per run:
{"size", "stage", "who", "seconds", "peak_rss_kb"}; peak memory is the
process's plus its largest worker's (getrusage cannot sum the workers).

  parse CORPUS SIZE THREADS       symusic.Score(path) for every file (amt: collect)
  tokenize CORPUS SIZE THREADS    miditok REMI on a symusic Score (amt: prepare)
  embed DIR MODEL SIZE THREADS    sentence-transformers on DIR/texts.jsonl (amt: embed)
  cluster DIR SIZE THREADS        scikit-learn KMeans for k = 2..10 with the silhouette of a
                                  2000-point sample, as amt's cluster searches k (amt: cluster)
"""
import json
import multiprocessing
import os
import resource
import sys
import time


def peak_rss_kb():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own + children


def midi_files(root):
    out = []
    for folder, _, names in os.walk(root):
        out.extend(os.path.join(folder, n) for n in names if n.lower().endswith((".mid", ".midi")))
    return sorted(out)


def parse_one(path):
    import symusic

    try:
        symusic.Score(path)
        return 1
    except Exception:
        return 0


_TOKENIZER = None


def tokenize_one(path):
    global _TOKENIZER
    import miditok
    import symusic

    if _TOKENIZER is None:
        config = miditok.TokenizerConfig(use_programs=True, use_tempos=True, use_time_signatures=True)
        _TOKENIZER = miditok.REMI(config)
    try:
        return len(_TOKENIZER.encode(symusic.Score(path)))
    except Exception:
        return 0


def pool_map(fn, items, threads):
    with multiprocessing.Pool(threads) as pool:
        return pool.map(fn, items, chunksize=64)


def emit(size, stage, who, seconds):
    print(json.dumps({"size": size, "stage": stage, "who": who, "seconds": seconds,
                      "peak_rss_kb": peak_rss_kb()}), flush=True)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode in ("parse", "tokenize"):
        corpus, size, threads = args[0], int(args[1]), int(args[2])
        files = midi_files(corpus)
        start = time.perf_counter()
        if mode == "parse":
            ok = sum(pool_map(parse_one, files, threads))
            who = "symusic 0.6.0 Score(path)"
        else:
            ok = sum(1 for n in pool_map(tokenize_one, files, threads) if n)
            who = "miditok 3.1.0 REMI"
        seconds = time.perf_counter() - start
        print(f"{mode}: {ok} of {len(files)} files", file=sys.stderr)
        emit(size, "collect" if mode == "parse" else "prepare", who, seconds)
    elif mode == "embed":
        folder, model, size, threads = args[0], args[1], int(args[2]), int(args[3])
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        texts = [json.loads(line) for line in open(os.path.join(folder, "texts.jsonl")) if line.strip()]
        start = time.perf_counter()
        st = SentenceTransformer(model, device="cpu")
        st.encode(texts, batch_size=32, normalize_embeddings=True)
        emit(size, "embed", "sentence-transformers 5.1.2", time.perf_counter() - start)
    elif mode == "cluster":
        folder, size, threads = args[0], int(args[1]), int(args[2])
        import numpy as np
        from threadpoolctl import threadpool_limits
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score

        x = np.fromfile(os.path.join(folder, "embeddings.f32"), dtype="<f4").reshape(-1, 384)
        start = time.perf_counter()
        with threadpool_limits(threads):
            for k in range(2, 11):
                km = KMeans(n_clusters=k, n_init=10, max_iter=300, tol=1e-4, random_state=0,
                            algorithm="lloyd").fit(x)
                silhouette_score(x, km.labels_, sample_size=min(2000, len(x)), random_state=0)
        emit(size, "cluster", "scikit-learn 1.9.1", time.perf_counter() - start)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
