"""The four basic selectors. Each defines a priority order over records; the budget then takes a prefix of it.

Sorting is stable with ties broken by record position, and randomness comes only from ``numpy.random.default_rng
(seed)`` drawn once per record in record order, so a selection never depends on batch size or worker count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors.budget import Budget


def _descending(keys: np.ndarray) -> np.ndarray:
    """Indices sorting ``keys`` high to low (NaN last), ties by position."""
    keys = np.where(np.isnan(keys), -np.inf, keys)
    return np.argsort(-keys, kind="stable")


@dataclass(frozen=True)
class Selector:
    """Base: ``order`` ranks the records; ``select`` applies the budget to that ranking."""

    needs_scores = True
    #: True when the budget is only an upper bound (threshold): asking for more than there is is not an error.
    budget_is_cap = False

    def order(self, scores: np.ndarray | None, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def select(self, scores: np.ndarray | None, budget: Budget | None, n_tokens: np.ndarray,
               seed: int) -> np.ndarray:
        """Indices of the selected records, in priority order (best or first drawn first)."""
        if self.needs_scores and scores is None:
            raise ConfigError(f"selector {self.name!r} needs scores: use a scoring method such as dsir")
        n = len(n_tokens)
        order = self.order(scores, n, np.random.default_rng(seed))
        return order if budget is None else budget.take(order, n, n_tokens, cap=self.budget_is_cap)

    @property
    def name(self) -> str:
        return type(self).__name__.lower()


@dataclass(frozen=True)
class Random(Selector):
    """Uniform sampling without replacement: the baseline every other selector must beat."""

    needs_scores = False

    def order(self, scores, n, rng):
        return rng.permutation(n)


@dataclass(frozen=True)
class TopK(Selector):
    """The highest scores; deterministic."""

    def order(self, scores, n, rng):
        return _descending(scores)


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

    def order(self, scores, n, rng):
        return _descending(scores / self.temperature + rng.gumbel(size=n))


@dataclass(frozen=True)
class Threshold(Selector):
    """Every record whose score is at least ``threshold``, best first; a budget, if given, caps the count."""

    threshold: float = 0.0
    budget_is_cap = True

    def order(self, scores, n, rng):
        order = _descending(scores)
        return order[scores[order] >= self.threshold]


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
