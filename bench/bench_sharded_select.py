#!/usr/bin/env python
"""Global selection vs per-shard candidates plus an exact merge, on synthetic scores.

A pool of N records (default 10 million: normal scores, integer token counts 50-2,000) in S shards (default 100).
For each case (Gumbel top-k at k = 5%, and top-k under a token budget of 5% of the pool's tokens):

- ``global``: ``selector.select`` over the whole pool in one process (what the driver does today): time and
  tracemalloc peak of the call, plus the pool-wide arrays it needs in memory (scores, positions, tokens);
- ``shards``: every shard's ``candidates`` and ``sketch`` (on a cluster these run in parallel on the workers; here in
  turn): total time and the largest per-shard peak;
- ``merge``: the driver's part, ``cutoff`` over the sketches and ``merge`` of the candidates at or above it: time and
  tracemalloc peak, plus the bytes of sketches and candidates the driver receives.

The two selections are checked to be identical. Ratios are global / merge (higher is better for the merge).

    PYTHONPATH=$PWD python bench/bench_sharded_select.py                      # ~1 min, ~1.5 GB
    PYTHONPATH=$PWD python bench/bench_sharded_select.py --records 1000000 --shards 10
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from thresher.selectors import Budget, make_selector
from thresher.selectors.sharded import candidates, combine, cutoff, merge, plan_selection, summarize


def _measured(fn, *args):
    """(result, seconds, tracemalloc peak bytes above the start) of ``fn(*args)``."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return out, seconds, peak


def _shard_step(selector, plan, shards, seed):
    """Every shard's candidates and sketch, in turn: (parts, sketches, seconds, largest per-shard peak)."""
    parts, sketches, seconds, peak = [], [], 0.0, 0
    for scores, positions, tokens in shards:
        (part, sketch), s, p = _measured(lambda *a: (lambda c: (c, c.sketch()))(candidates(*a)),
                                         selector, plan, scores, positions, tokens, seed)
        parts.append(part)
        sketches.append(sketch)
        seconds += s
        peak = max(peak, p)
    return parts, sketches, seconds, peak


def _driver_step(selector, plan, parts, sketches):
    """What the driver does: the cutoff from the sketches, then the merge of what the shards send above it."""
    tau = cutoff(plan, sketches)
    sent = [p.above(tau) for p in parts]
    return merge(selector, plan, sent), sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--shards", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.records
    scores = rng.normal(size=n)
    tokens = rng.integers(50, 2001, size=n)
    positions = np.arange(n, dtype=np.int64)
    pool_bytes = scores.nbytes + tokens.nbytes + positions.nbytes
    edges = np.linspace(0, n, args.shards + 1).astype(int)
    shards = [(scores[a:b], positions[a:b], tokens[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    cases = [("gumbel top-k, k = 5%", make_selector("gumbel"), Budget("fraction", 0.05)),
             ("top-k, 5% of tokens", make_selector("topk"), Budget("tokens", float(int(tokens.sum()) // 20)))]
    print(f"{n:,} records in {args.shards} shards; pool arrays {pool_bytes / 2**20:.0f} MiB")
    for label, selector, budget in cases:
        idx, g_s, g_peak = _measured(selector.select, scores, budget, tokens, args.seed, positions)
        total = combine([summarize(t) for _, _, t in shards])
        plan = plan_selection(selector, budget, total)
        parts, sketches, s_s, s_peak = _shard_step(selector, plan, shards, args.seed)
        (chosen, sent), m_s, m_peak = _measured(_driver_step, selector, plan, parts, sketches)
        assert np.array_equal(chosen, positions[idx]), "sharded selection differs from the global one"
        received = sum(sk.keys.nbytes + sk.counts.nbytes + sk.tokens.nbytes for sk in sketches) + \
            sum(p.nbytes for p in sent)
        n_sent = sum(len(p.keys) for p in sent)
        print(f"\n{label}: {len(chosen):,} selected, identical; shards sent {sum(len(sk.keys) for sk in sketches):,} "
              f"sketch points and {n_sent:,} candidates ({n_sent / len(chosen):.3f} x the selection)")
        mib = 2**20
        print(f"  global select   {g_s:7.2f} s   peak {g_peak / mib:8.1f} MiB "
              f"(+ {pool_bytes / mib:.0f} MiB pool arrays)")
        print(f"  shard steps     {s_s:7.2f} s   peak {s_peak / mib:8.1f} MiB per shard "
              f"(sum of {args.shards} shards, run in turn)")
        print(f"  driver merge    {m_s:7.2f} s   peak {m_peak / mib:8.1f} MiB (+ {received / mib:.1f} MiB received)")
        print(f"  ratios global/merge: time {g_s / m_s:.1f}x, "
              f"memory {(g_peak + pool_bytes) / (m_peak + received):.1f}x (select peak alone {g_peak / m_peak:.1f}x)")

if __name__ == "__main__":
    main()
