#!/usr/bin/env python
"""Set-level selection (``--selector match``, distribution matching) vs DSIR, the classifier and random on pool-en.

For each target ``thresher evaluate`` fits on ``targets/<t>.target.parquet``, selects 1% and 5% of the pool with 5
seeds per method and measures on the separate ``targets/<t>.heldout.parquet``: KL to the held-out n-gram
distribution (in the evaluation's space: 10,000 buckets, hash seed 0; matching works in its own, 16,384 buckets and
seed 1), target-domain precision (``domain``, used for evaluation only) and the held-out perplexity of a trigram
LM trained on the selection. Two evaluations per target: against random (the KL reduction, as DSIR reports it) and
against DSIR (``--baseline dsir``: is matching's precision or perplexity worse than DSIR's, beyond the noise?).

The default quality weight (2.0) was chosen on news, wikipedia and tech_docs. ``--held-out-targets`` checks it on
targets it was not chosen on: a domain of the pool (speeches, brown_nonfiction, literature) whose 300 target and
600 held-out records (a third and two thirds of half the domain when it is smaller: literature) are taken out of
the pool, so the pool keeps the rest of the domain.

The "bound" column is the KL reduction of greedy KL matching toward the held-out sample itself (a cheat, in the
evaluation's own space): how much room there is above DSIR at all.

Time: ``thresher select`` end to end (start to exit, a fresh cache each) with DSIR (``--selector gumbel``, its
default) and with ``--selector match``, at each budget.

    pip install -e ".[bench]"
    python bench/bench_match.py                 # ~25 min on 2 cores
    python bench/bench_match.py --targets wikipedia --budgets 1% --no-held-out-targets --no-time

Writes bench/results/match/ and bench/results/match.{md,json}.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
METHODS = "match,match:0,dsir,classifier,random"
HELD_OUT_DOMAINS = ("speeches", "brown_nonfiction", "literature")


def domain_target(pool: Path, domain: str, work: Path, seed: int = 20261205) -> tuple[Path, Path, Path]:
    """A target built from one domain of the pool: 300 target and 600 held-out records of it, removed from the
    pool (which keeps the domain's other records)."""
    table = pq.read_table(pool)
    rows = np.flatnonzero(np.asarray(table["domain"].to_pylist()) == domain)
    take = min(900, len(rows) // 2)  # the pool keeps at least half of the domain
    picked = np.random.default_rng(seed).permutation(rows)[:take]
    mask = np.ones(table.num_rows, dtype=bool)
    mask[picked] = False
    work.mkdir(parents=True, exist_ok=True)
    paths = work / f"pool-{domain}.parquet", work / f"{domain}.target.parquet", work / f"{domain}.heldout.parquet"
    pq.write_table(table.filter(pa.array(mask)), paths[0])
    pq.write_table(table.take(pa.array(picked[:take // 3])), paths[1])
    pq.write_table(table.take(pa.array(picked[take // 3:])), paths[2])
    return paths


def evaluate(pool: Path, target: Path, heldout: Path, name: str, out: Path, args, baseline: str) -> list[dict]:
    """The evaluation's rows; an evaluation that finished before (its results.csv) is read, not run again, unless
    --fresh."""
    import thresher as th
    from thresher.evaluate.harness import EvaluateConfig, run_evaluation

    if (out / "results.csv").is_file() and not args.fresh:
        with open(out / "results.csv", newline="") as f:
            return [{**r, "vs": baseline} for r in csv.DictReader(f)]
    config = EvaluateConfig(methods=args.methods.split(","), budgets=args.budgets.split(","), seeds=args.seeds,
                            metrics=["kl", "precision", "lm"], label_column="domain", positive=name,
                            target_name=name, baseline=baseline)
    result = run_evaluation(th.read(str(pool)), th.read(str(heldout)), out, target=th.read(str(target)),
                            config=config, progress=False, report=False)
    return [{**r, "vs": baseline} for r in result.rows]


def oracle_kl(pool: Path, target: Path, heldout: Path, budgets: list[str]) -> dict[str, float]:
    """KL(held-out || selection) of a selection made by greedy KL matching toward the *held-out sample itself*, in
    the evaluation's own feature space, among the records scoring methods may pick: what no honest method can beat
    by much, so the room above DSIR is known (a cheat on purpose; never a method)."""
    from thresher.evaluate.distribution import kl_divergence
    from thresher.evaluate.harness import _features
    from thresher.selectors import Budget
    from thresher.selectors.eligibility import auto_min_tokens
    from thresher.selectors.match import KLMatch

    X, tokens = _features(pq.read_table(pool, columns=["text"])["text"].combine_chunks())
    held = np.asarray(_features(pq.read_table(heldout, columns=["text"])["text"].combine_chunks())[0].sum(axis=0))
    held = held.ravel()
    rows = np.flatnonzero(tokens >= auto_min_tokens(_features(pq.read_table(target)["text"].combine_chunks())[1]))
    out = {}
    for budget in budgets:
        k = Budget.parse(budget).records(X.shape[0])
        chosen = rows[KLMatch(quality_weight=0).select(X[rows], held, k)]
        out[budget] = kl_divergence(held, np.asarray(X[chosen].sum(axis=0)).ravel())
    return out


def cli_seconds(pool: Path, target: Path, budget: str, selector: str, work: Path) -> float:
    """``thresher select`` start to exit, with a fresh feature cache."""
    out = work / f"time-{selector}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "thresher.cli", "select", "--pool", str(pool), "--target", str(target),
           "--budget", budget, "--out", str(out), "--quiet", "--workers", "1", "--selector", selector,
           "--no-report"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def summary(rows: list[dict], times: dict, held_out: set[str], oracle: dict) -> str:
    """Per target and budget: KL reduction (vs random) of every method, match / DSIR, and matching's verdicts
    against DSIR on precision and perplexity."""
    def est(target, method, budget, metric, vs="random"):
        r = next((x for x in rows if x["vs"] == vs and x["target"] == target and x["method"] == method
                  and x["budget"] == budget and x["metric"] == metric), None)
        return r

    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "random"]
    lines = ["| target | budget | " + " | ".join(f"KL red. {m}" for m in methods)
             + " | bound | match / dsir | precision dsir → match | vs dsir | perplexity dsir → match | vs dsir |",
             "|---|---|" + "---:|" * len(methods) + "---:|---:|---:|---|---:|---|"]
    for target in dict.fromkeys(r["target"] for r in rows):
        for budget in dict.fromkeys(r["budget"] for r in rows):
            rand = est(target, "random", budget, "kl_to_heldout")
            if rand is None:
                continue
            red = {m: float(rand["estimate"]) - float(est(target, m, budget, "kl_to_heldout")["estimate"])
                   for m in methods}
            cells = [f"{red[m]:.4f}" for m in methods]
            p = {m: float(est(target, m, budget, "precision")["estimate"]) for m in ("dsir", "match")}
            ppl = {m: float(est(target, m, budget, "heldout_perplexity")["estimate"]) for m in ("dsir", "match")}
            pv = est(target, "match", budget, "precision", "dsir")
            lv = est(target, "match", budget, "heldout_perplexity", "dsir")
            name = f"{target} (held out)" if target in held_out else target
            bound = float(rand["estimate"]) - oracle[target][budget] if target in oracle else float("nan")
            lines.append(f"| {name} | {budget} | " + " | ".join(cells) + f" | {bound:.4f}"
                         + f" | **{red['match'] / red['dsir']:.2f}x** | {p['dsir']:.3f} → {p['match']:.3f} | "
                         f"{pv['verdict'] if pv else ''} | {ppl['dsir']:,.0f} → {ppl['match']:,.0f} | "
                         f"{lv['verdict'] if lv else ''} |")
    if times:
        lines += ["", "| target | budget | thresher select, DSIR (s) | thresher select --selector match (s) | ratio |",
                  "|---|---|---:|---:|---:|"]
        for (target, budget), (d, m) in times.items():
            lines.append(f"| {target} | {budget} | {d:.1f} | {m:.1f} | {m / d:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--targets", default="news,wikipedia,tech_docs")
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--budgets", default="1%,5%")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "match")
    parser.add_argument("--no-held-out-targets", dest="held_out_targets", action="store_false")
    parser.add_argument("--no-time", dest="time", action="store_false")
    parser.add_argument("--fresh", action="store_true", help="Run every evaluation again (default: reuse the "
                        "results.csv of evaluations that finished)")
    args = parser.parse_args()
    pool = args.data / "pool-en" / "pool.parquet"
    tasks = [(t, pool, args.data / "targets" / f"{t}.target.parquet", args.data / "targets" / f"{t}.heldout.parquet")
             for t in args.targets.split(",") if t]
    if args.held_out_targets:
        tasks += [(d, *domain_target(pool, d, args.out / "domains")) for d in HELD_OUT_DOMAINS]
    rows, times, oracle = [], {}, {}
    saved = args.out.parent / "match.json"
    if not args.time and saved.is_file():  # keep the times measured before
        times = {tuple(k.split(" ")): v for k, v in json.loads(saved.read_text()).get("times", {}).items()}
    for name, p, target, heldout in tasks:
        oracle[name] = oracle_kl(p, target, heldout, args.budgets.split(","))
        for baseline in ("random", "dsir"):
            t0 = time.perf_counter()
            rows += evaluate(p, target, heldout, name, args.out / f"{name}-vs-{baseline}", args, baseline)
            print(f"{name} vs {baseline}: {time.perf_counter() - t0:.0f} s", flush=True)
        if args.time and name in args.targets.split(","):
            for budget in args.budgets.split(","):
                times[name, budget] = (cli_seconds(p, target, budget, "gumbel", args.out),
                                       cli_seconds(p, target, budget, "match", args.out))
    text = summary(rows, times, set(HELD_OUT_DOMAINS), oracle)
    print(text)
    (args.out.parent / "match.md").write_text(text)
    (args.out.parent / "match.json").write_text(json.dumps(
        {"rows": rows, "times": {f"{t} {b}": v for (t, b), v in times.items()}, "oracle_kl": oracle}, indent=1,
        default=str))
    with open(args.out.parent / "match.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
