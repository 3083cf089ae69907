"""Data Diet on text, and dropping flagged labels: does curating labelled data beat random? (issue 17)

    python bench/bench_curation.py [--data ../shared/data/labeled] [--tasks bbc_news,rotten_tomatoes,brown_genre]
                                   [--seeds 10] [--workers 2] [--noise 0.2]

Per task, the train split is audited from the CLI (``thresher audit --dynamics all``), then ``thresher evaluate
--experiment`` trains softmax regression on hashed uni+bigrams on what each method keeps and tests it on the test
split, ``--seeds`` paired seeds, 95% intervals of the improvement over random subsets of the same size:

* pruning on the clean train split (the Data Diet question): keep 50% and 70% by EL2N (hardest), easiest EL2N,
  largest AUM, most ambiguous (cartography variability), or stratified random;
* the same pruning with ``--noise`` of the train labels flipped (symmetric), where keeping the hardest keeps the
  flips;
* label-error removal on the noisy train split: drop the audit's flagged records vs as many at random.

Results: bench/results/curation.{md,json}; each command's wall time (start to exit) is recorded too.
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_audit import plant  # noqa: E402


def cli(*args: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "thresher.cli", *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "labeled")
    ap.add_argument("--tasks", default="bbc_news,rotten_tomatoes,brown_genre")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--noise", type=float, default=0.2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-curation-"))
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "seeds": args.seeds,
                    "noise": args.noise, "tasks": {}}
    for task in args.tasks.split(","):
        table = pq.read_table(args.data / f"{task}.parquet", columns=["id", "text", "label", "split"])
        train = table.filter(pc.equal(table.column("split"), "train")).drop_columns(["split"])
        test = table.filter(pc.equal(table.column("split"), "test")).drop_columns(["split"])
        pq.write_table(test, work / f"{task}-test.parquet")
        classes = sorted(set(train.column("label").to_pylist()))
        y = np.array([classes.index(v) for v in train.column("label").to_pylist()])
        noisy, flipped = plant(y, len(classes), args.noise, "symmetric", 0)
        pq.write_table(train, work / f"{task}-clean.parquet")
        pq.write_table(train.set_column(2, "label", pa.array([classes[i] for i in noisy])),
                       work / f"{task}-noisy.parquet")
        entry: dict = {"train": len(y), "test": test.num_rows, "flipped": int(flipped.sum()), "seconds": {}}
        for kind in ("clean", "noisy"):
            audit = work / f"{task}-{kind}-audit"
            entry["seconds"][f"audit_{kind}"] = round(cli(
                "audit", "--pool", str(work / f"{task}-{kind}.parquet"), "--dynamics", "all", "--out", str(audit),
                "--workers", str(args.workers), "--no-report", "-q"), 2)
            experiments = [("pruning", ["--methods", "el2n,easy,aum,ambiguous,stratified",
                                        "--budgets", "50%,70%"])]
            if kind == "noisy":
                experiments.append(("label-errors", []))
            for experiment, options in experiments:
                out = work / f"{task}-{kind}-{experiment}"
                entry["seconds"][f"{experiment}_{kind}"] = round(cli(
                    "evaluate", "--experiment", experiment, "--from-run", str(audit), "--heldout",
                    str(work / f"{task}-test.parquet"), "--seeds", str(args.seeds), "--workers", str(args.workers),
                    "--out", str(out), "-q", *options), 2)
                rows = json.loads((out / "evaluation.json").read_text(encoding="utf-8"))["rows"]
                entry[f"{experiment}_{kind}"] = [r for r in rows if r["metric"] == "accuracy"]
            print(f"{task} {kind}: done ({entry['seconds']})", flush=True)
        result["tasks"][task] = entry
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "curation.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    (args.out / "curation.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = []
    for task, entry in result["tasks"].items():
        for key, title in (("pruning_clean", "pruning, clean labels"),
                           ("pruning_noisy", f"pruning, {result['noise']:.0%} of labels flipped"),
                           ("label-errors_noisy", f"label-error removal, {result['noise']:.0%} flipped")):
            rows = entry.get(key) or []
            if not rows:
                continue
            kept = list(dict.fromkeys(r["budget"] for r in rows))
            lines += [f"**{task}** ({entry['train']:,} train / {entry['test']:,} test records): {title}; test accuracy,"
                      f" improvement over random [95% interval], {result['seeds']} seeds", "",
                      "| method | " + " | ".join(kept) + " |", "|---|" + "---|" * len(kept)]
            for method in dict.fromkeys(r["method"] for r in rows):
                cells = []
                for k in kept:
                    r = next((r for r in rows if r["method"] == method and r["budget"] == k), None)
                    if r is None:
                        cells.append("")
                    elif r["verdict"] == "baseline":
                        cells.append(f"{r['estimate']:.3f}")
                    else:
                        cells.append(f"{r['estimate']:.3f} ({r['delta']:+.3f} [{r['delta_lo']:+.3f}, "
                                     f"{r['delta_hi']:+.3f}] {r['verdict']})")
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
            lines.append("")
        lines.append(f"{task} wall times (s, start to exit): "
                     + ", ".join(f"{k} {v}" for k, v in entry["seconds"].items()))
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
