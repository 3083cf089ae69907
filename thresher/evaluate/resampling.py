"""Uncertainty for "method vs random at the same budget": a two-level bootstrap over held-out items and seeds.

Every metric is turned into a matrix ``draws[b, s]``: its value for seed ``s`` on bootstrap replicate ``b``. The
replicates are shared by all methods of one evaluation (the same resampled held-out items, so differences are
*paired*), and on top of that each method's seeds are resampled independently. The interval of a method is then
the percentile interval of ``mean over resampled seeds of draws[b, seeds_b]``; the interval of its improvement
over random is the percentile interval of the paired difference, replicate by replicate. Nothing uses the normal
approximation: with five seeds and a few hundred held-out items, the held-out items carry most of the noise.

Precision has no held-out items (it is a property of the selected records): its replicates are Beta-posterior
draws per seed instead. A metric that is one number per seed (a user's proxy returning a scalar) falls back to
the exact small-sample intervals of :func:`thresher.evaluate.intervals.paired_difference`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from thresher.errors import ConfigError
from thresher.evaluate.intervals import paired_difference, verdict

#: How item-level values become one number per replicate: ``stat(W @ X)`` where W holds item multiplicities.
Statistic = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Resampler:
    """The shared bootstrap replicates of one evaluation: item multiplicities ``weights`` (B x n_items)."""

    n_items: int
    n_boot: int = 1000
    seed: int = 0
    strata: np.ndarray | None = None  # a code per item: resample within each (a blended target keeps its make-up)

    def __post_init__(self) -> None:
        if self.n_boot < 100:
            raise ConfigError(f"n_boot must be >= 100, got {self.n_boot}")
        if self.n_items < 2:
            raise ConfigError(f"need at least 2 held-out items for intervals, got {self.n_items}")
        if self.strata is not None and len(self.strata) != self.n_items:
            raise ConfigError(f"strata has {len(self.strata)} codes for {self.n_items} held-out items")

    @cached_property
    def weights(self) -> np.ndarray:
        """Row b: how often each held-out item appears in replicate b (multinomial resample of n items, or of
        each stratum's items within the stratum)."""
        rng = np.random.default_rng([self.seed, 0x17E45])
        if self.strata is None or len(np.unique(self.strata)) < 2:
            picks = rng.integers(self.n_items, size=(self.n_boot, self.n_items))
        else:
            picks = np.concatenate([members[rng.integers(len(members), size=(self.n_boot, len(members)))]
                                    for members in (np.flatnonzero(self.strata == c)
                                                    for c in np.unique(self.strata))], axis=1)
        w = np.zeros((self.n_boot, self.n_items), dtype=np.float64)
        np.add.at(w, (np.repeat(np.arange(self.n_boot), self.n_items), picks.ravel()), 1.0)
        return w

    def seed_picks(self, n_seeds: int, stream: int) -> np.ndarray:
        """Resampled seed indices (B x n_seeds) for one method; ``stream`` keeps methods independent."""
        rng = np.random.default_rng([self.seed, 0x5EED, stream])
        return rng.integers(n_seeds, size=(self.n_boot, n_seeds))


def item_draws(per_seed: list[np.ndarray], weights: np.ndarray, statistic: Statistic
               ) -> tuple[np.ndarray, list[float]]:
    """Replicates (B x seeds) and per-seed values of an item-level metric.

    ``per_seed[s]`` is an (n_items x c) array of per-item values for seed s; ``statistic`` maps item-weighted
    sums (... x c) to the metric, e.g. ``x[..., 0] / x[..., 1]`` for a token-weighted mean.
    """
    cols = []
    points = []
    for values in per_seed:
        x = np.asarray(values, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        cols.append(statistic(weights @ x))
        points.append(float(statistic(x.sum(axis=0, keepdims=True))[0]))
    return debias(np.stack(cols, axis=1), points), points


def debias(draws: np.ndarray, points: list[float]) -> np.ndarray:
    """Shift each seed's replicates so their mean is that seed's estimate (bias-corrected percentile bootstrap).

    Plug-in statistics that are not linear in the items, such as a KL divergence, are biased under resampling
    (duplicated items concentrate the distribution); without the shift the interval can miss the estimate.
    """
    return draws + (np.asarray(points)[None, :] - draws.mean(axis=0, keepdims=True))


def beta_draws(successes: list[int], trials: list[int], n_boot: int, seed: int | list[int]
               ) -> tuple[np.ndarray, list[float]]:
    """Replicates (B x seeds) of a proportion from each seed's Beta(1 + k, 1 + n - k) posterior, and each k/n."""
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 0xBE7A])
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    draws = rng.beta(1.0 + k[None, :], 1.0 + (n - k)[None, :], size=(n_boot, len(k)))
    return draws, [float(v) for v in k / np.maximum(n, 1)]


@dataclass
class MetricDraws:
    """One method x budget x metric: replicates, the value per seed, and which way is better."""

    draws: np.ndarray | None  # (B, seeds), a column per seed; None for "seeds" metrics (one number per seed)
    seed_values: list[float]
    higher_is_better: bool
    interval: str  # how the replicates were made: "bootstrap-2level", "beta", or "seeds"

    @property
    def estimate(self) -> float:
        return float(np.mean(self.seed_values))

    def resampled(self, picks: np.ndarray) -> np.ndarray:
        """Per replicate, the mean over that replicate's resampled seeds."""
        return np.take_along_axis(self.draws, picks, axis=1).mean(axis=1)


def compare(method: MetricDraws, baseline: MetricDraws | None, method_picks: np.ndarray,
            baseline_picks: np.ndarray | None, level: float = 0.95, margin: float = 0.0) -> dict:
    """The tidy numbers for one row: estimate and interval, and (with a baseline) the improvement over it.

    The improvement ``delta`` is oriented so positive means better. ``p_better`` is the share of replicates in
    which the method beat the baseline. The verdict is ``better``/``worse`` only when the whole interval of the
    improvement clears ``margin``; otherwise ``inconclusive``.
    """
    alpha = (1.0 - level) / 2.0
    row: dict = {"estimate": method.estimate, "higher_is_better": method.higher_is_better, "level": level,
                 "interval": method.interval, "n_seeds": len(method.seed_values)}
    if method.interval == "seeds":  # one number per seed: report their range, and compare with exact tests below
        vals = np.asarray(method.seed_values, dtype=np.float64)
        row.update(lo=float(vals.min()), hi=float(vals.max()))
    else:
        own = method.resampled(method_picks)
        lo, hi = float(np.quantile(own, alpha)), float(np.quantile(own, 1.0 - alpha))
        # At a boundary (e.g. every selected record on target) the posterior is monotone: use the one-sided
        # interval that reaches the estimate, as the highest-density interval would.
        if method.estimate > hi:
            lo, hi = float(np.quantile(own, 1.0 - level)), method.estimate
        elif method.estimate < lo:
            lo, hi = method.estimate, float(np.quantile(own, level))
        row.update(lo=lo, hi=hi)
    if baseline is None:
        return {**row, "baseline_estimate": None, "delta": None, "delta_lo": None, "delta_hi": None,
                "p_better": None, "verdict": "baseline"}
    sign = 1.0 if method.higher_is_better else -1.0
    if method.interval == "seeds" or baseline.interval == "seeds":
        a = np.asarray(method.seed_values, dtype=np.float64)
        b = np.asarray(baseline.seed_values, dtype=np.float64)
        if len(a) != len(b) or len(a) < 2:
            raise ConfigError("a per-seed metric needs the same number (>= 2) of seeds for method and baseline")
        iv = paired_difference(sign * a, sign * b, level=level)
        delta, lo, hi, p_better = iv.estimate, iv.low, iv.high, float(np.mean(sign * (a - b) > 0))
        row["interval"] = iv.method
    else:
        diff = sign * (method.resampled(method_picks) - baseline.resampled(baseline_picks))
        delta = sign * (method.estimate - baseline.estimate)
        lo, hi = float(np.quantile(diff, alpha)), float(np.quantile(diff, 1.0 - alpha))
        p_better = float(np.mean(diff > 0))
    return {**row, "baseline_estimate": baseline.estimate, "delta": float(delta), "delta_lo": lo, "delta_hi": hi,
            "p_better": p_better, "verdict": verdict((lo, hi), margin)}
