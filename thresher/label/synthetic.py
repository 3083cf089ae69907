"""Synthetic label matrices with known class priors and LF accuracies, and the Bayes oracle that knows them.

Each LF votes on a record with probability ``propensity`` (independently of the class); when it votes it is right
with probability ``accuracy`` and otherwise picks one of the other k-1 classes uniformly (the one-coin model). Exact
copies of one LF can be appended to test robustness to correlated LFs. The oracle posterior uses the true parameters
and counts a group of copies once, so it is the best any label model can do on these data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from thresher.errors import ConfigError
from thresher.label.matrix import LabelMatrix


@dataclass
class SyntheticLabels:
    """A generated task: votes, gold labels and the true parameters behind them."""

    L: LabelMatrix
    y: np.ndarray
    prior: np.ndarray
    accuracies: np.ndarray  # (m,) including the copies
    propensities: np.ndarray  # (m,)
    source_lf: np.ndarray  # (m,) which original LF each column is (copies point to their original)

    def oracle_proba(self, L: LabelMatrix | None = None) -> np.ndarray:
        """Bayes posterior P(y | votes) under the true parameters, counting each original LF once."""
        L = self.L if L is None else L
        k = L.n_classes
        original = self.source_lf == np.arange(L.n_lfs)
        a = np.clip(self.accuracies, 1e-9, 1 - 1e-9)
        weight = np.where(original, np.log(a * (k - 1) / (1 - a)), 0.0)
        v = L.votes
        scores = sp.csr_matrix((weight[v.indices], v.data.astype(np.int64) - 1, v.indptr),
                               shape=(L.n_records, k)).toarray()
        scores += np.log(self.prior)[None, :]
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        return scores / scores.sum(axis=1, keepdims=True)

    def oracle_predict(self) -> np.ndarray:
        """Oracle hard labels; rows without votes get the most likely class a priori."""
        return self.oracle_proba().argmax(axis=1)


def _per_lf(value, m: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (m,)).copy()
    if ((arr < 0) | (arr > 1)).any():
        raise ConfigError(f"{name} must be in [0, 1]")
    return arr


def make_synthetic(n: int, m: int, k: int, prior=None, accuracy=0.7, propensity=0.5, n_copies: int = 0,
                   copied_lf: int = 0, seed: int = 0) -> SyntheticLabels:
    """Generate n records × m LFs (+ ``n_copies`` exact copies of LF ``copied_lf``) over k classes.

    ``prior`` defaults to uniform; ``accuracy`` and ``propensity`` are scalars or per-LF arrays. Vectorised: the
    votes are drawn as whole (n, m) arrays and packed straight into CSR.
    """
    if n < 1 or m < 1 or k < 2:
        raise ConfigError(f"need n >= 1, m >= 1, k >= 2; got n={n}, m={m}, k={k}")
    rng = np.random.default_rng(seed)
    prior = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
    if prior.shape != (k,) or (prior < 0).any():
        raise ConfigError(f"prior must be {k} non-negative numbers")
    prior = prior / prior.sum()
    acc = _per_lf(accuracy, m, "accuracy")
    prop = _per_lf(propensity, m, "propensity")
    y = np.searchsorted(np.cumsum(prior), rng.random(n), side="right").clip(max=k - 1)
    votes = rng.random((n, m), dtype=np.float32) < prop[None, :].astype(np.float32)
    rows, cols = np.nonzero(votes)
    del votes
    right = rng.random(len(rows), dtype=np.float32) < acc[cols].astype(np.float32)
    truth = y[rows]
    wrong = (truth + rng.integers(1, k, size=len(rows))) % k
    value = np.where(right, truth, wrong)
    if n_copies:
        if not 0 <= copied_lf < m:
            raise ConfigError(f"copied_lf must be in 0..{m - 1}")
        pick = cols == copied_lf
        r0, v0 = rows[pick], value[pick]
        rows = np.concatenate([rows] + [r0] * n_copies)
        cols = np.concatenate([cols] + [np.full(len(r0), m + c) for c in range(n_copies)])
        value = np.concatenate([value] + [v0] * n_copies)
        order = np.lexsort((cols, rows))
        rows, cols, value = rows[order], cols[order], value[order]
    total = m + n_copies
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    csr = sp.csr_matrix(((value + 1).astype(np.int32), cols.astype(np.int32), indptr), shape=(n, total))
    source = np.concatenate([np.arange(m), np.full(n_copies, copied_lf)]).astype(np.int64)
    return SyntheticLabels(L=LabelMatrix(csr, k), y=y.astype(np.int64), prior=prior, accuracies=acc[source],
                           propensities=prop[source], source_lf=source)


@dataclass
class UnipolarLabels:
    """A generated task of unipolar LFs (each only ever votes its own class), like real keyword/regex LF sets."""

    L: LabelMatrix
    y: np.ndarray
    prior: np.ndarray
    lf_class: np.ndarray  # (m,) the one class each LF votes
    alpha: np.ndarray  # (m,) P(LF fires | y = its class)
    beta: np.ndarray  # (m,) P(LF fires | y != its class)

    def oracle_proba(self) -> np.ndarray:
        """Bayes posterior P(y | votes) under the true firing rates, silences included."""
        L = self.L
        fired = L.to_dense() >= 0
        scores = np.tile(np.log(self.prior), (L.n_records, 1))
        for j, c in enumerate(self.lf_class):
            on = np.where(fired[:, j], np.log(self.alpha[j]), np.log1p(-self.alpha[j]))
            off = np.where(fired[:, j], np.log(self.beta[j]), np.log1p(-self.beta[j]))
            scores += off[:, None]
            scores[:, c] += on - off
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        return scores / scores.sum(axis=1, keepdims=True)

    def oracle_predict(self) -> np.ndarray:
        return self.oracle_proba().argmax(axis=1)


def make_unipolar(n: int, k: int, lf_class, alpha, beta, prior=None, seed: int = 0) -> UnipolarLabels:
    """n records, one LF per entry of ``lf_class``: LF j fires (votes lf_class[j]) with probability alpha[j] on
    records of that class and beta[j] on the others, and abstains otherwise."""
    rng = np.random.default_rng(seed)
    lf_class = np.asarray(lf_class, dtype=np.int64)
    m = len(lf_class)
    if m < 1 or k < 2 or lf_class.min() < 0 or lf_class.max() >= k:
        raise ConfigError(f"lf_class must hold class indices in 0..{k - 1}")
    a, b = _per_lf(alpha, m, "alpha"), _per_lf(beta, m, "beta")
    prior = np.full(k, 1.0 / k) if prior is None else np.asarray(prior, dtype=np.float64)
    prior = prior / prior.sum()
    y = np.searchsorted(np.cumsum(prior), rng.random(n), side="right").clip(max=k - 1)
    rate = np.where(y[:, None] == lf_class[None, :], a[None, :], b[None, :])
    fired = rng.random((n, m)) < rate
    dense = np.where(fired, lf_class[None, :], -1)
    return UnipolarLabels(L=LabelMatrix.from_dense(dense, k), y=y.astype(np.int64), prior=prior, lf_class=lf_class,
                          alpha=a, beta=b)


@dataclass
class BurstyLabels:
    """Votes from :func:`make_bursty` (LFs of class 0 fire together in latent bursts) and the oracle that knows it."""

    L: LabelMatrix
    y: np.ndarray
    prior: np.ndarray
    n_bursty: int
    burst_rate: tuple[float, float]  # P(burst | class 0), P(burst | class 1)
    fire_in_burst: float
    fire_outside: float
    other_rate: tuple[float, float]  # P(class-1 LF fires | class 1), P(... | class 0)

    def oracle_proba(self) -> np.ndarray:
        """Bayes posterior P(y | votes) under the true generative model, bursts summed out."""
        fired = self.L.to_dense() >= 0
        burst, other = fired[:, : self.n_bursty], fired[:, self.n_bursty:]

        def loglik(rate: float, f: np.ndarray) -> np.ndarray:
            return np.where(f, np.log(rate), np.log1p(-rate)).sum(axis=1)

        in_burst, outside = loglik(self.fire_in_burst, burst), loglik(self.fire_outside, burst)
        scores = np.empty((self.L.n_records, 2))
        for c, (p_burst, p_other) in enumerate(((self.burst_rate[0], self.other_rate[1]),
                                                (self.burst_rate[1], self.other_rate[0]))):
            scores[:, c] = (np.log(self.prior[c]) + loglik(p_other, other)
                            + np.logaddexp(np.log(p_burst) + in_burst, np.log1p(-p_burst) + outside))
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        return scores / scores.sum(axis=1, keepdims=True)

    def oracle_predict(self) -> np.ndarray:
        return self.oracle_proba().argmax(axis=1)


def make_bursty(n: int, prior=(0.7, 0.3), n_bursty: int = 4, n_other: int = 3, burst_rate=(0.5, 0.3),
                fire_in_burst: float = 0.8, fire_outside: float = 0.05, other_rate=(0.5, 0.05),
                seed: int = 0) -> BurstyLabels:
    """Two classes whose LFs are NOT independent given the class: ``n_bursty`` LFs for class 0 fire together.

    A latent "burst" (present on ``burst_rate[0]`` of class-0 records and ``burst_rate[1]`` of class-1 records) makes
    each class-0 LF fire with probability ``fire_in_burst``, against ``fire_outside`` elsewhere -- the way keyword LFs
    for one topic all fire on the same off-topic stories. ``n_other`` class-1 LFs fire independently with
    ``other_rate`` = (P(fire | class 1), P(fire | class 0)).
    """
    rng = np.random.default_rng(seed)
    p = np.asarray(prior, dtype=np.float64)
    if p.shape != (2,) or (p < 0).any() or p.sum() <= 0:
        raise ConfigError("make_bursty takes a two-class prior")
    p = p / p.sum()
    y = (rng.random(n) < p[1]).astype(np.int64)
    burst = rng.random(n) < np.where(y == 0, burst_rate[0], burst_rate[1])
    bursty = rng.random((n, n_bursty)) < np.where(burst, fire_in_burst, fire_outside)[:, None]
    other = rng.random((n, n_other)) < np.where(y == 1, other_rate[0], other_rate[1])[:, None]
    dense = np.hstack([np.where(bursty, 0, -1), np.where(other, 1, -1)])
    return BurstyLabels(L=LabelMatrix.from_dense(dense, 2), y=y, prior=p, n_bursty=n_bursty,
                        burst_rate=tuple(burst_rate), fire_in_burst=fire_in_burst, fire_outside=fire_outside,
                        other_rate=tuple(other_rate))
