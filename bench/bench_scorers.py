#!/usr/bin/env python
"""Every thresher scorer as a targeted-selection signal on ../shared/data/pool-en, with its peers in the same run.

For each target (wikipedia, news, tech_docs; fitted on ``targets/<t>.target.parquet``) and each scorer, the whole
pool (93,695 records) is scored in one process, then 5% (4,685 records) is selected two ways:

- ``topk``: the highest scores;
- ``gumbel``: score-as-logits sampling (QuRating-style). DSIR keeps its own convention (raw log importance
  weights at temperature 1 = DSIR's importance resampling); every other score is standardised over the pool and
  sampled at temperature 0.25 (logits = 4 z), so the amount of randomness is comparable across scorers.

Metrics, by the same code for every selection: target-domain precision (``domain`` is never shown to a scorer), KL
reduction on hashed n-grams (random baseline of the same size, seed 0; see bench_dsir.py), and throughput (fit +
score, docs/s in one process). Every selection drops records shorter than half the target's 5th-percentile length
(thresher's ``--min-tokens auto``), so no scorer wins by picking fragments.

Peers in the same run: a fastText DCLM-style classifier (fasttext-wheel in its own venv, created on first use),
DSIR's scorer from the foundation issue (full-pool counts), and datatrove's Gopher/C4/FineWeb filters
(``--rules``: runs bench_rules.py for speed and pass/fail agreement). Combinations: rules -> classifier (records
failing Gopher are not eligible) and classifier + similarity (mean of standardised scores).

    pip install -e ".[bench]"
    python bench/bench_scorers.py                     # ~15-30 min on 2 cores
    python bench/bench_scorers.py --targets news --scorers classifier,dsir

Writes bench/results/scorers.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_dsir import DEFAULT_DATA, PoolFeatures, quality, target_counts  # noqa: E402

from thresher.features.hashed_ngrams import HashedNgramFeaturizer  # noqa: E402
from thresher.io.dataset import Dataset  # noqa: E402
from thresher.io.sampling import sample_texts  # noqa: E402
from thresher.scorers.importance import ImportanceConfig, ImportanceScorer  # noqa: E402
from thresher.scorers.registry import References, get_spec  # noqa: E402
from thresher.selectors.base import Gumbel, Random, TopK  # noqa: E402
from thresher.selectors.budget import Budget  # noqa: E402

#: scorer label -> (registry name, parameters). Rule families are filters, measured in combinations.
SCORERS = {
    "classifier": ("classifier", {}),
    "similarity (static)": ("similarity", {"backend": "static"}),
    "similarity (minilm)": ("similarity", {"backend": "minilm"}),
    "ngram perplexity": ("ngram", {}),
    "color-filter": ("color", {}),
}
FT_VENV = HERE / ".venv-fasttext"
BATCH = 4096


def score_pool(scorer, text: pa.Array, column: str) -> np.ndarray:
    """One column of a fitted scorer over the whole pool, batch by batch, in this process."""
    parts = [scorer.score(text.slice(s, BATCH))[column] for s in range(0, len(text), BATCH)]
    return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])


def standardised(x: np.ndarray) -> np.ndarray:
    finite = np.isfinite(x)
    z = (x - x[finite].mean()) / max(x[finite].std(), 1e-12)
    return np.where(finite, z, np.nan)


def select(scores: np.ndarray, eligible: np.ndarray, k: int, how: str, raw_logits: bool, seed: int) -> np.ndarray:
    """Indices of the selection among eligible records."""
    idx = np.flatnonzero(eligible)
    values = scores[idx]
    if how == "topk":
        chosen = TopK().select(values, Budget("count", k), np.ones(len(idx)), seed)
    else:
        logits = values if raw_logits else standardised(values) / 0.25
        chosen = Gumbel(temperature=1.0).select(logits, Budget("count", k), np.ones(len(idx)), seed)
    return idx[chosen]


def ensure_fasttext_venv() -> Path:
    python = FT_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "fasttext-wheel", "numpy<2"],
                       check=True)
    return python


def clean(text: str) -> str:
    """fastText's input form: one example per line, lower-cased (as DCLM prepares it)."""
    return " ".join(text.lower().split())


def fasttext_scores(positives: list[str], negatives: list[str], pool_text: list[str], work: Path
                    ) -> tuple[np.ndarray, dict]:
    python = ensure_fasttext_venv()
    train, pool_file = work / "ft.train", work / "pool.txt"
    if not pool_file.exists():
        pool_file.write_text("".join(clean(t) + "\n" for t in pool_text), encoding="utf-8")
    rng = np.random.default_rng(0)
    lines = [f"__label__pos {clean(t)}" for t in positives] + [f"__label__neg {clean(t)}" for t in negatives]
    train.write_text("\n".join(lines[i] for i in rng.permutation(len(lines))) + "\n")
    out = work / "ft.npy"
    proc = subprocess.run([str(python), str(HERE / "peers" / "fasttext_peer.py"), "--train", str(train),
                           "--pool", str(pool_file), "--out", str(out)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return np.load(out), json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--targets", default="wikipedia,news,tech_docs")
    # MiniLM is left out by default: ~8-17 docs/s on this CPU makes the whole pool take hours
    # (bench_embeddings.py measures it on a 20k subsample).
    ap.add_argument("--scorers", default="dsir,fasttext," + ",".join(s for s in SCORERS if "minilm" not in s))
    ap.add_argument("--pool-sample", type=int, default=10_000)
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rules", action="store_true", help="also run bench_rules.py (datatrove agreement, speed)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scorers.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # per-core throughput: one thread for torch too
    wanted = args.scorers.split(",")
    pool_path = args.data / "pool-en" / "pool.parquet"
    pool = PoolFeatures(pool_path)
    n = len(pool.ids)
    k = round(args.fraction * n)
    text = pq.read_table(pool_path, columns=["text"])["text"].combine_chunks()
    n_tokens = np.concatenate([HashedNgramFeaturizer(pool.config).transform(text.slice(s, BATCH)).n_tokens
                               for s in range(0, n, BATCH)])
    sample = sample_texts(Dataset([str(pool_path)]), args.pool_sample, args.seed)["text"].combine_chunks()
    random_idx = Random().select(None, Budget("count", k), np.ones(n), args.seed)
    random_counts = pool.counts(np.isin(np.arange(n), random_idx))

    # Filters that combinations use: computed once (target independent).
    t0 = time.perf_counter()
    rules_pass = np.ones(n, dtype=bool)
    for family in ("gopher",):  # C4 is left out: its sentence rule drops 41% of news chunks (BENCHMARKS.md)
        scorer = get_spec(family).build()
        rules_pass &= score_pool(scorer, text, f"{family}_pass").astype(bool)
    rules_seconds = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="bench-scorers-"))
    rows = []
    for target in args.targets.split(","):
        tpath = args.data / "targets" / f"{target}.target.parquet"
        ttext = pq.read_table(tpath, columns=["text"])["text"].combine_chunks()
        tcounts = target_counts(tpath, pool.config)
        tlen = HashedNgramFeaturizer(pool.config).transform(ttext).n_tokens
        floor = int(np.percentile(tlen, 5) // 2)
        eligible = n_tokens >= floor
        refs = References(target=ttext, pool_sample=sample)
        results: dict[str, tuple[np.ndarray, float, bool]] = {}  # label -> (scores, seconds, raw logits?)

        if "dsir" in wanted:
            t = time.perf_counter()
            fz = HashedNgramFeaturizer(pool.config)
            parts = [fz.transform(text.slice(s, BATCH)) for s in range(0, n, BATCH)]
            pool_counts = sum(p.counts(pool.config.num_buckets) for p in parts)
            scorer = ImportanceScorer(ImportanceConfig()).fit(tcounts, pool_counts,
                                                              sum(np.maximum(tlen - j, 0) for j in range(2)))
            results["dsir (foundation)"] = (np.concatenate([scorer.score(p)["dsir"] for p in parts]),
                                            time.perf_counter() - t, True)
        if "fasttext" in wanted:
            probs, info = fasttext_scores(ttext.to_pylist(), sample.to_pylist(), text.to_pylist(), work)
            logit = np.log(np.clip(probs, 1e-9, 1)) - np.log(np.clip(1 - probs, 1e-9, 1))
            results["fastText classifier (peer)"] = (logit, info["fit_seconds"] + info["score_seconds"], True)
        for label, (name, params) in SCORERS.items():
            if label not in wanted and name not in wanted:
                continue
            spec = get_spec(name)
            t = time.perf_counter()
            scorer = spec.fit_scorer(spec.build(params), refs)
            values = score_pool(scorer, text, spec.primary)
            results[label] = (values, time.perf_counter() - t, name == "classifier")
            print(f"  {target}: {label} in {results[label][1]:.1f}s", file=sys.stderr, flush=True)
        if "classifier" in results:
            values, seconds, _ = results["classifier"]
            results["rules -> classifier"] = (np.where(rules_pass, values, np.nan), seconds + rules_seconds, True)
        sims = [lab for lab in results if lab.startswith("similarity")]
        if "classifier" in results and sims:
            z = standardised(results["classifier"][0]) + standardised(results[sims[-1]][0])
            results[f"classifier + {sims[-1]}"] = (z / 2, results["classifier"][1] + results[sims[-1]][1], False)

        baseline = quality(pool, tcounts, target, [pool.ids[i] for i in random_idx], random_counts)
        for label, (values, seconds, raw) in results.items():
            ok = eligible & np.isfinite(values)
            entry = {"target": target, "scorer": label, "docs_per_s": n / seconds, "seconds": seconds,
                     "eligible": int(ok.sum()), "random": baseline}
            for how in ("topk", "gumbel"):
                chosen = select(values, ok, k, how, raw, args.seed)
                entry[how] = quality(pool, tcounts, target, [pool.ids[i] for i in chosen], random_counts)
            rows.append(entry)
            print(f"{target:<10} {label:<32} topk P={entry['topk']['precision']:.3f} "
                  f"KLred={entry['topk']['kl_reduction']:.4f} | gumbel P={entry['gumbel']['precision']:.3f} "
                  f"KLred={entry['gumbel']['kl_reduction']:.4f} | {entry['docs_per_s']:,.0f} docs/s",
                  flush=True)
    meta = {"pool_records": n, "k": k, "seed": args.seed, "pool_sample": args.pool_sample,
            "machine": platform.platform(), "cpus": os.cpu_count(), "rules_seconds": rules_seconds,
            "rules_pass_fraction": float(rules_pass.mean())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = markdown(rows, meta)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    if args.rules:
        subprocess.run([sys.executable, str(HERE / "bench_rules.py")], check=True)
    return 0


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [f"Pool-en, {meta['pool_records']:,} records; budget {meta['k']:,} (5%); seed {meta['seed']}; "
             f"pool sample {meta['pool_sample']:,}; {meta['cpus']} cores.", "",
             "| target | scorer | top-k precision | top-k KL red. | gumbel precision | gumbel KL red. "
             "| docs/s (1 proc) |",
             "|---|---|---|---|---|---|---|"]
    for target in dict.fromkeys(r["target"] for r in rows):
        group = [r for r in rows if r["target"] == target]
        base = group[0]["random"]
        lines.append(f"| {target} | random | {base['precision']:.3f} | 0 | {base['precision']:.3f} | 0 | |")
        for r in group:
            lines.append(f"| {target} | {r['scorer']} | {r['topk']['precision']:.3f} | "
                         f"{r['topk']['kl_reduction']:.4f} | {r['gumbel']['precision']:.3f} | "
                         f"{r['gumbel']['kl_reduction']:.4f} | {r['docs_per_s']:,.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
