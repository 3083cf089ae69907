"""Class-conditional firing model: per LF and voted class, how often the LF fires on that class and off it.

What it models. For LF j and each class c it ever votes, two numbers::

    α_jc = P(λ_j = c | y = c)      how often it fires on its own class (recall, "accuracy" part)
    β_jc = P(λ_j = c | y ≠ c)      how often it fires on other classes (false-alarm rate, "propensity" part)

and P(λ_j abstains | y) = 1 − α_jy − Σ_{c≠y} β_jc. So an abstain is evidence too: a keyword LF for "sport" that
fires on 60% of sport articles and 2% of others says something when it stays silent. This is the structure of real
keyword/regex LF sets, which are *unipolar* (each LF only ever votes one class) and have low coverage. There the
one-coin model (right with probability a when voting, abstains independent of the class) is wrong twice: it ignores
what silence says, and since a unipolar LF never "votes wrong uniformly", its accuracy and the class balance trade off
freely -- joint EM then piles the class prior onto one or two classes. A unipolar LF's α/β pair, by contrast, is
exactly its (k+1)×k Dawid-Skene confusion with the off-class columns tied together (2 parameters instead of k+1),
which is what makes it estimable from a few hundred votes. For multi-class LFs (e.g. one-coin synthetic LFs) the
E-step uses the exact categorical likelihood above; the M-step uses the per-(LF, class) marginal rates, which are the
maximum-likelihood estimates for unipolar LFs and exact in expectation for one-coin LFs (there α_jc = p·a,
β_jc = p(1−a)/(k−1), and the abstain probability 1 − p comes out independent of the class, as it should).

How it is fitted. EM, started from the majority-vote posterior (vote fractions; rows without votes start uniform).
The M-step is parametrised by each (LF, class) vote's precision q_jc = P(y = c | λ_j = c): α_jc = q_jc·f_jc / n_c and
β_jc = (1 − q_jc)·f_jc / (n − n_c), with f_jc the LF's vote count for c and n_c the expected records of class c --
exactly the maximum-likelihood α, β when q is the posterior mass of its votes. q gets a Beta prior worth
``prior_strength`` votes centred on its value under the majority-vote start, so an LF with a dozen votes keeps the
precision its agreement with the others implies instead of being driven by EM to "useless" (α ≈ β), which on the
real sentiment LF set is what made a lone vote lose to the silence of the other LFs. α_jc is kept ≥ β_jc (an LF fires
on its own class at least as often as elsewhere).

Class balance. Without labels the balance and the firing rates trade off (a class with many high-coverage LFs can
be "frequent with sloppy LFs" or "rare with precise ones"), so the estimate is regularised: a symmetric Dirichlet prior
towards uniform worth ``balance_strength`` pseudo-records per class (so its pull fades as the pool grows: at 100k
records a 1%-class is recovered), and a floor of ``min_class_prior`` / k per class, so no prior can collapse.

Hyperparameters. ``prior_strength=5`` and ``balance_strength=100`` are the best point on the dev splits of the real
tasks (bench/bench_label_real.py) of the grid prior_strength ∈ {0, 5, 20, 100} × balance_strength ∈ {0, 10, 100}:
brown_genre dev accuracy 0.284 vs 0.195-0.274 for the other 11 points; bbc_news and rotten_tomatoes dev barely move.
They were then checked on the synthetic scenarios (bench/bench_label_synthetic.py), not chosen on test splits.

The fit check and the anchor (issue 16). Real keyword LFs are not independent given the class: LFs for one class
fire together on the same off-class records, and EM reads that agreement as accuracy. Left alone the model then
overrules clear majorities (on SpamAssassin it overturned 15% of the decisive majority votes, 95% of which were
right). So after fitting, the model predicts how often every pair of LFs co-fires and compares that with the votes
(``fit_check.cofiring_misfit``, Pearson χ² per cell: about 0.7 when its assumptions hold, 2.5-52 on the eleven
real LF sets). Above ``misfit_threshold`` (``anchor="auto"``) it is *anchored on the majority vote*: the class
balance becomes the majority vote's class distribution (EM's is kept as ``em_class_balance_``), the model is
refitted with it, and each (evidence-weighted) vote multiplies a class's odds by ``e^vote_weight``, so the votes
decide and the model's posterior only breaks their ties -- which is where it was right on the real tasks (newsgroups:
3,309 tied test records, 52% right against the majority vote's 26%). ``vote_weight`` is flat between 2 and 10 on
the real tasks; ``misfit_threshold=2`` sits between the two ranges above. ``anchor="none"`` is the plain model,
``"votes"`` always anchors.

Fast path: on pools above ``warm_start_records`` EM runs on a random subsample and one final E-step/M-step pair
runs on everything. Each E-step is O(nnz · k) (one sparse product), nothing n×m×k is formed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from thresher.errors import ConfigError
from thresher.label.matrix import LabelMatrix
from thresher.label.models.base import LabelModel, check_em_params, onehot, softmax_rows
from thresher.label.models.correlated import correlated_groups, evidence_weights
from thresher.label.models.fit_check import cofiring_misfit, vote_class_balance
from thresher.label.models.majority import vote_scores

#: auto: anchor on the majority vote when the fit check fails; votes: always; none: the plain model
ANCHOR_MODES = ("auto", "votes", "none")


class ClassConditionalModel(LabelModel):
    """Per (LF, voted class) firing rates on and off the class, abstains informative; see the module docstring."""

    name = "class_conditional"

    def __init__(self, max_iter: int = 100, tol: float = 1e-6, prior_strength: float = 5.0,
                 balance_strength: float = 100.0, min_class_prior: float = 0.02, correlation_threshold: float = 0.95,
                 warm_start_records: int = 100_000, dense_table_cells: int = 1_000_000, anchor: str = "auto",
                 vote_weight: float = 5.0, misfit_threshold: float = 2.0):
        self.anchor = anchor
        self.vote_weight = vote_weight
        self.misfit_threshold = misfit_threshold
        self.max_iter = max_iter
        self.tol = tol
        self.prior_strength = prior_strength
        self.balance_strength = balance_strength
        self.min_class_prior = min_class_prior
        self.correlation_threshold = correlation_threshold
        self.warm_start_records = warm_start_records
        self.dense_table_cells = dense_table_cells

    def _validate_params(self):
        check_em_params(self)
        if not self.prior_strength >= 0:
            raise ConfigError(f"prior_strength must be >= 0, got {self.prior_strength}")
        if not self.balance_strength >= 0:
            raise ConfigError(f"balance_strength must be >= 0, got {self.balance_strength}")
        if not 0 <= self.min_class_prior < 1:
            raise ConfigError(f"min_class_prior must be in [0, 1), got {self.min_class_prior}")
        if self.anchor not in ANCHOR_MODES:
            raise ConfigError(f"anchor must be one of {', '.join(ANCHOR_MODES)}, got {self.anchor!r}")
        if not self.vote_weight > 0:
            raise ConfigError(f"vote_weight must be > 0, got {self.vote_weight}")
        if not self.misfit_threshold > 0:
            raise ConfigError(f"misfit_threshold must be > 0, got {self.misfit_threshold}")

    # ---------------------------------------------------------------- fit
    def _fit(self, L, prior, rng, dev=None):
        sub = None
        if L.n_records > self.warm_start_records:
            sub = L.rows(np.sort(rng.choice(L.n_records, self.warm_start_records, replace=False)))
        data = L if sub is None else sub
        self.lf_groups_ = (correlated_groups(data, self.correlation_threshold) if self.correlation_threshold <= 1
                           else np.arange(L.n_lfs))
        self.evidence_weights_ = evidence_weights(self.lf_groups_)
        self._em(L, sub, prior)
        # the model checks itself against the votes (fit_check.py); if it does not describe how the LFs co-fire,
        # the majority vote decides and the model only ranks the classes the majority ties on
        self.vote_class_balance_, self.vote_class_balance_interval_ = vote_class_balance(data, self.evidence_weights_)
        self.em_class_balance_ = self.prior_.copy()
        self.misfit_ = cofiring_misfit(data, self.prior_, self.alpha_, self.beta_, self.lf_groups_)
        self.anchored_ = self.anchor == "votes" or (self.anchor == "auto" and self.misfit_ > self.misfit_threshold)
        if self.anchored_ and prior is None:
            # EM's class balance rests on the same independence assumption that just failed: use the votes' own
            self._em(L, sub, self.vote_class_balance_)
            return self.vote_class_balance_
        return self.prior_ if prior is None else None

    def _em(self, L, sub, prior):
        """EM from the majority-vote start on ``sub`` (or ``L``), then one E/M pass on all of ``L``."""
        data = L if sub is None else sub
        k = L.n_classes
        post = vote_scores(data, self.evidence_weights_)
        total = post.sum(axis=1, keepdims=True)
        post = np.divide(post, total, out=np.full_like(post, 1.0 / k), where=total > 0)
        design = self._design(data)
        self._q_start = None
        self._m_step(data, design, post, prior)
        self._q_start = self._q.copy()  # the Beta priors' centres: vote precisions under the MV start
        previous = -np.inf
        self.n_iter_ = 0
        for it in range(self.max_iter):
            post, loglik = self._e_step(data, design)
            self._m_step(data, design, post, prior)
            self.n_iter_ = it + 1
            mean = loglik / data.n_records
            if abs(mean - previous) < self.tol:
                break
            previous = mean
        if sub is not None:
            design = self._design(L)
            post, _ = self._e_step(L, design)
            self._m_step(L, design, post, prior)
        self.lf_accuracies_ = self._accuracies(L)

    def _design(self, L: LabelMatrix):
        """Index arrays of the votes, the vote-indicator matrix and, when (m·k)×k is small, the one-hot votes."""
        rows, cols, classes = L.coo()
        X = sp.csr_matrix((np.ones(L.nnz), L.votes.indices, L.votes.indptr), shape=L.shape)
        m, k = L.n_lfs, L.n_classes
        A = onehot(L) if m * k * k <= self.dense_table_cells else None
        pair = cols * k + classes  # (LF, class) of each vote
        fires = np.bincount(pair, minlength=m * k).reshape(m, k).astype(np.float64)
        return rows, cols, classes, X, A, rows * k + classes, pair, fires

    def _m_step(self, L, design, post, fixed_prior):
        flat, pair, fires = design[5:]
        m, k, n = L.n_lfs, L.n_classes, L.n_records
        on = np.bincount(pair, weights=post.ravel()[flat], minlength=m * k).reshape(m, k)
        mass = post.sum(axis=0)  # expected records per class
        if fixed_prior is None:
            s = self.balance_strength * k
            p = (mass + s / k) / (n + s)
            floor = self.min_class_prior / k
            p = np.maximum(p, floor)
            self.prior_ = p / p.sum()
        else:
            self.prior_ = np.asarray(fixed_prior, dtype=np.float64)
        # precision of each (LF, class) vote, q = P(y = c | λ_j = c), with a Beta prior worth `prior_strength` votes
        # centred on its value under the majority-vote start; α and β follow from q, the vote count and the class mass
        q = np.divide(on, fires, out=np.zeros_like(on), where=fires > 0)
        if self._q_start is not None:
            s = self.prior_strength
            q = (on + s * self._q_start) / (fires + s)
        self._q = q
        alpha = q * fires / np.maximum(mass, 1e-12)[None, :]
        beta = (1 - q) * fires / np.maximum(n - mass, 1e-12)[None, :]
        voted = fires > 0
        eps = 1e-6
        alpha = np.where(voted, np.clip(alpha, eps, 1 - eps), 0.0)
        beta = np.where(voted, np.clip(beta, eps, 1 - eps), 0.0)
        alpha = np.maximum(alpha, beta)  # firing on its own class at least as often as elsewhere
        self.alpha_, self.beta_ = alpha, beta

    def _log_tables(self):
        """log α, log β per (LF, class) and log P(abstain | y) per (LF, y), evidence-weighted."""
        alpha, beta = self.alpha_, self.beta_
        abstain = 1.0 - alpha - (beta.sum(axis=1, keepdims=True) - beta)  # P(abstain | y) = 1 − α_y − Σ_{c≠y} β_c
        abstain = np.clip(abstain, 1e-6, 1.0)
        w = self.evidence_weights_[:, None]
        with np.errstate(divide="ignore"):
            la = np.where(alpha > 0, np.log(np.maximum(alpha, 1e-300)), 0.0) * w
            lb = np.where(beta > 0, np.log(np.maximum(beta, 1e-300)), 0.0) * w
        return la, lb, np.log(abstain) * w

    def _e_step(self, L, design=None):
        if design is None:
            design = self._design(L)
        rows, cols, classes, X, A = design[:5]
        k = L.n_classes
        la, lb, lab = self._log_tables()
        if A is not None:
            # one sparse product: table[j·k + c, y] = log P(λ_j = c | y) − log P(λ_j abstains | y)
            table = lb[:, :, None] - lab[:, None, :]
            idx = np.arange(k)
            table[:, idx, idx] += (la - lb)
            scores = np.asarray(A @ table.reshape(-1, k))
        else:
            # the same sum without the (m·k)×k table: every class pays the abstain term of every LF, minus that of
            # the LFs that did vote, plus log β of each vote, plus log α − log β for the class voted
            scores = np.asarray(X @ (-lab))
            scores += np.bincount(rows, weights=lb[cols, classes], minlength=L.n_records)[:, None]
            scores += np.bincount(rows * k + classes, weights=(la - lb)[cols, classes],
                                  minlength=L.n_records * k).reshape(-1, k)
        scores += lab.sum(axis=0) + np.log(self.prior_)
        return softmax_rows(scores)

    def _accuracies(self, L):
        """P(LF right | LF votes) under the fitted rates and class balance."""
        p = self.prior_
        right = (self.alpha_ * p[None, :]).sum(axis=1)
        wrong = (self.beta_ * (1 - p)[None, :]).sum(axis=1)
        total = right + wrong
        return np.divide(right, total, out=np.full(L.n_lfs, 1.0 / L.n_classes), where=total > 0)

    def _proba(self, L):
        post = self._e_step(L)[0]
        if not self.anchored_:
            return post
        # a product of experts: each (evidence-weighted) vote multiplies a class's odds by e^vote_weight, so the
        # model's posterior only decides between classes the majority vote ties on
        scores = np.log(np.maximum(post, 1e-300), out=post)
        scores += self.vote_weight * vote_scores(L, self.evidence_weights_)
        return softmax_rows(scores)[0]
