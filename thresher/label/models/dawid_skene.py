"""Dawid-Skene: EM over each LF's confusion matrix and the class priors, initialised from majority vote.

Two parametrisations:

* ``full``: per LF a (k+1)×k table P(vote | true class) whose extra outcome is *abstain*. Modelling abstains matters
  for real LF sets: a keyword LF that only ever votes "sport" is informative only through how much more often it
  fires on sport than elsewhere, which a model that ignores abstains cannot see. m·k·(k+1) parameters.
* ``one_coin``: per LF one accuracy a (right with probability a when it votes, otherwise uniformly wrong); abstains
  independent of the class. O(m + k) parameters and O(nnz) per iteration, so 200 classes × 1,000 LFs is cheap.

``auto`` (the default) uses ``full`` while m·k·(k+1) stays small relative to the votes, ``one_coin`` otherwise.
Both E-steps are one sparse product over the votes; nothing n×m×k is ever formed. For large pools EM first converges
on a random subsample of ``warm_start_records`` records and then polishes on all of them (usually 1-3 iterations).
"""

from __future__ import annotations

import numpy as np

from thresher.errors import ConfigError
from thresher.label.matrix import LabelMatrix
from thresher.label.models.base import LabelModel, check_em_params, onehot, softmax_rows
from thresher.label.models.correlated import correlated_groups, evidence_weights
from thresher.label.models.majority import vote_scores

CONFUSIONS = ("auto", "full", "one_coin")


class DawidSkene(LabelModel):
    """Dawid-Skene EM with class priors and Dirichlet smoothing; see the module docstring for the two variants."""

    name = "dawid_skene"

    def __init__(self, confusion: str = "auto", max_iter: int = 100, tol: float = 1e-5, smoothing: float = 1.0,
                 correlation_threshold: float = 0.95, warm_start_records: int = 100_000,
                 max_full_params: int = 2_000_000):
        self.confusion = confusion
        self.max_iter = max_iter
        self.tol = tol
        self.smoothing = smoothing
        self.correlation_threshold = correlation_threshold
        self.warm_start_records = warm_start_records
        self.max_full_params = max_full_params

    def _validate_params(self):
        if self.confusion not in CONFUSIONS:
            raise ConfigError(f"confusion must be one of {', '.join(CONFUSIONS)}, got {self.confusion!r}")
        check_em_params(self)
        if not self.smoothing >= 0:
            raise ConfigError(f"smoothing must be >= 0, got {self.smoothing}")

    def _mode(self, L: LabelMatrix) -> str:
        if self.confusion != "auto":
            return self.confusion
        k = L.n_classes
        n_params = L.n_lfs * k * (k + 1)
        # full confusion needs both memory and data: ~20 votes per parameter keeps the smoothed estimates sane
        return "full" if n_params <= self.max_full_params and 20 * n_params <= max(L.nnz, 1) * k else "one_coin"

    # ---------------------------------------------------------------- fit
    def _fit(self, L, prior, rng, dev=None):
        self.mode_ = self._mode(L)
        sub = None
        if L.n_records > self.warm_start_records:
            sub = L.rows(np.sort(rng.choice(L.n_records, self.warm_start_records, replace=False)))
        # co-voting is measured on the subsample too: it needs far fewer records than EM and costs O(votes per row²)
        if self.correlation_threshold <= 1:
            self.lf_groups_ = correlated_groups(L if sub is None else sub, self.correlation_threshold)
        else:
            self.lf_groups_ = np.arange(L.n_lfs)
        self.evidence_weights_ = evidence_weights(self.lf_groups_)
        # EM for the full model crawls along the prior/confusion ridge from a majority-vote start (hundreds of
        # iterations); the one-coin model converges in tens and lands next to the optimum, so start from it.
        stages = ("one_coin", "full") if self.mode_ == "full" else ("one_coin",)
        data = L if sub is None else sub
        post = self._init_posterior(data)
        for stage in stages:
            self.mode_ = stage
            post = self._em(data, post, prior)
        if sub is not None:
            post, loglik = self._e_step(L)
            self._em(L, post, prior, loglik / L.n_records)
        self.lf_accuracies_ = self._accuracies()
        return self.prior_ if prior is None else None

    def _init_posterior(self, L: LabelMatrix) -> np.ndarray:
        counts = vote_scores(L, self.evidence_weights_)
        total = counts.sum(axis=1, keepdims=True)
        k = L.n_classes
        return np.divide(counts, total, out=np.full_like(counts, 1.0 / k), where=total > 0)

    def _design(self, L: LabelMatrix):
        """What the E and M steps multiply by, built once per matrix: the one-hot votes (full) or flat indices."""
        if self.mode_ == "full":
            return onehot(L)
        rows, cols, classes = L.coo()
        return rows * L.n_classes + classes, cols

    def _em(self, L: LabelMatrix, post: np.ndarray, fixed_prior: np.ndarray | None,
            previous: float = -np.inf) -> np.ndarray:
        """Alternate M and E steps until the log-likelihood per record changes by less than ``tol`` nats."""
        design = self._design(L)
        self.n_iter_ = 0
        for it in range(self.max_iter):
            self._m_step(L, design, post, fixed_prior)
            post, loglik = self._e_step(L, design)
            self.n_iter_ = it + 1
            mean = loglik / L.n_records
            if abs(mean - previous) < self.tol:
                break
            previous = mean
        self.log_likelihood_ = loglik
        return post

    def _m_step(self, L: LabelMatrix, design, post: np.ndarray, fixed_prior: np.ndarray | None) -> None:
        k, m, a = L.n_classes, L.n_lfs, self.smoothing
        class_mass = post.sum(axis=0)
        if fixed_prior is None:
            self.prior_ = (class_mass + a) / (class_mass.sum() + k * a)
        else:
            self.prior_ = np.asarray(fixed_prior, dtype=np.float64)
        if self.mode_ == "full":
            voted = np.asarray(design.T @ post).reshape(m, k, k)  # [lf, vote, true class]
            abstained = np.maximum(class_mass[None, :] - voted.sum(axis=1), 0.0)  # [lf, true class]
            # Dirichlet prior: `a` pseudo-votes per outcome plus `a` more on the diagonal (LFs beat chance a priori)
            voted = voted + a + a * np.eye(k)[None, :, :]
            abstained = abstained + a
            total = voted.sum(axis=1) + abstained
            self.confusion_ = voted / total[:, None, :]
            self.abstain_ = abstained / total
        else:
            flat, cols = design
            hit = np.bincount(cols, weights=post.ravel()[flat], minlength=m)
            n = np.bincount(cols, minlength=m)
            # Beta(a, a) smoothing, floored just above chance: LFs are assumed better than random, which rules out
            # the degenerate optimum (one class takes the whole prior, LFs voting others become "always wrong")
            # that unipolar keyword LFs otherwise fall into
            self.accuracy_ = np.clip((hit + a) / (n + 2 * a), 1.0 / k + 0.01, 1 - 1e-6)

    def _e_step(self, L: LabelMatrix, design=None) -> tuple[np.ndarray, float]:
        """Posterior class probabilities of every record and the data log-likelihood."""
        if design is None:
            design = self._design(L)
        k, w = L.n_classes, self.evidence_weights_
        if self.mode_ == "full":
            log_abstain = np.log(self.abstain_)  # (m, k)
            delta = (np.log(self.confusion_) - log_abstain[:, None, :]) * w[:, None, None]
            scores = np.asarray(design @ delta.reshape(-1, k))
            scores += np.log(self.prior_) + (log_abstain * w[:, None]).sum(axis=0)
        else:
            flat, cols = design
            acc = self.accuracy_
            lf_weight = np.log(acc * max(k - 1, 1) / (1 - acc)) * w
            scores = np.bincount(flat, weights=lf_weight[cols], minlength=L.n_records * k).reshape(-1, k)
            scores += np.log(self.prior_)
        return softmax_rows(scores)

    def _accuracies(self) -> np.ndarray:
        """P(LF right | LF votes), under the fitted model and prior."""
        if self.mode_ == "one_coin":
            return self.accuracy_.copy()
        diag = np.einsum("jcc->jc", self.confusion_)  # P(vote = y | y)
        right = (diag * self.prior_[None, :]).sum(axis=1)
        votes = ((1 - self.abstain_) * self.prior_[None, :]).sum(axis=1)
        return right / votes

    def _proba(self, L):
        return self._e_step(L)[0]
