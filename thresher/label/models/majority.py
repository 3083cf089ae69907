"""Majority vote and weighted majority vote: the baselines every other label model has to beat.

Both are one sparse product over the votes (O(nnz)); neither uses the class balance except to break ties and to fill
rows where every LF abstained.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from thresher.errors import ConfigError
from thresher.label.matrix import LabelMatrix
from thresher.label.models.base import LabelModel, softmax_rows


def vote_scores(L: LabelMatrix, weights: np.ndarray | None = None) -> np.ndarray:
    """(n, k) dense sums of (weighted) votes per class: the core of every vote-based model, O(nnz + n·k)."""
    v = L.votes
    data = np.ones(v.nnz) if weights is None else np.asarray(weights, dtype=np.float64)[v.indices]
    counts = sp.csr_matrix((data, v.data.astype(np.int64) - 1, v.indptr), shape=(L.n_records, L.n_classes))
    return counts.toarray()  # duplicates (several LFs voting the same class) are summed


def agreement_accuracies(L: LabelMatrix, proba: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """Per LF, the mean probability (under ``proba``) of the class it voted: its accuracy when it votes.

    Beta smoothing pulls LFs with few votes towards chance (1/k) rather than letting 1 or 2 votes decide.
    """
    rows, cols, classes = L.coo()
    hit = np.bincount(cols, weights=proba[rows, classes], minlength=L.n_lfs)
    n = np.bincount(cols, minlength=L.n_lfs)
    return (hit + smoothing / L.n_classes) / (n + smoothing)


class MajorityVote(LabelModel):
    """Each LF gets one vote; probabilities are vote fractions. Class balance, if estimated, is the vote share."""

    name = "majority_vote"

    def __init__(self):
        pass

    def _fit(self, L, prior, rng, dev=None):
        counts = vote_scores(L)
        self.lf_accuracies_ = agreement_accuracies(L, self._normalise(counts))
        if prior is None:
            share = counts.sum(axis=0) + 1.0
            return share / share.sum()
        return None

    @staticmethod
    def _normalise(counts: np.ndarray) -> np.ndarray:
        total = counts.sum(axis=1, keepdims=True)
        return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)

    def _proba(self, L):
        return self._normalise(vote_scores(L))


class WeightedMajorityVote(LabelModel):
    """Each LF's vote is worth log(a·(k-1)/(1-a)), the log-odds of its accuracy a against a uniformly wrong vote.

    Accuracies come from the gold labels of ``dev`` when given (smoothed towards the unsupervised estimate), otherwise
    from the one-coin Dawid-Skene EM. Unlike Dawid-Skene the class balance is not multiplied in: the prediction is a
    pure weighted vote (the prior only breaks ties and fills all-abstain rows).
    """

    name = "weighted_majority_vote"

    def __init__(self, max_weight: float = 5.0, dev_strength: float = 10.0):
        self.max_weight = max_weight
        self.dev_strength = dev_strength

    def _validate_params(self):
        if not self.max_weight > 0:
            raise ConfigError(f"max_weight must be > 0, got {self.max_weight}")
        if not self.dev_strength >= 0:
            raise ConfigError(f"dev_strength must be >= 0, got {self.dev_strength}")

    def _fit(self, L, prior, rng, dev=None):
        from thresher.label.models.dawid_skene import DawidSkene

        em = DawidSkene(confusion="one_coin")
        estimated = em._fit(L, prior, rng)
        acc = em.lf_accuracies_
        if dev is not None:
            L_dev, y_dev = dev
            rows, cols, classes = L_dev.coo()
            hit = np.bincount(cols, weights=(classes == y_dev[rows]).astype(np.float64), minlength=L.n_lfs)
            n = np.bincount(cols, minlength=L.n_lfs)
            acc = (hit + self.dev_strength * acc) / (n + self.dev_strength)
        self.lf_accuracies_ = acc
        k = L.n_classes
        a = np.clip(acc, 1e-6, 1 - 1e-6)
        # copies of one LF share one vote (see correlated.py), as in the EM that estimated the accuracies
        self.weights_ = np.clip(np.log(a * (k - 1) / (1 - a)), -self.max_weight, self.max_weight)
        self.weights_ *= em.evidence_weights_
        return estimated

    def _proba(self, L):
        return softmax_rows(vote_scores(L, self.weights_))[0]
