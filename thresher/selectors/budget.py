"""Budgets: how much to select, as a record count (``5000``, ``10k``), a fraction (``5%``, ``0.05``) or tokens
(``2M tokens``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError

_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
_PATTERN = re.compile(r"^\s*(?P<num>\d+(?:\.\d*)?(?:e\d+)?)\s*(?P<unit>%|[kmbgt])?\s*(?P<tok>tokens?|toks?)?\s*$",
                      re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """A selection budget. ``kind`` is ``count``, ``fraction`` or ``tokens``."""

    kind: str
    value: float

    @classmethod
    def parse(cls, spec: str | int | float | Budget) -> Budget:
        """Parse ``5000``, ``10k``, ``5%``, ``0.05``, ``2M tokens``, ``1.5e6 tokens``."""
        if isinstance(spec, Budget):
            return spec
        if isinstance(spec, bool):
            raise ConfigError(f"invalid budget {spec!r}")
        if isinstance(spec, int):
            return cls._checked("count", spec, spec)
        if isinstance(spec, float):
            return cls._checked("fraction" if spec < 1 else "count", spec, spec)
        m = _PATTERN.match(str(spec))
        if not m:
            raise ConfigError(f"invalid budget {spec!r}: use a count (5000, 10k), a fraction (5%, 0.05) "
                              "or tokens (2M tokens)")
        num = float(m["num"])
        unit = (m["unit"] or "").lower()
        if unit == "%":
            if m["tok"]:
                raise ConfigError(f"invalid budget {spec!r}: a percentage of tokens is not supported")
            return cls._checked("fraction", num / 100, spec)
        value = num * _SUFFIX[unit]
        if m["tok"]:
            return cls._checked("tokens", value, spec)
        if unit == "" and "." in m["num"] and num < 1:
            return cls._checked("fraction", num, spec)
        return cls._checked("count", value, spec)

    @classmethod
    def _checked(cls, kind: str, value: float, spec: object) -> Budget:
        if not math.isfinite(value):
            raise ConfigError(f"budget must be a finite number, got {spec!r}")
        if value <= 0:
            raise ConfigError(f"budget must be positive, got {spec!r}")
        if kind == "fraction" and value > 1:
            raise ConfigError(f"a fractional budget must be at most 100%, got {spec!r}")
        if kind == "count" and value != int(value):
            raise ConfigError(f"a record budget must be a whole number, got {spec!r}")
        return cls(kind, float(value))

    def records(self, n_eligible: int, cap: bool = False) -> int | None:
        """The number of records this budget allows, or None for a token budget.

        A budget larger than the eligible records is an error, unless ``cap`` (the budget is only an upper bound).
        """
        if self.kind == "tokens":
            return None
        k = int(self.value) if self.kind == "count" else int(round(self.value * n_eligible))
        if k > n_eligible and not cap:
            raise ConfigError(f"budget {self} asks for {k:,} records but only {n_eligible:,} are eligible; give a "
                              f"budget of at most {n_eligible:,} records (or a fraction such as 5%)")
        return max(k, 1)

    def check_tokens(self, total_tokens: float, cap: bool = False) -> None:
        """Fail when a token budget asks for more than the eligible records' ``total_tokens`` (unless ``cap``)."""
        total = int(total_tokens)
        if self.value > total and not cap:
            raise ConfigError(f"budget {self} exceeds the {total:,} tokens of the eligible records; give at most "
                              f"{total:,} tokens (or a record count, or a fraction such as 5%)")

    def take(self, order: np.ndarray, n_eligible: int, n_tokens: np.ndarray, cap: bool = False,
             total_tokens: int | None = None) -> np.ndarray:
        """The longest prefix of ``order`` (record indices, best first) that fits in the budget.

        ``total_tokens`` is the token count of all eligible records when ``n_tokens`` holds only some of them (a
        merge of per-shard candidates); by default it is ``n_tokens.sum()``.
        """
        k = self.records(n_eligible, cap)
        if k is not None:
            return order[:k]
        self.check_tokens(n_tokens.sum() if total_tokens is None else total_tokens, cap)
        cum = np.cumsum(n_tokens[order])
        taken = order[: int(np.searchsorted(cum, self.value, side="right"))]
        if not len(taken) and len(order) and not cap:
            raise ConfigError(f"budget {self} is smaller than the first record to select ({int(cum[0]):,} tokens); "
                              "give a budget of at least one record")
        return taken

    def __str__(self) -> str:
        if self.kind == "fraction":
            return f"{self.value * 100:g}%"
        if self.kind == "tokens":
            return f"{self.value:,.0f} tokens"
        return f"{int(self.value)}"
