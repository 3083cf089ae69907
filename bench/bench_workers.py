"""How `thresher select` and `thresher score` scale from one worker to two, beside what this machine allows (issue 18).

    python bench/bench_workers.py [--pool /tmp/pool5.parquet] [--score-pool ../shared/data/pool-en/pool.parquet]

select's pool is pool-en written five times over with new ids (468,475 records, 50 row groups; built if missing);
score's (Gopher, C4 and FineWeb rules, about 5x slower per record) is pool-en itself (93,695 records). Each
command runs from the CLI (start to exit): with ``--workers 1``, with ``--workers 2``, and as **two independent
``--workers 1`` runs at the same time**. The last is the machine's ceiling for this work: two processes that share
nothing still slow each other down (shared caches, memory bandwidth, and on virtual machines cores that are not
whole cores), by a factor ``s``; no split of the work over two workers can beat ``2 / s`` times one worker. Reported
per command: the featurize (select) or score stage's seconds from the manifest, and wall seconds end to end; the
speed-up from a second worker and that ceiling. Results: bench/results/workers.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

COMMANDS = {
    "select": (["select", "--target", str(DATA / "targets" / "news.target.parquet"), "--budget", "5%"],
               "featurize_pool"),
    "score": (["score", "--scorers", "gopher,c4,fineweb"], None),
}


def build_pool(path: Path) -> None:
    table = pq.read_table(DATA / "pool-en" / "pool.parquet", columns=["id", "text", "domain"])
    with pq.ParquetWriter(path, table.schema, compression="zstd") as w:
        for k in range(5):
            w.write_table(table.set_column(0, "id", pa.array([f"{i}#{k}" for i in table.column("id").to_pylist()])),
                          row_group_size=len(table) // 10 + 1)


def launch(name: str, pool: Path, workers: int, out: Path) -> subprocess.Popen:
    args, _ = COMMANDS[name]
    return subprocess.Popen(["thresher", *args, "--pool", str(pool), "--workers", str(workers), "--out", str(out),
                             "--no-report", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stage_seconds(name: str, out: Path) -> float:
    timings = json.loads((out / "manifest.json").read_text())["timings"]
    stage = COMMANDS[name][1]
    return float(timings[stage]) if stage else float(sum(v for v in timings.values() if isinstance(v, int | float)))


def run(name: str, pool: Path, workers: int, work: Path, tag: str) -> tuple[float, float]:
    out = work / f"{name}-{tag}"
    t0 = time.perf_counter()
    p = launch(name, pool, workers, out)
    _, err = p.communicate()
    assert p.returncode == 0, err.decode()
    return time.perf_counter() - t0, stage_seconds(name, out)


def concurrent(name: str, pool: Path, work: Path, tag: str) -> tuple[float, float]:
    outs = [work / f"{name}-{tag}-{k}" for k in (0, 1)]
    t0 = time.perf_counter()
    procs = [launch(name, pool, 1, out) for out in outs]
    walls = []
    for p in procs:
        _, err = p.communicate()
        assert p.returncode == 0, err.decode()
        walls.append(time.perf_counter() - t0)
    return statistics.mean(walls), statistics.mean(stage_seconds(name, out) for out in outs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=Path, default=Path("/tmp/pool5.parquet"))
    ap.add_argument("--score-pool", type=Path, default=DATA / "pool-en" / "pool.parquet")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--commands", default="select,score")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if not args.pool.is_file():
        build_pool(args.pool)
    work = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    rows = []
    for name in args.commands.split(","):
        pool = args.score_pool if name == "score" else args.pool
        one, two, both = [], [], []
        for r in range(args.repeats):
            one.append(run(name, pool, 1, work, f"w1-{r}"))
            two.append(run(name, pool, 2, work, f"w2-{r}"))
            both.append(concurrent(name, pool, work, f"pair-{r}"))
        med = {k: [statistics.median(x[i] for x in v) for i in (0, 1)] for k, v in
               (("one", one), ("two", two), ("both", both))}
        slowdown = med["both"][1] / med["one"][1]
        row = {"command": name, "pool": str(pool), "stage": COMMANDS[name][1] or "all stages",
               "stage_s": {"workers_1": med["one"][1], "workers_2": med["two"][1], "two_runs_at_once": med["both"][1]},
               "wall_s": {"workers_1": med["one"][0], "workers_2": med["two"][0], "two_runs_at_once": med["both"][0]},
               "speedup_stage": med["one"][1] / med["two"][1], "speedup_wall": med["one"][0] / med["two"][0],
               "ceiling": 2 / slowdown}
        row["share_of_ceiling"] = row["speedup_stage"] / row["ceiling"]
        rows.append(row)
        print(json.dumps(row, indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "workers.json").write_text(json.dumps({"pool": str(args.pool), "rows": rows}, indent=1))
    lines = ["| command | stage | 1 worker (s) | 2 workers (s) | two 1-worker runs at once (s each) | speed-up, stage "
             "| machine ceiling (2 / slowdown) | share of ceiling | CLI wall 1 -> 2 workers (s) | speed-up, wall |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s, w = r["stage_s"], r["wall_s"]
        lines.append(f"| {r['command']} | {r['stage']} | {s['workers_1']:.1f} | {s['workers_2']:.1f} | "
                     f"{s['two_runs_at_once']:.1f} | {r['speedup_stage']:.2f}x | {r['ceiling']:.2f}x | "
                     f"{r['share_of_ceiling']:.0%} | {w['workers_1']:.1f} -> {w['workers_2']:.1f} | "
                     f"{r['speedup_wall']:.2f}x |")
    (args.out / "workers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
