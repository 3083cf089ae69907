"""Find LFs that (nearly) always vote together, so models can count a duplicated LF once instead of five times.

Every label model here assumes LFs are conditionally independent given the true class; a copied LF breaks that and,
unchecked, gets its evidence counted once per copy. We group LFs whose votes agree on at least ``threshold`` of the
records either of them covers and give each member 1/group-size of the evidence.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from thresher.label.matrix import LabelMatrix


def same_vote_counts(L: LabelMatrix) -> sp.csr_matrix:
    """(m, m) sparse: how many records each pair of LFs voted the same class on, via one sparse product.

    Rows of the helper matrix are (record, class) pairs, so the product counts co-votes of the same class only.
    """
    rows, cols, classes = L.coo()
    Y = sp.csr_matrix((np.ones(len(rows), dtype=np.float64), (rows * L.n_classes + classes, cols)),
                      shape=(L.n_records * L.n_classes, L.n_lfs))
    return (Y.T @ Y).tocsr()


def covote_counts(L: LabelMatrix, dense_limit: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """(m, m) dense counts of records both LFs voted on, and of records they voted the same class on.

    Small m·k: BLAS over dense one-hot row chunks (3x faster than sparse products at 1M records); otherwise sparse.
    """
    m, k = L.n_lfs, L.n_classes
    if m * k <= dense_limit:
        from thresher.label.models.metal import overlap_matrix

        O = overlap_matrix(L) * L.n_records  # noqa: E741 -- counts of co-votes per (LF, class) pair
        blocks = O.reshape(m, k, m, k)
        return np.rint(blocks.sum(axis=(1, 3))), np.rint(np.einsum("icjc->ij", blocks))
    X = sp.csr_matrix((np.ones(L.nnz), L.votes.indices, L.votes.indptr), shape=L.shape)
    return (X.T @ X).toarray(), same_vote_counts(L).toarray()


def correlated_groups(L: LabelMatrix, threshold: float = 0.95, min_votes: int = 20,
                      same: np.ndarray | None = None) -> np.ndarray:
    """Group label per LF: LFs agreeing on >= ``threshold`` of the union of their coverage share a group."""
    m = L.n_lfs
    if m < 2 or threshold > 1:
        return np.arange(m)
    same = sp.coo_matrix(same) if same is not None else same_vote_counts(L).tocoo()
    coverage = np.bincount(L.votes.indices, minlength=m).astype(np.float64)
    i, j, s = same.row, same.col, same.data
    keep = i < j
    i, j, s = i[keep], j[keep], s[keep]
    # union of coverage >= coverage of either: |A ∪ B| = |A| + |B| - |A ∩ B| >= |A| + |B| - s is an upper bound,
    # so s / (|A| + |B| - s) is a lower bound on agreement over the union -- exact when all co-votes agree.
    union = coverage[i] + coverage[j] - s
    close = (s >= min_votes) & (s >= threshold * union)
    graph = sp.coo_matrix((np.ones(int(close.sum())), (i[close], j[close])), shape=(m, m))
    _, labels = connected_components(graph, directed=False)
    return labels


def evidence_weights(groups: np.ndarray) -> np.ndarray:
    """1 / size of each LF's group: a group of copies contributes as much evidence as one LF."""
    sizes = np.bincount(groups)
    return 1.0 / sizes[groups]
