"""subset2evaluate (Zouhar et al., TACL 2025) against thresher evalset, on the same leaderboards and seen/new splits.

subset2evaluate ("How to Select Datapoints for Efficient Human Evaluation of NLG Models?") ranks the items of a test
set by a utility computed from the systems' scores and evaluates on the first ``budget`` of them, estimating each
system by its plain mean over those items. This script runs its CPU-only, score-based selectors on the *seen* half
of the systems of each split, exactly as ``thresher evalset --check`` splits them (:mod:`thresher.evalset.check`:
``order = default_rng([seed, 0x5B1, split]).permutation(systems)``, seen = sorted first half, new = sorted second
half), and estimates the *new* systems' full-set means from the chosen items:

- ``s2e:METHOD``: subset2evaluate's ``select_subset.basic(items, method=METHOD)`` with ``metric="score"``
  (``random`` gets ``seed = seed + split``), first ``budget`` items, plain mean (what subset2evaluate does).
- ``s2e:METHOD+control``: the same items, estimated by thresher's seen-system control variates
  (:class:`thresher.evalset.estimators.ControlVariates`, uniform weights 1 / budget).
- ``s2e:diffdisc~2pl``: subset2evaluate's DiffDisc utility (``methods.fn_irt_utility(..., "diffdisc")``: difficulty
  x discrimination, highest first) on a 2PL fitted by thresher (:func:`thresher.evalset.irt.fit_2pl`, same
  ``a * (theta - b)`` parameterisation as py-irt), because subset2evaluate's own ``pyirt_*`` selectors need a
  GitHub-only fork of py-irt and train on ``device="cuda"``. A stand-in, not the package's code path.
- thresher's ``random``, ``difficulty`` (its default) and ``random+control``, via :func:`thresher.evalset.methods.
  choose` with ``seed + split``, as ``--check`` runs them.

Not run (they need system output texts, sentence-embedding or COMET-style models from a hub, a GPU, or are
nondeterministic): ``diversity``, ``kmeans``, ``diffuse``, ``precomet_*``, ``sentinel_*``,
``comet_instant_confidence``, ``pyirt_*`` (see above), ``bruteforce*`` (20 threads sharing one ``random.Random``).

The items are handed to subset2evaluate in a seeded random order per split (``default_rng([seed, 0x52E, split])``):
its ranking is a stable sort, so tied utilities (most items on 0/1 correctness tables, where an item's variance over
20 systems takes 11 values) would otherwise be broken by the table's row order, which is not random here.

Metrics per split (as ``--check``): Kendall tau (scipy) of the new systems' estimates against their full-set means,
and the mean absolute error. Per table and budget (25, 50, 100, 200; budgets >= the items are skipped): the means,
MAE over random's, and paired bootstrap intervals (:func:`thresher.evaluate.intervals.paired_difference`, 95%) of the
mean difference in tau against thresher's ``random`` and against ``difficulty``, and in MAE against ``difficulty``
(positive = this method is better; ``better``/``worse`` only when the interval clears zero). Then the seconds each
method took (selection plus estimation, over all splits and budgets; a subset2evaluate ranking is computed once per
split and serves every budget, and counts for both its plain and its ``+control`` row). Deterministic; BLAS runs on
one thread.

    python bench/bench_evalset_s2e.py [--from-npy /tmp/runs/lb] [--splits 100] [--tables bbc_news-c,...]
    python bench/bench_evalset_s2e.py --data ../shared/data   # builds the leaderboards as bench_evalset.py does

Needs ``pip install --no-deps subset2evaluate==1.0.27`` (its other dependencies are only for its data loaders and
the text/model-based selectors, which are not run here).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from thresher.evalset.check import split_metrics
from thresher.evalset.estimators import ControlVariates
from thresher.evalset.irt import fit_2pl
from thresher.evalset.methods import choose
from thresher.evalset.table import ScoreTable
from thresher.evaluate.intervals import paired_difference, verdict

SETS = ("bbc_news", "brown_genre", "rotten_tomatoes", "tweets")
KINDS = (("c", "correct"), ("p", "p(true)"))
THRESHER = ("random", "difficulty", "random+control")
S2E = ("random", "metric_var", "metric_avg", "metric_cons", "diffdisc~2pl")


def npy_tables(folder: Path, wanted: set[str] | None) -> list[tuple[str, np.ndarray]]:
    """``{set}-{c,p}.npy`` (items x systems) from ``folder``, in SETS order."""
    out = []
    for name in SETS:
        for kind, _ in KINDS:
            label = f"{name}-{kind}"
            path = folder / f"{label}.npy"
            if (wanted is None or label in wanted) and path.is_file():
                out.append((label, np.load(path)))
    return out


def built_tables(args: argparse.Namespace, wanted: set[str] | None) -> list[tuple[str, np.ndarray]]:
    """The leaderboards of bench_evalset.py: same sets, splits, subsamples and systems."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_evalset import leaderboard

    out = []
    for name in SETS:
        labels = [f"{name}-{kind}" for kind, _ in KINDS]
        if wanted is not None and not wanted & set(labels):
            continue
        started = time.perf_counter()
        _, tables = leaderboard(args.data, name, args.train, args.items, args.systems)
        print(f"<!-- {name}: leaderboard built in {time.perf_counter() - started:.0f} s -->", flush=True)
        out += [(label, t.scores) for label, t in zip(labels, tables) if wanted is None or label in wanted]
    return out


def s2e_rank(method: str, seen: np.ndarray, order: np.ndarray, seed: int) -> np.ndarray:
    """Row indices of every item, best first, by subset2evaluate's ``method`` on the seen systems' scores; items are
    handed over in ``order``."""
    from subset2evaluate.methods import fn_irt_utility
    from subset2evaluate.select_subset import basic

    systems = [f"sys{j}" for j in range(seen.shape[1])]
    items = [{"i": int(i), "scores": {s: {"score": float(v)} for s, v in zip(systems, seen[i])}} for i in order]
    if method == "diffdisc~2pl":
        fit = fit_2pl(seen)
        data_irt = {"models": dict(zip(systems, fit.theta.tolist())),
                    "items": [{"disc": float(fit.a[i]), "diff": float(fit.b[i])} for i in order]}
        utility = [fn_irt_utility(item, irt, data_irt, "diffdisc") for item, irt in zip(items, data_irt["items"])]
        ranked = sorted(range(len(items)), key=lambda k: utility[k], reverse=True)  # stable, as basic() sorts
        return order[np.array(ranked)]
    kwargs = {"seed": seed} if method == "random" else {"metric": "score"}
    return np.array([item["i"] for item in basic(items, method=method, **kwargs)], dtype=np.int64)


def tau_and_mae(estimates: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Kendall tau and MAE exactly as ``--check`` computes them (these estimates have no intervals)."""
    metrics = split_metrics(estimates, truth, estimates, estimates)
    return metrics["kendall_tau"], metrics["mae"]


def run_table(x: np.ndarray, args: argparse.Namespace, budgets: list[int]) -> tuple[dict, dict, list[str]]:
    """Every method over the same splits: per (method, budget) the per-split tau and MAE; per method the seconds."""
    n_items, n_systems = x.shape
    truth = x.mean(axis=0)
    methods = [*args.thresher, *[f"s2e:{m}{c}" for m in args.s2e for c in ("", "+control")]]
    values: dict[tuple[str, int], dict[str, list[float]]] = {(m, b): {"tau": [], "mae": []}
                                                            for m in methods for b in budgets}
    seconds = dict.fromkeys(methods, 0.0)

    def record(method: str, budget: int, estimates: np.ndarray, new_cols: np.ndarray) -> None:
        tau, mae = tau_and_mae(estimates, truth[new_cols])
        values[method, budget]["tau"].append(tau)
        values[method, budget]["mae"].append(mae)

    for split in range(args.splits):
        order = np.random.default_rng([args.seed, 0x5B1, split]).permutation(n_systems)
        seen_cols, new_cols = np.sort(order[: n_systems // 2]), np.sort(order[n_systems // 2:])
        seen = ScoreTable(tuple(map(str, range(n_items))), tuple(str(c) for c in seen_cols), x[:, seen_cols])
        for method in args.thresher:
            started = time.perf_counter()
            for budget in budgets:
                subset = choose(method, seen, budget, args.seed + split)
                record(method, budget, subset.estimate(x[np.ix_(subset.rows, new_cols)]), new_cols)
            seconds[method] += time.perf_counter() - started
        item_order = np.random.default_rng([args.seed, 0x52E, split]).permutation(n_items)
        for method in args.s2e:
            started = time.perf_counter()
            ranking = s2e_rank(method, seen.scores, item_order, args.seed + split)
            ranked = time.perf_counter() - started
            for control in (False, True):
                name = f"s2e:{method}{'+control' if control else ''}"
                started = time.perf_counter()
                for budget in budgets:
                    rows = ranking[:budget]
                    new_scores = x[np.ix_(rows, new_cols)]
                    if control:
                        estimator = ControlVariates(np.full(budget, 1.0 / budget), x[np.ix_(rows, seen_cols)],
                                                    truth[seen_cols])
                        estimates = estimator.estimate(new_scores)
                    else:
                        estimates = new_scores.mean(axis=0)
                    record(name, budget, estimates, new_cols)
                seconds[name] += ranked + time.perf_counter() - started
    return values, seconds, methods


def compare(a: list[float], b: list[float], seed: int) -> tuple[str, str]:
    """The mean of a - b with its 95% paired bootstrap interval, and the verdict."""
    interval = paired_difference(np.array(a), np.array(b), level=0.95, seed=seed)
    return f"{interval.estimate:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]", verdict(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--from-npy", type=Path, default=None,
                        help="folder of ready-made {set}-{c,p}.npy tables (items x systems) instead of building them")
    parser.add_argument("--data", type=Path, default=here.parent / "shared" / "data")
    parser.add_argument("--systems", type=int, default=40)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budgets", default="25,50,100,200")
    parser.add_argument("--tables", default="", help="comma-separated labels such as bbc_news-c (default: all)")
    parser.add_argument("--thresher", default=",".join(THRESHER), help="thresher evalset specs")
    parser.add_argument("--s2e", default=",".join(S2E), help="subset2evaluate selectors")
    parser.add_argument("--csv", type=Path, default=None, help="also write every split's metrics here")
    args = parser.parse_args()
    args.thresher = [m for m in args.thresher.split(",") if m]
    args.s2e = [m for m in args.s2e.split(",") if m]
    for needed in ("random", "difficulty"):
        if needed not in args.thresher:
            args.thresher.insert(0, needed)  # the baselines every row is compared with
    wanted = set(args.tables.split(",")) if args.tables else None
    print(f"subset2evaluate {importlib.metadata.version('subset2evaluate')}, {args.splits} splits, seed {args.seed}\n")
    per_split = []
    with threadpool_limits(1):
        tables = npy_tables(args.from_npy, wanted) if args.from_npy else built_tables(args, wanted)
        for label, x in tables:
            budgets = [b for b in map(int, args.budgets.split(",")) if b < x.shape[0]]
            started = time.perf_counter()
            values, seconds, methods = run_table(x, args, budgets)
            wall = time.perf_counter() - started
            for budget in budgets:
                base, default = values["random", budget], values["difficulty", budget]
                print(f"### {label} ({x.shape[0]} items, {x.shape[1]} systems), budget {budget}\n")
                print("| method | Kendall tau | MAE | MAE / random's | tau vs random | tau vs difficulty | "
                      "MAE vs difficulty (+ = lower) |")
                print("|---|---:|---:|---:|---|---|---|")
                for method in methods:
                    got = values[method, budget]
                    tau, mae = float(np.mean(got["tau"])), float(np.mean(got["mae"]))
                    cells = []
                    for ref, name, key, flip in ((base, "random", "tau", False), (default, "difficulty", "tau", False),
                                                 (default, "difficulty", "mae", True)):
                        if method == name:
                            cells.append("")
                            continue
                        a, b = (ref[key], got[key]) if flip else (got[key], ref[key])
                        diff, word = compare(a, b, args.seed)
                        cells.append(f"{diff} {word}")
                    print(f"| {method} | {tau:.3f} | {mae:.4f} | {mae / np.mean(base['mae']):.2f} | "
                          f"{' | '.join(cells)} |")
                    per_split += [{"table": label, "budget": budget, "method": method, "split": s, "kendall_tau": t,
                                   "mae": m} for s, (t, m) in enumerate(zip(got["tau"], got["mae"]))]
                print()
            print(f"Seconds per method on {label} ({args.splits} splits x budgets {budgets}; run {wall:.1f} s):\n")
            print("| method | seconds | ms per split |")
            print("|---|---:|---:|")
            for method in methods:
                print(f"| {method} | {seconds[method]:.2f} | {1000 * seconds[method] / args.splits:.1f} |")
            print(flush=True)
    if args.csv:
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(per_split[0]))
            writer.writeheader()
            writer.writerows(per_split)


if __name__ == "__main__":
    main()
