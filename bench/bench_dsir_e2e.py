"""Targeted selection end to end as users run it: the ``thresher select`` CLI vs the DSIR peer script, start to exit
(issue 18: the ratio in bench_dsir.py's table times each tool's pass inside its process).

    python bench/bench_dsir_e2e.py [--targets news] [--procs 1,2]

Per target and process count, each command is a subprocess timed from launch to exit (wall; CPU: the larger of what
the launched process and the children it waited for used (``os.times``) and the sum of psutil samples of every
process of the tree, each process's own time):

* thresher: ``thresher select --pool POOL --target TARGET --budget 4684 --seed 0 --workers N --out TMP`` with a
  fresh ``THRESHER_CACHE`` (no feature cache), writing what it always writes (selected records, scores, manifest,
  report.html);
* DSIR: bench/peers/dsir_peer.py (``data-selection`` 1.0.3 as its README runs it: JSONL conversion of pool and
  target, fit, importance weights, resampling, ids out), ``--num-proc N``;
* beside them, the in-process pass each reports (bench_dsir.py's figure: thresher via bench/run_thresher.py, DSIR's
  own ``seconds``).

Results: bench/results/dsir_e2e.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds of a command and every process under it, and its stdout."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen: dict[int, float] = {}
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                for p in [root, *root.children(recursive=True)]:
                    try:
                        c = p.cpu_times()  # its own time only: reaped children are sampled themselves
                        seen[p.pid] = c.user + c.system
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    before = os.times()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    after = os.times()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err[-3000:]}")
    waited = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, max(waited, sum(seen.values())), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--targets", default="news")
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--k", type=int, default=4684)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    pool = args.data / "pool-en" / "pool.parquet"
    work = Path(tempfile.mkdtemp(prefix="bench-dsir-e2e-"))
    rows = []
    for target in args.targets.split(","):
        tpath = args.data / "targets" / f"{target}.target.parquet"
        for procs in map(int, args.procs.split(",")):
            row = {"target": target, "procs": procs}
            env = {**os.environ, "THRESHER_CACHE": str(work / f"cache-{target}-{procs}")}
            cli = ["thresher", "select", "--pool", str(pool), "--target", str(tpath), "--budget", str(args.k),
                   "--seed", "0", "--workers", str(procs), "--out", str(work / f"sel-{target}-{procs}"), "-q"]
            row["thresher_cli"] = dict(zip(("wall_s", "cpu_s"), timed(cli, env)[:2]))
            inproc = [sys.executable, str(HERE / "run_thresher.py"), "--pool", str(pool), "--target", str(tpath),
                      "--k", str(args.k), "--seed", "0", "--workers", str(procs), "--out-ids",
                      str(work / f"ids-{target}-{procs}.txt")]
            row["thresher_pass_s"] = json.loads(timed(inproc, env)[2].strip().splitlines()[-1])["seconds"]
            peer = [sys.executable, str(HERE / "peers" / "dsir_peer.py"), "--pool", str(pool), "--target", str(tpath),
                    "--k", str(args.k), "--seed", "0", "--num-proc", str(procs), "--buckets", "10000",
                    "--workdir", str(work / f"dsir-{target}-{procs}"), "--out-ids",
                    str(work / f"dsir-{target}-{procs}.txt")]
            wall, cpu, out = timed(peer)
            row["dsir_script"] = {"wall_s": wall, "cpu_s": cpu}
            row["dsir_pass_s"] = json.loads(out.strip().splitlines()[-1])["seconds"]
            row["ratio_wall"] = wall / row["thresher_cli"]["wall_s"]
            row["ratio_cpu"] = cpu / row["thresher_cli"]["cpu_s"]
            row["ratio_pass"] = row["dsir_pass_s"] / row["thresher_pass_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dsir_e2e.json").write_text(json.dumps(rows, indent=1))
    lines = ["| target | processes | DSIR script wall (s) | thresher CLI wall (s) | ratio, wall | DSIR CPU (s) | "
             "thresher CPU (s) | ratio, CPU | in-process pass: DSIR / thresher (s) | ratio, pass |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['target']} | {r['procs']} | {r['dsir_script']['wall_s']:.1f} | "
                     f"{r['thresher_cli']['wall_s']:.1f} | {r['ratio_wall']:.1f}x | {r['dsir_script']['cpu_s']:.1f} | "
                     f"{r['thresher_cli']['cpu_s']:.1f} | {r['ratio_cpu']:.1f}x | {r['dsir_pass_s']:.1f} / "
                     f"{r['thresher_pass_s']:.2f} | {r['ratio_pass']:.1f}x |")
    (args.out / "dsir_e2e.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
