#!/usr/bin/env python
"""datasketch near-duplicate detection end to end, as a datasketch user writes it: one standalone process.

Reads ``--docs`` (Parquet with ``id`` and ``text``), builds one ``MinHash(num_perm, seed)`` per doc from its word
5-gram shingles (words = ``re.findall(r"\\w+", text.lower())``, the shingles of bench/bench_dedup.py, as UTF-8
bytes, ``update_batch``), runs ``MinHashLSH(threshold, num_perm)`` (datasketch picks the bands and rows itself;
``--bands``/``--rows`` force them): per doc query, then insert; every candidate is united with the doc (union-find,
no verification: datasketch has none); keeps the first doc of each cluster and writes ``--out`` (Parquet: id,
cluster = row of the kept doc, keep). Prints one JSON object (bands, rows, counts, in-process seconds per stage).

It imports only pyarrow, numpy and datasketch (not thresher), so its start-up is what a datasketch user pays.
bench/bench_dedup_e2e.py runs it as a subprocess and times it from start to exit:

    python bench/peers/datasketch_peer.py --docs docs.parquet --out keep.parquet --threshold 0.7 --seed 1
"""

from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasketch import MinHash, MinHashLSH

WORD_RE = re.compile(r"\w+")


def shingles(text: str, n: int) -> set[bytes]:
    """Word n-grams as UTF-8 bytes; the whole text if it has fewer than n words (bench_dedup._shingles)."""
    words = WORD_RE.findall(text.lower())
    if 0 < len(words) < n:
        return {" ".join(words).encode()}
    return {" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--ngram", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bands", type=int, default=None)
    ap.add_argument("--rows", type=int, default=None)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    table = pq.read_table(args.docs, columns=["id", "text"])
    texts = table.column("text").to_pylist()
    t1 = time.perf_counter()
    minhashes = []
    for text in texts:
        sh = shingles(text, args.ngram)
        m = None
        if sh:
            m = MinHash(num_perm=args.num_perm, seed=args.seed)
            m.update_batch(sh)
        minhashes.append(m)
    t2 = time.perf_counter()
    params = (args.bands, args.rows) if args.bands else None
    lsh = MinHashLSH(threshold=args.threshold, num_perm=args.num_perm, params=params)
    n = len(minhashes)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    candidates = 0
    for i, m in enumerate(minhashes):
        if m is None:
            continue
        for j in lsh.query(m):
            candidates += 1
            ra, rb = find(i), find(j)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        lsh.insert(i, m, check_duplication=False)
    cluster = np.array([find(i) for i in range(n)], dtype=np.int64)
    t3 = time.perf_counter()
    keep = cluster == np.arange(n)
    pq.write_table(pa.table({"id": table.column("id"), "cluster": cluster, "keep": keep}), args.out)
    t4 = time.perf_counter()
    print(json.dumps({"docs": n, "bands": lsh.b, "rows": lsh.r, "candidate_pairs": candidates,
                      "dropped": int((~keep).sum()),
                      "seconds": {"read": t1 - t0, "minhash": t2 - t1, "lsh": t3 - t2, "write": t4 - t3}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
