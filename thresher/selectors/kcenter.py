"""Greedy k-center (the core-set selection of Sener & Savarese, 2018): pick the point farthest from everything picked.

Each pick is a 2-approximation step for the minimax covering radius: after ``t`` picks every record lies within the
current radius of a picked one, and the radius never grows. The distance to the selected set is kept per record and
updated with one matrix-vector product per pick (in row blocks, so a memory-mapped matrix is read block by block).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors.base import _descending
from thresher.selectors.budget import Budget
from thresher.selectors.diversity import as_embeddings, as_scores, matvec, record_count

STARTS = ("random", "score")


@dataclass(frozen=True)
class KCenterResult:
    """Selected indices in pick order, and the covering radius (max distance to the nearest pick) after each pick."""

    order: np.ndarray
    radii: np.ndarray


@dataclass(frozen=True)
class KCenter:
    """Greedy k-center on Euclidean distance (for L2-normalised rows: ``sqrt(2 - 2 cos)``).

    start: ``random`` (a seeded uniform first point) or ``score`` (the highest-scored record first, ties by
    position). block_rows: rows per block of the distance update.
    """

    seed: int = 0
    start: str = "random"
    block_rows: int = 65_536

    name = "kcenter"

    def __post_init__(self) -> None:
        if self.start not in STARTS:
            raise ConfigError(f"k-center start must be one of {STARTS}, got {self.start!r}")
        if self.block_rows < 1:
            raise ConfigError(f"block_rows must be >= 1, got {self.block_rows}")

    def run(self, X: np.ndarray, budget: int | str | Budget, scores: np.ndarray | None = None) -> KCenterResult:
        """Pick ``budget`` records; also report the covering radius after each pick."""
        X = as_embeddings(X)
        n = X.shape[0]
        k = record_count(budget, n)
        scores = as_scores(scores, n, self.start == "score", "k-center with start='score'")
        first = int(_descending(scores)[0]) if self.start == "score" else int(np.random.default_rng(self.seed)
                                                                               .integers(n))
        sq = np.einsum("ij,ij->i", X, X)
        dist = np.full(n, np.inf, dtype=np.float32)  # squared distance to the nearest pick
        order = np.empty(k, dtype=np.int64)
        radii = np.empty(k, dtype=np.float64)
        j = first
        for t in range(k):
            order[t] = j
            x = X[j]
            for a in range(0, n, self.block_rows):
                b = min(n, a + self.block_rows)
                d = sq[a:b] + sq[j] - 2 * matvec(X[a:b], x)
                np.minimum(dist[a:b], d, out=dist[a:b])
            dist[j] = -1.0  # never picked again (a duplicate's distance is 0 and stays a candidate)
            np.maximum(dist, 0, out=dist, where=dist > -1)
            j = int(np.argmax(dist))
            radii[t] = float(np.sqrt(max(dist[j], 0.0)))
        return KCenterResult(order, radii)

    def select(self, X: np.ndarray, budget: int | str | Budget, scores: np.ndarray | None = None) -> np.ndarray:
        """Indices of the selected records, in pick order."""
        return self.run(X, budget, scores).order
