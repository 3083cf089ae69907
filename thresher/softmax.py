"""Softmax (multinomial logistic) regression, shared by the weak-supervision end model and the evaluation proxy.

One fit: mean cross-entropy against soft targets (hard labels are one-hot rows) plus an L2 penalty on the weights,
not the intercepts, minimised by L-BFGS from zero (:mod:`thresher.lbfgs`), so the same inputs always give the same
model. Features may be dense or scipy-sparse.
"""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_softmax(x, q: np.ndarray, l2: float, max_iter: int,
                init: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(weights d x k, intercepts k) minimising mean cross-entropy(q, softmax(xW + b)) + l2/2 |W|^2.

    Sparse features no training row uses keep weight 0 (their gradient is l2·w, so 0 is their optimum), so the
    fit runs on the used columns only: the same model (to 1e-15), and L-BFGS's own cost per step falls with d
    (250 BBC articles use 44,772 of 65,536 hashed buckets: 1.3-1.4x faster; shorter or fewer texts gain more).
    ``init``: (weights, intercepts) to start from instead of zero, e.g. the previous round's model when the
    training set grows (the objective is convex: the same optimum, reached in fewer steps).
    """
    if hasattr(x, "tocsr"):
        x = x.tocsr()
        used = np.unique(x.indices)
        if len(used) < x.shape[1]:
            w_used, b = fit_softmax(x[:, used], q, l2, max_iter,
                                    None if init is None else (np.asarray(init[0])[used], init[1]))
            w = np.zeros((x.shape[1], q.shape[1]))
            w[used] = w_used
            return w, b
    from thresher.lbfgs import minimize_lbfgs

    n, d = x.shape
    k = q.shape[1]
    xt = x.T.tocsr() if hasattr(x, "tocsr") else x.T

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d * k].reshape(d, k), theta[d * k:]
        z = x @ w + b
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        value = -(q * logp).sum() / n + 0.5 * l2 * (w * w).sum()
        g = (np.exp(logp) - q) / n
        return value, np.concatenate([(xt @ g + l2 * w).ravel(), g.sum(axis=0)])

    start = np.zeros(d * k + k) if init is None else np.concatenate([np.asarray(init[0], dtype=np.float64).ravel(),
                                                                     np.asarray(init[1], dtype=np.float64)])
    theta = minimize_lbfgs(loss, start, max_iter)
    return theta[:d * k].reshape(d, k), theta[d * k:]
