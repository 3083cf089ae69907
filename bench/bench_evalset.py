"""Choosing evaluation items (issue 15): does a method's subset rank and estimate new systems better than random?

For each labelled set in ``../shared/data/labeled/`` (BBC news, Brown genres, Rotten Tomatoes), and a held-out task
the defaults were not tuned on (health tweets of ``../shared/data/pool-en``, labelled by the outlet that posted them),
builds a real small leaderboard (:mod:`thresher.evalset.leaderboard`: --systems classifiers that differ in training
size, features, regularisation and kind, trained on up to --train records of the set's train split and scored on up to
--items records of its test split), then runs ``thresher evalset --check`` (the CLI, timed start to exit) on the
correctness table and on the probability-of-the-true-class table: --splits seen/new halves of the systems, budgets 25,
50, 100, 200, each method against random on the same splits. Prints Kendall tau, MAE (and its ratio to random's),
interval coverage and the verdicts.

    python bench/bench_evalset.py [--data ../shared/data] [--systems 40] [--splits 100] [--methods ...]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thresher.evalset.leaderboard import build_leaderboard

SETS = ("bbc_news", "brown_genre", "rotten_tomatoes", "tweets")
#: The held-out task: none of the defaults (strata, floor, estimator) was chosen looking at it.
HELD_OUT = ("tweets",)


def _split(data: Path, name: str) -> tuple[pa.Table, pa.Table]:
    """(train, test) of a set, as id, text, label: a labelled set's own splits, or the tweets' seeded halves."""
    if name == "tweets":
        t = pq.read_table(data / "pool-en" / "pool.parquet", columns=["id", "text", "group"])
        t = t.filter(pc.starts_with(t["group"], "tweet:")).rename_columns(["id", "text", "label"])
        order = np.random.default_rng(0).permutation(t.num_rows)
        return t.take(pa.array(np.sort(order[800:]))), t.take(pa.array(np.sort(order[:800])))
    t = pq.read_table(data / "labeled" / f"{name}.parquet", columns=["id", "text", "label", "split"])
    return tuple(t.filter(pc.equal(t["split"], s)) for s in ("train", "test"))


def leaderboard(data: Path, name: str, n_train: int, n_items: int, n_systems: int) -> tuple[pa.Table, tuple]:
    """A set's test items (up to ``n_items``, seeded) and its (correctness, p(true)) tables of ``n_systems``
    classifiers trained on up to ``n_train`` of its train records (the benchmark's leaderboard)."""
    train, test = _split(data, name)
    rng = np.random.default_rng(0)
    train = train.take(pa.array(np.sort(rng.choice(train.num_rows, min(n_train, train.num_rows), replace=False))))
    test = test.take(pa.array(np.sort(rng.choice(test.num_rows, min(n_items, test.num_rows), replace=False))))
    return test, build_leaderboard(train["text"].combine_chunks(), np.array(train["label"].to_pylist()),
                                   test["text"].combine_chunks(), np.array(test["label"].to_pylist()),
                                   test["id"].to_pylist(), n_systems=n_systems, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", type=Path, default=here.parent / "shared" / "data")
    parser.add_argument("--systems", type=int, default=40)
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--budgets", default="25,50,100,200")
    parser.add_argument("--methods", default="random,difficulty,random+control,anchor,active,irt")
    parser.add_argument("--out", type=Path, default=None, help="keep the leaderboards and check directories here")
    parser.add_argument("--costs", action="store_true",
                        help="each item costs its word count: budgets become --budgets x the mean words per item")
    args = parser.parse_args()
    print("| set | table | budget | method | Kendall tau | MAE | MAE / random's | coverage (width) | tau vs random | "
          "MAE vs random |")
    print("|---|---|---:|---|---:|---:|---:|---:|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.out or tmp
        Path(tmp).mkdir(parents=True, exist_ok=True)
        for name in SETS:
            started = time.perf_counter()
            test, tables = leaderboard(args.data, name, args.train, args.items, args.systems)
            built = time.perf_counter() - started
            extra: list[str] = []
            if args.costs:  # an item costs its words (reading time): a budget of b items is b x the mean words
                words = np.array([len(t.split()) for t in test["text"].to_pylist()], dtype=np.float64)
                pq.write_table(pa.table({"item": test["id"], "words": words}), Path(tmp) / f"{name}-items.parquet")
                extra = ["--items", str(Path(tmp) / f"{name}-items.parquet"), "--cost-field", "words"]
            for kind, table in zip(("correct", "p(true)"), tables):
                path = Path(tmp) / f"{name}-{kind[0]}.parquet"
                pq.write_table(table.to_long(), path)
                budgets = ",".join(b for b in args.budgets.split(",") if int(b) < len(table.items))
                out = Path(tmp) / f"{name}-{kind[0]}"
                if args.costs:
                    budgets = ",".join(f"{int(b) * words.mean():.1f}" for b in budgets.split(","))
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "thresher.cli", "evalset", "--check", "--scores", str(path),
                                "--methods", args.methods, "--budgets", budgets, "--splits", str(args.splits),
                                "--out", str(out), *extra], check=True, stdout=subprocess.DEVNULL)
                seconds = time.perf_counter() - started
                with (out / "results.csv").open() as f:
                    rows = {(r["method"], r["budget"], r["metric"]): r for r in csv.DictReader(f)}
                for budget in (str(float(b)) if args.costs else b for b in budgets.split(",")):
                    base_mae = float(rows["random", budget, "mae"]["mean"])
                    for method in args.methods.split(","):
                        tau, mae = rows[method, budget, "kendall_tau"], rows[method, budget, "mae"]
                        cov, width = rows[method, budget, "coverage"], rows[method, budget, "interval_width"]
                        vs = ["" if method == "random" else
                              f"{float(r['delta_vs_random']):+.3f} [{float(r['delta_lo']):+.3f}, "
                              f"{float(r['delta_hi']):+.3f}] {r['verdict']}" for r in (tau, mae)]
                        held = " (held out)" if name in HELD_OUT else ""
                        spent = f" (spent {float(rows[method, budget, 'cost']['mean']):.0f})" if args.costs else ""
                        print(f"| {name}{held} ({len(table.items)} items, {len(table.systems)} systems) | {kind} "
                              f"| {budget} "
                              f"| {method}{spent} | {float(tau['mean']):.3f} | {float(mae['mean']):.4f} | "
                              f"{float(mae['mean']) / base_mae:.2f} | {float(cov['mean']):.2f} "
                              f"({float(width['mean']):.3f}) | {vs[0]} | {vs[1]} |")
                print(f"<!-- {name} {kind}: leaderboard {built:.0f} s, check CLI {seconds:.1f} s start to exit -->")


if __name__ == "__main__":
    main()
