"""MeTaL-style matrix completion (snorkel's LabelModel), in numpy/scipy with L-BFGS instead of torch SGD.

With one-hot votes λ (m·k columns) and class balance P = diag(p), conditional independence gives
O = E[λλᵀ] = μ P μᵀ off the LF-diagonal blocks, where μ[j·k + c, y] = P(λ_j = c | Y = y). We minimise snorkel's
objective ||mask ⊙ (O − μPμᵀ)||² + ||rowsum(μP) − diag(O)||² over μ ∈ [0, 1], starting from snorkel's initialisation
(precision ``prec_init`` on the diagonal). Two of snorkel's pitfalls are fixed here: the class balance is estimated
from the votes unless given (snorkel assumes uniform), and LFs that co-vote almost identically are masked out of
each other's overlap terms and share their evidence (snorkel double-counts them unless told the dependency).
Memory is O((m·k)²) for O, so this model refuses m·k beyond ``max_dim``; use Dawid-Skene for such sizes.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from thresher.errors import ConfigError
from thresher.label.matrix import LabelMatrix
from thresher.label.models.base import LabelModel, is_count, onehot, softmax_rows
from thresher.label.models.correlated import correlated_groups, evidence_weights


def overlap_matrix(L: LabelMatrix, chunk_cells: int = 4_000_000) -> np.ndarray:
    """O = E[λλᵀ] over one-hot votes, (m·k)², accumulated over dense row chunks (BLAS beats sparse Aᵀ·A here)."""
    A = onehot(L)
    d = A.shape[1]
    overlap = np.zeros((d, d))
    step = max(1, chunk_cells // max(d, 1))
    for start in range(0, L.n_records, step):
        block = A[start:start + step].toarray()
        overlap += block.T @ block
    return overlap / L.n_records


class MetalModel(LabelModel):
    """snorkel's matrix-completion label model; see the module docstring."""

    name = "metal"
    estimates_class_balance = False  # μ is identified only given p: p comes from the base class's estimate

    def __init__(self, prec_init: float = 0.7, l2: float = 0.0, max_iter: int = 500,
                 correlation_threshold: float = 0.95, max_dim: int = 6000):
        self.prec_init = prec_init
        self.l2 = l2
        self.max_iter = max_iter
        self.correlation_threshold = correlation_threshold
        self.max_dim = max_dim

    def _validate_params(self):
        if not 0 < self.prec_init < 1:
            raise ConfigError(f"prec_init must be in (0, 1), got {self.prec_init}")
        if not self.l2 >= 0:
            raise ConfigError(f"l2 must be >= 0, got {self.l2}")
        if not is_count(self.max_iter):
            raise ConfigError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")

    def _fit(self, L, prior, rng, dev=None):
        m, k = L.n_lfs, L.n_classes
        d = m * k
        if d > self.max_dim:
            raise ConfigError(f"metal needs an (m·k)² overlap matrix: {m} LFs × {k} classes = {d} > max_dim="
                              f"{self.max_dim}; use dawid_skene (one-coin) for this size")
        O = overlap_matrix(L)  # noqa: E741 -- the paper's name
        same = np.einsum("icjc->ij", O.reshape(m, k, m, k)) * L.n_records
        groups = (correlated_groups(L, self.correlation_threshold, same=np.rint(same))
                  if self.correlation_threshold <= 1 else np.arange(m))
        self.lf_groups_ = groups
        self.evidence_weights_ = evidence_weights(groups)
        lf_of = np.repeat(np.arange(m), k)
        mask = groups[lf_of][:, None] != groups[lf_of][None, :]  # drop same-LF and same-group blocks
        p = np.asarray(prior, dtype=np.float64)
        lps = np.diag(O)
        mu_init = np.zeros((d, k))
        for_class = np.tile(np.arange(k), m)
        mu_init[np.arange(d), for_class] = np.clip(lps * self.prec_init / p[for_class], 0, 1)

        def loss_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
            mu = x.reshape(d, k)
            muP = mu * p[None, :]
            R = np.where(mask, muP @ mu.T - O, 0.0)
            r2 = muP.sum(axis=1) - lps
            diff = mu - mu_init
            loss = float((R * R).sum() + r2 @ r2 + self.l2 * (diff * diff).sum())
            grad = 4 * (R @ muP) + 2 * r2[:, None] * p[None, :] + 2 * self.l2 * diff
            return loss, grad.ravel()

        result = minimize(loss_grad, mu_init.ravel(), jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * (d * k),
                          options={"maxiter": self.max_iter})
        self.mu_ = result.x.reshape(d, k)
        self.n_iter_ = int(result.nit)
        self.prior_ = p
        cond = self.mu_.reshape(m, k, k)  # [lf, vote, true class]
        right = (np.einsum("jcc->jc", cond) * p[None, :]).sum(axis=1)
        votes = (cond.sum(axis=1) * p[None, :]).sum(axis=1)
        self.lf_accuracies_ = np.divide(right, votes, out=np.full(m, 1.0 / k), where=votes > 0)
        return None

    def _proba(self, L):
        m, k = self.n_lfs_, self.n_classes_
        mu = np.clip(self.mu_, 0.01, 0.99).reshape(m, k, k)
        abstain = np.clip(1 - self.mu_.reshape(m, k, k).sum(axis=1), 0.01, 0.99)  # P(abstain | y), snorkel omits it
        w = self.evidence_weights_
        delta = (np.log(mu) - np.log(abstain)[:, None, :]) * w[:, None, None]
        scores = np.asarray(onehot(L) @ delta.reshape(-1, k))
        scores += np.log(self.prior_) + (np.log(abstain) * w[:, None]).sum(axis=0)
        return softmax_rows(scores)[0]
