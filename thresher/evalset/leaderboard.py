"""A real small leaderboard: many genuinely different text classifiers trained on one labelled set, scored on every
test item. No items x systems table ships with thresher's dependencies, so the demo, the tests and the benchmark
make their own from real labelled text.

Systems differ in what matters on a leaderboard: how much training data they saw (5% to all of it), their features
(unigrams or uni+bigrams, hashed into 128 to 16,384 buckets), their regularisation (l2 from 1e-5 to 0.03), and their
kind (softmax regression; nearest class centroid; the majority class). Each is recorded on each test item as
correctness (0/1) and as the probability it gives the true class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy import sparse

from thresher.errors import ConfigError
from thresher.evalset.table import ScoreTable

FEATURE_BUCKETS = 1 << 14


@dataclass(frozen=True)
class SystemSpec:
    """One system of the leaderboard."""

    name: str
    kind: str  # softmax, centroid, majority
    fraction: float  # of the training records it sees
    ngrams: int
    buckets: int
    l2: float


def system_grid(n_systems: int, seed: int = 0) -> list[SystemSpec]:
    """``n_systems`` distinct systems drawn (seeded) from the grid, always with the two weak baselines."""
    grid = [SystemSpec(f"softmax-n{g}-b{b}-f{f}-l2{l2:g}", "softmax", f, g, b, l2)
            for g in (1, 2) for b in (128, 1024, FEATURE_BUCKETS) for f in (0.05, 0.15, 0.4, 1.0)
            for l2 in (1e-5, 1e-4, 1e-3, 3e-2)]
    grid += [SystemSpec(f"centroid-n{g}-b{b}-f{f}", "centroid", f, g, b, 0.0)
             for g in (1, 2) for b in (1024, FEATURE_BUCKETS) for f in (0.15, 1.0)]
    if n_systems < 3 or n_systems > len(grid) + 1:
        raise ConfigError(f"n_systems must be from 3 to {len(grid) + 1}, got {n_systems}")
    rng = np.random.default_rng([seed, 0x1EAD])
    picked = [grid[i] for i in np.sort(rng.choice(len(grid), size=n_systems - 1, replace=False))]
    return [SystemSpec("majority", "majority", 1.0, 1, 1, 0.0), *picked]


def _features(text: pa.Array, ngrams: int) -> sparse.csr_matrix:
    """log(1 + counts) of hashed n-grams, rows scaled to unit length."""
    from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer

    config = HashedNgramConfig(num_buckets=FEATURE_BUCKETS, ngrams=ngrams)
    featurizer = HashedNgramFeaturizer(config)
    x = sparse.vstack([featurizer.transform(text.slice(a, 4096)).to_csr(FEATURE_BUCKETS)
                       for a in range(0, len(text), 4096)], format="csr").astype(np.float64)
    x.data = np.log1p(x.data)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ x


def _fold(x: sparse.csr_matrix, buckets: int) -> sparse.csr_matrix:
    """The features hashed again into ``buckets`` (bucket index modulo ``buckets``)."""
    if buckets >= x.shape[1]:
        return x
    coo = x.tocoo()
    return sparse.csr_matrix((coo.data, (coo.row, coo.col % buckets)), shape=(x.shape[0], buckets))


def build_leaderboard(train_text: pa.Array, train_labels: np.ndarray, test_text: pa.Array, test_labels: np.ndarray,
                      test_ids: list[str], n_systems: int = 40, seed: int = 0) -> tuple[ScoreTable, ScoreTable]:
    """(correctness, probability of the true class) of ``n_systems`` systems on every test item."""
    from thresher.softmax import fit_softmax

    classes = sorted(set(map(str, train_labels)) | set(map(str, test_labels)))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[str(v)] for v in train_labels])
    y_test = np.array([index[str(v)] for v in test_labels])
    k = len(classes)
    feats = {g: (_features(train_text, g), _features(test_text, g)) for g in (1, 2)}
    correct, prob = [], []
    specs = system_grid(n_systems, seed)
    for spec in specs:
        rng = np.random.default_rng([seed, 0x5E7, len(correct)])
        rows = np.sort(rng.choice(len(y), size=max(k, int(round(spec.fraction * len(y)))), replace=False))
        if spec.kind == "majority":
            p = np.tile(np.bincount(y[rows], minlength=k) / len(rows), (len(y_test), 1))
        else:
            x, xt = (_fold(m, spec.buckets) for m in feats[spec.ngrams])
            x = x[rows]
            if spec.kind == "centroid":
                centroids = np.vstack([np.asarray(x[y[rows] == c].mean(axis=0)).ravel() if (y[rows] == c).any()
                                       else np.zeros(x.shape[1]) for c in range(k)])
                z = 20.0 * (xt @ centroids.T)
            else:
                onehot = np.zeros((len(rows), k))
                onehot[np.arange(len(rows)), y[rows]] = 1.0
                w, b = fit_softmax(x, onehot, spec.l2, 200)
                z = xt @ w + b
            z = np.asarray(z) - np.asarray(z).max(axis=1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        correct.append((p.argmax(axis=1) == y_test).astype(np.float64))
        prob.append(p[np.arange(len(y_test)), y_test])
    names = tuple(s.name for s in specs)
    items = tuple(map(str, test_ids))
    return ScoreTable(items, names, np.column_stack(correct)), ScoreTable(items, names, np.column_stack(prob))
