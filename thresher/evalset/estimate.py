"""Estimates of new systems' full-set scores from their scores on the chosen items, with conformal intervals.

An interval must be honest with 25 items and a few dozen seen systems, so it assumes no distribution: the seen
systems, treated as exchangeable with the new ones, give residuals |estimate - full-set score| of the same
procedure, and the interval is the estimate plus or minus their ceil((S + 1) x level)-th smallest (split conformal
prediction: it covers a new system's full-set score with probability at least ``level``). When the subset or the
estimator looks at the seen systems (every method but ``random`` and ``stratified``, every estimator but ``mean``),
a system's residual must come from a subset (and model, and controls) chosen without it, so the residuals are
cross-fitted: the seen systems are split into folds (two for anchor, whose k-medoids is the slow part; otherwise one
system each, as a model or a set of controls must come from nearly as many systems as the final one), and each fold
is estimated by a subset chosen on the others. Cross-fitted (CV+ / jackknife+) intervals guarantee only
1 - 2 x (1 - level) in the worst case (90% at 95%); measured coverage is in BENCHMARKS.md.
With fewer than ceil(1 / (1 - level)) - 1 seen systems no finite quantile exists and the interval is the whole range
of scores seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thresher.evalset.methods import EvalSubset, choose, parse_spec
from thresher.evalset.table import ScoreTable

#: Methods whose subset does not depend on the seen systems' scores (with the ``mean`` estimator, their residuals
#: need no cross-fitting).
SCORE_FREE = ("random", "stratified")
#: Folds of the cross-fitting of a method whose subset is slow to choose; every other one leaves one system out.
CROSS_FOLDS = {"anchor": 2}


@dataclass(frozen=True)
class Calibration:
    """Absolute residuals of seen systems under the same procedure, and the range of scores seen."""

    residuals: np.ndarray
    low: float
    high: float

    def half_width(self, level: float) -> float:
        """The conformal quantile of the residuals at ``level`` (inf when there are too few)."""
        k = math.ceil((len(self.residuals) + 1) * level)
        if k > len(self.residuals):
            return math.inf
        return float(np.sort(self.residuals)[k - 1])

    def intervals(self, estimates: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) per estimate, clipped to the range of scores seen."""
        q = self.half_width(level)
        return np.clip(estimates - q, self.low, self.high), np.clip(estimates + q, self.low, self.high)


def calibrate(spec: str, seen: ScoreTable, subset: EvalSubset, budget: int, seed: int,
              labels: np.ndarray | None = None, costs: np.ndarray | None = None) -> Calibration:
    """Residuals of the seen systems: on ``subset`` itself when neither the method nor the estimator looks at their
    scores, else cross-fitted over folds of the systems (each fold's subset chosen on the others with the same
    budget and seed)."""
    truth = seen.full_means()
    method, estimator = parse_spec(spec)
    if (method in SCORE_FREE and estimator == "mean") or len(seen.systems) < 4:
        residuals = np.abs(subset.estimate(seen.scores[subset.rows]) - truth)
    else:
        order = np.random.default_rng([seed, 0xCA11B]).permutation(len(seen.systems))
        folds = np.array_split(order, min(CROSS_FOLDS.get(method, len(order)), len(order)))
        residuals = np.empty(len(truth))
        for held in folds:
            fit = np.sort(np.setdiff1d(order, held))
            other = choose(spec, seen.take_systems(fit), budget, seed, labels, costs)
            residuals[held] = np.abs(other.estimate(seen.scores[np.ix_(other.rows, held)]) - truth[held])
    return Calibration(residuals, float(seen.scores.min()), float(seen.scores.max()))
