"""Does a subset rank new systems like the full set? The tinyBenchmarks protocol, against random at the same budget.

Over ``splits`` seeded random splits of the systems into seen and new halves, each method chooses ``budget`` items
on the seen half only; the new systems are estimated from those items and compared with their full-set scores:
Kendall tau and Spearman of the ranking, mean absolute error, and how often the intervals cover the truth (and how
wide they are). Every method is compared with ``random`` on the same splits; a verdict is ``better`` or ``worse``
only when the whole interval of the mean paired difference clears zero. The splits share systems, so they are not
independent: the intervals describe split-to-split variation on this table, not a population of tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from thresher.errors import ConfigError
from thresher.evalset.estimate import calibrate
from thresher.evalset.methods import choose, parse_spec
from thresher.evalset.table import ScoreTable
from thresher.evaluate.intervals import paired_difference, verdict

#: Every metric of a check, and whether higher is better (None: descriptive, no verdict).
CHECK_METRICS = {"kendall_tau": True, "spearman": True, "mae": False, "coverage": None, "interval_width": None}


@dataclass(frozen=True)
class CheckConfig:
    methods: tuple[str, ...] = ("random", "difficulty")  # METHOD or METHOD+ESTIMATOR
    budgets: tuple[int, ...] = (25, 50, 100)
    splits: int = 100
    seed: int = 0
    level: float = 0.95

    def __post_init__(self) -> None:
        for spec in self.methods:
            parse_spec(spec)
        if self.splits < 2 or not 0 < self.level < 1:
            raise ConfigError(f"splits >= 2 and 0 < level < 1, got {self.splits} and {self.level}")


@dataclass
class CheckResult:
    rows: list[dict]
    per_split: list[dict] = field(default_factory=list)


def split_metrics(estimates: np.ndarray, truth: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[str, float]:
    """The ranking, error and interval metrics of one split's new systems."""
    tau = stats.kendalltau(estimates, truth).statistic
    rho = stats.spearmanr(estimates, truth).statistic
    return {"kendall_tau": float(np.nan_to_num(tau)), "spearman": float(np.nan_to_num(rho)),
            "mae": float(np.abs(estimates - truth).mean()), "coverage": float(((lo <= truth) & (truth <= hi)).mean()),
            "interval_width": float((hi - lo).mean())}


def run_check(table: ScoreTable, config: CheckConfig, labels: np.ndarray | None = None,
              costs: np.ndarray | None = None) -> CheckResult:
    """Every method at every budget over the same seen/new splits; rows of ``results.csv`` and ``per_split.csv``.
    With ``costs`` the budgets are costs, and a descriptive ``cost`` metric reports what each subset cost."""
    n_systems, n_items = len(table.systems), len(table.items)
    if n_systems < 4:
        raise ConfigError(f"--check needs at least 4 systems to split into seen and new, got {n_systems}")
    too_big = [b for b in config.budgets if b > n_items] if costs is None else []
    if too_big:
        raise ConfigError(f"budget {too_big[0]} is more than the {n_items} items of the table")
    methods = ("random", *[m for m in config.methods if m != "random"])
    truth = table.full_means()
    per_split: list[dict] = []
    values: dict[tuple[str, int, str], list[float]] = {}
    for split in range(config.splits):
        order = np.random.default_rng([config.seed, 0x5B1, split]).permutation(n_systems)
        seen_cols, new_cols = np.sort(order[: n_systems // 2]), np.sort(order[n_systems // 2:])
        seen = table.take_systems(seen_cols)
        for budget in config.budgets:
            for method in methods:
                subset = choose(method, seen, budget, config.seed + split, labels, costs)
                calibration = calibrate(method, seen, subset, budget, config.seed + split, labels, costs)
                estimates = subset.estimate(table.scores[np.ix_(subset.rows, new_cols)])
                lo, hi = calibration.intervals(estimates, config.level)
                metrics = split_metrics(estimates, truth[new_cols], lo, hi)
                if costs is not None:
                    metrics["cost"] = float(costs[subset.rows].sum())
                for metric, value in metrics.items():
                    values.setdefault((method, budget, metric), []).append(value)
                    per_split.append({"split": split, "method": method, "budget": budget, "metric": metric,
                                      "value": value})
    return CheckResult(_summarise(values, methods, config, costs is not None), per_split)


def _summarise(values: dict, methods: tuple[str, ...], config: CheckConfig, with_cost: bool = False) -> list[dict]:
    rows = []
    metrics = {**CHECK_METRICS, **({"cost": None} if with_cost else {})}
    for budget in config.budgets:
        for method in methods:
            for metric, higher in metrics.items():
                got = np.array(values[method, budget, metric])
                base = np.array(values["random", budget, metric])
                row = {"method": method, "budget": budget, "metric": metric, "mean": float(got.mean()),
                       "p2_5": float(np.percentile(got, 2.5)), "p97_5": float(np.percentile(got, 97.5)),
                       "delta_vs_random": None, "delta_lo": None, "delta_hi": None, "share_better": None,
                       "verdict": "baseline" if method == "random" else "descriptive"}
                if method != "random" and higher is not None:
                    a, b = (got, base) if higher else (base, got)  # a positive difference is always an improvement
                    interval = paired_difference(a, b, level=config.level, seed=config.seed)
                    row.update(delta_vs_random=interval.estimate, delta_lo=interval.low, delta_hi=interval.high,
                               share_better=float((a > b).mean()), verdict=verdict(interval))
                rows.append(row)
    return rows
