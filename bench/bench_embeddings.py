#!/usr/bin/env python
"""Embedding back-ends and the embedding-similarity scorer on ../shared/data/pool-en.

1. Throughput: docs/s of each back-end on the same 2,000 pool records (``numpy.random.default_rng(seed).choice``,
   sorted), texts in memory, one process, after a warm-up batch. MiniLM runs with 1 torch thread (docs/s per core)
   and with every core; the static model runs in one process (numpy + the tokenizers library).
2. Selection quality: the scorer is fitted on targets/news.target.parquet and scores a deterministic subsample of
   the pool (default 20,000 of 93,695 records; MiniLM takes about half an hour for it on 2 cores) and, for the static
   back-end, the full pool. The top 5% by each column is compared with the pool's ``domain`` column: precision (share
   of news in the selection) and recall (share of the subsample's news selected). Each column is scored without and
   with a background (a random 5,000 records of the scored pool, ``remove_components=1``). For reference, thresher's
   DSIR (``method="dsir"``, top-k, default options) on the same records and budget.

Pool embeddings are cached with :class:`thresher.embeddings.EmbeddingStore` (``--cache-dir``, default the user cache),
so a second run only re-times the throughput part. The static models are distilled on first use (timed).

    pip install -e ".[embed]"
    python bench/bench_embeddings.py                       # -> bench/results/embeddings.md and embeddings.json
    python bench/bench_embeddings.py --n-pool 5000 --static-dims 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.embeddings import EmbeddingStore, SentenceTransformerBackend, StaticBackend, cache_dir, embed_texts
from thresher.io.sources import file_fingerprint
from thresher.scorers.similarity import EmbeddingSimilarityScorer

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
BATCH = 1024


def sample_rows(n_rows: int, n: int, seed: int) -> np.ndarray:
    """Sorted row indices of a deterministic sample (all rows if n >= n_rows)."""
    if n >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, n, replace=False))


def throughput(backend, texts: list[str]) -> dict:
    backend.encode(texts[:16])  # load the model, warm up
    start = time.perf_counter()
    backend.encode(texts)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "docs_per_s": round(len(texts) / seconds, 1)}


def embed_pool(backend, texts: pa.Array, label: str, args: argparse.Namespace) -> tuple[np.ndarray, float]:
    """The pool matrix through the embedding cache, and the seconds it took (0 if all cached)."""
    key = json.dumps({"pool": file_fingerprint(str(args.pool)), "label": label, "records": len(texts),
                      "seed": args.seed, "batch": BATCH})
    store = EmbeddingStore(args.cache_dir, backend, key)
    start = time.perf_counter()
    batches = (texts.slice(i, BATCH) for i in range(0, len(texts), BATCH))
    matrix = np.concatenate(list(embed_texts(backend, batches, store, progress=True, total=len(texts))))
    return matrix, time.perf_counter() - start


def quality(backend, pool_matrix: np.ndarray, target_matrix: np.ndarray, domains: np.ndarray, seed: int) -> list:
    news = domains == "news"
    budget = int(round(0.05 * len(domains)))
    background = pool_matrix[sample_rows(len(pool_matrix), 5000, seed)]
    rows = []
    for with_bg in (False, True):
        scorer = EmbeddingSimilarityScorer(backend).fit_embeddings(target_matrix, background if with_bg else None)
        cols = {}
        for start in range(0, len(pool_matrix), 8192):
            for name, values in scorer.score_embeddings(pool_matrix[start:start + 8192]).items():
                cols.setdefault(name, []).append(values)
        for name, parts in cols.items():
            top = np.argsort(-np.concatenate(parts), kind="stable")[:budget]
            rows.append({"column": name, "background": with_bg, "precision": round(float(news[top].mean()), 3),
                         "recall": round(float(news[top].sum() / max(news.sum(), 1)), 3), "n_news": int(news.sum())})
    return rows


def dsir_reference(table: pa.Table, target: Path, domains: np.ndarray) -> dict:
    """thresher's DSIR, top-k at the same budget, on the same records."""
    import thresher as th

    with tempfile.TemporaryDirectory() as tmp:
        pool_path = Path(tmp) / "pool.parquet"
        pq.write_table(table.select(["id", "text", "domain"]), pool_path)
        budget = int(round(0.05 * len(domains)))
        run = th.select(str(pool_path), target=str(target), method="dsir", selector="topk", budget=budget,
                        out=Path(tmp) / "run", workers=1)
        selected = set(run.selected_ids())
    is_news = np.array([i in selected for i in table["id"].to_pylist()])
    news = domains == "news"
    return {"precision": round(float(news[is_news].mean()), 3),
            "recall": round(float(news[is_news].sum() / news.sum()), 3), "n_news": int(news.sum())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pool", type=Path, default=DATA / "pool-en" / "pool.parquet")
    p.add_argument("--target", type=Path, default=DATA / "targets" / "news.target.parquet")
    p.add_argument("--n-throughput", type=int, default=2000)
    p.add_argument("--n-pool", type=int, default=20_000, help="pool subsample scored by every back-end")
    p.add_argument("--static-dims", default="256,128", help="PCA dims of the distilled static models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", type=Path, default=cache_dir() / "embeddings")
    p.add_argument("--out", type=Path, default=HERE / "results" / "embeddings.json")
    p.add_argument("--render", action="store_true", help="only rewrite the Markdown from the JSON of --out")
    args = p.parse_args()
    if args.render:
        md = render(json.loads(args.out.read_text()))
        args.out.with_suffix(".md").write_text(md)
        print(md)
        return

    table = pq.read_table(args.pool, columns=["id", "text", "domain"])
    target_texts = pq.read_table(args.target, columns=["text"])["text"].to_pylist()
    thr_texts = table["text"].take(pa.array(sample_rows(len(table), args.n_throughput, args.seed))).to_pylist()
    sub = table.take(pa.array(sample_rows(len(table), args.n_pool, args.seed)))
    cores = len(os.sched_getaffinity(0))
    result: dict = {"machine": {"cores": cores, "cpu": platform.processor() or platform.machine(),
                                "load_avg_at_start": os.getloadavg()},
                    "versions": {k: version(k) for k in ("torch", "sentence-transformers", "model2vec", "numpy")},
                    "pool": str(args.pool), "target": str(args.target), "n_target": len(target_texts),
                    "n_throughput": len(thr_texts), "n_pool_subsample": len(sub), "seed": args.seed,
                    "throughput": [], "quality": [], "distill": []}

    backends: list[tuple[str, object, pa.Table]] = []
    for dims in [int(d) for d in args.static_dims.split(",") if d]:
        backend = StaticBackend(pca_dims=dims)
        start = time.perf_counter()
        model_dir = backend.model_dir()
        meta = json.loads((model_dir / "thresher.json").read_text())
        result["distill"].append({"pca_dims": dims, "seconds_this_run": round(time.perf_counter() - start, 1),
                                  "distill_seconds": meta["distill_seconds"],
                                  "model_mb": round((model_dir / "model.safetensors").stat().st_size / 1e6, 1)})
        result["throughput"].append({"backend": f"static-{dims}", "threads": "1 process",
                                     **throughput(backend, thr_texts)})
        backends.append((f"static-{dims}", backend, table if dims == 256 else sub))
        if dims == 256 and len(sub) < len(table):
            backends.append((f"static-{dims}", backend, sub))
    for threads in (1, cores):
        backend = SentenceTransformerBackend(threads=threads)
        result["throughput"].append({"backend": "minilm (max_seq_length 256)", "threads": threads,
                                     **throughput(backend, thr_texts)})
    backends.append(("minilm", SentenceTransformerBackend(threads=cores), sub))

    for label, backend, records in backends:
        domains = np.array(records["domain"].to_pylist())
        pool_matrix, seconds = embed_pool(backend, records["text"], label, args)
        target_matrix = backend.encode(target_texts)
        for row in quality(backend, pool_matrix, target_matrix, domains, args.seed):
            result["quality"].append({"backend": label, "records": len(records), **row,
                                      "embed_seconds": round(seconds, 1)})
    for records in ([sub, table] if len(sub) < len(table) else [table]):
        result["quality"].append({"backend": "dsir (thresher, top-k)", "records": len(records), "column": "dsir",
                                  "background": None,
                                  **dsir_reference(records, args.target, np.array(records["domain"].to_pylist()))})
    result["machine"]["load_avg_at_end"] = os.getloadavg()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    md = render(result)
    args.out.with_suffix(".md").write_text(md)
    print(md)


def render(r: dict) -> str:
    lines = [f"Pool: {r['pool']} ({r['n_pool_subsample']:,}-record subsample, seed {r['seed']}); target "
             f"{r['target']} ({r['n_target']} records); {r['machine']['cores']} cores, load average at start "
             f"{r['machine']['load_avg_at_start'][0]:.1f} (other jobs shared the machine).", "",
             "Throughput on the same {:,} pool records (texts in memory, one process):".format(r["n_throughput"]), "",
             "| backend | threads | seconds | docs/s |", "|---|---:|---:|---:|"]
    lines += [f"| {t['backend']} | {t['threads']} | {t['seconds']} | {t['docs_per_s']:,} |" for t in r["throughput"]]
    lines += ["", "Static model distillation from MiniLM (model2vec.distill, once, then cached):", "",
              "| pca_dims | distill s | model MB |", "|---:|---:|---:|"]
    lines += [f"| {d['pca_dims']} | {d['distill_seconds']} | {d['model_mb']} |" for d in r["distill"]]
    lines += ["", "Top 5% by score vs the pool's domain column (news target). Background: a random 5,000 of the "
              "scored records, mean and top principal component removed (`remove_components=1`). The best possible "
              "precision is the pool's news count / budget (0.727 on the subsample, 0.729 on the full pool).", "",
              "| backend | records | column | background | precision | recall |", "|---|---:|---|---|---:|---:|"]
    for q in r["quality"]:
        bg = "" if q["background"] is None else ("yes" if q["background"] else "no")
        lines.append(f"| {q['backend']} | {q['records']:,} | {q['column']} | {bg} | {q['precision']:.3f} | "
                     f"{q['recall']:.3f} |")
    lines += ["", "Notes.", "",
              "- Throughput was measured while other jobs shared the 2 cores (see the load average above), so the "
              "absolute docs/s are pessimistic and the static-128 vs static-256 gap is noise: static encoding time "
              "is tokenization, not the vector width. MiniLM's cost grows with max_seq_length (256 here).",
              "- Static distillation time is one forward pass of MiniLM per vocabulary token (29,525), dominated by "
              "CPU load; re-distilling (other thread counts included) gave bit-identical models.",
              "- Without a background the static model barely separates long English prose (precision 0.28-0.29); "
              "with one it reaches 0.47-0.50. MiniLM also gains (0.41 -> 0.54 centroid). The remaining errors are "
              "mostly political speeches, topically close to news. On this target thresher's DSIR (hashed n-grams "
              "vs the pool) is still ahead; embeddings are not a replacement for it here."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
