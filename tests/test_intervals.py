"""Tests for thresher.evaluate.intervals: coverage, exactness, verdicts that never claim wins in the noise."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from thresher.errors import ConfigError
from thresher.evaluate.intervals import (
    Interval,
    beta_posterior,
    bootstrap_ci,
    compare_to_baseline,
    paired_difference,
    prob_greater,
    verdict,
)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_coverage_near_nominal(method):
    """About 95% of intervals from 300 normal samples of size 40 contain the true mean."""
    rng = np.random.default_rng(123)
    hits = 0
    for i in range(300):
        x = rng.normal(loc=2.0, scale=3.0, size=40)
        ci = bootstrap_ci(x, level=0.95, n_boot=1000, seed=i, method=method)
        assert ci.low <= ci.estimate <= ci.high
        hits += ci.low <= 2.0 <= ci.high
    assert 0.90 <= hits / 300 <= 0.99


def test_bootstrap_non_vectorised_statistic_and_bca_skew():
    """A statistic without ``axis`` still works; BCa shifts the interval right for a right-skewed sample."""
    x = np.random.default_rng(5).exponential(size=60)
    slow = bootstrap_ci(x, statistic=lambda v: float(np.median(v)), n_boot=300, seed=1)
    fast = bootstrap_ci(x, statistic=np.median, n_boot=300, seed=1)
    assert (slow.low, slow.high) == pytest.approx((fast.low, fast.high))
    pct = bootstrap_ci(x, n_boot=4000, seed=2)
    bca = bootstrap_ci(x, n_boot=4000, seed=2, method="bca")
    assert bca.high > pct.high and bca.low > pct.low


def test_bootstrap_deterministic_and_constant_sample():
    """Same seed, same interval; different seed, different interval; a constant sample has zero width."""
    x = np.random.default_rng(0).normal(size=30)
    assert bootstrap_ci(x, seed=7, method="bca") == bootstrap_ci(x, seed=7, method="bca")
    assert bootstrap_ci(x, seed=7) != bootstrap_ci(x, seed=8)
    flat = bootstrap_ci([3.0] * 12, method="bca")
    assert (flat.low, flat.estimate, flat.high) == (3.0, 3.0, 3.0)


def test_beta_posterior_zero_successes():
    """0/10 under the uniform prior: interval from 0 to the 95% posterior quantile, which is below 0.3."""
    ci = beta_posterior(0, 10)
    assert ci.low == 0.0
    assert ci.high < 0.3
    assert ci.high == pytest.approx(stats.beta.ppf(0.95, 1, 11))
    assert ci.estimate == pytest.approx(1 / 12)
    full = beta_posterior(10, 10)
    assert full.high == 1.0 and full.low == pytest.approx(stats.beta.ppf(0.05, 11, 1))


def test_beta_posterior_equal_tailed_interior():
    """Away from the boundary the interval is equal-tailed and matches scipy's Beta quantiles."""
    ci = beta_posterior(7, 20, level=0.9, prior=(0.5, 0.5))
    assert (ci.low, ci.high) == pytest.approx(tuple(stats.beta.ppf([0.05, 0.95], 7.5, 13.5)))
    assert ci.n == 20 and ci.method == "beta"


def test_prob_greater_matches_monte_carlo_and_symmetry():
    """Numeric P(p1 > p2) agrees with a large Monte Carlo draw, is 0.5 for equal data, and complements."""
    rng = np.random.default_rng(0)
    p = prob_greater(30, 50, 20, 50)
    mc = np.mean(rng.beta(31, 21, 400_000) > rng.beta(21, 31, 400_000))
    assert p == pytest.approx(mc, abs=0.005)
    assert prob_greater(4, 9, 4, 9) == pytest.approx(0.5, abs=1e-6)
    assert prob_greater(0, 3, 2, 40, prior=(0.5, 0.5)) + prob_greater(2, 40, 0, 3, prior=(0.5, 0.5)) == \
        pytest.approx(1.0, abs=1e-6)
    assert prob_greater(900, 1000, 850, 1000) > 0.99


def test_identical_inputs_inconclusive():
    """Method equal to the baseline: interval contains 0 and no verdict but "inconclusive"."""
    for n in (3, 8, 25):
        a = np.random.default_rng(n).normal(size=n)
        ci = paired_difference(a, a.copy())
        assert ci.low <= 0.0 <= ci.high
        assert verdict(ci) == "inconclusive"
        assert compare_to_baseline(a, a)["verdict"] == "inconclusive"


@pytest.mark.parametrize("n", [8, 30])
def test_clear_shift_better_and_worse(n):
    """A clear improvement is "better"; flipped, "worse"; for a lower-is-better metric the direction swaps."""
    rng = np.random.default_rng(n)
    base = rng.normal(size=n)
    method = base + 1.0 + 0.1 * rng.normal(size=n)
    assert compare_to_baseline(method, base)["verdict"] == "better"
    assert compare_to_baseline(base, method)["verdict"] == "worse"
    row = compare_to_baseline(method, base, higher_is_better=False)
    assert row["verdict"] == "worse" and row["estimate"] < 0
    assert compare_to_baseline(base, method, higher_is_better=False)["verdict"] == "better"
    assert row["method"] == ("sign-flip" if n < 10 else "bootstrap-bca") and row["n"] == n
    json.dumps(row)


def test_margin_blocks_small_wins():
    """A win smaller than the margin is not called a win."""
    ci = Interval(0.05, 0.02, 0.08, 0.95, "t", 30)
    assert verdict(ci) == "better"
    assert verdict(ci, margin=0.03) == "inconclusive"
    assert verdict((-0.08, -0.02), margin=0.01) == "worse"
    assert verdict((0.0, 1.0)) == "inconclusive"


@pytest.mark.parametrize("small_n", ["sign-flip", "t"])
def test_three_seeds_mixed_signs_never_better(small_n):
    """With 3 seeds and mixed-sign differences no method claims a win, however large the positive ones are."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        d = np.abs(rng.lognormal(sigma=2.0, size=3))
        d[rng.integers(3)] *= -rng.uniform(0.0001, 1.0)
        ci = paired_difference(d, np.zeros(3), small_n=small_n)
        assert verdict(ci) != "better"


def test_sign_flip_unbounded_for_five_pairs_and_exact_for_six():
    """At 95% the exact test cannot reject with 5 pairs (interval unbounded) and gives [min, max] with 6."""
    ci5 = paired_difference([1, 2, 3, 4, 5], [0] * 5)
    assert (ci5.low, ci5.high) == (-np.inf, np.inf)
    ci6 = paired_difference([1, 2, 3, 4, 5, 6], [0] * 6)
    assert (ci6.low, ci6.high) == (1.0, 6.0) and verdict(ci6) == "better"


def test_sign_flip_interval_matches_brute_force_test_inversion():
    """The closed-form bounds equal the set of shifts the enumerated sign-flip test does not reject."""
    d = np.array([0.3, -0.1, 0.8, 0.5, 1.2, 0.05, 0.6, -0.4])
    ci = paired_difference(d, np.zeros_like(d), level=0.9)
    signs = 1 - 2 * ((np.arange(2**8)[:, None] >> np.arange(8)[None, :]) & 1)
    grid = np.linspace(-1.0, 1.5, 2001)
    accepted = []
    for delta in grid:
        t_s = signs @ (d - delta)
        t_obs = np.sum(d - delta)
        p_up, p_down = np.mean(t_s >= t_obs - 1e-12), np.mean(t_s <= t_obs + 1e-12)
        accepted.append(p_up > 0.05 and p_down > 0.05)
    accepted = grid[np.array(accepted)]
    step = grid[1] - grid[0]
    assert accepted.min() == pytest.approx(ci.low, abs=step)
    assert accepted.max() == pytest.approx(ci.high, abs=step)


def test_paired_deterministic():
    """The same seed reproduces the bootstrap paired interval exactly."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=40), rng.normal(size=40)
    assert paired_difference(a, b, seed=4) == paired_difference(a, b, seed=4)
    assert compare_to_baseline(a, b, seed=4) == compare_to_baseline(a, b, seed=4)


@pytest.mark.parametrize(
    "call",
    [
        lambda: bootstrap_ci([]),
        lambda: bootstrap_ci([1.0]),
        lambda: bootstrap_ci([1.0, np.nan, 2.0]),
        lambda: bootstrap_ci([1.0, 2.0], level=1.0),
        lambda: bootstrap_ci([1.0, 2.0], level=0.0),
        lambda: bootstrap_ci([1.0, 2.0], level=1.5),
        lambda: bootstrap_ci([1.0, 2.0], method="basic"),
        lambda: bootstrap_ci([1.0, 2.0], n_boot=10),
        lambda: paired_difference([1.0, 2.0, 3.0], [1.0, 2.0]),
        lambda: paired_difference([], []),
        lambda: paired_difference([1.0, 2.0], [0.0, 1.0], level=-0.1),
        lambda: paired_difference([1.0, 2.0], [0.0, 1.0], small_n="z"),
        lambda: compare_to_baseline([1.0, 2.0], [1.0]),
        lambda: beta_posterior(11, 10),
        lambda: beta_posterior(-1, 10),
        lambda: beta_posterior(1, 10, level=1.2),
        lambda: beta_posterior(1, 10, prior=(0, 1)),
        lambda: prob_greater(1, 2, 3, 2),
        lambda: verdict((1.0, 0.0)),
        lambda: verdict((0.0, 1.0), margin=-0.1),
    ],
)
def test_bad_input_raises_config_error(call):
    """Empty, mismatched, non-finite or out-of-range input is a ConfigError, not a silent number."""
    with pytest.raises(ConfigError):
        call()
