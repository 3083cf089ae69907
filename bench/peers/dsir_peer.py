#!/usr/bin/env python
"""Run the DSIR peer (pip package ``data-selection==1.0.3``) end to end.

Standalone benchmark script: it converts a pool parquet and a target parquet
into the JSONL files DSIR reads, runs ``data_selection.HashedNgramDSIR``
(fit_importance_estimator -> compute_importance_weights -> resample), writes
the selected pool ids to ``--out-ids`` (DSIR's output order, one per line) and
prints exactly ONE JSON object on stdout.  DSIR's tqdm progress bars go to
stderr.

Example::

    python bench/peers/dsir_peer.py --pool POOL.parquet --target TARGET.parquet \
        --k 4684 --seed 0 --num-proc 1 --buckets 10000 --ngrams 2 \
        --workdir /tmp/dsirwork --out-ids /tmp/ids.txt

Install the peer with ``pip install data-selection==1.0.3 nltk`` (no torch
needed).  See bench/peers/README.md for the algorithm and the gotchas.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _measure import TreeRssSampler  # noqa: E402


def _shutdown_loky_workers() -> bool:
    """joblib keeps its loky worker processes alive after Parallel() returns.
    They only show up in RUSAGE_CHILDREN once they have exited and been
    waited for, so shut the reusable executor down (without creating one)."""
    try:
        from joblib.externals.loky import reusable_executor as rex
    except Exception:
        return False
    ex = getattr(rex, "_executor", None)
    if ex is None:
        return False
    ex.shutdown(wait=True)
    return True


# --------------------------------------------------------------------------
# data prep
# --------------------------------------------------------------------------
def parquet_to_jsonl(src: str, dst: Path) -> tuple[int, int, list]:
    """Write {"id", "text"} JSON lines. Returns (n_rows, utf8 text bytes, ids).

    Streams the parquet in record batches so that prep does not raise this
    process's RSS high-water mark (ru_maxrss) above what DSIR itself needs.
    ensure_ascii=True keeps every record on one physical ASCII line, so
    DSIR's line-based reader/writer (text-mode open, ``line.strip()``) cannot
    split or alter a record whatever Unicode line separators the text holds.
    """
    ids, nbytes = [], 0
    pf = pq.ParquetFile(src)
    with open(dst, "w", encoding="ascii") as f:
        for batch in pf.iter_batches(batch_size=2048, columns=["id", "text"]):
            for i, t in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                i = str(i)
                t = "" if t is None else t
                ids.append(i)
                nbytes += len(t.encode("utf-8"))
                f.write(json.dumps({"id": i, "text": t}, ensure_ascii=True))
                f.write("\n")
    return len(ids), nbytes, ids


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--k", type=int, required=True, help="records to select")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-proc", type=int, default=1)
    ap.add_argument("--buckets", type=int, default=10000)
    ap.add_argument("--ngrams", type=int, default=2)
    ap.add_argument("--min-example-length", type=int, default=100,
                    help="DSIR's min_example_length (its default is 100 tokens)")
    ap.add_argument("--num-tokens-to-fit", default="auto",
                    help="'auto' (DSIR default: 100000*num_buckets), 'all', or an int")
    ap.add_argument("--top-k", action="store_true",
                    help="deterministic top-k instead of DSIR's default Gumbel sampling")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out-ids", required=True)
    args = ap.parse_args(argv)

    sampler = TreeRssSampler()
    sampler.start()

    import data_selection
    from data_selection import HashedNgramDSIR

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    pool_jsonl = workdir / "pool.jsonl"
    target_jsonl = workdir / "target.jsonl"
    cache_dir = workdir / "dsir_cache"
    out_dir = workdir / "dsir_out"
    resample_tmp = workdir / "dsir_resample_tmp"
    for d in (cache_dir, out_dir, resample_tmp):  # only paths this script owns
        if d.exists():
            shutil.rmtree(d)

    # ---------------- prep (not part of the timed DSIR pass) ----------------
    t = time.perf_counter()
    n_pool, pool_bytes, pool_ids = parquet_to_jsonl(args.pool, pool_jsonl)
    n_target, target_bytes, _ = parquet_to_jsonl(args.target, target_jsonl)
    prep_seconds = time.perf_counter() - t
    if len(set(pool_ids)) != n_pool:
        raise SystemExit("pool ids are not unique; cannot map the selection back")

    if args.num_tokens_to_fit in ("auto", "all"):
        num_tokens_to_fit = args.num_tokens_to_fit
    else:
        num_tokens_to_fit = int(args.num_tokens_to_fit)

    # ---------------- the timed DSIR pass ----------------
    np.random.seed(args.seed)  # DSIR has no seed arg; resample uses np.random.gumbel
    phases = {}
    t0 = time.perf_counter()
    dsir = HashedNgramDSIR(
        raw_datasets=[str(pool_jsonl)],
        target_datasets=[str(target_jsonl)],
        cache_dir=str(cache_dir),
        num_proc=args.num_proc,
        ngrams=args.ngrams,
        num_buckets=args.buckets,
        tokenizer="wordpunct",  # offline-safe; also DSIR 1.0.3's default
        min_example_length=args.min_example_length,
    )
    t = time.perf_counter()
    dsir.fit_importance_estimator(num_tokens_to_fit=num_tokens_to_fit)
    phases["fit_importance_estimator"] = time.perf_counter() - t
    t = time.perf_counter()
    dsir.compute_importance_weights()
    phases["compute_importance_weights"] = time.perf_counter() - t
    t = time.perf_counter()
    dsir.resample(out_dir=str(out_dir), num_to_sample=args.k,
                  cache_dir=str(resample_tmp), top_k=args.top_k)
    phases["resample"] = time.perf_counter() - t
    seconds = time.perf_counter() - t0

    t = time.perf_counter()
    loky_shut = _shutdown_loky_workers()
    worker_shutdown_seconds = time.perf_counter() - t
    peak_tree_rss = sampler.stop()
    ru_self = resource.getrusage(resource.RUSAGE_SELF)
    ru_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss_self_mb = ru_self.ru_maxrss / 1024.0  # Linux: KiB
    rss_children_mb = ru_children.ru_maxrss / 1024.0

    # ---------------- map the selection back to pool ids ----------------
    # resample writes one file per virtual shard, {overall_idx}.jsonl; DSIR's
    # output order is shard 0, 1, ... and, inside a shard, pool order.
    shard_files = sorted(out_dir.glob("*.jsonl"), key=lambda p: int(p.stem))
    selected = []
    for p in shard_files:
        with open(p, encoding="ascii") as f:
            for line in f:
                if line.strip():
                    selected.append(json.loads(line)["id"])
    out_ids = Path(args.out_ids)
    out_ids.parent.mkdir(parents=True, exist_ok=True)
    out_ids.write_text("".join(s + "\n" for s in selected))

    id_to_row = {i: r for r, i in enumerate(pool_ids)}
    unknown = [s for s in selected if s not in id_to_row]
    verified = not unknown and len(set(selected)) == len(selected)

    # extras: length filter and domain mix of the selection
    n_pass_filter = None
    meta_dir = cache_dir / "perexample_metadata"
    if meta_dir.exists():
        metas = [np.load(p) for p in sorted(meta_dir.glob("*.npy"), key=lambda p: int(p.stem))]
        n_pass_filter = int(sum((m >= args.min_example_length).sum() for m in metas))
    domain_counts = None
    try:
        dom = pq.read_table(args.pool, columns=["domain"]).column("domain").to_pylist()
        domain_counts = dict(collections.Counter(
            dom[id_to_row[s]] for s in selected if s in id_to_row).most_common())
    except Exception:
        pass

    import joblib
    import nltk

    pool_mb = pool_bytes / 1e6
    result = {
        "tool": "dsir",
        "package": "data-selection",
        "version": data_selection.__version__,
        "class": "data_selection.HashedNgramDSIR",
        "num_proc": args.num_proc,
        "k": args.k,
        "seed": args.seed,
        "target": args.target,
        "pool": args.pool,
        "seconds": round(seconds, 3),
        "prep_seconds": round(prep_seconds, 3),
        "phase_seconds": {k: round(v, 3) for k, v in phases.items()},
        "worker_shutdown_seconds": round(worker_shutdown_seconds, 3),
        "docs_per_s": round(n_pool / seconds, 1),
        "mb_per_s": round(pool_mb / seconds, 3),
        "docs_per_s_per_core": round(n_pool / seconds / args.num_proc, 1),
        "peak_rss_mb": round(rss_self_mb + rss_children_mb, 1),
        "peak_rss_self_mb": round(rss_self_mb, 1),
        "peak_rss_children_max_mb": round(rss_children_mb, 1),
        "peak_tree_rss_sampled_mb": round(peak_tree_rss / 2**20, 1),
        "n_selected": len(selected),
        "n_unique_selected": len(set(selected)),
        "ids_verified": verified,
        "with_replacement": False,
        "resample_method": "top-k" if args.top_k else "gumbel-top-k (log importance weights as logits)",
        "n_pool": n_pool,
        "pool_mb": round(pool_mb, 3),
        "n_target": n_target,
        "target_mb": round(target_bytes / 1e6, 3),
        "n_pass_length_filter": n_pass_filter,
        "num_buckets": args.buckets,
        "ngrams": args.ngrams,
        "tokenizer": "nltk.WordPunctTokenizer().tokenize on text.lower()",
        "min_example_length": args.min_example_length,
        "num_tokens_to_fit": args.num_tokens_to_fit,
        "n_output_shards": len(shard_files),
        "selected_domain_counts": domain_counts,
        "loky_workers_shut_down": loky_shut,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "nltk": nltk.__version__,
        "joblib": joblib.__version__,
        "cpu_count": os.cpu_count(),
        "mb_definition": "1 MB = 1e6 bytes of UTF-8 pool text",
        "rss_note": ("peak_rss_mb = RUSAGE_SELF.ru_maxrss + RUSAGE_CHILDREN.ru_maxrss; the "
                     "children figure is the max over waited-for children, not a sum; "
                     "peak_tree_rss_sampled_mb polls the summed live-tree RSS every 0.1 s"),
    }
    if unknown:
        result["unknown_ids"] = unknown[:10]
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if verified and len(selected) == args.k else 1


if __name__ == "__main__":
    sys.exit(main())
