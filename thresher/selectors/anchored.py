"""Set-level selection toward a target in embedding space: cover the target's records, or match its mean.

- :class:`TargetCoverage` (``cover``): facility location anchored on the *target* rather than the pool. Each target
  record asks for ``m = ceil(k / |T|)`` representatives, and ``f(S) = sum_t (sum of the m largest similarities of t
  to S)`` (cosine, clipped at 0). Monotone submodular, so lazy greedy is within ``1 - 1/e`` of the optimum
  (Nemhauser et al., 1978); unlike top-k by similarity to the target, a target record that is already well covered
  stops pulling, and the budget spreads over all of the target.
- :class:`MeanMatch` (``mmd``): kernel mean matching (herding, Chen et al., 2010) with the linear kernel on unit
  embeddings: minimise ``|| mean_S x - mean_T y ||^2``, the squared MMD. Greedy adds the record that best moves the
  selection's mean toward the target's; in rounds of ``growth`` times the selection so far, each one matrix-vector
  product over the pool.

Both take ``quality`` (any scale) with a ``quality_weight`` in the objective's own units per record (0: ignore it),
fill token budgets by gain per token, and are deterministic (ties to the lower index).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors.budget import Budget
from thresher.selectors.diversity import chunk_rows, matvec, normalize_rows
from thresher.selectors.setwise import budget_costs, check_weight, from_params, quality_bonus

#: Target records kept at most (a deterministic sample beyond this), and pool x target similarities held at most:
#: coverage keeps the whole similarity matrix (float32), so a bigger pool keeps fewer target records.
MAX_TARGET = 4096
MAX_CELLS = 2**28


def target_rows(n_target: int, n_pool: int | None = None) -> np.ndarray:
    """Which target records to use: all, or a seeded sample of :data:`MAX_TARGET` (and, given the pool's size for
    coverage, few enough to keep pool x target under :data:`MAX_CELLS`). Callers sample before embedding the
    target; the selectors apply the same rule."""
    cells = MAX_TARGET if n_pool is None else max(64, MAX_CELLS // max(n_pool, 1))
    keep = min(n_target, MAX_TARGET, cells)
    if keep >= n_target:
        return np.arange(n_target)
    return np.sort(np.random.default_rng(0).choice(n_target, keep, replace=False))


@dataclass(frozen=True)
class TargetCoverage:
    """Target-anchored facility location (see the module docstring). quality_weight: the share of a perfect
    coverage per record that the best quality percentile is worth."""

    quality_weight: float = 0.0

    name = "cover"

    def __post_init__(self) -> None:
        check_weight(self.quality_weight)

    def select(self, embeddings: np.ndarray, target: np.ndarray, budget: Budget | str | int | float,
               n_tokens: np.ndarray | None = None, quality: np.ndarray | None = None) -> np.ndarray:
        """Indices of the rows of ``embeddings`` in the order greedy picks them, covering the rows of ``target``."""
        X, Y = normalize_rows(embeddings), normalize_rows(target)
        if X.shape[1] != Y.shape[1]:
            raise ConfigError(f"pool embeddings have {X.shape[1]} dimensions, the target's {Y.shape[1]}")
        Y = Y[target_rows(len(Y), len(X))]
        n, t = len(X), len(Y)
        cost, limit = budget_costs(budget, n, n_tokens)
        k = int(limit) if cost.max() == 1 else int(np.searchsorted(np.cumsum(np.sort(cost)), limit, "right"))
        m = max(1, math.ceil(max(k, 1) / t))  # representatives per target record
        sims = np.empty((n, t), dtype=np.float32)
        step = chunk_rows(t, 4)
        for lo in range(0, n, step):
            np.maximum(X[lo: lo + step] @ Y.T, 0, out=sims[lo: lo + step])
        bonus = quality_bonus(self.quality_weight, quality, cost, limit) * t * m / max(k, 1)
        best = np.zeros((t, m), dtype=np.float32)  # each target record's m best similarities to the selection
        floor = np.zeros(t, dtype=np.float32)  # the least of them: what a new record must beat to count

        def gains(rows: np.ndarray) -> np.ndarray:
            return (np.maximum(sims[rows] - floor, 0).sum(axis=1, dtype=np.float64) + bonus[rows]) / cost[rows]

        heap = [(-g, j) for j, g in enumerate(gains(np.arange(n)).tolist())]
        heapq.heapify(heap)
        order: list[int] = []
        spent = 0.0
        while heap and spent < limit:
            stale = [heapq.heappop(heap)[1] for _ in range(min(8, len(heap)))]
            fresh = gains(np.asarray(stale))
            top = int(np.argmax(fresh))  # the first of equal gains: stale came off the heap lowest index first
            rest = -heap[0][0] if heap else -np.inf
            for j, g in zip(stale, fresh.tolist()):
                if j != stale[top] or g < rest:
                    heapq.heappush(heap, (-g, j))  # a smaller gain than before: submodularity keeps it a bound
            if fresh[top] < rest:
                continue
            j = stale[top]
            if spent + cost[j] > limit:
                continue  # does not fit a token budget (not pushed back)
            order.append(j)
            spent += cost[j]
            row = sims[j]
            better = np.flatnonzero(row > floor)
            slot = np.argmin(best[better], axis=1)
            best[better, slot] = row[better]
            floor[better] = best[better].min(axis=1)
        return np.asarray(order, dtype=np.int64)


@dataclass(frozen=True)
class MeanMatch:
    """Kernel mean matching on unit embeddings (see the module docstring). quality_weight: the squared distance
    between means, times the budget, that the best quality percentile is worth per record. growth: each round picks
    this share of the selection so far (at least one record)."""

    quality_weight: float = 0.0
    growth: float = 0.1

    name = "mmd"

    def __post_init__(self) -> None:
        check_weight(self.quality_weight)
        if not (isinstance(self.growth, (int, float)) and 0 < self.growth <= 1):
            raise ConfigError(f"growth must be a number in (0, 1], got {self.growth!r}")

    def select(self, embeddings: np.ndarray, target: np.ndarray, budget: Budget | str | int | float,
               n_tokens: np.ndarray | None = None, quality: np.ndarray | None = None) -> np.ndarray:
        """Indices of the rows of ``embeddings`` in the order they join, bringing their mean to ``target``'s."""
        X = normalize_rows(embeddings)
        Y = normalize_rows(target)
        mu = Y[target_rows(len(Y))].mean(axis=0, dtype=np.float64)
        if X.shape[1] != len(mu):
            raise ConfigError(f"pool embeddings have {X.shape[1]} dimensions, the target's {len(mu)}")
        n = len(X)
        cost, limit = budget_costs(budget, n, n_tokens)
        bonus = quality_bonus(self.quality_weight, quality, cost, limit)
        toward = matvec(X, mu.astype(np.float32)).astype(np.float64)  # x . mu
        overlap = np.zeros(n)  # x . s, s the sum of the selection
        norms = np.einsum("ij,ij->i", X, X, dtype=np.float64)
        mm = float(mu @ mu)
        alive = np.ones(n, dtype=bool)
        order: list[int] = []
        spent, size = 0.0, 0
        total = np.zeros(X.shape[1], dtype=np.float64)
        while alive.any() and spent < limit:
            # D = |mean - mu|^2 before and after x joins (the empty selection's mean is 0): the exact decrease, so
            # that a decrease per token compares records of different lengths fairly
            ss, sm = float(total @ total), float(total @ mu)
            before = ss / size**2 - 2 * sm / size + mm if size else mm
            after = (ss + 2 * overlap + norms) / (size + 1) ** 2 - 2 * (sm + toward) / (size + 1) + mm
            gain = np.where(alive, (before - after + bonus) / cost, -np.inf)
            picks = max(1, math.ceil(self.growth * size))
            added = np.zeros(X.shape[1], dtype=np.float64)
            for j in np.argsort(-gain, kind="stable")[:picks]:
                if not alive[j]:
                    break
                alive[j] = False
                if spent + cost[j] > limit:
                    alive &= cost <= limit - spent
                    continue
                order.append(int(j))
                spent += cost[j]
                size += 1
                added += X[j]
            total += added
            overlap += matvec(X, added.astype(np.float32))
        return np.asarray(order, dtype=np.int64)


ANCHORED = {"cover": TargetCoverage, "mmd": MeanMatch}


def make_anchored(name: str, params: dict) -> TargetCoverage | MeanMatch:
    """``cover`` or ``mmd`` from ``--selector-param`` values; unknown keys and non-numbers are clear errors."""
    return from_params(ANCHORED[name], name, params)
