"""Out-of-sample class probabilities by stratified k-fold cross-validation: every labelled record is scored by a
model that never saw it, which is what confident learning and label-quality scores need (a model's probabilities
on its own training records are overconfident, and hide exactly the mislabelled ones).

The model is thresher's softmax regression (:mod:`thresher.softmax`) on whatever features the caller built; folds
are dealt per class from a seeded shuffle, and each fold's fit is deterministic, so the same data, folds and seed
give the same probabilities bit for bit, whichever process fits which fold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from thresher.engine.local import LocalEngine
from thresher.errors import ConfigError
from thresher.softmax import softmax


@dataclass(frozen=True)
class CrossValConfig:
    """folds: k of k-fold (2..50). l2: ridge penalty per record. max_iter: L-BFGS iterations per fold."""

    folds: int = 5
    l2: float = 1e-4
    max_iter: int = 300

    def __post_init__(self) -> None:
        if not 2 <= self.folds <= 50:
            raise ConfigError(f"folds must be between 2 and 50, got {self.folds}")
        if self.l2 < 0 or self.max_iter < 1:
            raise ConfigError("cross-validation: l2 >= 0 and max_iter >= 1 are required")


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0..folds-1) of every record: each class's records in a seeded random order, dealt round-robin,
    continuing where the previous class stopped so that small classes do not all land in fold 0."""
    labels = np.asarray(labels)
    if len(labels) < folds:
        raise ConfigError(f"{folds}-fold cross-validation needs at least {folds} labelled records, got {len(labels)}")
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        fold[rows] = (dealt + np.arange(len(rows))) % folds
        dealt += len(rows)
    return fold


def fit_fold(x, labels: np.ndarray, n_classes: int, train: np.ndarray, config: CrossValConfig):
    """(weights, intercepts) of the softmax regression fitted on the ``train`` rows' labels."""
    from thresher.evaluate.proxies import fit_classifier

    model = fit_classifier(x[train], labels[train], n_classes, config.l2, config.max_iter)
    return model.coef, model.intercept


def cross_val_probs(x, labels: np.ndarray, n_classes: int, config: CrossValConfig | None = None, seed: int = 0,
                    unlabelled=None, map_fn: Callable[[Callable, Iterable[tuple]], Iterable] | None = None
                    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(out-of-sample probabilities of the labelled rows of ``x``, the fold models' mean probabilities for the rows
    of ``unlabelled`` (or None), the fold of each labelled row).

    ``map_fn(fn, items)`` yields ``fn(*item)`` in order (an engine's ``map``, to fit the folds in parallel);
    by default the folds are fitted here, one after another, with the same result.
    """
    config = config or CrossValConfig()
    labels = np.asarray(labels, dtype=np.int64)
    fold = stratified_folds(labels, config.folds, seed)
    probs = np.zeros((len(labels), n_classes))
    extra = None if unlabelled is None else np.zeros((unlabelled.shape[0], n_classes))
    items = [(x, labels, n_classes, fold != f, config) for f in range(config.folds)]
    fits = (map_fn or LocalEngine(1).map)(fit_fold, items)
    for f, (w, b) in enumerate(fits):
        test = fold == f
        probs[test] = softmax(x[test] @ w + b)
        if extra is not None and extra.shape[0]:
            extra += softmax(unlabelled @ w + b) / config.folds
    return probs, extra, fold
