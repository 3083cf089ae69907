"""Near-duplicate decontamination: ``thresher dedup --against REF --method minhash`` vs datasketch and an exact brute
force, on real text with planted near-copies (issue 18).

    python bench/bench_decontaminate_near.py [--data DIR ...] [--threshold 0.7]

Each ``--data`` is a near-duplicate set in the shape of ../shared/data/dedup (docs.parquet, pairs.parquet): the
planted copies' originals are the reference (a "test set"), every other document is the pool, which holds the
planted copies. Default: the shared set and the set ``bench/build_dedup_edits.py`` builds with another edit model
(built into /tmp/dedup_edits if missing).

* truth: the exact brute force, an inverted index of the reference's word 5-gram shingles (words: ``\\w+`` after
  Arrow's lower-casing, as thresher reads them): for every pool document the highest exact Jaccard similarity
  with any reference document. A pool document is contaminated when it reaches ``--threshold``.
* thresher: the CLI end to end (start to exit, every process; it also writes the kept records and a report),
  1 and 2 workers; its flags and, for each flag, the Jaccard it reports.
* datasketch: what a datasketch user writes: one ``MinHash`` per document (the same shingles as bytes,
  128 permutations), the reference inserted into a ``MinHashLSH`` with the same bands and rows, every pool
  document queried; a document is flagged when any reference document comes back (datasketch has no
  verification). Timed in process (reading the Parquet files included), so its start-up is not counted.

Reported per set: flags, precision and recall against the truth, agreement of thresher's reported Jaccard with the
exact one, times. Results: bench/results/decontaminate_near.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def shingles(texts: list[str], n: int = 5) -> list[set[str]]:
    """Word n-gram sets, words as thresher reads them (Arrow lower-casing, then ``\\w+``)."""
    lower = pc.utf8_lower(pa.array(texts, pa.large_string())).to_pylist()
    out = []
    for text in lower:
        w = re.findall(r"\w+", text)
        out.append({" ".join(w[i:i + n]) for i in range(len(w) - n + 1)} if len(w) >= n else
                   ({" ".join(w)} if w else set()))
    return out


def brute_force(pool: list[set[str]], reference: list[set[str]]) -> list[float]:
    """Highest exact Jaccard similarity of each pool set with any reference set (0 if none shares a shingle)."""
    where = defaultdict(list)
    for row, grams in enumerate(reference):
        for g in grams:
            where[g].append(row)
    best = []
    for grams in pool:
        shared = Counter(r for g in grams for r in where.get(g, ()))
        best.append(max((k / (len(grams) + len(reference[r]) - k) for r, k in shared.items()), default=0.0))
    return best


def run_datasketch(pool_path: Path, ref_path: Path, threshold: float, bands: int, rows: int) -> tuple[list[bool], float,
                                                                                                      float]:
    """Flags per pool document, wall and CPU seconds."""
    from datasketch import MinHash, MinHashLSH

    w0, c0 = time.perf_counter(), time.process_time()

    def sketches(path: Path) -> list:
        texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
        out = []
        for text in texts:
            words = re.findall(r"\w+", text.lower())
            sh = ({" ".join(words[i:i + 5]).encode() for i in range(len(words) - 4)} if len(words) >= 5 else
                  ({" ".join(words).encode()} if words else set()))
            m = None
            if sh:
                m = MinHash(num_perm=128, seed=1)
                m.update_batch(list(sh))
            out.append(m)
        return out

    lsh = MinHashLSH(threshold=threshold, num_perm=128, params=(bands, rows))
    for i, m in enumerate(sketches(ref_path)):
        if m is not None:
            lsh.insert(i, m, check_duplication=False)
    flags = [m is not None and bool(lsh.query(m)) for m in sketches(pool_path)]
    return flags, time.perf_counter() - w0, time.process_time() - c0


def run_thresher(pool_path: Path, ref_path: Path, threshold: float, workers: int, out: Path
                 ) -> tuple[list[bool], list[float], list[str], float]:
    """Flags, reported Jaccard and ids per pool document, and the CLI's wall seconds."""
    cmd = ["thresher", "dedup", "--pool", str(pool_path), "--against", str(ref_path), "--method", "minhash",
           "--threshold", str(threshold), "--workers", str(workers), "--out", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    s = pq.read_table(out / "scores" / "scores.parquet", columns=["id", "dup_keep", "ref_overlap"])
    return ([not k for k in s.column("dup_keep").to_pylist()], s.column("ref_overlap").to_pylist(),
            s.column("id").to_pylist(), wall)


def quality(flags: list[bool], truth: list[bool]) -> dict:
    tp = sum(f and t for f, t in zip(flags, truth))
    return {"flagged": sum(flags), "precision": tp / max(sum(flags), 1), "recall": tp / max(sum(truth), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, action="append")
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    data = args.data or [ROOT.parent / "shared" / "data" / "dedup", Path("/tmp/dedup_edits")]
    if Path("/tmp/dedup_edits") in data and not (Path("/tmp/dedup_edits") / "docs.parquet").is_file():
        subprocess.run([sys.executable, str(ROOT / "bench" / "build_dedup_edits.py"), "--out", "/tmp/dedup_edits"],
                       check=True)
    from thresher.dedup import MinHashConfig

    bands, rows = MinHashConfig(threshold=args.threshold).bands_rows
    work = Path(tempfile.mkdtemp(prefix="bench-decon-near-"))
    results = []
    for d in data:
        docs = pq.read_table(d / "docs.parquet", columns=["id", "text"])
        originals = pa.array(sorted(set(pq.read_table(d / "pairs.parquet").column("orig_id").to_pylist())))
        is_ref = pc.is_in(docs.column("id"), value_set=originals)
        ref, pool = docs.filter(is_ref), docs.filter(pc.invert(is_ref))
        ref_path, pool_path = work / f"{d.name}.ref.parquet", work / f"{d.name}.pool.parquet"
        pq.write_table(ref, ref_path)
        pq.write_table(pool, pool_path)
        t0 = time.perf_counter()
        best = brute_force(shingles(pool.column("text").to_pylist()), shingles(ref.column("text").to_pylist()))
        brute_s = time.perf_counter() - t0
        truth = [j >= args.threshold for j in best]
        row = {"set": str(d), "pool": pool.num_rows, "reference": ref.num_rows, "truth": sum(truth),
               "brute_force_s": brute_s}
        for workers in (1, 2):
            flags, reported, ids, wall = run_thresher(pool_path, ref_path, args.threshold, workers,
                                                      work / f"{d.name}.w{workers}")
            assert ids == pool.column("id").to_pylist()
            exact = sum(abs(r - j) < 1e-9 for r, j, f in zip(reported, best, flags) if f)
            row[f"thresher_w{workers}"] = {**quality(flags, truth), "wall_s": wall, "jaccard_exact": exact}
        flags, wall, cpu = run_datasketch(pool_path, ref_path, args.threshold, bands, rows)
        row["datasketch"] = {**quality(flags, truth), "wall_s": wall, "cpu_s": cpu}
        results.append(row)
        print(json.dumps(row, indent=1), flush=True)
    report = {"threshold": args.threshold, "bands_rows": [bands, rows], "machine": platform.platform(),
              "python": sys.version.split()[0], "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decontaminate_near.json").write_text(json.dumps(report, indent=1))
    (args.out / "decontaminate_near.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [f"Jaccard >= {report['threshold']} on word 5-grams, {report['bands_rows'][0]} bands x "
             f"{report['bands_rows'][1]} rows for both tools.", "",
             "| set | pool | reference | contaminated (exact) | tool | flagged | precision | recall | reported J exact "
             "| seconds | brute force / tool |", "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        for tool in ("thresher_w1", "thresher_w2", "datasketch"):
            q = r[tool]
            name = {"thresher_w1": "thresher CLI, 1 worker", "thresher_w2": "thresher CLI, 2 workers",
                    "datasketch": "datasketch (in process)"}[tool]
            exact = f"{q['jaccard_exact']:,} / {q['flagged']:,}" if "jaccard_exact" in q else "n/a"
            lines.append(f"| {Path(r['set']).name} | {r['pool']:,} | {r['reference']:,} | {r['truth']:,} | {name} | "
                         f"{q['flagged']:,} | {q['precision']:.1%} | {q['recall']:.1%} | {exact} | {q['wall_s']:.1f} | "
                         f"{r['brute_force_s'] / q['wall_s']:.1f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
