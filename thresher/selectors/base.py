"""The four basic selectors. Each gives every record a sort key; the priority order is the keys high to low (NaN
last, ties by record position), and the budget then takes a prefix of it.

Randomness is position-keyed (:mod:`thresher.selectors.noise`): a record's noise is a pure function of the seed and
its position in the pool's reading order, so a selection never depends on batch size, worker count or how the pool
is split into shards, and :mod:`thresher.selectors.sharded` can select from per-shard candidates exactly. (Before,
noise came from ``numpy.random.default_rng(seed)`` drawn in record order: the same seed now draws other records,
with the same distribution.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors import noise
from thresher.selectors.budget import Budget


def sort_keys(keys: np.ndarray) -> np.ndarray:
    """``keys`` as float64 with NaN replaced by -inf: the value the priority order sorts on (NaN ties with -inf)."""
    keys = np.asarray(keys, dtype=np.float64)
    return np.where(np.isnan(keys), -np.inf, keys)


def _descending(keys: np.ndarray) -> np.ndarray:
    """Indices sorting ``keys`` high to low (NaN last), ties by position."""
    return np.argsort(-sort_keys(keys), kind="stable")


@dataclass(frozen=True)
class Selector:
    """Base: ``keys`` gives every record a sort key (and ``passes`` which records may be chosen at all); ``order``
    ranks the records by key, high to low; ``select`` applies the budget to that ranking."""

    needs_scores = True
    #: True when the budget is only an upper bound (threshold): asking for more than there is is not an error.
    budget_is_cap = False

    def keys(self, scores: np.ndarray | None, positions: np.ndarray, seed: int) -> np.ndarray:
        """The sort key of every record (higher is chosen first); ``positions`` key the random noise."""
        raise NotImplementedError

    def passes(self, scores: np.ndarray | None) -> np.ndarray | None:
        """Which records may be chosen at all (None: every record)."""
        return None

    def check(self, scores: np.ndarray | None) -> None:
        """Fail clearly when the selector needs scores and has none."""
        if self.needs_scores and scores is None:
            raise ConfigError(f"selector {self.name!r} needs scores: use a scoring method such as dsir")

    def order(self, scores: np.ndarray | None, positions: np.ndarray, seed: int) -> np.ndarray:
        """Indices of the records that pass, by key high to low (NaN last), ties by index."""
        order = _descending(self.keys(scores, positions, seed))
        ok = self.passes(scores)
        return order if ok is None else order[ok[order]]

    def select(self, scores: np.ndarray | None, budget: Budget | None, n_tokens: np.ndarray,
               seed: int, positions: np.ndarray | None = None) -> np.ndarray:
        """Indices of the selected records, in priority order (best or first drawn first).

        ``positions`` are the records' global positions in the pool's reading order (increasing; default
        ``arange(n)``): random noise is keyed by them, so selecting among the eligible records of a pool draws the
        same noise for a record whatever is filtered out before it.
        """
        self.check(scores)
        n = len(n_tokens)
        positions = np.arange(n) if positions is None else np.asarray(positions)
        if len(positions) != n:
            raise ConfigError(f"got {len(positions)} record positions for {n} records")
        order = self.order(scores, positions, seed)
        return order if budget is None else budget.take(order, n, n_tokens, cap=self.budget_is_cap)

    @property
    def name(self) -> str:
        return type(self).__name__.lower()


@dataclass(frozen=True)
class Random(Selector):
    """Uniform sampling without replacement: the baseline every other selector must beat."""

    needs_scores = False

    def keys(self, scores, positions, seed):
        return noise.uniform(seed, positions, noise.STREAM_RANDOM)


@dataclass(frozen=True)
class TopK(Selector):
    """The highest scores; deterministic."""

    def keys(self, scores, positions, seed):
        return np.asarray(scores, dtype=np.float64)


@dataclass(frozen=True)
class Gumbel(Selector):
    """Sampling without replacement with probability proportional to ``exp(score / temperature)``.

    With DSIR's log importance weights and temperature 1 this is importance resampling (the Gumbel top-k trick:
    adding Gumbel(0, 1) noise to log-weights and keeping the top k draws samples without replacement).
    """

    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")

    def keys(self, scores, positions, seed):
        return np.asarray(scores, dtype=np.float64) / self.temperature + noise.gumbel(seed, positions)


@dataclass(frozen=True)
class Threshold(Selector):
    """Every record whose score is at least ``threshold``, best first; a budget, if given, caps the count."""

    threshold: float = 0.0
    budget_is_cap = True

    def keys(self, scores, positions, seed):
        return np.asarray(scores, dtype=np.float64)

    def passes(self, scores):
        return np.asarray(scores, dtype=np.float64) >= self.threshold


SELECTORS: dict[str, type[Selector]] = {"random": Random, "topk": TopK, "gumbel": Gumbel, "threshold": Threshold}


def make_selector(name: str, **params: float | None) -> Selector:
    """Build a selector by name; parameters that are None are left at their defaults."""
    if name not in SELECTORS:
        raise ConfigError(f"unknown selector {name!r}; choose from {', '.join(SELECTORS)}")
    cls = SELECTORS[name]
    given = {k: v for k, v in params.items() if v is not None}
    unknown = [k for k in given if k not in cls.__dataclass_fields__]
    if unknown:
        raise ConfigError(f"selector {name!r} does not take {', '.join(unknown)}")
    if name == "threshold" and "threshold" not in given:
        raise ConfigError("selector 'threshold' needs a threshold value (--threshold)")
    for key, value in given.items():
        try:
            finite = math.isfinite(float(value))
        except (TypeError, ValueError):
            raise ConfigError(f"--{key} must be a number, got {value!r}") from None
        if not finite:
            raise ConfigError(f"--{key} must be a finite number, got {value!r}")
    return cls(**given)
