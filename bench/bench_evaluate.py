#!/usr/bin/env python
"""The headline quality table: every targeted method vs random and stratified on ../shared/data/pool-en.

For each target (news, wikipedia, tech_docs) ``thresher evaluate`` fits the scoring methods on
``targets/<t>.target.parquet``, selects 1%, 5% and 20% of the pool (93,695 records) with 5 seeds per method, and
measures every selection on the separate ``targets/<t>.heldout.parquet``: KL to the held-out n-gram distribution
(random minus method = DSIR's KL reduction), target-domain precision (``domain`` used for evaluation only),
embedding coverage of the held-out records (static embeddings) and the held-out perplexity of a trigram
Kneser-Ney LM trained on the selection. The similarity method uses the static embedding back-end (the same
embeddings that coverage is measured with, which favours it on that metric). Intervals: two-level bootstrap over
held-out records and seeds (Beta posteriors for precision), 95%; verdict vs random at the same budget.

    pip install -e ".[bench,embed]"
    python bench/bench_evaluate.py                       # ~20-40 min on 2 cores
    python bench/bench_evaluate.py --targets news --methods dsir,random
    python bench/bench_evaluate.py --markdown-only         # rebuild evaluate.md from evaluate.json

Writes bench/results/evaluate/<target>/ (results.csv, report.html, ...) and bench/results/evaluate.{md,json}.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
METHODS = "dsir,dsir:topk,classifier,color,similarity,random,stratified"
LABELS = {"kl_to_heldout": "KL reduction", "precision": "precision", "coverage_distance": "coverage distance",
          "heldout_perplexity": "held-out perplexity"}


def _fmt(v: float) -> str:
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.2f}" if a >= 10 else f"{v:.3f}" if a >= 0.1 else f"{v:.4f}"


MARK = {"better": "✓", "worse": "✗", "inconclusive": "~"}


def headline(rows: list[dict]) -> str:
    """Compact tables, one per target: methods x (metric, budget), each cell the improvement over random and a mark
    (✓ better, ✗ worse, ~ inconclusive); the intervals are in the detailed tables below."""
    lines = []
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    metrics = [m for m in LABELS if any(r["metric"] == m for r in rows)]
    for target in dict.fromkeys(r["target"] for r in rows):
        trows = [r for r in rows if r["target"] == target]
        lines += [f"### {target}", "",
                  "| method | " + " | ".join(f"{LABELS[m]} {b}" for m in metrics for b in budgets) + " |",
                  "|---|" + "---:|" * (len(metrics) * len(budgets))]
        base = {(r["metric"], r["budget"]): r for r in trows if r["method"] == "random"}
        # random's own value: KL(held-out || random) under "KL reduction", perplexity under "held-out perplexity"...
        lines.append("| random (its value) | " + " | ".join(
            _fmt(float(base[m, b]["estimate"])) if (m, b) in base else "" for m in metrics for b in budgets) + " |")
        for method in dict.fromkeys(r["method"] for r in trows if r["method"] != "random"):
            cells = []
            for m in metrics:
                for b in budgets:
                    r = next((x for x in trows if x["method"] == method and x["metric"] == m and x["budget"] == b),
                             None)
                    cells.append("" if r is None else f"{float(r['delta']):+.3g} {MARK[r['verdict']]}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def markdown(rows: list[dict], seconds: dict[str, float], args: argparse.Namespace) -> str:
    """One table per metric: methods x (target, budget), each cell the improvement over random and its verdict."""
    lines = ["# Headline: does it beat random? (pool-en, 5 seeds, 95% intervals)", "",
             f"`python bench/bench_evaluate.py` · methods {args.methods} · budgets {args.budgets} · "
             f"{args.seeds} seeds · {platform.processor() or platform.machine()}, "
             f"{', '.join(f'{t} {s:.0f} s' for t, s in seconds.items())}", "",
             "Each cell: the method's improvement over random at the same budget (positive = better, in the metric's"
             " units: nats for KL, share for precision, cosine distance for coverage, perplexity points for the LM),"
             " its 95% interval, and the verdict: **better** / **worse** only when the whole interval is on one"
             " side of zero, otherwise ~ (inconclusive).", "",
             "## Headline (improvement over random; ✓ better, ✗ worse, ~ inconclusive)", "", headline(rows),
             "## Detail: improvement over random with its 95% interval", ""]
    targets = list(dict.fromkeys(r["target"] for r in rows))
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "random"]
    for metric, title in LABELS.items():
        mrows = [r for r in rows if r["metric"] == metric]
        if not mrows:
            continue
        lines.append(f"### {title}")
        lines.append("")
        cols = [(t, b) for t in targets for b in budgets]
        lines.append("| method | " + " | ".join(f"{t} {b}" for t, b in cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        base = {(r["target"], r["budget"]): r for r in mrows if r["method"] == "random"}
        lines.append("| random (value) | " + " | ".join(
            f"{_fmt(float(base[c]['estimate']))}" if c in base else "" for c in cols) + " |")
        for m in methods:
            cells = []
            for t, b in cols:
                r = next((x for x in mrows if x["method"] == m and x["target"] == t and x["budget"] == b), None)
                if r is None:
                    cells.append("")
                    continue
                mark = {"better": "**better**", "worse": "**worse**", "inconclusive": "~"}[r["verdict"]]
                cells.append(f"{float(r['delta']):+.3g} [{float(r['delta_lo']):+.3g}, {float(r['delta_hi']):+.3g}]"
                             f" {mark}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["verdict"] in ("better", "worse", "inconclusive"):
            counts.setdefault(r["method"], {"better": 0, "worse": 0, "inconclusive": 0})[r["verdict"]] += 1
    lines += ["## Verdict counts (all targets, budgets, metrics)", "", "| method | better | worse | inconclusive |",
              "|---|---|---|---|"]
    lines += [f"| {m} | {c['better']} | {c['worse']} | {c['inconclusive']} |" for m, c in counts.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--targets", default="news,wikipedia,tech_docs")
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--budgets", default="1%,5%,20%")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "evaluate")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--markdown-only", action="store_true",
                        help="Rebuild evaluate.md from the saved evaluate.json without running anything.")
    args = parser.parse_args()
    if args.markdown_only:
        saved = json.loads((args.out.parent / "evaluate.json").read_text())
        (args.out.parent / "evaluate.md").write_text(markdown(saved["rows"], saved["seconds"], args))
        return

    import thresher as th
    from thresher.evaluate.harness import EvaluateConfig, run_evaluation

    pool = th.read(args.data / "pool-en" / "pool.parquet")
    rows: list[dict] = []
    seconds: dict[str, float] = {}
    cache = args.out / "embedding-cache"
    for target in args.targets.split(","):
        t0 = time.perf_counter()
        config = EvaluateConfig(methods=args.methods.split(","), budgets=args.budgets, seeds=args.seeds,
                                label_column="domain", positive=target, target_name=target, cache_dir=str(cache),
                                # MiniLM embeds ~10 docs/s on this CPU: the static back-end scores the whole pool
                                scorer_params={"similarity": {"backend": "static"}} if "similarity" in args.methods
                                else {})
        ev = run_evaluation(pool, th.read(args.data / "targets" / f"{target}.heldout.parquet"), args.out / target,
                            target=th.read(args.data / "targets" / f"{target}.target.parquet"), config=config,
                            workers=args.workers, progress=True)
        seconds[target] = time.perf_counter() - t0
        print(ev.summary(), flush=True)
        with open(ev.path / "results.csv", newline="") as f:
            rows += list(csv.DictReader(f))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    (args.out.parent / "evaluate.json").write_text(json.dumps({"rows": rows, "seconds": seconds,
                                                               "args": {k: str(v) for k, v in vars(args).items()}},
                                                              indent=1))
    (args.out.parent / "evaluate.md").write_text(markdown(rows, seconds, args))
    print(f"wrote {args.out.parent / 'evaluate.md'}")


if __name__ == "__main__":
    sys.exit(main())
