"""Semantic deduplication (SemDeDup, Abbas et al. 2023): near-identical *meaning*, found on embeddings.

Records are clustered with seeded k-means; within each cluster every pair whose cosine similarity reaches
``threshold`` is a duplicate pair (SemDeDup's ``1 - eps``), pairs are joined into clusters with union-find, and one
record per cluster is kept by the usual policy. Comparing only within k-means clusters keeps the cost near
``n * cluster size`` instead of ``n^2``; pairs split across clusters are missed, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from thresher.dedup.clusters import KEEP_POLICIES, DedupResult, build_result, connected_components
from thresher.errors import ConfigError

#: Similarity block size: rows x cluster size float32 per block.
_BLOCK = 2048


@dataclass(frozen=True)
class SemanticConfig:
    """threshold: cosine similarity at or above which two records are duplicates (SemDeDup's 1 - eps).
    n_clusters: k-means clusters (default: about one per 1,000 records, at least 1). keep: first, longest, highest.
    """

    threshold: float = 0.95
    n_clusters: int | None = None
    keep: str = "first"
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.n_clusters is not None and self.n_clusters < 1:
            raise ConfigError(f"n_clusters must be >= 1, got {self.n_clusters}")
        if self.keep not in KEEP_POLICIES:
            raise ConfigError(f"keep must be one of {KEEP_POLICIES}, got {self.keep!r}")


def semantic_duplicates(embeddings: np.ndarray, config: SemanticConfig | None = None, ids: pa.Array | None = None,
                        lengths: np.ndarray | None = None, scores: np.ndarray | None = None) -> DedupResult:
    """Duplicate decisions for the rows of ``embeddings`` (reading order), as a :class:`DedupResult`."""
    from thresher.selectors.diversity import normalize_rows
    from thresher.selectors.kmeans import kmeans

    config = config or SemanticConfig()
    X = normalize_rows(embeddings)
    n = len(X)
    k = min(n, config.n_clusters or max(1, round(n / 1000)))
    labels = kmeans(X, k, seed=config.seed).labels
    a_parts, b_parts = [], []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        for start in range(0, len(members), _BLOCK):
            rows = members[start: start + _BLOCK]
            sim = X[rows] @ X[members].T
            i, j = np.nonzero(sim >= config.threshold)
            upper = members[j] > rows[i]  # each pair once, no self-pairs
            a_parts.append(rows[i[upper]])
            b_parts.append(members[j[upper]])
    a = np.concatenate(a_parts) if a_parts else np.zeros(0, np.int64)
    b = np.concatenate(b_parts) if b_parts else np.zeros(0, np.int64)
    components = connected_components(n, a, b)
    return build_result(components, "semantic", config.keep, lengths, scores, ids,
                        {"kmeans_clusters": int(k), "duplicate_pairs": int(len(a)),
                         "threshold": config.threshold})
