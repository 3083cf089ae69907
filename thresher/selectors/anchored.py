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
from thresher.selectors.diversity import as_embeddings, chunk_rows, matvec, normalize_rows, record_count
from thresher.selectors.match import percentiles

#: Target records kept for coverage: the similarity matrix is pool x target (a deterministic sample beyond this).
MAX_TARGET = 4096


def _costs(budget: Budget | str | int | float, n: int, n_tokens: np.ndarray | None) -> tuple[np.ndarray, float]:
    """The cost of each record and the budget in those units: 1 per record, or its tokens."""
    b = Budget.parse(budget)
    if b.kind != "tokens":
        return np.ones(n), float(record_count(b, n))
    if n_tokens is None:
        raise ConfigError(f"a token budget ({b}) needs the token count of every record")
    cost = np.maximum(np.asarray(n_tokens, dtype=np.float64), 1.0)
    if b.value > cost.sum():
        raise ConfigError(f"budget {b} exceeds the {int(cost.sum()):,} tokens of the {n:,} records")
    return cost, float(b.value)


def _bonus(weight: float, quality: np.ndarray | None, n: int, cost: np.ndarray, limit: float) -> np.ndarray:
    """``weight`` x the quality percentile, per unit of budget a record uses."""
    if quality is None or weight == 0:
        return np.zeros(n)
    if len(quality) != n:
        raise ConfigError(f"got {len(quality)} quality scores for {n} records")
    return weight * percentiles(quality) * cost / limit


def _check_weight(value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"quality_weight must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class TargetCoverage:
    """Target-anchored facility location (see the module docstring). quality_weight: the share of a perfect
    coverage per record that the best quality percentile is worth."""

    quality_weight: float = 0.0

    name = "cover"

    def __post_init__(self) -> None:
        _check_weight(self.quality_weight)

    def select(self, embeddings: np.ndarray, target: np.ndarray, budget: Budget | str | int | float,
               n_tokens: np.ndarray | None = None, quality: np.ndarray | None = None) -> np.ndarray:
        """Indices of the rows of ``embeddings`` in the order greedy picks them, covering the rows of ``target``."""
        X, Y = normalize_rows(embeddings), normalize_rows(target)
        if X.shape[1] != Y.shape[1]:
            raise ConfigError(f"pool embeddings have {X.shape[1]} dimensions, the target's {Y.shape[1]}")
        if len(Y) > MAX_TARGET:
            Y = Y[np.sort(np.random.default_rng(0).choice(len(Y), MAX_TARGET, replace=False))]
        n, t = len(X), len(Y)
        cost, limit = _costs(budget, n, n_tokens)
        k = int(limit) if cost.max() == 1 else int(np.searchsorted(np.cumsum(np.sort(cost)), limit, "right"))
        m = max(1, math.ceil(max(k, 1) / t))  # representatives per target record
        sims = np.empty((n, t), dtype=np.float32)
        step = chunk_rows(t, 4)
        for lo in range(0, n, step):
            np.maximum(X[lo: lo + step] @ Y.T, 0, out=sims[lo: lo + step])
        bonus = _bonus(self.quality_weight, quality, n, cost, limit) * t * m / max(k, 1)
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
        _check_weight(self.quality_weight)
        if not (isinstance(self.growth, (int, float)) and 0 < self.growth <= 1):
            raise ConfigError(f"growth must be a number in (0, 1], got {self.growth!r}")

    def select(self, embeddings: np.ndarray, target: np.ndarray, budget: Budget | str | int | float,
               n_tokens: np.ndarray | None = None, quality: np.ndarray | None = None) -> np.ndarray:
        """Indices of the rows of ``embeddings`` in the order they join, bringing their mean to ``target``'s."""
        X = normalize_rows(embeddings)
        mu = normalize_rows(as_embeddings(target)).mean(axis=0, dtype=np.float64)
        if X.shape[1] != len(mu):
            raise ConfigError(f"pool embeddings have {X.shape[1]} dimensions, the target's {len(mu)}")
        n = len(X)
        cost, limit = _costs(budget, n, n_tokens)
        bonus = _bonus(self.quality_weight, quality, n, cost, limit)
        toward = matvec(X, mu.astype(np.float32)).astype(np.float64)  # x_j . mu
        overlap = np.zeros(n)  # x_j . s, s the sum of the selection
        norms = np.einsum("ij,ij->i", X, X, dtype=np.float64)
        alive = np.ones(n, dtype=bool)
        order: list[int] = []
        spent, size = 0.0, 0
        total = np.zeros(X.shape[1], dtype=np.float64)
        while alive.any() and spent < limit:
            # decrease of |mean - mu|^2 x (size + 1)^2 when x_j joins: 2 (size + 1) x.mu - 2 x.s - |x|^2 + const
            gain = (2 * (size + 1) * toward - 2 * overlap - norms) / (size + 1) ** 2 + bonus
            gain = np.where(alive, gain / cost, -np.inf)
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
    cls = ANCHORED[name]
    unknown = sorted(set(params) - set(cls.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"selector {name!r} does not take {', '.join(unknown)} (it takes "
                          f"{', '.join(cls.__dataclass_fields__)})")
    try:
        return cls(**{k: float(v) for k, v in params.items()})
    except (TypeError, ValueError):
        raise ConfigError(f"selector {name!r}: parameters must be numbers, got {params}") from None
