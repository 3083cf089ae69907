#!/usr/bin/env python
"""Diversity selectors vs top-k vs random on ../shared/data/pool-en, for each target, measured by the same code.

For each target (news, wikipedia, tech_docs) thresher's DCLM-style classifier is fitted on
``targets/<t>.target.parquet`` against a 10,000-record pool sample and scores the whole pool (93,695 records); then
5% (4,685 records) is selected by:

- ``random``: uniform over the whole pool (seed 0; also the KL-reduction baseline);
- ``topk``: the highest classifier scores; ``gumbel``: standardised score as logits at temperature 0.25;
- on the *candidate set* = the top 20% of the pool by classifier score (so diversity is sought among relevant
  records, not over the whole pool): ``random in top 20%``, ``k-center`` (greedy core-set, first pick = best score),
  ``facility`` (facility location on a 32-NN graph, lazy greedy), ``clusters`` (50 k-means clusters fitted on the
  candidates, proportional budgets, best score first within a cluster) and ``quadmix`` (QuaDMix-style sampling with
  those 50 k-means clusters as groups and the classifier score as quality; sharpness 5, threshold 1).

``domain`` is ground truth and is never given to a selector (no quotas by domain). Metrics: target-domain precision,
KL reduction on hashed n-grams (bench_dsir's ``quality``), embedding coverage of the held-out target set
(``targets/<t>.heldout.parquet``) = mean over held-out records of (1 - max cosine to any selected record), lower is
better, and the number of the 100 pool-wide k-means clusters (fitted once on all pool embeddings, seed 0) that the
selection touches. Seconds per selector exclude scoring and embedding (shared by all). Embeddings: thresher's
``static`` back-end (256-d, L2-normalised). Every selection except ``random`` drops records shorter than half the
target's 5th-percentile length (thresher's ``--min-tokens auto``), as bench_scorers.py does.

    pip install -e ".[bench,embed]"
    python bench/bench_diversity.py                  # ~5-8 min on 2 cores
    python bench/bench_diversity.py --targets news

Writes bench/results/diversity.{json,md} (a hand-written "What the numbers say" section already in the .md is kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_dsir import DEFAULT_DATA, PoolFeatures, quality, target_counts  # noqa: E402

from thresher.embeddings import make_backend  # noqa: E402
from thresher.features.hashed_ngrams import HashedNgramFeaturizer  # noqa: E402
from thresher.io.dataset import Dataset  # noqa: E402
from thresher.io.sampling import sample_texts  # noqa: E402
from thresher.scorers.registry import References, get_spec  # noqa: E402
from thresher.selectors.base import Gumbel, Random, TopK  # noqa: E402
from thresher.selectors.budget import Budget  # noqa: E402
from thresher.selectors.diversity import make_diversity_selector, run_diversity_selector  # noqa: E402
from thresher.selectors.kmeans import kmeans  # noqa: E402

BATCH = 4096
#: heading of the hand-written section of diversity.md, kept when the table is regenerated
NOTES = "## What the numbers say"
ENCODE_BATCH = 2048


def encode(backend, texts: list[str]) -> np.ndarray:
    return np.concatenate([backend.encode(texts[s: s + ENCODE_BATCH]) for s in range(0, len(texts), ENCODE_BATCH)])


def coverage(heldout: np.ndarray, selected: np.ndarray) -> float:
    """Mean over held-out rows of 1 - max cosine to any selected row (rows are L2-normalised)."""
    return float(np.mean(1.0 - (heldout @ selected.T).max(axis=1)))


def standardised(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / max(x.std(), 1e-12)


def diversity_selections(X: np.ndarray, scores: np.ndarray, k: int, seed: int,
                         share: float) -> dict[str, tuple[np.ndarray, float]]:
    """label -> (indices into X, seconds) for each diversity selector on the candidate rows X."""
    out = {}
    t = time.perf_counter()
    out[f"random in top {share:.0%}"] = (np.random.default_rng(seed).choice(len(X), k, replace=False),
                                time.perf_counter() - t)
    runs = {
        "k-center (start=score)": ("kcenter", {"seed": seed, "start": "score"}),
        "facility (32-NN, lazy)": ("facility", {"seed": seed, "k_neighbors": 32, "optimizer": "lazy"}),
        "clusters (50, within=score)": ("clusters", {"seed": seed, "n_clusters": 50, "within": "score"}),
    }
    for label, (name, params) in runs.items():
        sel = make_diversity_selector(name, **params)
        t = time.perf_counter()
        out[label] = (run_diversity_selector(sel, k, embeddings=X, scores=scores), time.perf_counter() - t)
        print(f"    {label}: {out[label][1]:.1f}s", file=sys.stderr, flush=True)
    t = time.perf_counter()  # QuaDMix: its own k-means (50 clusters on the candidates) is part of its time
    groups = kmeans(X, 50, seed=seed).labels
    sel = make_diversity_selector("quadmix", seed=seed, sharpness=5.0, threshold=1.0)
    out["quadmix (50 k-means groups)"] = (run_diversity_selector(sel, k, labels=groups, scores=scores),
                                          time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--targets", default="news,wikipedia,tech_docs")
    ap.add_argument("--pool-sample", type=int, default=10_000)
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--candidates", type=float, default=0.20, help="share of the pool, by score, diversity sees")
    ap.add_argument("--clusters", type=int, default=100, help="pool-wide k-means clusters for the coverage count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "diversity.json")
    args = ap.parse_args()
    t_start = time.perf_counter()
    pool_path = args.data / "pool-en" / "pool.parquet"
    pool = PoolFeatures(pool_path)
    n = len(pool.ids)
    k = round(args.fraction * n)
    n_cand = round(args.candidates * n)
    text = pq.read_table(pool_path, columns=["text"])["text"].combine_chunks()
    n_tokens = np.concatenate([p.n_tokens for p in pool.parts])
    sample = sample_texts(Dataset([str(pool_path)]), args.pool_sample, args.seed)["text"].combine_chunks()

    backend = make_backend("static")
    t = time.perf_counter()
    E = encode(backend, text.to_pylist())
    embed_seconds = time.perf_counter() - t
    print(f"embedded {n:,} records in {embed_seconds:.1f}s", file=sys.stderr, flush=True)
    t = time.perf_counter()
    pool_clusters = kmeans(E, args.clusters, seed=args.seed).labels
    kmeans_seconds = time.perf_counter() - t
    print(f"k-means ({args.clusters}) on the pool in {kmeans_seconds:.1f}s", file=sys.stderr, flush=True)

    t = time.perf_counter()
    random_idx = Random().select(None, Budget("count", k), np.ones(n), args.seed)
    random_seconds = time.perf_counter() - t
    random_counts = pool.counts(np.isin(np.arange(n), random_idx))

    rows = []
    for target in args.targets.split(","):
        tpath = args.data / "targets" / f"{target}.target.parquet"
        ttext = pq.read_table(tpath, columns=["text"])["text"].combine_chunks()
        held = encode(backend, pq.read_table(args.data / "targets" / f"{target}.heldout.parquet",
                                             columns=["text"])["text"].to_pylist())
        tcounts = target_counts(tpath, pool.config)
        tlen = HashedNgramFeaturizer(pool.config).transform(ttext).n_tokens
        eligible = n_tokens >= int(np.percentile(tlen, 5) // 2)

        spec = get_spec("classifier")
        t = time.perf_counter()
        scorer = spec.fit_scorer(spec.build(), References(target=ttext, pool_sample=sample))
        scores = np.concatenate([np.asarray(scorer.score(text.slice(s, BATCH))["classifier_logit"], np.float64)
                                 for s in range(0, n, BATCH)])
        score_seconds = time.perf_counter() - t
        print(f"  {target}: classifier fit + score in {score_seconds:.1f}s", file=sys.stderr, flush=True)

        idx = np.flatnonzero(eligible & np.isfinite(scores))
        z = standardised(scores)
        sel: dict[str, tuple[np.ndarray, float]] = {"random": (random_idx, random_seconds)}
        t = time.perf_counter()
        sel["topk"] = (idx[TopK().select(scores[idx], Budget("count", k), np.ones(len(idx)), args.seed)],
                       time.perf_counter() - t)
        t = time.perf_counter()
        logits = standardised(scores[idx]) / 0.25
        sel["gumbel (T=0.25)"] = (idx[Gumbel(temperature=1.0).select(logits, Budget("count", k), np.ones(len(idx)),
                                                                     args.seed)], time.perf_counter() - t)
        cand = idx[np.argsort(-scores[idx], kind="stable")[:n_cand]]
        picks = diversity_selections(E[cand], scores[cand], k, args.seed, args.candidates)
        for label, (local, seconds) in picks.items():
            sel[label] = (cand[local], seconds)

        for label, (chosen, seconds) in sel.items():
            chosen = np.asarray(chosen, dtype=np.int64)
            assert len(np.unique(chosen)) == k, (label, len(np.unique(chosen)))
            q = quality(pool, tcounts, target, [pool.ids[i] for i in chosen], random_counts)
            entry = {"target": target, "selector": label, "seconds": seconds, "precision": q["precision"],
                     "recall": q["recall"], "kl_reduction": q["kl_reduction"],
                     "coverage": coverage(held, E[chosen]),
                     "clusters": int(len(np.unique(pool_clusters[chosen]))),
                     "mean_score_z": float(z[chosen].mean()),
                     "score_seconds": score_seconds}
            rows.append(entry)
            print(f"{target:<10} {label:<30} P={entry['precision']:.3f} KLred={entry['kl_reduction']:.4f} "
                  f"cov={entry['coverage']:.4f} clusters={entry['clusters']} {seconds:.2f}s", flush=True)

    meta = {"pool_records": n, "k": k, "candidates": n_cand, "seed": args.seed, "pool_sample": args.pool_sample,
            "backend": "static", "dims": int(E.shape[1]), "embed_seconds": embed_seconds,
            "kmeans_clusters": args.clusters, "kmeans_seconds": kmeans_seconds,
            "total_seconds": time.perf_counter() - t_start, "machine": platform.platform(), "cpus": os.cpu_count()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = markdown(rows, meta)
    md_path = args.out.with_suffix(".md")
    old = md_path.read_text() if md_path.exists() else ""
    if NOTES in old:  # keep the hand-written reading of the numbers below the generated table
        md += "\n" + old[old.index(NOTES):]
    md_path.write_text(md)
    print(md)
    return 0


def markdown(rows: list[dict], meta: dict) -> str:
    share = meta["candidates"] / meta["pool_records"]
    lines = [f"Pool-en, {meta['pool_records']:,} records; budget {meta['k']:,} (5%); diversity selectors see the "
             f"top {meta['candidates']:,} ({share:.0%}) by classifier score; "
             f"seed {meta['seed']}; {meta['cpus']} cores. "
             f"Embeddings: static ({meta['dims']}-d), {meta['embed_seconds']:.0f}s for the pool; pool k-means "
             f"({meta['kmeans_clusters']}) {meta['kmeans_seconds']:.0f}s. Total run {meta['total_seconds']:.0f}s.",
             "",
             "Coverage = mean over held-out target records of 1 - max cosine to the selection (lower is better). "
             f"Clusters = distinct pool k-means clusters (of {meta['kmeans_clusters']}) in the selection. "
             "Mean score = mean standardised classifier score of the selection.", "",
             "    python bench/bench_diversity.py", "",
             "| target | selector | precision | KL red. | coverage (lower better) | clusters | mean score (z) "
             "| seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['selector']} | {r['precision']:.3f} | {r['kl_reduction']:.4f} | "
                     f"{r['coverage']:.4f} | {r['clusters']} | {r['mean_score_z']:.2f} | {r['seconds']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
