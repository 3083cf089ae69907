"""Seeded k-means whose every pass over the data is a map over row blocks, so it runs on the engine.

The rows live in blocks (:class:`ArrayBlock`: part of a matrix in memory; or any object with ``n`` and ``rows()``,
such as a shard of an embedding store that a task loads itself). The main process holds the centroids, a seeded
sample for the initialisation, and one label and distance per row; never the matrix.

1. **Initialisation**: k-means++ on a seeded sample of at most ``max(INIT_SAMPLE, 32 * k)`` rows, gathered from
   the blocks (all rows when there are fewer: then it is k-means++ on the whole data).
2. **Lloyd passes**: each block task assigns its rows to the nearest centroid (row blocks of bounded memory) and
   returns its labels, distances, per-cluster float64 sums and counts, and its farthest rows (candidates to
   re-seed an emptied cluster). The main process adds the blocks' sums in block order, so the centroids, and so
   the clusters, are the same for any number of workers and on any engine; they are defined by the blocks.
3. It stops when no label changes, the centroids move less than ``tol`` (relative), or after ``n_iter`` passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors.diversity import as_embeddings, chunk_rows, matvec

#: Rows of the initialisation sample (at least; 32 per cluster when that is more).
INIT_SAMPLE = 65_536
#: Rows per block when k-means is given a matrix (fixed, so the result does not depend on the workers).
BLOCK_ROWS = 65_536


class RowBlock(Protocol):
    """Consecutive rows of the data, loadable wherever a task runs."""

    n: int

    def rows(self) -> np.ndarray: ...


@dataclass(frozen=True)
class ArrayBlock:
    """Rows of a matrix held in memory."""

    X: np.ndarray

    @property
    def n(self) -> int:
        return len(self.X)

    def rows(self) -> np.ndarray:
        return self.X


@dataclass(frozen=True)
class KMeansResult:
    """Centroids (clusters x dims), the cluster of every record, its squared distance to it, and iterations run."""

    centroids: np.ndarray
    labels: np.ndarray
    sq_dist: np.ndarray
    n_iter: int

    @property
    def inertia(self) -> float:
        return float(self.sq_dist.sum(dtype=np.float64))


@dataclass(frozen=True)
class BlockPass:
    """One block's share of a Lloyd pass."""

    labels: np.ndarray
    sq_dist: np.ndarray
    sums: np.ndarray  # clusters x dims, float64
    counts: np.ndarray
    far: np.ndarray  # block-local rows, farthest first (ties: earlier row first)


def _assign(X: np.ndarray, C: np.ndarray, x_sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row and the squared distance to it, in row blocks."""
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float32)
    c_sq = np.einsum("ij,ij->i", C, C)
    rows = chunk_rows(len(C), bytes_per_cell=8, budget=64 * 2**20)
    for a in range(0, n, rows):
        d = c_sq[None, :] - 2 * (X[a:a + rows] @ C.T)
        lab = np.argmin(d, axis=1)
        labels[a:a + rows] = lab
        dist[a:a + rows] = np.maximum(d[np.arange(len(lab)), lab] + x_sq[a:a + rows], 0)
    return labels, dist


def lloyd_pass(block: RowBlock, C: np.ndarray, n_far: int) -> BlockPass:
    """Engine task: assign one block's rows to centroids ``C``; its labels, distances, sums, counts and farthest
    ``n_far`` rows."""
    X = np.asarray(block.rows(), dtype=np.float32)
    labels, dist = _assign(X, C, np.einsum("ij,ij->i", X, X))
    order = np.argsort(labels, kind="stable")
    present, starts = np.unique(labels[order], return_index=True)
    sums = np.zeros(C.shape, dtype=np.float64)
    if len(order):
        sums[present] = np.add.reduceat(X[order].astype(np.float64), starts, axis=0)
    far = np.argsort(-dist, kind="stable")[:n_far]
    return BlockPass(labels.astype(np.int32), dist, sums, np.bincount(labels, minlength=len(C)), far)


def take_rows(block: RowBlock, local: np.ndarray) -> np.ndarray:
    """Engine task: rows ``local`` of one block."""
    return np.asarray(block.rows()[local], dtype=np.float32)


def blocks_of(X: np.ndarray, rows: int = BLOCK_ROWS) -> list[ArrayBlock]:
    """A matrix as blocks of ``rows`` rows."""
    return [ArrayBlock(X[a:a + rows]) for a in range(0, len(X), rows)]


def kmeans(X: np.ndarray | Sequence[RowBlock], n_clusters: int, seed: int = 0, n_iter: int = 25, tol: float = 1e-4,
           engine=None) -> KMeansResult:
    """Seeded k-means++ (on a sample) then Lloyd passes over ``X`` (a matrix, or row blocks), each pass a map
    over the blocks on ``engine`` (default: this process). An emptied cluster is re-seeded at the row farthest
    from its centroid. The same blocks, data and seed give the same clusters on any engine."""
    from thresher.engine import LocalEngine

    blocks = blocks_of(as_embeddings(X)) if isinstance(X, np.ndarray) else list(X)
    sizes = np.array([b.n for b in blocks], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    n = int(starts[-1])
    if not 1 <= n_clusters <= n:
        raise ConfigError(f"n_clusters must be in [1, {n}], got {n_clusters}")
    runner = engine or LocalEngine(1)

    def gather(rows: np.ndarray) -> np.ndarray:  # the rows, in the order asked for
        owner = np.searchsorted(starts, rows, side="right") - 1
        by_block = np.argsort(owner, kind="stable")
        wanted = [(blocks[b], rows[owner == b] - starts[b]) for b in np.unique(owner)]
        taken = np.concatenate(list(runner.map(take_rows, wanted)))
        out = np.empty_like(taken)
        out[by_block] = taken
        return out

    rng = np.random.default_rng(seed)
    size = min(n, max(INIT_SAMPLE, 32 * n_clusters))
    sample = np.arange(n) if size == n else np.sort(rng.choice(n, size, replace=False))
    C = _kmeans_pp(gather(sample), n_clusters, rng)

    def lloyd(C: np.ndarray) -> tuple[list[BlockPass], np.ndarray]:
        passes = list(runner.map(lloyd_pass, ((b, C, n_clusters) for b in blocks)))
        return passes, np.concatenate([p.labels for p in passes]).astype(np.int64)

    passes, labels = lloyd(C)
    done = 0
    while done < n_iter:
        done += 1
        counts = np.sum([p.counts for p in passes], axis=0)
        sums = np.zeros(C.shape, dtype=np.float64)
        for p in passes:  # in block order: the same float64 sums on every engine
            sums += p.sums
        new = np.zeros_like(C)
        nonempty = counts > 0
        new[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
        if not nonempty.all():
            new[~nonempty] = gather(_farthest(passes, starts, int((~nonempty).sum())))
        shift = float(np.linalg.norm(new - C)) / max(float(np.linalg.norm(C)), 1e-12)
        C = new
        passes, new_labels = lloyd(C)
        changed = not np.array_equal(new_labels, labels)
        labels = new_labels
        if not changed or shift < tol:
            break
    dist = np.concatenate([p.sq_dist for p in passes])
    return KMeansResult(C, labels, dist, done)


def _kmeans_pp(S: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ centres among the rows of ``S``: the next one with probability proportional to D(x)^2."""
    m = len(S)
    s_sq = np.einsum("ij,ij->i", S, S)
    centers = [int(rng.integers(m))]
    closest = np.maximum(s_sq + s_sq[centers[0]] - 2 * matvec(S, S[centers[0]]), 0).astype(np.float64)
    for _ in range(1, k):
        total = closest.sum()
        j = int(np.searchsorted(np.cumsum(closest), rng.random() * total)) if total > 0 else int(rng.integers(m))
        j = min(j, m - 1)
        centers.append(j)
        np.minimum(closest, np.maximum(s_sq + s_sq[j] - 2 * matvec(S, S[j]), 0), out=closest)
    return S[centers].copy()


def _farthest(passes: list[BlockPass], starts: np.ndarray, m: int) -> np.ndarray:
    """The ``m`` rows farthest from their centroids over all blocks (ties: the earlier row), in that order."""
    rows = np.concatenate([p.far + s for p, s in zip(passes, starts)])
    dist = np.concatenate([p.sq_dist[p.far] for p in passes])
    return rows[np.lexsort((rows, -dist))[:m]]
