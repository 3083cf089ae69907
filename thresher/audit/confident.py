"""Confident learning (Northcutt, Jiang & Chuang 2021): which given labels are likely wrong, from out-of-sample
class probabilities.

A record *confidently* belongs to class j when its probability of j reaches class j's threshold: the mean
probability of j over the records labelled j (each class judged by how sure the model is of its own members).
Counting records by (given label, confident class) gives the confident joint; calibrated to the label counts it
estimates how many records of each given class truly belong to each other class. Issues are then the records to
prune: per given class i and other class j, the ``C[i, j]`` records labelled i whose ``p_j - p_i`` is largest
(``prune_by_noise_rate``, cleanlab's default), or the ``sum_j C[i, j]`` records of class i least sure of i
(``prune_by_class``), both, or the off-diagonal records of the joint themselves (``confident_learning``). A record
whose likeliest class is its given label is never an issue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")
DEFAULT_FILTER = "prune_by_noise_rate"


@dataclass(frozen=True)
class ConfidentJoint:
    """counts[i, j]: records given label i that confidently belong to j (calibrated: rows sum to the label
    counts, the whole to n); ``off_diagonal``: rows whose confident class differs from the given label;
    ``thresholds``: the per-class thresholds."""

    counts: np.ndarray
    off_diagonal: np.ndarray
    thresholds: np.ndarray

    def noise_matrix(self) -> np.ndarray:
        """P(given = i | true = j): each column of the joint normalised (columns sum to 1)."""
        totals = self.counts.sum(axis=0, keepdims=True).astype(np.float64)
        return self.counts / np.maximum(totals, 1)

    def noise_rate(self) -> float:
        """The estimated share of records whose given label is wrong: 1 - trace / total."""
        total = self.counts.sum()
        return float(1 - np.trace(self.counts) / total) if total else 0.0


def class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per class j, the mean probability of j over the records labelled j (1.0 for a class nobody has, so
    nothing confidently belongs to it)."""
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    sums = np.zeros(k)
    np.add.at(sums, labels, probs[np.arange(len(labels)), labels])
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_joint(labels: np.ndarray, probs: np.ndarray, calibrate: bool = True) -> ConfidentJoint:
    """The confident joint of given labels (rows) and confident classes (columns).

    A record at or above several thresholds counts for its likeliest class; a record above none is not counted.
    The diagonal is at least 1 (no class is estimated to be entirely wrong).
    """
    labels, probs = _check(labels, probs)
    k = probs.shape[1]
    thresholds = class_thresholds(labels, probs)
    above = probs >= thresholds - 1e-6
    n_above = above.sum(axis=1)
    confident_class = np.where(n_above > 1, probs.argmax(axis=1), above.argmax(axis=1))
    counted = n_above > 0
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (labels[counted], confident_class[counted]), 1)
    np.fill_diagonal(counts, np.maximum(counts.diagonal(), 1))
    off_diagonal = counted & (confident_class != labels)
    if calibrate:
        counts = _calibrate(counts, np.bincount(labels, minlength=k))
    return ConfidentJoint(counts, off_diagonal, thresholds)


def find_label_issues(labels: np.ndarray, probs: np.ndarray, filter_by: str = DEFAULT_FILTER,
                      min_per_class: int = 1) -> np.ndarray:
    """A boolean mask of the records whose given label is likely wrong (see the module docstring).

    ``min_per_class``: at least this many records of each given class are left unflagged.
    """
    if filter_by not in FILTERS:
        raise ConfigError(f"filter_by must be one of {', '.join(FILTERS)}, got {filter_by!r}")
    labels, probs = _check(labels, probs)
    n = len(labels)
    if filter_by == "predicted_neq_given":
        issues = np.ones(n, dtype=bool)
    elif filter_by == "confident_learning":
        issues = confident_joint(labels, probs, calibrate=False).off_diagonal.copy()
    else:
        prune = _keep_at_least(confident_joint(labels, probs).counts, min_per_class)
        if filter_by in ("prune_by_noise_rate", "both"):
            issues = _prune_by_noise_rate(labels, probs, prune, min_per_class)
        if filter_by in ("prune_by_class", "both"):
            by_class = _prune_by_class(labels, probs, prune, min_per_class)
            issues = by_class if filter_by == "prune_by_class" else issues & by_class
    issues &= ~_given_is_likeliest(labels, probs)
    return issues


def _prune_by_noise_rate(labels: np.ndarray, probs: np.ndarray, prune: np.ndarray, min_per_class: int
                         ) -> np.ndarray:
    """Per given class i and other class j: the prune[i, j] records of class i with the largest p_j - p_i."""
    issues = np.zeros(len(labels), dtype=bool)
    for i, rows in _class_rows(labels, probs.shape[1], min_per_class):
        for j in np.flatnonzero(prune[i]):
            if j != i:
                issues[rows[np.argsort(probs[rows, i] - probs[rows, j])[:prune[i, j]]]] = True
    return issues


def _prune_by_class(labels: np.ndarray, probs: np.ndarray, prune: np.ndarray, min_per_class: int) -> np.ndarray:
    """Per given class i: as many of its records as the joint says are not truly i, those with the lowest p_i."""
    issues = np.zeros(len(labels), dtype=bool)
    for i, rows in _class_rows(labels, probs.shape[1], min_per_class):
        count = len(rows) - int(prune[i, i])
        if count > 0:
            issues[rows[np.argsort(probs[rows, i])[:count]]] = True
    return issues


def _class_rows(labels: np.ndarray, k: int, min_per_class: int):
    """(class, its record rows) for the classes with more than ``min_per_class`` records (smaller ones are left
    alone)."""
    for i in range(k):
        rows = np.flatnonzero(labels == i)
        if len(rows) > min_per_class:
            yield i, rows


def _keep_at_least(counts: np.ndarray, n: int) -> np.ndarray:
    """The joint with each given class's diagonal raised to at least ``n`` (so that many of its records stay
    unflagged), the raise taken evenly from the class's non-zero off-diagonal cells and the cells then rounded
    down (cleanlab's rule, so the same probabilities flag the same records)."""
    counts = counts.astype(np.float64).copy()
    for i in range(len(counts)):
        raise_by = max(n - counts[i, i], 0.0)
        if raise_by:
            cells = max(np.count_nonzero(counts[i]) - 1, 1)
            counts[i] = np.maximum(counts[i] - raise_by / cells, 0.0)
            counts[i, i] = n
    return np.floor(counts).astype(np.int64)


def _calibrate(counts: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """Rows rescaled to the given-label counts (then the whole to n), rounded keeping each row's total.

    The arithmetic follows cleanlab's operation for operation (the total summed in column order), so that cells
    that tie in exact arithmetic (two cells of x.333 in one row are common) round the same way and the same
    probabilities flag the same records.
    """
    rows = np.maximum(counts.sum(axis=1), 1e-6).astype(np.float64)
    scaled = counts / rows[:, None] * label_counts[:, None]
    scaled = scaled / max(np.ascontiguousarray(scaled.T).sum(), 1e-6) * label_counts.sum()
    return np.vstack([_round_keeping_sum(row) for row in scaled])


def _round_keeping_sum(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to integers whose sum is their rounded sum: after plain rounding, the entries rounded
    furthest the wrong way move by one."""
    ints = np.round(values)
    missing = int(np.round(np.round(values.sum()) - ints.sum()))
    if missing:
        step = 1 if missing > 0 else -1
        ints[np.argsort(values - ints)[::-step][:abs(missing)]] += step
    return ints.astype(np.int64)


def _given_is_likeliest(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Records whose given label is the likeliest class, or within 1e-6 of it (as cleanlab judges a tie)."""
    return probs[np.arange(len(labels)), labels] + 1e-6 >= probs.max(axis=1)


def _check(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2 or len(probs) != len(labels):
        raise ConfigError(f"probabilities must be (records, classes >= 2), got {probs.shape} for {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ConfigError(f"labels must be class indices 0..{probs.shape[1] - 1}")
    return labels, probs
