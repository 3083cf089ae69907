"""Budgets and the four basic selectors."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.errors import ConfigError
from thresher.selectors import Budget, make_selector


@pytest.mark.parametrize("spec,kind,value", [
    ("5000", "count", 5000), (5000, "count", 5000), ("10k", "count", 10_000), ("5%", "fraction", 0.05),
    ("0.05", "fraction", 0.05), (0.25, "fraction", 0.25), ("2M tokens", "tokens", 2e6),
    ("1.5e6 tokens", "tokens", 1.5e6), ("500k tok", "tokens", 5e5)])
def test_budget_parsing(spec, kind, value):
    b = Budget.parse(spec)
    assert (b.kind, b.value) == (kind, pytest.approx(value))


@pytest.mark.parametrize("spec", ["", "-3", "0", "120%", "five", "3.5", "5% tokens"])
def test_bad_budgets_are_rejected(spec):
    with pytest.raises(ConfigError):
        Budget.parse(spec)


def test_fraction_rounds_and_token_budget_fits():
    assert Budget.parse("5%").records(93_695) == 4685
    order = np.array([3, 1, 0, 2])
    tokens = np.array([10, 20, 30, 40])
    np.testing.assert_array_equal(Budget.parse("65 tokens").take(order, 4, tokens), [3, 1])
    np.testing.assert_array_equal(Budget.parse("60 tokens").take(order, 4, tokens), [3, 1])
    np.testing.assert_array_equal(Budget.parse("59 tokens").take(order, 4, tokens), [3])


def test_topk_and_threshold_are_deterministic_and_ordered():
    scores = np.array([0.1, 5.0, np.nan, 3.0, 3.0, -1.0])
    ones = np.ones(6, dtype=np.int64)
    np.testing.assert_array_equal(make_selector("topk").select(scores, Budget.parse(3), ones, 0), [1, 3, 4])
    np.testing.assert_array_equal(make_selector("threshold", threshold=0.0).select(scores, None, ones, 0),
                                  [1, 3, 4, 0])
    # a budget caps a threshold selection; asking for more than passes is not an error
    np.testing.assert_array_equal(
        make_selector("threshold", threshold=0.0).select(scores, Budget.parse(10), ones, 0), [1, 3, 4, 0])


def test_gumbel_samples_in_proportion_to_exp_score():
    scores = np.log(np.array([1.0, 2.0, 4.0, 8.0]))
    ones = np.ones(4, dtype=np.int64)
    first = np.array([make_selector("gumbel").select(scores, Budget.parse(1), ones, s)[0] for s in range(4000)])
    freq = np.bincount(first, minlength=4) / len(first)
    np.testing.assert_allclose(freq, np.array([1, 2, 4, 8]) / 15, atol=0.03)
    hot = make_selector("gumbel", temperature=0.05)
    assert all(hot.select(scores, Budget.parse(1), ones, s)[0] == 3 for s in range(50))


def test_same_seed_same_selection_other_seed_other_selection():
    scores = np.random.default_rng(1).normal(size=1000)
    tok = np.ones(1000, dtype=np.int64)
    for name in ("gumbel", "random"):
        sel = make_selector(name)
        a = sel.select(scores, Budget.parse(50), tok, 7)
        np.testing.assert_array_equal(a, sel.select(scores, Budget.parse(50), tok, 7))
        assert not np.array_equal(a, sel.select(scores, Budget.parse(50), tok, 8))
        assert len(set(a.tolist())) == 50


def test_random_is_uniform():
    tok = np.ones(10, dtype=np.int64)
    picks = np.concatenate([make_selector("random").select(None, Budget.parse(3), tok, s) for s in range(3000)])
    np.testing.assert_allclose(np.bincount(picks) / 3000, 0.3, atol=0.03)


def test_selector_parameter_validation():
    with pytest.raises(ConfigError, match="unknown selector"):
        make_selector("best")
    with pytest.raises(ConfigError, match="needs a threshold"):
        make_selector("threshold")
    with pytest.raises(ConfigError, match="does not take"):
        make_selector("topk", temperature=2.0)
    with pytest.raises(ConfigError, match="needs scores"):
        make_selector("topk").select(None, Budget.parse(1), np.ones(3, dtype=np.int64), 0)
