"""RegMix's search of the simplex: sample many mixtures, predict each, average the best few.

Candidates are drawn from a Dirichlet centred on a prior mixture (RegMix uses the natural token distribution,
Dirichlet(prior × strength) with strength 1; without token counts the mean of the runs' mixtures stands in for it);
the ``top_k`` with the lowest predicted objective are averaged, which RegMix reports as the answer because the
average is steadier than the single best sample. An optional per-group cap (e.g. from an epoch limit) rejects
candidates that exceed it, as RegMix's sampler bounds each domain's weight by its available tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError


@dataclass(frozen=True)
class SearchResult:
    """The averaged top-k mixture, its predicted objective, and what the search looked at."""

    weights: np.ndarray
    predicted: float
    top_k_predicted: np.ndarray
    n_samples: int
    top_k: int
    strength: float
    prior: np.ndarray


def search_mixture(regressor, prior: np.ndarray, *, n_samples: int = 100_000, top_k: int = 100,
                   strength: float = 1.0, seed: int = 0, max_weight: np.ndarray | None = None,
                   chunk: int = 50_000) -> SearchResult:
    """Sample ``n_samples`` mixtures ~ Dirichlet(prior × strength), predict them with the fitted ``regressor``,
    and average the ``top_k`` lowest; seeded, and the same for any ``chunk`` size."""
    prior = np.asarray(prior, dtype=float)
    if prior.ndim != 1 or np.any(prior < 0) or prior.sum() <= 0:
        raise ConfigError("the search's prior mixture must be non-negative weights with a positive sum")
    if n_samples < 1 or not 1 <= top_k <= n_samples:
        raise ConfigError(f"search: need 1 <= top_k ({top_k}) <= n_samples ({n_samples})")
    if strength <= 0:
        raise ConfigError(f"search: Dirichlet strength must be > 0, got {strength}")
    prior = prior / prior.sum()
    alpha = np.clip(prior * strength, 1e-6, None)  # a group with prior 0 stays nearly empty but samplable
    rng = np.random.default_rng(seed)
    samples = rng.dirichlet(alpha, size=n_samples)
    if max_weight is not None:
        allowed = np.all(samples <= np.asarray(max_weight, dtype=float)[None, :], axis=1)
        if not allowed.any():
            raise ConfigError("search: no sampled mixture respects the per-group caps; raise the caps or n_samples")
        samples = samples[allowed]
    predicted = np.concatenate([regressor.predict(samples[i:i + chunk]) for i in range(0, len(samples), chunk)])
    k = min(top_k, len(samples))
    best = np.argsort(predicted, kind="stable")[:k]
    weights = samples[best].mean(axis=0)
    weights = weights / weights.sum()
    return SearchResult(weights=weights, predicted=float(regressor.predict(weights[None, :])[0]),
                        top_k_predicted=predicted[best], n_samples=len(samples), top_k=k, strength=strength,
                        prior=prior)
