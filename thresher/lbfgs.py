"""Unconstrained L-BFGS (Nocedal & Wright, algorithm 7.4) with a backtracking Armijo line search, in NumPy.

scipy's L-BFGS-B costs about 170 ms an iteration on a 300k-parameter softmax regression (its bound handling runs
on every variable even when there are no bounds), ten times the loss and gradient themselves; this one costs a
few vector operations over the memory. Stopping rules are L-BFGS-B's defaults: the largest gradient component at
most ``gtol``, or a relative decrease of the objective at most ``ftol``. Every reduction is NumPy's own
(pairwise) sum, not BLAS, so the same inputs give the same result bit for bit in any process.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

FTOL = 2.220446049250313e-09  # L-BFGS-B's default factr (1e7) x machine epsilon
GTOL = 1e-5


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b))


def minimize_lbfgs(fun_grad: Callable[[np.ndarray], tuple[float, np.ndarray]], x0: np.ndarray, max_iter: int,
                   memory: int = 10, gtol: float = GTOL, ftol: float = FTOL) -> np.ndarray:
    """The minimiser of a smooth function from ``x0``: ``fun_grad(x)`` returns (value, gradient)."""
    x = np.array(x0, dtype=np.float64)
    f, g = fun_grad(x)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []  # (s, y, 1 / s.y), oldest first
    for _ in range(max_iter):
        if not len(g) or np.abs(g).max() <= gtol:
            break
        d = _direction(g, steps)
        slope = _dot(g, d)
        if slope >= 0:  # not a descent direction (lost curvature): restart from steepest descent
            steps.clear()
            d = _direction(g, steps)
            slope = _dot(g, d)
        step = 1.0
        while True:
            x_new = x + step * d
            f_new, g_new = fun_grad(x_new)
            if f_new <= f + 1e-4 * step * slope:
                break
            # the minimiser of the quadratic through f, the slope and f_new, kept within [0.1, 0.5] of the step
            curve = f_new - f - slope * step
            step = float(np.clip(-slope * step * step / (2 * curve), 0.1 * step, 0.5 * step)) if curve > 0 \
                else 0.5 * step
            if step < 1e-20:
                return x
        s, y = x_new - x, g_new - g
        sy = _dot(s, y)
        if sy > 1e-10 * _dot(y, y):
            steps.append((s, y, 1.0 / sy))
            if len(steps) > memory:
                steps.pop(0)
        decrease = (f - f_new) / max(abs(f), abs(f_new), 1.0)
        x, f, g = x_new, f_new, g_new
        if decrease <= ftol:
            break
    return x


def _direction(g: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """-H g by the two-loop recursion; with no memory, the gradient scaled to unit length (a cautious first step)."""
    if not steps:
        return -g / max(np.sqrt(_dot(g, g)), 1.0)
    q = g.copy()
    alphas = []
    for s, y, rho in reversed(steps):
        a = rho * _dot(s, q)
        q -= a * y
        alphas.append(a)
    s, y, _ = steps[-1]
    q *= _dot(s, y) / _dot(y, y)
    for (s, y, rho), a in zip(steps, reversed(alphas)):
        q += (a - rho * _dot(y, q)) * s
    return -q
