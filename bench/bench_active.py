"""Active learning on real labelled text: learning curves to 2,000 labels, each strategy against random (issue 17).

    python bench/bench_active.py [--data ../shared/data/labeled] [--tasks bbc_news,rotten_tomatoes,brown_genre]
                                 [--seeds 10] [--start 100] [--batch 100] [--max-labels 2000] [--workers 2]
                                 [--features hashed|tfidf|static|minilm] [--methods random,margin,...] [--name active]

Per task, the train split is the simulated annotator and the test split measures: ``thresher evaluate --experiment
active`` (from the CLI, timed start to exit) runs random, margin (the default strategy, chosen before any result
from the literature: the usual strong uncertainty baseline for linear text classifiers), entropy, least confidence,
core-set and BADGE from ``--start`` random labels, ``--batch`` per round, to ``--max-labels``. Reported: the area
under each accuracy curve against random's (paired by seed, 95% interval), final accuracy, and the labels each
strategy needs to reach random's final accuracy. The goal (issue 17): the default reaches random's final accuracy
with at most 70% of the labels on at least two of the three sets. Results: bench/results/active.{md,json}.
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

import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "labeled")
    ap.add_argument("--tasks", default="bbc_news,rotten_tomatoes,brown_genre")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--start", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--max-labels", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--features", default=None, help="the classifier's features [default: thresher's]")
    ap.add_argument("--methods", default=None, help="strategies [default: all six]")
    ap.add_argument("--name", default="active", help="results file name: bench/results/NAME.{md,json}")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-active-"))
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "settings": {k: getattr(args, k) for k in ("seeds", "start", "batch", "max_labels", "features")},
                    "tasks": {}}
    for task in args.tasks.split(","):
        table = pq.read_table(args.data / f"{task}.parquet", columns=["id", "text", "label", "split"])
        paths = {}
        for split in ("train", "test"):
            paths[split] = work / f"{task}-{split}.parquet"
            pq.write_table(table.filter(pc.equal(table.column("split"), split)), paths[split])
        out = work / f"{task}-active"
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "thresher.cli", "evaluate", "--experiment", "active", "--pool",
                               str(paths["train"]), "--heldout", str(paths["test"]), "--start-labels", str(args.start),
                               "--batch-labels", str(args.batch), "--max-labels", str(args.max_labels), "--seeds",
                               str(args.seeds), "--workers", str(args.workers), "--out", str(out),
                               *(["--features", args.features] if args.features else []),
                               *(["--methods", args.methods] if args.methods else [])],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if done.returncode:
            raise SystemExit(done.stderr)
        evaluation = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))
        result["tasks"][task] = {"train": evaluation["pool_records"], "test": evaluation["heldout_records"],
                                 "seconds": round(seconds, 1), "results": evaluation["results"],
                                 "curves": evaluation["curves"]}
        print(f"{task}: {seconds:.0f} s\n{done.stdout}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (args.out / f"{args.name}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [f"Learning curves from {s['start']} to {s['max_labels']} labels, {s['batch']} per round, "
             f"{s['seeds']} seeds; {s.get('features') or 'hashed'} features; test accuracy.", ""]
    for task, entry in result["tasks"].items():
        lines += [f"**{task}** ({entry['train']:,} train / {entry['test']:,} test records; "
                  f"{entry['seconds']:.0f} s end to end)", "",
                  "| strategy | AUC | AUC vs random [95%] | final accuracy | labels to reach random's final |",
                  "|---|---:|---|---:|---:|"]
        for r in entry["results"]:
            delta = (f"{r['auc_delta']:+.4f} [{r['auc_delta_lo']:+.4f}, {r['auc_delta_hi']:+.4f}] {r['verdict']}"
                     if "auc_delta" in r else "baseline")
            reach = (f"{r['labels_to_random_final']:,} ({r['share_of_labels']:.0%})"
                     if r["labels_to_random_final"] else "not reached")
            lines.append(f"| {r['strategy']} | {r['auc']:.4f} | {delta} | {r['final_accuracy']:.4f} | {reach} |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
