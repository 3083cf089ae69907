"""Local engine vs Ray engine on the same work: CLI end to end (start to exit, every process) and per stage.

Runs `thresher select` and `thresher score` on a slice of pool-en, once with the local process pool and once with
`--engine ray` (a local Ray instance started by the command itself, as a user without a cluster would get, and a
running cluster reached with --ray-address, which leaves out Ray's start-up), on the same number of workers.
Checks that the outputs are byte-identical and prints the overhead ratio (ray / local) per stage and end to end.

    python bench/bench_engines.py [--records 30000] [--workers 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def _run(args: list[str]) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(args)}\n{proc.stderr}")
    out = Path(args[args.index("--out") + 1])
    return wall, json.loads((out / "manifest.json").read_text()).get("timings", {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=30_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    import ray

    work = Path(tempfile.mkdtemp(prefix="thresher-bench-engines-"))
    pool = work / "pool.parquet"
    pq.write_table(pq.read_table(DATA / "pool-en" / "pool.parquet").slice(0, a.records), pool, row_group_size=2000)
    target = DATA / "targets" / "news.target.parquet"
    jobs = {
        "select": ["select", "--pool", str(pool), "--target", str(target), "--budget", "5%"],
        "score": ["score", "--pool", str(pool), "--target", str(target), "--scorers", "gopher,dsir,tokens"],
    }
    ray.init(num_cpus=a.workers, include_dashboard=False, logging_level="ERROR")  # a running cluster to reach
    address = ray.get_runtime_context().gcs_address
    engines = {"local": [], "ray (started by the command)": ["--engine", "ray"],
               "ray (running cluster)": ["--engine", "ray", "--ray-address", address]}
    rows, results = [], {}
    for job, args in jobs.items():
        outputs = {}
        for name, extra in engines.items():
            walls, stages = [], {}
            for r in range(a.repeats):
                out = work / f"{job}-{name.split()[0]}-{len(extra)}-{r}"
                wall, timings = _run([*args, "--out", str(out), "--workers", str(a.workers), "--no-report",
                                      "--quiet", *extra])
                walls.append(wall)
                for k, v in timings.items():
                    stages.setdefault(k, []).append(v)
                outputs.setdefault(name, out)
            results[(job, name)] = (statistics.median(walls), {k: statistics.median(v) for k, v in stages.items()})
        scores = {n: (o / "scores" / "scores.parquet").read_bytes() for n, o in outputs.items()}
        identical = len(set(scores.values())) == 1
        base_wall, base_stages = results[(job, "local")]
        for name in engines:
            wall, stages = results[(job, name)]
            heavy = max(base_stages, key=base_stages.get) if base_stages else None
            ratio_stage = (f"{heavy} {stages.get(heavy, float('nan')) / base_stages[heavy]:.2f}x"
                           if heavy and base_stages[heavy] > 0 else "")
            rows.append((job, name, f"{wall:.1f}", f"{wall / base_wall:.2f}x", ratio_stage,
                         "yes" if identical else "NO"))
    ray.shutdown()
    header = ("job", "engine", "CLI wall s (median)", "vs local", "slowest local stage, ray/local", "identical")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    table = "\n".join(lines)
    print(f"{a.records:,} records of pool-en, {a.workers} workers, median of {a.repeats}\n\n{table}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engines.md").write_text(f"`python bench/bench_engines.py --records {a.records} --workers "
                                        f"{a.workers} --repeats {a.repeats}`\n\n{table}\n")


if __name__ == "__main__":
    main()
