"""Estimates of new systems' full-set scores from their scores on the chosen items, with conformal intervals.

An interval must be honest with 25 items and a few dozen seen systems, so it assumes no distribution: the seen
systems, treated as exchangeable with the new ones, give residuals |estimate - full-set score| of the same
procedure, and the interval is the estimate plus or minus their ceil((S + 1) x level)-th smallest (split conformal
prediction: it covers a new system's full-set score with probability at least ``level``). When the subset was chosen
by looking at the seen systems (``anchor``), a system's residual must come from a subset chosen without it, so the
residuals are cross-fitted: the seen systems are split in two, each half's subset is chosen on the other half.
With fewer than ceil(1 / (1 - level)) - 1 seen systems no finite quantile exists and the interval is the whole range
of scores seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thresher.evalset.methods import EvalSubset, choose
from thresher.evalset.table import ScoreTable

#: Methods whose subset does not depend on the seen systems' scores (their residuals need no cross-fitting).
SCORE_FREE = ("random", "stratified")


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


def calibrate(method: str, seen: ScoreTable, subset: EvalSubset, budget: int, seed: int,
              labels: np.ndarray | None = None) -> Calibration:
    """Residuals of the seen systems: on ``subset`` itself for a method that ignores their scores, else cross-fitted
    over two halves of the systems (each half's subset chosen on the other with the same budget and seed)."""
    truth = seen.full_means()
    if method in SCORE_FREE or len(seen.systems) < 4:
        residuals = np.abs(subset.estimate(seen.scores[subset.rows]) - truth)
    else:
        order = np.random.default_rng([seed, 0xCA11B]).permutation(len(seen.systems))
        halves = (order[: len(order) // 2], order[len(order) // 2:])
        residuals = np.empty(len(truth))
        for fit, held in (halves, halves[::-1]):
            other = choose(method, seen.take_systems(fit), budget, seed, labels)
            residuals[held] = np.abs(other.estimate(seen.scores[np.ix_(other.rows, held)]) - truth[held])
    return Calibration(residuals, float(seen.scores.min()), float(seen.scores.max()))
