"""FlyingSquid-style triplet method: closed-form LF accuracies from agreement rates of LF triplets, no iterations.

Under the one-coin model (an LF voting is right with probability a, else uniformly wrong) two conditionally
independent LFs agree, when both vote, with probability 1/k + (k−1)/k · s_i s_j where s = (k·a − 1)/(k − 1). So
M_ij = (k·agree_ij − 1)/(k − 1) = s_i s_j and, for any third LF l, s_i² = M_ij · M_il / M_jl -- the binary
FlyingSquid identity E[λiλj] = E[λiY]E[λjY] generalised to k classes. Each LF's s_i is the median over up to
``n_triplets`` random triplets with enough co-votes, which shrugs off the odd correlated pair. Predictions are the
resulting one-coin weighted vote times the class balance.
"""

from __future__ import annotations

import warnings

import numpy as np

from thresher.errors import ConfigError
from thresher.label.models.base import LabelModel, is_count, softmax_rows
from thresher.label.models.correlated import correlated_groups, covote_counts, evidence_weights
from thresher.label.models.majority import vote_scores


class TripletModel(LabelModel):
    """Closed-form one-coin accuracies from triplet agreement (median over triplets); see the module docstring."""

    name = "triplet"

    def __init__(self, n_triplets: int = 200, min_overlap: int = 20, correlation_threshold: float = 0.95):
        self.n_triplets = n_triplets
        self.min_overlap = min_overlap
        self.correlation_threshold = correlation_threshold

    def _validate_params(self):
        if not is_count(self.n_triplets):
            raise ConfigError(f"n_triplets must be an integer >= 1, got {self.n_triplets!r}")
        if not self.min_overlap >= 1:
            raise ConfigError(f"min_overlap must be >= 1, got {self.min_overlap}")

    def _fit(self, L, prior, rng, dev=None):
        m, k = L.n_lfs, L.n_classes
        both, same = covote_counts(L)
        groups = (correlated_groups(L, self.correlation_threshold, same=same) if self.correlation_threshold <= 1
                  else np.arange(m))
        self.lf_groups_ = groups
        self.evidence_weights_ = evidence_weights(groups)
        agree = np.divide(same, both, out=np.zeros_like(same), where=both > 0)
        M = (k * agree - 1) / (k - 1)
        usable = (both >= self.min_overlap) & (groups[:, None] != groups[None, :])  # copies would fake agreement
        s = np.full(m, np.nan)
        if m >= 3:
            # sample (j, h) pairs per LF; invalid triplets (too few co-votes, ~0 denominators) are NaN and ignored
            j = rng.integers(0, m, size=(m, self.n_triplets))
            h = rng.integers(0, m, size=(m, self.n_triplets))
            i = np.arange(m)[:, None]
            ok = usable[i, j] & usable[i, h] & usable[j, h] & (j != h) & (M[j, h] > 0.05)
            est = np.where(ok, M[i, j] * M[i, h] / np.where(ok, M[j, h], 1.0), np.nan)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: LFs without a usable triplet
                s = np.sqrt(np.clip(np.nanmedian(est, axis=1), 0, 1))
        if np.isnan(s).all():
            s[:] = 0.5  # no usable triplet anywhere: a neutral, better-than-chance guess for every LF
        s = np.where(np.isnan(s), np.nanmedian(s), s)  # LFs without a usable triplet get the typical LF's value
        acc = np.clip((1 + (k - 1) * s) / k, 1.0 / k + 1e-3, 1 - 1e-3)
        self.lf_accuracies_ = acc
        self.weights_ = np.log(acc * (k - 1) / (1 - acc)) * self.evidence_weights_
        if prior is not None:
            self.prior_ = np.asarray(prior, dtype=np.float64)
            return None
        # class balance: maximum likelihood with the accuracies held fixed -- concave in the prior, so this EM has
        # one optimum and cannot collapse onto a class the way joint EM over priors and accuracies can
        covered = np.flatnonzero(L.n_votes() > 0)
        if len(covered) > 100_000:  # a k-vector needs no more records than this (±0.3%); keeps the fit O(nnz)
            covered = np.sort(rng.choice(covered, 100_000, replace=False))
        scores = vote_scores(L.rows(covered), self.weights_)
        self.prior_ = np.full(k, 1.0 / k)
        for _ in range(200):
            post = softmax_rows(scores + np.log(self.prior_))[0]
            new = (post.sum(axis=0) + 1.0) / (len(post) + k)
            if np.abs(new - self.prior_).max() < 1e-7:
                break
            self.prior_ = new
        return self.prior_

    def _proba(self, L):
        scores = vote_scores(L, self.weights_)
        scores += np.log(self.prior_)
        return softmax_rows(scores)[0]
