"""Per-record label quality from out-of-sample class probabilities, and how far a record sits from its
neighbours (an outlier score); low quality = the given label is doubtful.

``self_confidence``: the probability of the given label (cleanlab's default ranking). ``normalized_margin``:
(p_given - the largest other p + 1) / 2. ``confidence_weighted_entropy``: log(1 + H/p_given) / (H/p_given), H the
entropy normalised to [0, 1]: low when the model is sure of another class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from thresher.engine.local import LocalEngine
from thresher.errors import ConfigError

QUALITY_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
DEFAULT_QUALITY = "self_confidence"
_FLOOR = 1e-10


def label_quality(labels: np.ndarray, probs: np.ndarray, method: str = DEFAULT_QUALITY) -> np.ndarray:
    """A score in [0, 1] per record, lower when its given label looks wrong."""
    if method not in QUALITY_METHODS:
        raise ConfigError(f"label quality method must be one of {', '.join(QUALITY_METHODS)}, got {method!r}")
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    rows = np.arange(len(labels))
    given = probs[rows, labels]
    if method == "self_confidence":
        return given
    if method == "normalized_margin":
        others = probs.copy()
        others[rows, labels] = -np.inf
        return (given - others.max(axis=1) + 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(probs > 0, probs * np.log(probs), 0.0).sum(axis=1) / np.log(probs.shape[1])
    ratio = entropy / np.maximum(given, _FLOOR)
    return np.log(ratio + 1) / np.maximum(ratio, _FLOOR)


def knn_outlier_scores(x, k: int = 10, block: int = 1024,
                       map_fn: Callable[[Callable, Iterable[tuple]], Iterable] | None = None) -> np.ndarray:
    """Mean cosine distance from each row to its ``k`` nearest other rows (rows of dense or sparse features,
    scaled to unit length here): high for records unlike anything else in the data. Computed in row blocks, so
    memory stays at block × n; ``map_fn`` (an engine's map) spreads the blocks over workers, same result."""
    x = _unit_rows(x)
    n = x.shape[0]
    if n < 2:
        return np.zeros(n)
    k = min(k, n - 1)
    items = [(x, start, min(start + block, n), k) for start in range(0, n, block)]
    return np.concatenate(list((map_fn or LocalEngine(1).map)(knn_block, items)))


def knn_block(x, start: int, stop: int, k: int) -> np.ndarray:
    """Outlier scores of rows ``start:stop`` of unit-length ``x`` against every row (one worker task)."""
    xt = x.T.tocsr() if hasattr(x, "tocsr") else x.T
    sims = x[start:stop] @ xt
    sims = np.asarray(sims.todense() if hasattr(sims, "todense") else sims, dtype=np.float64)
    sims[np.arange(len(sims)), np.arange(start, stop)] = -np.inf  # not its own neighbour
    top = -np.partition(-sims, k - 1, axis=1)[:, :k]
    return np.clip(1 - top.mean(axis=1), 0.0, 2.0)


def _unit_rows(x):
    """Rows scaled to unit L2 norm (zero rows stay zero), dense or scipy-sparse."""
    if hasattr(x, "tocsr"):
        from scipy import sparse

        x = x.tocsr().astype(np.float64)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        return sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ x
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
