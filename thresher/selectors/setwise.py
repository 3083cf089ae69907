"""What the set-level selectors toward a target share: their names, budgets as costs, and quality as a bonus.

:mod:`thresher.selectors.match` (n-gram distribution matching) and :mod:`thresher.selectors.anchored` (target
coverage and mean matching on embeddings) are greedy on an objective of the selected set. A budget becomes a cost per
record (1, or its tokens) and a limit; a quality score joins the objective as ``weight`` x its percentile, spread over
the budget, so that a weight means the same whatever the score's scale.
"""

from __future__ import annotations

import math

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors.budget import Budget
from thresher.selectors.diversity import record_count

#: Set-level selectors toward a target: they read the whole table and the target, not a ranking of scores.
TARGETED = ("match", "cover", "mmd")


def percentiles(values: np.ndarray) -> np.ndarray:
    """Each value's mid-rank percentile in [0, 1] (ties share one; NaN counts as the lowest): a scale-free quality."""
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isnan(v), -np.inf, v)
    if len(v) < 2:
        return np.ones(len(v))
    ranked = np.sort(v)
    mid = (np.searchsorted(ranked, v, "left") + np.searchsorted(ranked, v, "right") - 1) / 2
    return mid / (len(v) - 1)


def budget_costs(budget: Budget | str | int | float, n: int,
                 n_tokens: np.ndarray | None) -> tuple[np.ndarray, float]:
    """The cost of each of ``n`` eligible records and the budget in those units: 1 per record, or its tokens."""
    b = Budget.parse(budget)
    if b.kind != "tokens":
        return np.ones(n), float(record_count(b, n))
    if n_tokens is None:
        raise ConfigError(f"a token budget ({b}) needs the token count of every record")
    cost = np.maximum(np.asarray(n_tokens, dtype=np.float64), 1.0)
    if b.value > cost.sum():
        raise ConfigError(f"budget {b} exceeds the {int(cost.sum()):,} tokens of the {n:,} eligible records")
    return cost, float(b.value)


def quality_bonus(weight: float, quality: np.ndarray | None, cost: np.ndarray, limit: float) -> np.ndarray:
    """``weight`` x each record's quality percentile, per unit of budget it uses (zeros without a quality)."""
    if quality is None or weight == 0:
        return np.zeros(len(cost))
    if len(quality) != len(cost):
        raise ConfigError(f"got {len(quality)} quality scores for {len(cost)} records")
    return weight * percentiles(quality) * cost / limit


def from_params(cls: type, name: str, params: dict):
    """Selector ``cls`` (a dataclass of numeric fields) from ``--selector-param`` values, each converted to its
    field's type (text such as ``"1e3"`` too); unknown keys, non-numbers and fractional counts are clear errors."""
    fields = cls.__dataclass_fields__
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ConfigError(f"selector {name!r} does not take {', '.join(unknown)} (it takes {', '.join(fields)})")
    values = {}
    for key, value in params.items():
        whole = fields[key].type in ("int", int)
        try:
            number = float(value)
            if whole and not number.is_integer():
                raise ValueError(value)
            values[key] = int(number) if whole else number
        except (TypeError, ValueError):
            raise ConfigError(f"selector {name!r}: {key} must be {'a whole number' if whole else 'a number'}, got "
                              f"{value!r}") from None
    return cls(**values)


def check_weight(value: object) -> None:
    """A quality weight is a finite number >= 0."""
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"quality_weight must be a number >= 0, got {value!r}")
