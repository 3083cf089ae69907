"""Cluster-balanced sampling (in the spirit of Diversify-and-Conquer): k-means on embeddings
(:func:`~thresher.selectors.kmeans.kmeans`, a map over row blocks on the engine), then the budget is spread over the
clusters and each cluster is filled by a configurable rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors.budget import Budget
from thresher.selectors.diversity import as_embeddings, as_scores, record_count
from thresher.selectors.kmeans import KMeansResult, RowBlock, blocks_of, kmeans
from thresher.selectors.quotas import allocate, stratified_order

CLUSTER_ALLOCATIONS = ("proportional", "equal", "sqrt")
CLUSTER_WITHIN = ("random", "score", "centroid")


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

    def run(self, X: np.ndarray | Sequence[RowBlock], budget: int | str | Budget,
            scores: np.ndarray | None = None, engine=None) -> tuple[np.ndarray, KMeansResult]:
        """(selected indices in priority order, the clustering they came from). ``X``: the embeddings, or row blocks
        that tasks load themselves (an embedding store's shards); k-means passes run on ``engine``."""
        blocks = blocks_of(as_embeddings(X)) if isinstance(X, np.ndarray) else list(X)
        n = sum(b.n for b in blocks)
        k = record_count(budget, n)
        scores = as_scores(scores, n, self.within == "score", "within-cluster rule 'score'")
        km = kmeans(blocks, min(self.n_clusters, n), seed=self.seed, n_iter=self.n_iter, engine=engine)
        sizes = np.bincount(km.labels, minlength=len(km.centroids))
        quotas = allocate(sizes, k, self.allocation)
        if self.within == "random":
            keys = np.random.default_rng([self.seed, 1]).random(n)  # a stream of its own, apart from k-means'
        elif self.within == "score":
            keys = scores
        else:
            keys = -km.sq_dist.astype(np.float64)
        return stratified_order(km.labels, quotas, keys), km

    def select(self, X: np.ndarray | Sequence[RowBlock], budget: int | str | Budget,
               scores: np.ndarray | None = None, engine=None) -> np.ndarray:
        """Indices of the selected records, clusters interleaved in proportion to their quotas."""
        return self.run(X, budget, scores, engine)[0]
