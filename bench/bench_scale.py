"""How select and dedup scale on one machine: throughput, peak memory per process and disk, at growing pool sizes.

The pool is pool-en resampled with light perturbation (each record: a random pool-en text with a seeded fraction
of its words dropped, so records differ and near-duplicates exist), written as Parquet on the fly. Each size runs
`thresher select` (DSIR, 5%) and `thresher dedup` (exact + MinHash) from the CLI, start to exit, while a sampler
records the peak RSS of the largest single process and of the whole process tree. Streaming stages should keep
worker memory flat; what grows with the pool is the main process's per-record tables (ids, lengths, scores,
signatures), and this benchmark measures by how much.

    python bench/bench_scale.py [--sizes 100000,400000,1000000] [--workers 2] [--jobs select,dedup]

For dedup it also reports the bytes its shuffles spilled (exact's hashes; MinHash's band keys, shingle sets,
candidate pairs and connected-components rounds; from the run manifest), which sit on disk until the job ends, and
keeps the manifest's shuffle section (partitions, files, component rounds) in each JSON row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def make_pool(path: Path, n: int, seed: int = 0, part: int = 100_000) -> int:
    """Write ``n`` perturbed pool-en records to ``path`` (a folder of Parquet files); return the bytes of text.

    Each record is a random pool-en text with a seeded 0-10% of its words dropped (a record that would lose every
    word keeps them all); vectorised in Arrow, so 10 million records take minutes, not hours.
    """
    base = pq.read_table(DATA / "pool-en" / "pool.parquet", columns=["text", "domain"])
    texts = base["text"].combine_chunks()
    words = pc.split_pattern(texts, " ")
    domains = base["domain"].combine_chunks()
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    total = 0
    for start in range(0, n, part):
        m = min(part, n - start)
        pick = pa.array(rng.integers(0, len(words), m))
        picked = words.take(pick)
        flat = picked.flatten()
        sizes = np.diff(picked.offsets.to_numpy())
        record = np.repeat(np.arange(m), sizes)
        keep = rng.random(len(flat)) >= rng.uniform(0.0, 0.1, m)[record]
        kept = np.bincount(record[keep], minlength=m)
        keep |= (kept == 0)[record]  # nothing left: the record keeps its words
        counts = np.bincount(record[keep], minlength=m)
        offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
        text = pc.binary_join(pa.ListArray.from_arrays(offsets, flat.filter(pa.array(keep))), pa.scalar(" ", flat.type))
        blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)  # only spaces left: keep the original
        text = pc.if_else(blank, texts.take(pick), text)
        total += pc.sum(pc.binary_length(text)).as_py()
        table = pa.table({"id": [f"r{start + i:010d}" for i in range(m)], "text": text,
                          "domain": domains.take(pick)})
        pq.write_table(table, path / f"part-{start // part:05d}.parquet", row_group_size=10_000)
    return total


def _rss_by_process(root: int) -> dict[int, int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rfind(b")") + 2:].split()[1]), []).append(int(name))
    out, stack = {}, [root]
    while stack:
        pid = stack.pop()
        with contextlib.suppress(OSError, IndexError, ValueError):  # the process may have just ended
            out[pid] = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        stack.extend(children.get(pid, ()))
    return out


def run(args: list[str]) -> dict:
    """Run the CLI; wall time, peak RSS of the main process, of the largest other process, and of the tree."""
    proc = subprocess.Popen([sys.executable, "-m", "thresher.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    peaks = {"main": 0, "worker": 0, "tree": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = _rss_by_process(proc.pid)
            if rss:
                peaks["main"] = max(peaks["main"], rss.get(proc.pid, 0))
                peaks["worker"] = max([peaks["worker"], *(v for k, v in rss.items() if k != proc.pid)])
                peaks["tree"] = max(peaks["tree"], sum(rss.values()))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    _, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(args)}\n{err}")
    return {"wall_s": round(wall, 1), **{f"peak_{k}_mb": round(v / 2**20) for k, v in peaks.items()}}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,400000,1000000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--jobs", default="select,dedup", help="which jobs to run (comma-separated)")
    a = ap.parse_args()
    jobs = a.jobs.split(",")
    work = Path(tempfile.mkdtemp(prefix="thresher-bench-scale-"))
    target = DATA / "targets" / "news.target.parquet"
    rows = []
    try:
        for n in (int(s) for s in a.sizes.split(",")):
            pool = work / f"pool-{n}"
            t0 = time.perf_counter()
            text_bytes = make_pool(pool, n)
            gen_s = time.perf_counter() - t0
            done = []
            if "select" in jobs:
                sel = run(["select", "--pool", str(pool), "--target", str(target), "--budget", "5%", "--workers",
                           str(a.workers), "--out", str(work / f"sel-{n}"), "--no-report", "--quiet"])
                sel["disk_mb"] = round(du(work / f"sel-{n}") / 2**20)
                sel["stages"] = json.loads((work / f"sel-{n}" / "manifest.json").read_text())["timings"]
                shutil.rmtree(work / f"sel-{n}")  # its feature cache (~0.9x the text) is not needed any more
                done.append(("select", sel))
            if "dedup" in jobs:
                out = work / f"dedup-{n}"
                ded = run(["dedup", "--pool", str(pool), "--workers", str(a.workers), "--out", str(out),
                           "--format", "ids", "--no-report", "--quiet"])
                ded["disk_mb"] = round(du(out) / 2**20)
                # the shuffles: exact's hashes; MinHash's band keys, shingle sets, candidate pairs and component
                # rounds' edges, written to (and removed from) disk; how each was spread is kept in the row
                shuffle = json.loads((out / "manifest.json").read_text()).get("shuffle", {})
                ded["shuffled_mb"] = round(sum(m.get("bytes_spilled", 0) for m in shuffle.values()) / 2**20)
                ded["shuffle"] = shuffle
                ded["stages"] = json.loads((out / "manifest.json").read_text())["timings"]
                done.append(("dedup", ded))
            mb = text_bytes / 1e6
            for job, r in done:
                rows.append({"records": n, "text_mb": round(mb), "job": job, "shuffled_mb": 0, **r,
                             "mb_per_s": round(mb / r["wall_s"], 1),
                             "main_bytes_per_record": round(r["peak_main_mb"] * 2**20 / n)})
                print(json.dumps(rows[-1]), flush=True)
            print(f"(pool generated in {gen_s:.0f} s)", flush=True)
            shutil.rmtree(pool)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = ["records", "text MB", "job", "CLI wall s", "MB/s", "peak RSS main MB", "peak RSS largest worker MB",
              "peak RSS tree MB", "disk MB", "shuffled MB", "main RSS bytes/record"]
    keys = ["records", "text_mb", "job", "wall_s", "mb_per_s", "peak_main_mb", "peak_worker_mb", "peak_tree_mb",
            "disk_mb", "shuffled_mb", "main_bytes_per_record"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(f"{r[k]:,}" if isinstance(r[k], int) else str(r[k]) for k in keys) + " |"
              for r in rows]
    lines += ["", "Seconds per stage (from each run's manifest):", ""]
    lines += [f"- {r['records']:,} {r['job']}: " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items())
              for r in rows]
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    command = f"python bench/bench_scale.py --sizes {a.sizes} --workers {a.workers} --jobs {a.jobs}"
    (RESULTS / "scale.md").write_text(f"`{command}`\n\n{table}\n")
    (RESULTS / "scale.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
