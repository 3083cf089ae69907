"""Threshold rules over score columns: the shared mechanism behind the Gopher, C4 and FineWeb rule families.

A rule family computes numeric signals per record once; its rules are (reason, column, bound, threshold) and are
applied to the columns vectorised, so changing a threshold never recomputes a signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class Rule:
    """A record fails when ``column`` is below ``threshold`` (``bound="min"``) or above it (``bound="max"``)."""

    reason: str
    column: str
    bound: str
    threshold: float
    inclusive: bool = False  # fail also when equal to the threshold

    def fails(self, values: np.ndarray) -> np.ndarray:
        if self.bound == "min":
            return values <= self.threshold if self.inclusive else values < self.threshold
        return values >= self.threshold if self.inclusive else values > self.threshold


def apply_rules(columns: dict[str, np.ndarray], rules: list[Rule], prefix: str) -> dict[str, np.ndarray]:
    """``<prefix>_pass`` and ``<prefix>_reason`` (the first failing rule in order, None if all pass)."""
    n = len(next(iter(columns.values()))) if columns else 0
    reason = np.full(n, None, dtype=object)
    for rule in reversed(rules):  # earlier rules overwrite later ones: the first failure wins
        reason[rule.fails(np.asarray(columns[rule.column], dtype=np.float64))] = rule.reason
    return {f"{prefix}_pass": np.equal(reason, None), f"{prefix}_reason": reason}


def signal_columns(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    """Per-record signal dicts to one array per signal."""
    return {k: np.array([r[k] for r in rows]) for k in rows[0]} if rows else {}


class RuleFamilyScorer:
    """Base for rule families: subclasses name a ``prefix``, a ``signals(text, config)`` function, a
    ``rules(config)`` function and a default config; ``score`` does the rest, for a batch of texts."""

    prefix: str
    config_type: type

    def __init__(self, config: object | None = None):
        self.config = config if config is not None else self.config_type()

    @staticmethod
    def signals(text: str, config: object) -> dict[str, float]:
        raise NotImplementedError

    @staticmethod
    def rules(config: object) -> list[Rule]:
        raise NotImplementedError

    def score(self, text: pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
        """Every signal, ``<prefix>_pass`` (bool) and ``<prefix>_reason`` (first failing rule, None if passed)."""
        cols = signal_columns([self.signals(t or "", self.config) for t in text.to_pylist()])
        return {**cols, **apply_rules(cols, self.rules(self.config), self.prefix)} if cols else {}
