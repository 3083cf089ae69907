"""Honest error bars for "does this selection beat random?": bootstrap, exact small-n and Beta-posterior intervals.

Every interval here is deterministic given ``seed``. A comparison is only called a win when its whole interval
clears the margin (:func:`verdict`); anything that overlaps the noise is reported as ``"inconclusive"``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import integrate, stats

from thresher.errors import ConfigError

__all__ = [
    "Interval",
    "beta_posterior",
    "bootstrap_ci",
    "compare_to_baseline",
    "paired_difference",
    "prob_greater",
    "verdict",
]

_BOOT_METHODS = ("percentile", "bca")
_SMALL_N_METHODS = ("sign-flip", "t")
_MAX_CELLS = 4_000_000  # bound on the resample matrices built at once, so large samples do not exhaust memory
_MAX_EXACT_PAIRS = 20  # 2**20 sign patterns is the most the exact sign-flip distribution enumerates


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided interval at ``level``, the method that produced it and the sample size."""

    estimate: float
    low: float
    high: float
    level: float
    method: str
    n: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for tables and JSON reports); infinite bounds stay ``inf`` to mean "no bound"."""
        return asdict(self)


def _check_level(level: float) -> float:
    """Reject a confidence level outside the open interval (0, 1)."""
    try:
        level = float(level)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"level must be a number in (0, 1), got {level!r}") from exc
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    return level


def _as_sample(values: Any, name: str, min_n: int = 2) -> np.ndarray:
    """A 1-D float array of finite values with at least ``min_n`` entries (fewer says nothing about spread)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a sequence of numbers") from exc
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size < min_n:
        raise ConfigError(f"{name} needs at least {min_n} values for an interval, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} contains NaN or infinite values")
    return arr


def _check_n_boot(n_boot: int) -> int:
    """Reject bootstrap sizes too small for the tail quantiles of a 95% interval to mean anything."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ConfigError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    return int(n_boot)


def _apply_rows(statistic: Callable[..., Any], mat: np.ndarray) -> np.ndarray:
    """``statistic`` of each row: vectorised via ``axis=1`` when supported, else one row at a time."""
    try:
        out = np.asarray(statistic(mat, axis=1), dtype=np.float64)
    except TypeError:
        out = np.array([float(statistic(row)) for row in mat], dtype=np.float64)
    if out.shape != (mat.shape[0],):
        raise ConfigError("statistic must reduce a 1-D sample to one number (and accept axis=1 to be vectorised)")
    return out


def _bootstrap_distribution(x: np.ndarray, statistic: Callable[..., Any], n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` resampled statistics, drawn in memory-bounded chunks from one seeded generator."""
    rng = np.random.default_rng(seed)
    n = x.size
    chunk = max(1, _MAX_CELLS // n)
    parts = []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        parts.append(_apply_rows(statistic, x[rng.integers(0, n, size=(rows, n))]))
    return np.concatenate(parts)


def _jackknife(x: np.ndarray, statistic: Callable[..., Any]) -> np.ndarray:
    """Leave-one-out statistics (for the BCa acceleration), built in memory-bounded chunks."""
    n = x.size
    cols = np.arange(n - 1)
    chunk = max(1, _MAX_CELLS // max(n - 1, 1))
    parts = []
    for start in range(0, n, chunk):
        left_out = np.arange(start, min(start + chunk, n))[:, None]
        parts.append(_apply_rows(statistic, x[cols[None, :] + (cols[None, :] >= left_out)]))
    return np.concatenate(parts)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[..., Any] = np.mean,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    method: str = "percentile",
) -> Interval:
    """Nonparametric bootstrap interval for ``statistic`` of one sample, percentile or BCa.

    BCa corrects the percentile interval for bias and skew (at the cost of a jackknife pass). A sample with no
    spread gives a zero-width interval at the estimate. ``statistic`` should accept ``axis=1`` to be vectorised.
    """
    level = _check_level(level)
    n_boot = _check_n_boot(n_boot)
    if method not in _BOOT_METHODS:
        raise ConfigError(f"method must be one of {_BOOT_METHODS}, got {method!r}")
    x = _as_sample(values, "values")
    estimate = float(np.asarray(statistic(x), dtype=np.float64))
    boot = _bootstrap_distribution(x, statistic, n_boot, seed)
    alpha = 1.0 - level
    if np.ptp(boot) == 0.0:
        return Interval(estimate, float(boot[0]), float(boot[0]), level, method, int(x.size))
    probs = np.array([alpha / 2.0, 1.0 - alpha / 2.0])
    if method == "bca":
        below = (np.count_nonzero(boot < estimate) + 0.5 * np.count_nonzero(boot == estimate)) / n_boot
        z0 = stats.norm.ppf(np.clip(below, 1.0 / (n_boot + 1), n_boot / (n_boot + 1)))
        jack = _jackknife(x, statistic)
        dev = jack.mean() - jack
        denom = 6.0 * np.sum(dev**2) ** 1.5
        accel = float(np.sum(dev**3) / denom) if denom > 0 else 0.0
        z = stats.norm.ppf(probs)
        probs = stats.norm.cdf(z0 + (z0 + z) / (1.0 - accel * (z0 + z)))
    low, high = np.quantile(boot, probs)
    return Interval(estimate, float(low), float(high), level, method, int(x.size))


def _sign_flip_interval(d: np.ndarray, level: float) -> tuple[float, float]:
    """Exact interval for the mean shift by inverting the sign-flip test over all 2**n sign patterns.

    Flipping the signs of subset F changes ``sum(d - delta)`` by ``-2 * sum_F(d - delta)``, so the test of shift
    ``delta`` rejects on the low side iff fewer than ``k = floor(alpha/2 * 2**n)`` non-empty subset means are
    <= delta. Hence the bounds are the k-th smallest and k-th largest subset means; k = 0 means no finite bound.
    """
    n = d.size
    k = int(np.floor((1.0 - level) / 2.0 * 2**n + 1e-9))
    if k < 1:
        return -np.inf, np.inf
    masks = ((np.arange(1, 2**n)[:, None] >> np.arange(n)[None, :]) & 1).astype(np.float64)
    means = np.sort(masks @ d / masks.sum(axis=1))
    return float(means[k - 1]), float(means[-k])


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
    small_n: str = "sign-flip",
    small_n_threshold: int = 10,
) -> Interval:
    """Interval for the mean of ``a - b`` over paired measurements (same seeds/items), e.g. method vs random.

    With at least ``small_n_threshold`` pairs: BCa bootstrap of the mean difference. With fewer, the CLT is not
    trusted and the default is the exact sign-flip (permutation) interval: it assumes only that the differences are
    symmetric about their mean (true under "no difference", since method and baseline are exchangeable within a
    pair), not that they are normal. It is honest about how little a few seeds can show: with n pairs the smallest
    two-sided p-value is 2/2**n, so at 95% it is unbounded for n <= 5 (no five-seed run is ever a win at 95%) and is
    [min(d), max(d)] for n = 6. ``small_n="t"`` gives the Student-t interval instead, which is narrower only because
    it additionally assumes normal differences.
    """
    level = _check_level(level)
    n_boot = _check_n_boot(n_boot)
    if small_n not in _SMALL_N_METHODS:
        raise ConfigError(f"small_n must be one of {_SMALL_N_METHODS}, got {small_n!r}")
    if isinstance(small_n_threshold, bool) or not isinstance(small_n_threshold, (int, np.integer)):
        raise ConfigError(f"small_n_threshold must be an integer, got {small_n_threshold!r}")
    if small_n == "sign-flip" and small_n_threshold > _MAX_EXACT_PAIRS + 1:
        raise ConfigError(f"small_n_threshold above {_MAX_EXACT_PAIRS + 1} makes the exact sign-flip too costly")
    x = _as_sample(a, "a")
    y = _as_sample(b, "b")
    if x.size != y.size:
        raise ConfigError(f"paired samples must have the same length, got {x.size} and {y.size}")
    d = x - y
    n = int(d.size)
    if n >= small_n_threshold:
        boot = bootstrap_ci(d, np.mean, level=level, n_boot=n_boot, seed=seed, method="bca")
        return Interval(boot.estimate, boot.low, boot.high, level, "bootstrap-bca", n)
    estimate = float(d.mean())
    if small_n == "t":
        half = stats.t.ppf(0.5 + level / 2.0, df=n - 1) * d.std(ddof=1) / np.sqrt(n)
        return Interval(estimate, float(estimate - half), float(estimate + half), level, "t", n)
    low, high = _sign_flip_interval(d, level)
    return Interval(estimate, low, high, level, "sign-flip", n)


def _check_counts(successes: int, trials: int) -> tuple[int, int]:
    """Reject counts that are not integers with 0 <= successes <= trials and trials >= 0."""
    for name, v in (("successes", successes), ("trials", trials)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ConfigError(f"{name} must be an integer, got {v!r}")
    if trials < 0 or not 0 <= successes <= trials:
        raise ConfigError(f"need 0 <= successes <= trials, got successes={successes}, trials={trials}")
    return int(successes), int(trials)


def _check_prior(prior: tuple[float, float]) -> tuple[float, float]:
    """Reject a Beta prior whose two parameters are not both positive."""
    try:
        a0, b0 = (float(p) for p in prior)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"prior must be a pair (alpha, beta), got {prior!r}") from exc
    if not (a0 > 0 and b0 > 0 and np.isfinite(a0) and np.isfinite(b0)):
        raise ConfigError(f"prior parameters must be positive and finite, got {prior!r}")
    return a0, b0


def beta_posterior(
    successes: int, trials: int, level: float = 0.95, prior: tuple[float, float] = (1.0, 1.0)
) -> Interval:
    """Credible interval for a proportion (e.g. target-domain precision) from its Beta posterior; estimate = mean.

    Equal-tailed in general; when the posterior density is monotone (mode at 0 or 1, e.g. 0 successes under the
    uniform prior) the highest-density interval is used instead, which runs to that boundary: 0/10 gives [0, q].
    """
    level = _check_level(level)
    s, n = _check_counts(successes, trials)
    a0, b0 = _check_prior(prior)
    a, b = a0 + s, b0 + n - s
    dist = stats.beta(a, b)
    if a <= 1.0 < b:
        low, high = 0.0, float(dist.ppf(level))
    elif b <= 1.0 < a:
        low, high = float(dist.ppf(1.0 - level)), 1.0
    else:
        low, high = (float(q) for q in dist.ppf([(1.0 - level) / 2.0, (1.0 + level) / 2.0]))
    return Interval(float(dist.mean()), low, high, level, "beta", n)


def prob_greater(
    s1: int, n1: int, s2: int, n2: int, prior: tuple[float, float] = (1.0, 1.0)
) -> float:
    """Posterior P(p1 > p2) for two independent Beta-binomial proportions, by numeric integration.

    Integrates ``F2(Q1(u))`` over u in (0, 1) (Q1 = posterior-1 quantile, F2 = posterior-2 CDF): a bounded integrand
    even where the Beta densities are singular, and deterministic (no Monte Carlo noise).
    """
    s1, n1 = _check_counts(s1, n1)
    s2, n2 = _check_counts(s2, n2)
    a0, b0 = _check_prior(prior)
    d1 = stats.beta(a0 + s1, b0 + n1 - s1)
    d2 = stats.beta(a0 + s2, b0 + n2 - s2)
    # Break the range at posterior-1 quantiles of posterior-2's bulk so quad sees where the integrand changes.
    pts = np.clip(d1.cdf(d2.ppf([0.001, 0.5, 0.999])), 1e-12, 1 - 1e-12)
    value, _ = integrate.quad(lambda u: d2.cdf(d1.ppf(u)), 0.0, 1.0, points=sorted(set(pts.tolist())), limit=200,
                              epsabs=1e-10)
    return float(min(max(value, 0.0), 1.0))


def verdict(interval_of_difference: Interval | tuple[float, float], margin: float = 0.0) -> str:
    """``"better"`` only if the whole interval is above ``margin``, ``"worse"`` only if wholly below ``-margin``.

    Anything touching or straddling the band [-margin, margin] is ``"inconclusive"``: no win is claimed in the noise.
    """
    if isinstance(interval_of_difference, Interval):
        low, high = interval_of_difference.low, interval_of_difference.high
    else:
        try:
            low, high = (float(v) for v in interval_of_difference)
        except (TypeError, ValueError) as exc:
            raise ConfigError("verdict needs an Interval or a (low, high) pair") from exc
    if np.isnan(low) or np.isnan(high) or low > high:
        raise ConfigError(f"invalid interval ({low}, {high})")
    if not (np.isfinite(margin) and margin >= 0):
        raise ConfigError(f"margin must be finite and >= 0, got {margin!r}")
    if low > margin:
        return "better"
    if high < -margin:
        return "worse"
    return "inconclusive"


def compare_to_baseline(
    method_values: Sequence[float] | np.ndarray,
    baseline_values: Sequence[float] | np.ndarray,
    higher_is_better: bool = True,
    level: float = 0.95,
    seed: int = 0,
    margin: float = 0.0,
    n_boot: int = 2000,
) -> dict[str, Any]:
    """Tidy row for "does this method beat the baseline?" from paired per-seed (or per-item) metrics.

    The difference is oriented so positive means improvement (``method - baseline``, or the reverse when lower is
    better), so ``estimate``/``low``/``high`` read the same way for every metric.
    """
    x = _as_sample(method_values, "method_values")
    y = _as_sample(baseline_values, "baseline_values")
    interval = paired_difference(x, y, level=level, n_boot=n_boot, seed=seed) if higher_is_better else \
        paired_difference(y, x, level=level, n_boot=n_boot, seed=seed)
    return {
        "estimate": interval.estimate,
        "low": interval.low,
        "high": interval.high,
        "level": interval.level,
        "verdict": verdict(interval, margin),
        "margin": float(margin),
        "n": interval.n,
        "method": interval.method,
        "higher_is_better": bool(higher_is_better),
    }
