"""Cluster-balanced sampling (in the spirit of Diversify-and-Conquer): k-means on embeddings, then the budget is
spread over the clusters and each cluster is filled by a configurable rule.

:func:`kmeans` is a seeded k-means++ initialisation followed by Lloyd iterations, in numpy only, with the assignment
step computed in row blocks (memory ``O(block x clusters)``); the same data and seed give the same clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from thresher.errors import ConfigError
from thresher.selectors.budget import Budget
from thresher.selectors.diversity import as_embeddings, as_scores, chunk_rows, matvec, record_count
from thresher.selectors.quotas import allocate, stratified_order

CLUSTER_ALLOCATIONS = ("proportional", "equal", "sqrt")
CLUSTER_WITHIN = ("random", "score", "centroid")


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


def kmeans(X: np.ndarray, n_clusters: int, seed: int = 0, n_iter: int = 25, tol: float = 1e-4) -> KMeansResult:
    """Seeded k-means++ then Lloyd until the assignment stops changing, the centroids move less than ``tol``
    (relative), or ``n_iter`` iterations. An emptied cluster is re-seeded at the record farthest from its centroid."""
    X = as_embeddings(X)
    n = X.shape[0]
    if not 1 <= n_clusters <= n:
        raise ConfigError(f"n_clusters must be in [1, {n}], got {n_clusters}")
    rng = np.random.default_rng(seed)
    x_sq = np.einsum("ij,ij->i", X, X)
    centers = [int(rng.integers(n))]
    closest = np.maximum(x_sq + x_sq[centers[0]] - 2 * matvec(X, X[centers[0]]), 0).astype(np.float64)
    for _ in range(1, n_clusters):  # k-means++: the next center with probability proportional to D(x)^2
        total = closest.sum()
        j = int(np.searchsorted(np.cumsum(closest), rng.random() * total)) if total > 0 else int(rng.integers(n))
        j = min(j, n - 1)
        centers.append(j)
        np.minimum(closest, np.maximum(x_sq + x_sq[j] - 2 * matvec(X, X[j]), 0), out=closest)
    C = X[centers].copy()
    labels, dist = _assign(X, C, x_sq)
    done = 0
    while done < n_iter:
        done += 1
        counts = np.bincount(labels, minlength=n_clusters)
        member = sparse.csr_matrix((np.ones(n, dtype=np.float32), (labels, np.arange(n))), shape=(n_clusters, n))
        new = np.asarray(member @ X, dtype=np.float32)
        nonempty = counts > 0
        new[nonempty] /= counts[nonempty, None]
        if not nonempty.all():
            far = np.argsort(-dist, kind="stable")[: int((~nonempty).sum())]
            new[~nonempty] = X[far]
        shift = float(np.linalg.norm(new - C)) / max(float(np.linalg.norm(C)), 1e-12)
        C = new
        new_labels, dist = _assign(X, C, x_sq)
        changed = not np.array_equal(new_labels, labels)
        labels = new_labels
        if not changed or shift < tol:
            break
    return KMeansResult(C, labels, dist, done)


@dataclass(frozen=True)
class ClusterBalanced:
    """k-means clusters, a budget per cluster, and a rule inside each cluster.

    allocation: ``proportional`` to cluster size, ``equal`` (small clusters give their surplus to the others) or
    ``sqrt`` (proportional to the square root of the size: between the two). within: ``random``, ``score`` (highest
    score first) or ``centroid`` (closest to the cluster centre first: the most typical records). Counts per cluster
    are exact (largest remainder); the order interleaves clusters so any prefix stays balanced.
    """

    n_clusters: int = 100
    allocation: str = "proportional"
    within: str = "random"
    seed: int = 0
    n_iter: int = 25

    name = "clusters"

    def __post_init__(self) -> None:
        if self.allocation not in CLUSTER_ALLOCATIONS:
            raise ConfigError(f"cluster allocation must be one of {CLUSTER_ALLOCATIONS}, got {self.allocation!r}")
        if self.within not in CLUSTER_WITHIN:
            raise ConfigError(f"within-cluster rule must be one of {CLUSTER_WITHIN}, got {self.within!r}")

    def run(self, X: np.ndarray, budget: int | str | Budget,
            scores: np.ndarray | None = None) -> tuple[np.ndarray, KMeansResult]:
        """(selected indices in priority order, the clustering they came from)."""
        X = as_embeddings(X)
        n = X.shape[0]
        k = record_count(budget, n)
        scores = as_scores(scores, n, self.within == "score", "within-cluster rule 'score'")
        km = kmeans(X, min(self.n_clusters, n), seed=self.seed, n_iter=self.n_iter)
        sizes = np.bincount(km.labels, minlength=len(km.centroids))
        quotas = allocate(sizes, k, self.allocation)
        if self.within == "random":
            keys = np.random.default_rng([self.seed, 1]).random(n)  # a stream of its own, apart from k-means'
        elif self.within == "score":
            keys = scores
        else:
            keys = -km.sq_dist.astype(np.float64)
        return stratified_order(km.labels, quotas, keys), km

    def select(self, X: np.ndarray, budget: int | str | Budget, scores: np.ndarray | None = None) -> np.ndarray:
        """Indices of the selected records, clusters interleaved in proportion to their quotas."""
        return self.run(X, budget, scores)[0]
