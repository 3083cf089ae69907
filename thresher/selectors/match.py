"""Distribution matching: choose the *set* whose n-gram distribution is closest to the target's, not the records
that score best one by one.

A per-record score (DSIR's importance weight, a classifier) cannot see that the 4,000th news article adds less than
the first short encyclopedia stub: the value of a record depends on what is already selected. This selector
maximises, over selections ``S`` with summed bucket counts ``c(S)`` and total ``C(S)``::

    F(S) = sum_b p_b log(c_b(S) + a) - log(C(S) + a B)  =  -KL(p || q(S)) - H(p)

where ``p`` is the target's smoothed bucket distribution and ``q(S)`` the selection's add-``a`` distribution over
``B`` buckets: the KL that DSIR's paper and ``thresher evaluate`` report. The gain of a record ``r`` is::

    A(r) - P(r),   A(r) = sum_b p_b log(1 + x_rb / (c_b + a)),   P(r) = log(1 + L_r / (C + a B))

with ``x_r`` its bucket counts and ``L_r`` their sum. Greedy takes the best gain at every step.

Batched, lazy evaluation keeps it fast on a whole pool. ``A`` only falls as the selection grows (``log`` is
concave), so an ``A`` computed earlier, and the linear bound ``sum_b p_b x_rb / (c_b + a)`` (one sparse product over
the pool), are upper bounds of it now. Work goes in rounds: the records with the best bounds (``candidates``, or 4x
the round's picks) are evaluated exactly, and the round picks ``growth`` times the selection so far, in up to four
passes that each re-evaluate the candidates; then every bound is refreshed. With one pick per round and every record
a candidate this is step-by-step greedy (tested); the default rounds reach its objective to within 0.1%.

A quality score joins as a modular term: ``quality_weight`` nats of KL are worth moving the selection's mean
quality percentile from 0 to 1. A token budget is filled by gain per token (cost-benefit greedy); records that no
longer fit are skipped. Deterministic: no randomness, ties to the lower index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import HashedNgramConfig, _ranges
from thresher.selectors.budget import Budget
from thresher.selectors.setwise import budget_costs, check_weight, from_params, quality_bonus

#: The feature space matching works in by default: other buckets and another hash seed than the 10,000 buckets of
#: seed 0 that ``thresher evaluate`` (and DSIR's default) measure KL in, so that a selection is not measured on the
#: very quantity it optimised.
MATCH_FEATURES = HashedNgramConfig(num_buckets=16_384, seed=1)


class _Gains:
    """The objective's state for a CSR count matrix: summed counts ``c`` of the selection and their total."""

    def __init__(self, counts, p: np.ndarray, smoothing: float):
        from scipy import sparse

        self.indptr = counts.indptr
        self.indices = counts.indices
        self.data = counts.data
        # for the linear bound, one float32 sparse product per round (sharing the integer arrays, not copying them)
        self.weights = sparse.csr_matrix((counts.data.astype(np.float32), counts.indices, counts.indptr),
                                         shape=counts.shape, copy=False)
        self.p = p
        self.a = smoothing
        self.aB = smoothing * counts.shape[1]
        self.c = np.zeros(counts.shape[1])
        self.C = 0.0
        self.lengths = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()

    def exact(self, rows: np.ndarray) -> np.ndarray:
        """A(r) of each of ``rows`` at the current selection."""
        starts = self.indptr[rows].astype(np.int64)
        sizes = self.indptr[rows + 1] - starts
        pos = _ranges(starts, sizes)
        cols = self.indices[pos]
        contrib = self.p[cols] * np.log1p(self.data[pos] / (self.c[cols] + self.a))
        return np.bincount(np.repeat(np.arange(len(rows)), sizes), weights=contrib, minlength=len(rows))

    def exact_all(self, block: int = 2**21) -> np.ndarray:
        """A(r) of every row, in blocks of about ``block`` counts: temporaries stay small on a big pool."""
        if self.indptr[-1] == 0:
            return np.zeros(len(self.indptr) - 1)
        ends = np.searchsorted(self.indptr, np.arange(block, self.indptr[-1] + block, block), side="right")
        out, start = [], 0
        for end in np.unique(np.clip(ends, 1, len(self.indptr) - 1)):
            out.append(self.exact(np.arange(start, end)))
            start = end
        return np.concatenate(out) if out else np.zeros(0)

    def linear(self) -> np.ndarray:
        """``sum_b p_b x_rb / (c_b + a)`` of every row: an upper bound of A(r) now and later."""
        return self.weights @ (self.p / (self.c + self.a)).astype(np.float32)

    def penalty(self, lengths: np.ndarray) -> np.ndarray:
        return np.log1p(lengths / (self.C + self.aB))

    def add(self, row: int) -> None:
        lo, hi = self.indptr[row], self.indptr[row + 1]
        np.add.at(self.c, self.indices[lo:hi], self.data[lo:hi])
        self.C += float(self.lengths[row])


@dataclass(frozen=True)
class KLMatch:
    """Greedy KL(target || selection) minimisation on hashed n-gram counts (see the module docstring).

    smoothing: add-``a`` pseudo-count per bucket of both distributions (``thresher evaluate`` uses 1).
    quality_weight: nats of KL worth a selection whose mean quality percentile is 1 rather than 0, when a quality
    score is given (0: ignore it).
    growth: each round picks this share of the selection so far (at least one record) before every bound is
    refreshed; candidates: the fewest records re-evaluated exactly per round (4x the round's picks when more).
    Smaller values are closer to step-by-step greedy and slower.
    """

    smoothing: float = 1.0
    quality_weight: float = 2.0
    growth: float = 0.25
    candidates: int = 256

    name = "match"

    def __post_init__(self) -> None:
        if not (isinstance(self.smoothing, (int, float)) and math.isfinite(self.smoothing) and self.smoothing > 0):
            raise ConfigError(f"smoothing must be a number > 0, got {self.smoothing!r}")
        check_weight(self.quality_weight)
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int) or self.candidates < 1:
            raise ConfigError(f"candidates must be a positive integer, got {self.candidates!r}")
        if not (isinstance(self.growth, (int, float)) and 0 < self.growth <= 1):
            raise ConfigError(f"growth must be a number in (0, 1], got {self.growth!r}")

    @classmethod
    def from_params(cls, params: dict) -> KLMatch:
        """Built from ``--selector-param`` values (strings parsed as numbers); unknown keys are an error."""
        return from_params(cls, "match", params)

    def select(self, counts, target_counts: np.ndarray, budget: int | float | str | Budget,
               n_tokens: np.ndarray | None = None, quality: np.ndarray | None = None) -> np.ndarray:
        """Indices of the rows of ``counts`` (records x buckets, scipy sparse) in the order greedy picks them.

        ``target_counts``: the target's summed bucket counts. A token budget needs ``n_tokens`` (its cost per
        record); ``quality`` (any scale, higher better; e.g. DSIR's importance or a classifier's score) joins the
        objective with ``quality_weight``.
        """
        from scipy import sparse

        counts = sparse.csr_matrix(counts)
        n, n_buckets = counts.shape
        target = np.asarray(target_counts, dtype=np.float64)
        if target.shape != (n_buckets,):
            raise ConfigError(f"target counts have {target.shape} buckets, the pool's features {n_buckets}")
        if not target.sum() > 0:
            raise ConfigError("the target has no n-grams to match")
        if n == 0:
            raise ConfigError("no records to select from")
        cost, limit = budget_costs(budget, n, n_tokens)
        bonus = quality_bonus(self.quality_weight, quality, cost, limit)
        p = (target + self.smoothing) / (target.sum() + self.smoothing * n_buckets)
        return _batched_greedy(_Gains(counts, p, float(self.smoothing)), cost, bonus, limit, self.candidates,
                               self.growth)


def _batched_greedy(g: _Gains, cost: np.ndarray, bonus: np.ndarray, limit: float, candidates: int,
                    growth: float, passes: int = 4) -> np.ndarray:
    """Greedy by (gain + bonus) / cost until ``limit`` of cost is spent, in rounds (see the module docstring)."""
    n = len(cost)
    lengths = g.lengths
    bound = g.exact_all().astype(np.float32)  # A at the empty selection: an upper bound of A from now on
    alive = np.ones(n, dtype=bool)
    order: list[int] = []
    spent = 0.0
    while alive.any():
        step = max(1, math.ceil(growth * len(order)))
        ub = np.where(alive, (bound - g.penalty(lengths) + bonus) / cost, -np.inf)
        m = min(max(candidates, 4 * step), int(alive.sum()))
        K = np.sort(np.argpartition(-ub, m - 1)[:m])
        LK, bK, cK = lengths[K], bonus[K], cost[K]
        for part in np.diff(np.linspace(0, step, min(passes, step) + 1).astype(int)):
            A = g.exact(K)
            gains = np.where(alive[K], (A - g.penalty(LK) + bK) / cK, -np.inf)
            for j in np.argsort(-gains, kind="stable")[:part]:
                row = int(K[j])
                if not alive[row]:
                    break
                alive[row] = False
                if spent + cost[row] > limit:  # does not fit a token budget: nor does anything as long
                    alive &= cost <= limit - spent
                    continue
                order.append(row)
                spent += cost[row]
                g.add(row)
                if spent >= limit:
                    return np.asarray(order, dtype=np.int64)
        bound[K] = A
        np.minimum(bound, g.linear(), out=bound)
    return np.asarray(order, dtype=np.int64)
