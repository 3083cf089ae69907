"""Regressors from mixture weights (runs × groups) to an objective (lower is better), and their diagnostics.

* ``lightgbm``: gradient-boosted trees as RegMix fits them (its notebook's LGBMRegressor settings: gbdt,
  objective ``regression``, 1,000 iterations, learning rate 0.01, LightGBM's default 31 leaves; RegMix also stops
  early on held-out runs, which a fit on all the runs has no room for). Needs the ``mix`` extra.
* ``gp``: a Gaussian process on log(weight + ε) with one length-scale per group (ARD RBF kernel) and a noise term;
  every hyper-parameter, ε included (from :data:`EPS_GRID`: each optimised briefly, the best to convergence), is
  chosen by maximising the log marginal likelihood of the training runs alone. numpy/scipy only, on one BLAS thread;
  gives a predictive standard deviation too. With a few dozen runs it
  ranks held-out mixtures better than the trees (bench/bench_mix_regression.py, BENCHMARKS.md).
* ``mixing_law``: the exponential data mixing law L(r) = c + k·exp(t·r) (Ye et al. 2024), by least squares.

All are deterministic given their seed, with the sklearn-style ``fit(X, y)`` / ``predict(X)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.linalg.lapack import dpotri
from scipy.optimize import least_squares, minimize
from scipy.stats import spearmanr

from thresher.errors import ConfigError

#: The offsets ε tried in the Gaussian process's features log(weight + ε); the marginal likelihood picks one.
EPS_GRID = (1e-4, 1e-3, 1e-2)
_JITTER = 1e-6


def _check_xy(X: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ConfigError(f"mixture weights must be a non-empty runs × groups table, got shape {X.shape}")
    if y is None:
        return X, None
    y = np.asarray(y, dtype=float)
    if y.shape != (X.shape[0],):
        raise ConfigError(f"need one objective value per run: {X.shape[0]} runs, {y.size} values")
    if not np.all(np.isfinite(y)):
        raise ConfigError("the objective has missing or infinite values")
    return X, y


class LightGBMRegressor:
    """RegMix's regressor: LightGBM gradient-boosted trees with the paper's settings."""

    name = "lightgbm"

    def __init__(self, seed: int = 0, n_estimators: int = 1000, learning_rate: float = 0.01, num_leaves: int = 31):
        self.seed, self.n_estimators, self.learning_rate, self.num_leaves = seed, n_estimators, learning_rate, \
            num_leaves

    def fit(self, X: np.ndarray, y: np.ndarray) -> LightGBMRegressor:
        """Fit the trees (one thread, deterministic mode: the same runs and seed give the same model)."""
        try:
            import lightgbm
        except ImportError:
            raise ConfigError("regressor lightgbm needs the lightgbm package: pip install 'thresher[mix]' "
                              "(or choose --regressor gp, which needs nothing more)") from None
        X, y = _check_xy(X, y)
        self.model_ = lightgbm.LGBMRegressor(
            boosting_type="gbdt", objective="regression", n_estimators=self.n_estimators,
            learning_rate=self.learning_rate, num_leaves=self.num_leaves, random_state=self.seed,
            deterministic=True, force_row_wise=True, n_jobs=1, verbosity=-1)
        self.model_.fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The predicted objective of each mixture."""
        return np.asarray(self.model_.predict(_check_xy(X)[0]), dtype=float)

    def params(self) -> dict:
        """The settings, for mixture.yaml."""
        return {"n_estimators": self.n_estimators, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "seed": self.seed}


class GaussianProcessRegressor:
    """A Gaussian process on log(weight + ε), ARD RBF kernel, hyper-parameters by marginal likelihood."""

    name = "gp"

    def __init__(self, seed: int = 0, eps_grid: tuple[float, ...] = EPS_GRID, max_iter: int = 200,
                 screen_iter: int = 30):
        self.seed, self.eps_grid, self.max_iter = seed, tuple(eps_grid), max_iter  # no randomness: seed unused
        self.screen_iter = screen_iter

    def _features(self, X: np.ndarray, eps: float) -> np.ndarray:
        return np.log(np.clip(X, 0.0, None) + eps)

    def fit(self, X: np.ndarray, y: np.ndarray) -> GaussianProcessRegressor:
        """Choose ε, the length-scales, signal and noise variances by the log marginal likelihood; store the
        Cholesky factor for prediction."""
        X, y = _check_xy(X, y)
        if X.shape[0] < 3:
            raise ConfigError(f"regressor gp needs at least 3 runs, got {X.shape[0]}")
        from threadpoolctl import threadpool_limits

        # one BLAS thread: these matrices are small, so threads only wait on each other (a 512-run Cholesky took
        # 4 ms on one thread and 300 ms on two busy cores), and one thread gives the same sums on any machine
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(X, y)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> GaussianProcessRegressor:
        self.y_mean_, self.y_scale_ = y.mean(), (y.std() or 1.0)
        target = (y - self.y_mean_) / self.y_scale_
        candidates = []
        for eps in self.eps_grid:  # each ε optimised briefly; the best is then optimised to convergence
            Z = self._features(X, eps)
            mean, scale = Z.mean(axis=0), Z.std(axis=0)
            scale[scale == 0] = 1.0
            A = (Z - mean) / scale
            screen = self.screen_iter if len(self.eps_grid) > 1 else self.max_iter
            theta, nll = _fit_ard(A, target, screen)
            candidates.append((nll, eps, mean, scale, A, theta))
        nll, self.eps_, self.x_mean_, self.x_scale_, self.A_, theta = min(candidates, key=lambda c: c[0])
        if len(self.eps_grid) > 1:
            theta, nll = _fit_ard(self.A_, target, self.max_iter, theta)
        d = X.shape[1]
        self.inv_ls2_, self.signal_var_, self.noise_var_ = np.exp(-2 * theta[:d]), np.exp(2 * theta[d]), \
            np.exp(2 * theta[d + 1]) + _JITTER
        K = self.signal_var_ * np.exp(-0.5 * _sqdist(self.A_, self.A_, self.inv_ls2_))
        K[np.diag_indices_from(K)] += self.noise_var_
        self.chol_ = cho_factor(K, lower=True)
        self.alpha_ = cho_solve(self.chol_, target)
        self.log_marginal_likelihood_ = -nll - 0.5 * len(y) * np.log(2 * np.pi)
        return self

    def predict(self, X: np.ndarray, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The posterior mean of each mixture's objective (and, with ``return_std``, its standard deviation,
        noise included), in chunks so that a million candidate mixtures fit in memory."""
        X = _check_xy(X)[0]
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):  # the same sums whatever the machine's BLAS threads
            return self._predict(X, return_std)

    def _predict(self, X: np.ndarray, return_std: bool) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        means, stds = [], []
        for start in range(0, X.shape[0], 4096):
            At = (self._features(X[start:start + 4096], self.eps_) - self.x_mean_) / self.x_scale_
            Ks = self.signal_var_ * np.exp(-0.5 * _sqdist(At, self.A_, self.inv_ls2_))
            means.append(self.y_mean_ + self.y_scale_ * (Ks @ self.alpha_))
            if return_std:
                v = cho_solve(self.chol_, Ks.T)
                var = self.signal_var_ + self.noise_var_ - np.einsum("ij,ji->i", Ks, v)
                stds.append(self.y_scale_ * np.sqrt(np.clip(var, 0.0, None)))
        mean = np.concatenate(means)
        return (mean, np.concatenate(stds)) if return_std else mean

    def params(self) -> dict:
        """The chosen hyper-parameters, for mixture.yaml."""
        return {"eps": self.eps_, "length_scales": np.sqrt(1 / self.inv_ls2_).round(4).tolist(),
                "signal_var": float(self.signal_var_), "noise_var": float(self.noise_var_),
                "log_marginal_likelihood": float(self.log_marginal_likelihood_)}


def _sqdist(A: np.ndarray, B: np.ndarray, inv_ls2: np.ndarray) -> np.ndarray:
    """Squared distances between the rows of A and B, each dimension scaled by 1 / length-scale²."""
    As, Bs = A * np.sqrt(inv_ls2), B * np.sqrt(inv_ls2)
    return np.maximum((As ** 2).sum(1)[:, None] + (Bs ** 2).sum(1)[None, :] - 2 * As @ Bs.T, 0.0)


def _fit_ard(A: np.ndarray, y: np.ndarray, max_iter: int, start: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Maximise the GP log marginal likelihood over log length-scales, log signal std and log noise std
    (L-BFGS-B with the analytic gradient, from ``start`` or a fixed one: deterministic). Returns (θ, -LML)."""
    n, d = A.shape
    # squared differences per dimension as one (n·n) × d matrix, so that the kernel and the gradient are one
    # matrix-vector product each; by dimension when that matrix would be large
    stacked = n * n * d * 8 <= 256 * 2 ** 20
    if stacked:
        diffs = ((A[:, None, :] - A[None, :, :]) ** 2).reshape(n * n, d)
    else:
        diffs = [(A[:, k, None] - A[None, :, k]) ** 2 for k in range(d)]
    eye = np.eye(n)

    def nll(theta: np.ndarray) -> tuple[float, np.ndarray]:
        inv_ls2 = np.exp(-2 * theta[:d])
        signal, noise = np.exp(2 * theta[d]), np.exp(2 * theta[d + 1])
        scaled = (diffs @ inv_ls2).reshape(n, n) if stacked else sum(w * D for w, D in zip(inv_ls2, diffs))
        E = signal * np.exp(-0.5 * scaled)
        K = E + (noise + _JITTER) * eye
        try:
            chol = cho_factor(K, lower=True)
        except np.linalg.LinAlgError:
            return 1e25, np.zeros_like(theta)
        alpha = cho_solve(chol, y)
        inverse = dpotri(chol[0], lower=True)[0]  # K⁻¹ from its Cholesky factor, lower triangle
        inverse = np.tril(inverse) + np.tril(inverse, -1).T
        W = np.outer(alpha, alpha) - inverse  # d(-LML)/dθ = -½ tr(W dK/dθ)
        WE = W * E
        grad = np.empty_like(theta)
        if stacked:
            grad[:d] = -0.5 * (WE.ravel() @ diffs) * inv_ls2
        else:
            grad[:d] = [-0.5 * np.sum(WE * D) * w for w, D in zip(inv_ls2, diffs)]
        grad[d] = -np.sum(WE)
        grad[d + 1] = -np.trace(W) * noise
        return 0.5 * y @ alpha + np.log(np.diag(chol[0])).sum(), grad

    if start is None:
        start = np.r_[np.full(d, 0.5 * np.log(d)), 0.0, np.log(0.1)]
    bounds = [(-3.0, 6.0)] * d + [(-3.0, 3.0), (-7.0, 1.0)]
    result = minimize(nll, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": max_iter})
    return result.x, float(result.fun)


class MixingLawRegressor:
    """The exponential data mixing law L(r) = c + k·exp(Σ_j t_j r_j), fitted by least squares."""

    name = "mixing_law"

    def __init__(self, seed: int = 0):
        self.seed = seed  # no randomness: fixed start

    def fit(self, X: np.ndarray, y: np.ndarray) -> MixingLawRegressor:
        """Least squares from c just below the smallest objective, k spanning the rest, t = 0."""
        X, y = _check_xy(X, y)
        spread = float(np.ptp(y)) or 1.0
        c0 = float(y.min()) - 0.1 * spread
        start = np.r_[c0, np.log(float(y.mean()) - c0), np.zeros(X.shape[1])]
        result = least_squares(lambda p: self._law(p, X) - y, start, method="trf", max_nfev=2000)
        self.coef_ = result.x
        return self

    @staticmethod
    def _law(p: np.ndarray, X: np.ndarray) -> np.ndarray:
        return p[0] + np.exp(np.clip(p[1] + X @ p[2:], -50, 50))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The law's value at each mixture."""
        return self._law(self.coef_, _check_xy(X)[0])

    def params(self) -> dict:
        """c, k and t, for mixture.yaml."""
        return {"c": float(self.coef_[0]), "k": float(np.exp(self.coef_[1])), "t": self.coef_[2:].round(6).tolist()}


REGRESSORS: dict[str, Callable[..., object]] = {
    "lightgbm": LightGBMRegressor, "gp": GaussianProcessRegressor, "mixing_law": MixingLawRegressor}


def make_regressor(name: str, seed: int = 0):
    """A fresh regressor by name (one of :data:`REGRESSORS`)."""
    if name not in REGRESSORS:
        raise ConfigError(f"unknown regressor {name!r}; choose one of {', '.join(REGRESSORS)}")
    return REGRESSORS[name](seed=seed)


class BlendedMixingLaws:
    """One exponential mixing law per target set, blended by the targets' weights (Data Mixing Laws: fit each
    validation set's law, then minimise the weighted sum): ``sum_t w_t (c_t + k_t exp(t_t . r))``. Fitted on a
    matrix of per-target losses, one column per target."""

    name = "mixing_laws"

    def __init__(self, weights: Sequence[float], seed: int = 0):
        self.weights = np.asarray(weights, dtype=float)
        self.seed = seed

    def fit(self, X: np.ndarray, Y: np.ndarray) -> BlendedMixingLaws:
        Y = np.asarray(Y, dtype=float).reshape(len(X), -1)
        if Y.shape[1] != len(self.weights):
            raise ConfigError(f"mixing_laws: {Y.shape[1]} loss columns for {len(self.weights)} target weights")
        self.laws_ = [MixingLawRegressor(self.seed).fit(X, Y[:, j]) for j in range(Y.shape[1])]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return sum(w * law.predict(X) for w, law in zip(self.weights, self.laws_))

    def params(self) -> dict:
        """Each target's law (c, k, t) and weight."""
        return {"targets": [{"weight": float(w), **law.params()} for w, law in zip(self.weights, self.laws_)]}


def cross_validate(name: str, X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0,
                   make: Callable[[], object] | None = None, fit_on: np.ndarray | None = None) -> dict:
    """k-fold diagnostics of regressor ``name``: Spearman and RMSE of the out-of-fold predictions of all runs
    (pooled), and the mean of the per-fold Spearman correlations. Folds are a seeded shuffle of the runs; each
    fold's regressor chooses its own hyper-parameters on its own training runs. With few runs, folds are added (up
    to leave-one-out) until every fold trains on at least 3; the folds used are reported. ``make``: a regressor
    factory instead of ``name``'s; ``fit_on``: what it fits (per-target losses) when that is not ``y`` itself."""
    X, y = _check_xy(X, y)
    make = make or (lambda: make_regressor(name, seed))
    fit_on = y if fit_on is None else np.asarray(fit_on, dtype=float)
    n = len(y)
    if n < 4:
        raise ConfigError(f"cross-validation needs at least 4 runs, got {n}")
    folds = min(folds, n)
    while folds < n and n - -(-n // folds) < 3:  # every fold's regressor fits on at least 3 runs
        folds += 1
    order = np.random.default_rng(seed).permutation(n)
    predicted = np.empty(n)
    per_fold = []
    for held in np.array_split(order, folds):
        train = np.setdiff1d(order, held)
        predicted[held] = make().fit(X[train], fit_on[train]).predict(X[held])
        if len(held) > 2:
            per_fold.append(_spearman(predicted[held], y[held]))
    return {"folds": folds, "spearman": _spearman(predicted, y), "rmse": float(np.sqrt(np.mean((predicted - y) ** 2))),
            "fold_spearman_mean": float(np.nanmean(per_fold)) if per_fold else float("nan"),
            "predicted": predicted}


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation; 0.0 when either side is constant (no ranking to compare)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b)[0])
