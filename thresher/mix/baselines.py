"""Mixture weights that need no proxy runs, from the number of tokens in each group.

* ``proportional``: each group's share of the tokens (the natural mixture).
* ``uniform``: the same weight for every group that has tokens.
* ``temperature``: the multilingual-training convention p_g ∝ (n_g / N)^(1/τ) (mBERT, XLM-R, mT5): τ = 1 is
  proportional, τ → ∞ tends to uniform, τ < 1 sharpens toward the biggest groups.
* ``unimax`` (Chung et al. 2023, "UniMax: Fairer and more effective language sampling"): a uniform allocation of
  the token budget, except that no group is repeated more than ``max_epochs`` times; groups are visited from the
  smallest up, and what a capped group cannot take is shared among the groups not yet visited.

Each returns weights that sum to 1 in group order; :func:`expected_tokens` turns weights into tokens per group for
a budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from thresher.errors import ConfigError

BASELINES = ("proportional", "uniform", "temperature", "unimax")


def _counts(tokens: Sequence[float]) -> np.ndarray:
    """Token counts as floats, validated: finite, non-negative, at least one positive."""
    counts = np.asarray(tokens, dtype=float)
    if counts.ndim != 1 or counts.size == 0:
        raise ConfigError("token counts: need one count per group, and at least one group")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ConfigError(f"token counts must be finite and >= 0, got {counts.tolist()}")
    if counts.sum() <= 0:
        raise ConfigError("token counts: every group is empty, so there is nothing to mix")
    return counts


def proportional(tokens: Sequence[float]) -> np.ndarray:
    """Each group's share of all tokens."""
    counts = _counts(tokens)
    return counts / counts.sum()


def uniform(tokens: Sequence[float]) -> np.ndarray:
    """Equal weight for every group with tokens (an empty group cannot be sampled, so it gets 0)."""
    present = (_counts(tokens) > 0).astype(float)
    return present / present.sum()


def temperature(tokens: Sequence[float], tau: float) -> np.ndarray:
    """p_g ∝ (n_g / N)^(1/τ): τ = 1 proportional, larger τ flatter (toward uniform), τ < 1 sharper."""
    if not np.isfinite(tau) or tau <= 0:
        raise ConfigError(f"temperature tau must be a number > 0 (1 = proportional, larger = flatter), got {tau}")
    share = proportional(tokens)
    # in log space so that large tau and tiny shares neither underflow nor overflow; empty groups stay at 0
    logs = np.full(share.shape, -np.inf)
    logs[share > 0] = np.log(share[share > 0]) / tau
    weights = np.exp(logs - logs.max())
    return weights / weights.sum()


def unimax(tokens: Sequence[float], budget: float, max_epochs: float = 1.0) -> np.ndarray:
    """UniMax: uniform over groups, each capped at ``max_epochs`` passes over its tokens, leftover redistributed.

    Groups are processed from the smallest up; each takes min(remaining budget / groups left, max_epochs × its
    tokens). When the budget exceeds what the caps allow, every group is at its cap and the weights are the caps'
    shares (the budget cannot be spent without more repetition: :func:`expected_tokens` then reports less than it).
    """
    counts = _counts(tokens)
    if not np.isfinite(budget) or budget <= 0:
        raise ConfigError(f"unimax needs a token budget > 0, got {budget}")
    if not np.isfinite(max_epochs) or max_epochs <= 0:
        raise ConfigError(f"unimax max_epochs must be > 0 (passes over a group's tokens), got {max_epochs}")
    allocation = np.zeros_like(counts)
    order = [int(i) for i in np.argsort(counts, kind="stable") if counts[i] > 0]
    remaining = float(budget)
    for position, group in enumerate(order):
        share = remaining / (len(order) - position)
        allocation[group] = min(share, counts[group] * max_epochs)
        remaining -= allocation[group]
    return allocation / allocation.sum()


def baseline_weights(method: str, tokens: Sequence[float], *, tau: float | None = None,
                     budget: float | None = None, max_epochs: float = 1.0) -> np.ndarray:
    """The weights of baseline ``method`` (one of :data:`BASELINES`) for groups with ``tokens`` tokens each."""
    if method == "proportional":
        return proportional(tokens)
    if method == "uniform":
        return uniform(tokens)
    if method == "temperature":
        if tau is None:
            raise ConfigError("method temperature needs tau (e.g. --tau 3; 1 = proportional, larger = flatter)")
        return temperature(tokens, tau)
    if method == "unimax":
        if budget is None:
            raise ConfigError("method unimax needs a token budget (e.g. --budget '50M tokens')")
        return unimax(tokens, budget, max_epochs)
    raise ConfigError(f"unknown mixing method {method!r}; choose one of {', '.join(BASELINES)}")


def expected_tokens(weights: Sequence[float], budget: float, tokens: Sequence[float] | None = None,
                    max_epochs: float | None = None) -> np.ndarray:
    """Tokens per group when ``budget`` tokens are drawn with ``weights``; with ``tokens`` and ``max_epochs``, each
    group is capped at ``max_epochs`` passes over its tokens (so the total may fall short of the budget)."""
    drawn = np.asarray(weights, dtype=float) * float(budget)
    if tokens is not None and max_epochs is not None:
        drawn = np.minimum(drawn, np.asarray(tokens, dtype=float) * max_epochs)
    return drawn
