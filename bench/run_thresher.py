#!/usr/bin/env python
"""Run ``thresher select`` (DSIR method) once in a fresh process and print one JSON object, like the DSIR peer.

The timed pass is everything from opening the pool Parquet to writing the selected ids: reading, featurizing
(with a fresh feature cache), fitting, scoring, selecting, metrics. Example::

    python bench/run_thresher.py --pool POOL.parquet --target TARGET.parquet --k 4684 --seed 0 --workers 1 \\
        --out-ids /tmp/ids.txt
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import TreeRssSampler  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--selector", default="gumbel")
    ap.add_argument("--num-buckets", type=int, default=10_000)
    ap.add_argument("--length-norm", default="none")
    ap.add_argument("--shrink", type=float, default=20.0)
    ap.add_argument("--min-tokens", default="auto")
    ap.add_argument("--out-ids", required=True)
    args = ap.parse_args(argv)

    sampler = TreeRssSampler()
    sampler.start()
    import thresher as th

    out = Path(tempfile.mkdtemp(prefix="thresher-bench-"))
    try:
        t0 = time.perf_counter()
        run = th.select(args.pool, target=args.target, budget=args.k, seed=args.seed, out=out, format="ids",
                        workers=args.workers, selector=args.selector, num_buckets=args.num_buckets,
                        length_norm=args.length_norm, shrink=args.shrink,
                        min_tokens=args.min_tokens if args.min_tokens == "auto" else int(args.min_tokens))
        seconds = time.perf_counter() - t0
        peak_tree = sampler.stop()
        Path(args.out_ids).write_text("".join(i + "\n" for i in run.selected_ids()))
        peak_rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                    + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        n = run.counts["input_records"]
        print(json.dumps({
            "tool": "thresher", "version": th.__version__, "num_proc": args.workers, "k": args.k,
            "seconds": seconds, "n_docs": n, "docs_per_s": n / seconds,
            "docs_per_s_per_core": n / seconds / args.workers,
            "peak_rss_mb": peak_rss, "peak_tree_rss_sampled_mb": peak_tree / 2**20,
            "n_selected": len(run.selected_ids()), "timings": run.manifest["timings"],
            "config": {"selector": args.selector, "num_buckets": args.num_buckets, "length_norm": args.length_norm,
                       "shrink": args.shrink, "min_tokens": args.min_tokens},
        }))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
