#!/usr/bin/env python
"""thresher vs the DSIR package (data-selection 1.0.3) on ../shared/data/pool-en, in the same run.

For each target (wikipedia, news, tech_docs) and each process count, both tools select 5% of the pool (4,684
records) in a fresh process; this script then scores both selections with the *same* code: target-domain precision
and recall (``domain`` is never shown to either selector), KL reduction on hashed n-grams (wordpunct, 10,000
buckets, add-one smoothing; random baseline = 4,684 uniform records, seed 0) and the Jaccard overlap of the two
selections. Throughput is the whole pass (featurize + weights + resample) per core; memory is peak RSS.

    pip install -e ".[bench]"
    python bench/bench_dsir.py                       # all targets, 1 and 2 processes (~10 minutes)
    python bench/bench_dsir.py --targets news --procs 1

Writes bench/results/dsir.json and prints the Markdown tables recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thresher.evaluate.distribution import kl_reduction
from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer
from thresher.selectors.base import Random
from thresher.selectors.budget import Budget

HERE = Path(__file__).resolve().parent
#: thresher scoring options measured beside the default (one process each; quality only).
VARIANTS = {
    "thresher, no length floor": ["--min-tokens", "0"],
    "thresher, DSIR's floor (100)": ["--min-tokens", "100"],
    "thresher, length-normalised (ref)": ["--length-norm", "ref", "--min-tokens", "0"],
}
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"


class PoolFeatures:
    """Hashed n-gram counts of every pool record, to score any selection with the same code."""

    def __init__(self, pool: Path, batch: int = 8192):
        table = pq.read_table(pool, columns=["id", "text", "domain"])
        self.ids = table["id"].to_pylist()
        self.row = {i: k for k, i in enumerate(self.ids)}
        self.domain = np.asarray(table["domain"].to_pylist(), dtype=object)
        self.text_mb = pc.sum(pc.binary_length(table["text"])).as_py() / 1e6
        self.config = HashedNgramConfig()
        fz = HashedNgramFeaturizer(self.config)
        text = table["text"].combine_chunks()
        self.parts = [fz.transform(text.slice(s, batch)) for s in range(0, len(text), batch)]

    def counts(self, mask: np.ndarray) -> np.ndarray:
        total, start = np.zeros(self.config.num_buckets, np.int64), 0
        for f in self.parts:
            total += f.counts(self.config.num_buckets, mask[start: start + f.n_records])
            start += f.n_records
        return total

    def mask(self, ids: list[str]) -> np.ndarray:
        m = np.zeros(len(self.ids), bool)
        m[[self.row[i] for i in ids]] = True
        return m


def target_counts(path: Path, config: HashedNgramConfig) -> np.ndarray:
    text = pq.read_table(path, columns=["text"])["text"]
    return HashedNgramFeaturizer(config).transform(text).counts(config.num_buckets)


def quality(pool: PoolFeatures, tcounts: np.ndarray, target: str, ids: list[str], random_counts) -> dict:
    m = pool.mask(ids)
    in_domain = pool.domain == target
    kl = kl_reduction(tcounts, pool.counts(m), random_counts)
    return {"precision": float(in_domain[m].mean()), "recall": float(m[in_domain].mean()),
            "kl_reduction": kl["kl_reduction"], "kl_target_selected": kl["kl_target_selected"], "n": int(m.sum())}


def run_json(cmd: list[str]) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--targets", default="wikipedia,news,tech_docs")
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--buckets", default="10000,65536",
                    help="bucket counts given to both tools; counts after the first run with one process only")
    ap.add_argument("--k", type=int, default=4684)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-dsir", action="store_true", help="thresher only (no peer comparison)")
    ap.add_argument("--no-variants", dest="variants", action="store_false",
                    help="skip thresher's alternative length options")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "dsir.json")
    args = ap.parse_args()
    pool_path = args.data / "pool-en" / "pool.parquet"
    pool = PoolFeatures(pool_path)
    n = len(pool.ids)
    eligible_tokens = np.ones(n, dtype=np.int64)
    random_ids = [pool.ids[i] for i in Random().select(None, Budget.parse(args.k), eligible_tokens, args.seed)]
    random_counts = pool.counts(pool.mask(random_ids))
    work = Path(tempfile.mkdtemp(prefix="bench-dsir-"))
    rows = []
    for target in args.targets.split(","):
        tpath = args.data / "targets" / f"{target}.target.parquet"
        tcounts = target_counts(tpath, pool.config)
        baseline = quality(pool, tcounts, target, random_ids, random_counts)
        bucket_list = [int(b) for b in args.buckets.split(",")]
        runs = [(bucket_list[0], p) for p in map(int, args.procs.split(","))] + [(b, 1) for b in bucket_list[1:]]
        for buckets, procs in runs:
            entry = {"target": target, "procs": procs, "buckets": buckets, "random": baseline}
            tools = {"thresher": [sys.executable, str(HERE / "run_thresher.py"), "--workers", str(procs),
                                  "--num-buckets", str(buckets)]}
            if not args.skip_dsir:
                tools["dsir"] = [sys.executable, str(HERE / "peers" / "dsir_peer.py"), "--num-proc", str(procs),
                                 "--buckets", str(buckets), "--workdir", str(work / "dsir")]
            selections = {}
            for tool, cmd in tools.items():
                ids_path = work / f"{tool}.{target}.{procs}.{buckets}.txt"
                res = run_json([*cmd, "--pool", str(pool_path), "--target", str(tpath), "--k", str(args.k),
                                "--seed", str(args.seed), "--out-ids", str(ids_path)])
                selections[tool] = ids_path.read_text().split()
                res["mb_per_s_per_core"] = pool.text_mb / res["seconds"] / procs
                res["docs_per_s_per_core"] = n / res["seconds"] / procs
                entry[tool] = {"run": res, "quality": quality(pool, tcounts, target, selections[tool],
                                                              random_counts)}
                print(f"{target} buckets={buckets} procs={procs} {tool}: {res['seconds']:.1f}s "
                      f"{res['docs_per_s_per_core']:,.0f} docs/s/core {entry[tool]['quality']}", file=sys.stderr)
            if "dsir" in selections:
                a, b = set(selections["thresher"]), set(selections["dsir"])
                entry["jaccard"] = len(a & b) / len(a | b)
            if procs == 1 and buckets == bucket_list[0] and args.variants:
                entry["variants"] = {}
                for name, extra in VARIANTS.items():
                    ids_path = work / f"variant.{target}.txt"
                    run_json([*tools["thresher"], *extra, "--pool", str(pool_path), "--target", str(tpath), "--k",
                              str(args.k), "--seed", str(args.seed), "--out-ids", str(ids_path)])
                    entry["variants"][name] = quality(pool, tcounts, target, ids_path.read_text().split(),
                                                      random_counts)
            rows.append(entry)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"k": args.k, "seed": args.seed, "pool_docs": n, "pool_text_mb": pool.text_mb,
            "machine": platform.platform(), "python": platform.python_version()}
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(markdown(rows, meta))
    return 0


def markdown(rows: list[dict], meta: dict) -> str:
    out = [f"Pool: {meta['pool_docs']:,} docs, {meta['pool_text_mb']:.1f} MB of text; budget {meta['k']:,} records "
           f"(5%); seed {meta['seed']}.", "",
           "| target | buckets | procs | DSIR s | thresher s | DSIR docs/s/core | thresher docs/s/core "
           "| thresher MB/s/core | ratio/core | DSIR peak RSS MB | thresher peak RSS MB |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "dsir" not in r:
            continue
        d, t = r["dsir"]["run"], r["thresher"]["run"]
        out.append(f"| {r['target']} | {r['buckets']:,} | {r['procs']} | {d['seconds']:.1f} | {t['seconds']:.2f} | "
                   f"{d['docs_per_s_per_core']:,.0f} | {t['docs_per_s_per_core']:,.0f} | "
                   f"{t['mb_per_s_per_core']:.1f} | **{t['docs_per_s_per_core'] / d['docs_per_s_per_core']:.1f}x** | "
                   f"{d.get('peak_tree_rss_sampled_mb', d['peak_rss_mb']):.0f} | "
                   f"{t['peak_tree_rss_sampled_mb']:.0f} |")
    out += ["", "| target | buckets | procs | method | precision | recall | KL reduction | Jaccard(thresher, DSIR) |",
            "|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        methods = {"random": r["random"]}
        methods.update({tool: r[tool]["quality"] for tool in ("dsir", "thresher") if tool in r})
        methods.update(r.get("variants", {}))
        for tool, q in methods.items():
            jac = f"{r['jaccard']:.3f}" if tool == "thresher" and "jaccard" in r else ""
            out.append(f"| {r['target']} | {r['buckets']:,} | {r['procs']} | {tool} | {q['precision']:.3f} | "
                       f"{q['recall']:.3f} | {q['kl_reduction']:.4f} | {jac} |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
