"""thresher dedup end to end on a pool with many exact copies, as a user runs it (issue 18).

    python bench/bench_dedup_scale.py [--data ../shared/data] [--copies 5] [--workers 1,2]

pool-en written ``--copies`` times over with new ids (468,475 records for 5, in 50 row groups): every record has
``copies - 1`` exact copies, and the pool's own near-duplicates remain. ``thresher dedup`` (exact, then MinHash)
runs from the CLI with each worker count, timed start to exit (every process), with the peak RSS of the process
tree (the CLI and its workers summed, sampled every 0.1 s with psutil) and the manifest's stage times
(in-process).
Results: bench/results/dedup_scale.{md,json}.
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

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-dedup-scale-"))
    pool = pq.read_table(args.data / "pool-en" / "pool.parquet", columns=["id", "text"])
    ids = pool["id"].cast(pa.string())
    big = pa.concat_tables([pa.table({"id": pc.binary_join_element_wise(ids, pa.scalar(f"#{k}"), pa.scalar("")),
                                      "text": pool["text"]}) for k in range(args.copies)])
    path = work / "pool.parquet"
    pq.write_table(big, path, row_group_size=big.num_rows // 50 + 1)
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "records": big.num_rows, "copies": args.copies, "runs": {}}
    for workers in map(int, args.workers.split(",")):
        out = work / f"run-{workers}"
        seconds, peak, done = run_tree([sys.executable, "-m", "thresher.cli", "dedup", "--pool", str(path), "--out",
                                        str(out), "--workers", str(workers), "--quiet"])
        if done.returncode:
            raise SystemExit(done.stderr.read())
        manifest = json.loads((out / "manifest.json").read_text())
        result["runs"][workers] = {
            "cli_seconds": round(seconds, 2), "peak_tree_rss_mb": round(peak / 2**20, 1), "stages": manifest["timings"],
            "dropped": manifest["counts"]["filtered"],
            "skipped_exact_duplicates": manifest["metrics"]["minhash"].get("skipped_exact_duplicates", 0)}
        print(workers, result["runs"][workers], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dedup_scale.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (args.out / "dedup_scale.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


def run_tree(cmd: list[str]) -> tuple[float, int, subprocess.Popen]:
    """Run ``cmd``; its wall time and the peak of the summed RSS of it and all its descendants."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    return time.perf_counter() - t0, peak, proc


def markdown(result: dict) -> str:
    lines = [f"pool-en x{result['copies']} ({result['records']:,} records), `thresher dedup` (exact, then MinHash), "
             "CLI end to end.", "",
             "| workers | CLI wall (s) | peak RSS, process tree (MB) | exact stage (s) | MinHash stage (s) "
             "| exact copies dropped | near dropped | MinHash skipped |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for workers, r in result["runs"].items():
        lines.append(f"| {workers} | {r['cli_seconds']:.1f} | {r['peak_tree_rss_mb']:.0f} "
                     f"| {r['stages'].get('exact', 0):.1f} | {r['stages'].get('minhash', 0):.1f} "
                     f"| {r['dropped'].get('exact_duplicate', 0):,} | {r['dropped'].get('near_duplicate', 0):,} "
                     f"| {r['skipped_exact_duplicates']:,} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
