"""Decontamination on real reference sets: thresher dedup --against vs an exact brute-force implementation (issue 18).

    python bench/bench_decontaminate.py [--data ../shared/data] [--ngram 13]

The pool is pool-en (93,695 records); the references are the three targets' held-out files and the test splits of
the three labelled sets (written to a temporary folder), six sets, each matched separately and all together.
``thresher dedup --pool POOL --against REF`` runs from the CLI (timed start to exit, every process) with 1 and 2
workers; the brute force builds a Python set of word 13-gram tuples of the reference (words: ``\\w+`` after
Arrow's lower-casing, as thresher reads them) and checks every pool n-gram. Reported per reference: pool records
flagged by each, agreement (records flagged by exactly one side; 0 = identical), matched n-gram counts equal on
every record, and both times. Results: bench/results/decontaminate.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def words(texts: pa.ChunkedArray) -> list[list[str]]:
    return [re.findall(r"\w+", t) for t in pc.utf8_lower(texts).to_pylist()]


def windows(ws: list[str], n: int) -> list[tuple[str, ...]]:
    if len(ws) < n:
        return [tuple(ws)] if ws else []
    return [tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)]


def brute_force(pool_words: list[list[str]], reference: pa.ChunkedArray, n: int) -> tuple[list[int], float]:
    """Matched n-grams per pool record, and the seconds it took (the pool's words are split once, outside)."""
    t0 = time.perf_counter()
    seen = {w for ws in words(reference) for w in windows(ws, n)}
    matched = [sum(w in seen for w in windows(ws, n)) for ws in pool_words]
    return matched, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--ngram", type=int, default=13)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-decon-"))
    pool_path = args.data / "pool-en" / "pool.parquet"
    refs = {f"{t}.heldout": args.data / "targets" / f"{t}.heldout.parquet" for t in ("news", "tech_docs", "wikipedia")}
    for task in ("bbc_news", "rotten_tomatoes", "brown_genre"):
        table = pq.read_table(args.data / "labeled" / f"{task}.parquet", columns=["id", "text", "split"])
        refs[f"{task}.test"] = work / f"{task}.test.parquet"
        test = table.filter(pc.equal(table.column("split"), "test")).select(["id", "text"])
        pq.write_table(test, refs[f"{task}.test"])
    pool = pq.read_table(pool_path, columns=["id", "text"])
    t0 = time.perf_counter()
    pool_words = words(pool.column("text"))
    split_seconds = time.perf_counter() - t0
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "ngram": args.ngram,
                    "pool_records": pool.num_rows, "brute_force_word_split_seconds": round(split_seconds, 2),
                    "references": {}}
    cases = {name: [path] for name, path in refs.items()} | {"all six": list(refs.values())}
    for name, paths in cases.items():
        reference = pa.chunked_array([pq.read_table(p, columns=["text"]).column("text").combine_chunks()
                                      for p in paths])
        expect, brute_seconds = brute_force(pool_words, reference, args.ngram)
        entry = {"reference_records": len(reference), "brute_force_seconds": round(brute_seconds + split_seconds, 2)}
        for workers in (1, 2):
            out = work / f"run-{name.replace(' ', '_')}-{workers}"
            cmd = [sys.executable, "-m", "thresher.cli", "dedup", "--pool", str(pool_path), "--out", str(out),
                   "--ngram", str(args.ngram), "--workers", str(workers), "--quiet",
                   *[a for p in paths for a in ("--against", str(p))]]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if done.returncode:
                raise SystemExit(done.stderr)
            scores = pq.read_table(out / "scores" / "scores.parquet", columns=["ref_matched", "dup_keep"])
            matched = scores.column("ref_matched").to_pylist()
            flagged = [not k for k in scores.column("dup_keep").to_pylist()]
            entry[f"cli_seconds_{workers}w"] = round(seconds, 2)
            entry[f"in_process_match_seconds_{workers}w"] = json.loads((out / "manifest.json").read_text())[
                "timings"]["match"]
            entry["thresher_flagged"] = sum(flagged)
            entry["brute_force_flagged"] = sum(m > 0 for m in expect)
            entry["flagged_by_one_side_only"] = sum(f != (m > 0) for f, m in zip(flagged, expect))
            entry["records_with_different_counts"] = sum(a != b for a, b in zip(matched, expect))
        result["references"][name] = entry
        print(name, entry, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decontaminate.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (args.out / "decontaminate.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = [f"pool-en ({result['pool_records']:,} records) against each reference set, word {result['ngram']}-grams; "
             "CLI end to end (start to exit, all processes).", "",
             "| reference | records | flagged (thresher) | flagged (brute force) | disagreeing records "
             "| different counts | thresher CLI 1 worker (s) | 2 workers (s) | brute force (s) "
             "| brute force / CLI 2 workers |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, e in result["references"].items():
        lines.append(f"| {name} | {e['reference_records']:,} | {e['thresher_flagged']:,} "
                     f"| {e['brute_force_flagged']:,} | {e['flagged_by_one_side_only']} "
                     f"| {e['records_with_different_counts']} "
                     f"| {e['cli_seconds_1w']:.1f} | {e['cli_seconds_2w']:.1f} | {e['brute_force_seconds']:.1f} "
                     f"| {e['brute_force_seconds'] / e['cli_seconds_2w']:.1f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
