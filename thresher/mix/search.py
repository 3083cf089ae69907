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


#: RegMix's run sampler (mixture_config/synthesize_mixture.py): the prior tempered by p^0.5, Dirichlet strengths
#: log-spaced over [0.1, 5] (15 of them, one drawn per sample), weights under ``minimum`` zeroed.
RUN_TEMPERATURE, RUN_STRENGTHS, RUN_MINIMUM, RUN_MULTIPLIER = 0.5, (0.1, 5.0, 15), 1e-3, 100


def sample_run_mixtures(prior: np.ndarray, n: int, *, seed: int = 0, max_weight: np.ndarray | None = None
                        ) -> np.ndarray:
    """``n`` mixtures to train proxies on, as RegMix samples them: candidates ~ Dirichlet(prior^0.5 × strength),
    strength drawn from 15 log-spaced values in [0.1, 5] (small: near a few groups, large: near the prior), those
    over a group's ``max_weight`` rejected, weights below 1e-3 zeroed, repeats dropped; ``n`` of them drawn at
    random. Row 0 is the prior itself (the natural mixture, a reference every search can be compared with).
    Seeded; rows sum to 1."""
    prior = np.asarray(prior, dtype=float)
    if prior.ndim != 1 or np.any(prior < 0) or prior.sum() <= 0:
        raise ConfigError("the proxy runs' prior mixture must be non-negative weights with a positive sum")
    prior = prior / prior.sum()
    cap = np.ones_like(prior) if max_weight is None else np.minimum(np.asarray(max_weight, dtype=float), 1.0)
    if np.any(prior > cap + 1e-12):
        raise ConfigError("the natural mixture itself exceeds a group's cap: raise --max-epochs or lower the "
                          "proxy token budget")
    live = prior > 0  # a group with no tokens cannot be drawn from: its weight stays 0
    tempered = prior[live] ** RUN_TEMPERATURE
    tempered /= tempered.sum()
    rng = np.random.default_rng(seed)
    strengths = np.logspace(np.log10(RUN_STRENGTHS[0]), np.log10(RUN_STRENGTHS[1]), RUN_STRENGTHS[2])
    chosen = strengths[rng.integers(0, len(strengths), size=n * RUN_MULTIPLIER)]
    gammas = rng.standard_gamma(np.clip(tempered[None, :] * chosen[:, None], 1e-6, None))
    gammas = gammas[gammas.sum(axis=1) > 0]  # with tiny strengths every gamma of a row can underflow to 0
    draws = np.zeros((len(gammas), len(prior)))
    draws[:, live] = gammas / gammas.sum(axis=1, keepdims=True)
    draws = draws[np.all(draws <= cap[None, :], axis=1)]
    draws = np.where(draws < RUN_MINIMUM, 0.0, draws)
    draws = draws[draws.sum(axis=1) > 0]
    draws = draws / draws.sum(axis=1, keepdims=True)
    # as RegMix, the same mixture is trained once (small strengths often give the same single group)
    _, first = np.unique(np.vstack([prior[None, :], draws]).round(6), axis=0, return_index=True)
    draws = draws[np.sort(first[first > 0]) - 1]
    if len(draws) < n - 1:
        raise ConfigError(f"only {len(draws)} of {n * RUN_MULTIPLIER} sampled mixtures are distinct and respect the "
                          "per-group caps "
                          f"(at most --max-epochs passes over a group at the proxy budget); need {n - 1}: raise "
                          "--max-epochs or lower --proxy-tokens")
    picked = draws[np.sort(rng.choice(len(draws), size=n - 1, replace=False))]
    return np.vstack([prior[None, :], picked])
