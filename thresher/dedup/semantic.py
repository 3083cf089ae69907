"""Semantic deduplication (SemDeDup, Abbas et al. 2023): near-identical *meaning*, found on embeddings.

Records are clustered with seeded k-means; within each cluster every pair whose cosine similarity reaches
``threshold`` is a duplicate pair (SemDeDup's ``1 - eps``), pairs are joined into connected components, and one
record per component is kept by the usual policy. Comparing only within k-means clusters keeps the cost near
``n * cluster size`` instead of ``n^2``; pairs split across clusters are missed, as in the paper.

Every step runs on the engine over row blocks (an embed run's shards): k-means passes
(:mod:`thresher.selectors.kmeans`), a shuffle of the vectors by cluster, the pairs of each partition of clusters,
and components in rounds (:mod:`thresher.dedup.components`); the main process holds a label per record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.dedup.clusters import KEEP_POLICIES, DedupResult, named_by_smallest, result_of
from thresher.dedup.components import component_labels
from thresher.dedup.spill import read_array, spill_area, write_arrays
from thresher.errors import ConfigError
from thresher.selectors.kmeans import RowBlock

#: Similarity block size: rows x cluster size float32 per block.
_BLOCK = 2048
#: Rows per reduce partition of the shuffle by cluster (at least one partition per worker, at most one per cluster).
ROWS_PER_PARTITION = 1 << 18


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


def semantic_duplicates(embeddings: np.ndarray | Sequence[RowBlock], config: SemanticConfig | None = None,
                        ids: pa.Array | None = None, lengths: np.ndarray | None = None,
                        scores: np.ndarray | None = None, engine=None, order: np.ndarray | None = None,
                        spill_dir: str | os.PathLike | None = None) -> DedupResult:
    """Duplicate decisions for the records (reading order) whose embeddings are ``embeddings``: a matrix, or row
    blocks that engine tasks load themselves (an embed run's shards, unit-normalised), as a :class:`DedupResult`.

    ``order``: when the blocks hold the records in another order, ``order[k]`` is the record of block row ``k``.
    On ``engine`` (default: this process): k-means passes over the blocks; a shuffle of the vectors by cluster
    through spill files under ``spill_dir``; one task per partition of the clusters finds its pairs; connected
    components in rounds (:mod:`thresher.dedup.components`). Here: the records that have a duplicate."""
    from thresher.engine import LocalEngine
    from thresher.selectors.diversity import normalize_rows
    from thresher.selectors.kmeans import blocks_of, kmeans

    config = config or SemanticConfig()
    blocks = blocks_of(normalize_rows(embeddings)) if isinstance(embeddings, np.ndarray) else list(embeddings)
    n = sum(b.n for b in blocks)
    runner = engine or LocalEngine(1)
    k = min(n, config.n_clusters or max(1, round(n / 1000)))
    clusters = kmeans(blocks, k, seed=config.seed, engine=runner).labels
    starts = np.concatenate([[0], np.cumsum([b.n for b in blocks])]).astype(np.int64)
    parts = max(1, min(k, max(runner.workers, -(-n // ROWS_PER_PARTITION))))
    with spill_area(spill_dir) as spill:
        written = sum(runner.map(spill_by_cluster, ((b, clusters[starts[i]:starts[i + 1]], int(starts[i]), i,
                                                     str(spill), parts) for i, b in enumerate(blocks))))
        pairs = sum(runner.map(cluster_pairs, ((str(spill), p, len(blocks), parts, config.threshold)
                                               for p in range(parts))))
        (members, labels), rounds = component_labels(spill, parts, parts, runner)
    if order is not None:  # block rows -> records, each component then named by its smallest record
        members, labels = order[members], order[labels]
        by_record = np.argsort(members)
        members, labels = members[by_record], named_by_smallest(members[by_record], labels[by_record])
    result = result_of(n, members, labels, "semantic", config.keep, lengths, scores, ids,
                          {"kmeans_clusters": int(k), "duplicate_pairs": int(pairs), "threshold": config.threshold})
    result.shuffle = {"partitions": parts, "vector_bytes": written,
                      "bytes_spilled": written + rounds["component_bytes"], **rounds}
    return result


def _vectors_path(spill: Path, block: int) -> Path:
    return spill / f"vectors-{block:08d}.bin"


def spill_by_cluster(block: RowBlock, clusters: np.ndarray, start: int, block_no: int, spill: str,
                     parts: int) -> int:
    """Engine task: one block's unit vectors, with their row numbers and clusters, written by partition of the
    cluster; return bytes written. Layout: n, dims, partition offsets, rows, clusters, vectors (each by partition)."""
    from thresher.dedup.components import partition_of

    X = np.ascontiguousarray(block.rows(), dtype=np.float32)
    part = partition_of(clusters, parts)
    order = np.argsort(part, kind="stable")
    index = np.searchsorted(part[order], np.arange(parts + 1)).astype(np.int64)
    rows = np.arange(start, start + len(X), dtype=np.int64)
    return write_arrays(_vectors_path(Path(spill), block_no), np.array([len(X), X.shape[1]], np.int64), index,
                        rows[order], clusters[order].astype(np.int64), X[order])


def cluster_pairs(spill: str, part: int, n_blocks: int, parts: int, threshold: float) -> int:
    """Engine task: the pairs at or above ``threshold`` cosine within every cluster of partition ``part``, reduced
    to a spanning forest and written for the components rounds; return the number of pairs."""
    from thresher.dedup.components import write_undirected
    from thresher.dedup.shuffle import spanning_forest

    spill_dir = Path(spill)
    rows, clusters, vectors = [], [], []
    for b in range(n_blocks):
        path = _vectors_path(spill_dir, b)
        n, dims = read_array(path, np.int64, 2, 0)
        lo, hi = read_array(path, np.int64, 2, 16 + 8 * part)
        base = 16 + 8 * (parts + 1)
        rows.append(read_array(path, np.int64, int(hi - lo), base + 8 * int(lo)))
        clusters.append(read_array(path, np.int64, int(hi - lo), base + 8 * int(n) + 8 * int(lo)))
        vectors.append(read_array(path, np.float32, int((hi - lo) * dims), base + 16 * int(n) + 4 * int(lo * dims))
                       .reshape(-1, int(dims)))
    row, cluster = np.concatenate(rows), np.concatenate(clusters)
    X = np.concatenate(vectors) if vectors else np.zeros((0, 1), np.float32)
    a_parts, b_parts = [], []
    by_cluster = np.lexsort((row, cluster))
    bounds = np.flatnonzero(np.diff(cluster[by_cluster])) + 1
    for members in np.split(by_cluster, bounds) if len(by_cluster) else []:
        for start in range(0, len(members), _BLOCK):
            mine = members[start: start + _BLOCK]
            i, j = np.nonzero(X[mine] @ X[members].T >= threshold)
            upper = row[members[j]] > row[mine[i]]  # each pair once, no self-pairs
            a_parts.append(row[mine[i[upper]]])
            b_parts.append(row[members[j[upper]]])
    a = np.concatenate(a_parts) if a_parts else np.zeros(0, np.int64)
    b = np.concatenate(b_parts) if b_parts else np.zeros(0, np.int64)
    write_undirected(spill_dir, 0, part, *spanning_forest(a, b), parts)
    return len(a)
