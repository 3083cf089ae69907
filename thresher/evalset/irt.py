"""A two-parameter logistic IRT model of items and systems, and tinyBenchmarks' p-IRT estimate of a new system.

System s answers item i correctly with probability ``sigmoid(a_i * (theta_s - b_i))``: ``b_i`` is the item's
difficulty, ``a_i > 0`` how sharply it separates weaker from stronger systems, ``theta_s`` the system's ability.
Scores in [0, 1] (probabilities, partial credit) are fitted as soft outcomes. The fit is a joint maximum a
posteriori estimate (standard normal priors on theta, b and log a) by L-BFGS with analytic gradients.

A new system scored on a few items gets its ability from those items (the item parameters fixed), and its full-set
score is p-IRT (Polo et al., 2024): its observed scores on the chosen items plus the model's predicted scores on
every other item, over the number of items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit


@dataclass(frozen=True)
class IRT2PL:
    """Item discriminations ``a`` and difficulties ``b`` (one per item), abilities ``theta`` of the fitted systems."""

    a: np.ndarray
    b: np.ndarray
    theta: np.ndarray

    def predict(self, theta: np.ndarray) -> np.ndarray:
        """Items x systems probabilities of a correct answer for abilities ``theta``."""
        return expit(self.a[:, None] * (np.asarray(theta)[None, :] - self.b[:, None]))

    def abilities(self, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Each system's ability from its ``scores`` (len(rows) x systems) on items ``rows`` (MAP, N(0, 1) prior)."""
        a, b = self.a[rows][:, None], self.b[rows][:, None]
        theta = np.zeros(scores.shape[1])
        for _ in range(50):  # Newton steps on a concave objective, one per system at once
            p = expit(a * (theta[None, :] - b))
            grad = (a * (scores - p)).sum(axis=0) - theta
            hess = -(a * a * p * (1 - p)).sum(axis=0) - 1.0
            step = grad / hess
            theta = theta - np.clip(step, -1.0, 1.0)
            if np.abs(step).max() < 1e-9:
                break
        return theta

    def p_irt(self, rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Full-set estimates: observed scores on ``rows`` plus predictions on every other item, over all items."""
        predicted = self.predict(self.abilities(rows, scores))
        predicted[rows] = scores
        return predicted.mean(axis=0)


def fit_2pl(scores: np.ndarray, max_iter: int = 500) -> IRT2PL:
    """The 2PL model of an items x systems table of scores in [0, 1]."""
    y = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    n, s = y.shape

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        theta, log_a, b = params[:s], params[s:s + n], params[s + n:]
        a = np.exp(log_a)
        z = a[:, None] * (theta[None, :] - b[:, None])
        # -log likelihood of soft outcomes: log(1 + e^z) - y z, computed stably
        nll = (np.logaddexp(0.0, z) - y * z).sum()
        value = nll + 0.5 * ((theta ** 2).sum() + (log_a ** 2).sum() + (b ** 2).sum())
        r = expit(z) - y  # d nll / d z
        g_theta = (r * a[:, None]).sum(axis=0) + theta
        g_log_a = (r * (theta[None, :] - b[:, None])).sum(axis=1) * a + log_a
        g_b = -(r.sum(axis=1)) * a + b
        return float(value), np.concatenate([g_theta, g_log_a, g_b])

    result = minimize(loss, np.zeros(s + 2 * n), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    x = result.x
    return IRT2PL(np.exp(x[s:s + n]), x[s + n:], x[:s])
