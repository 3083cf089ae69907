"""The methods an evaluation compares: scorers with a selector, and the random and stratified baselines.

A method is written ``NAME`` or ``NAME:SELECTOR``: ``dsir`` (importance resampling, its default ``gumbel``),
``classifier:topk``, ``similarity``... any registered scorer; ``random``; ``stratified`` (random within each group,
in the pool's group proportions); ``column:COL`` ranks by an existing column of the scores. Every method draws
its selection with an explicit seed, so seeds matter for the sampling methods and the baselines, and are
harmless for deterministic ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors import Budget, make_selector
from thresher.selectors.base import SELECTORS

BASELINES = ("random", "stratified")
#: Selector used when a method names none: DSIR resamples by importance, learned scores take the top.
DEFAULT_SELECTORS = {"dsir": "gumbel"}


@dataclass(frozen=True)
class Method:
    """One competitor: its label in the results, the scorer (None for baselines and columns), and the selector."""

    label: str
    scorer: str | None
    selector: str
    column: str | None = None

    @property
    def is_baseline(self) -> bool:
        return self.scorer is None and self.column is None

    @classmethod
    def parse(cls, spec: str) -> Method:
        """``dsir``, ``classifier:topk``, ``random``, ``stratified``, ``column:my_score[:topk]``."""
        from thresher.scorers.registry import SCORERS

        spec = spec.strip()
        parts = spec.split(":")
        if parts[0] in BASELINES:
            if len(parts) > 1:
                raise ConfigError(f"method {spec!r}: the {parts[0]} baseline takes no selector")
            return cls(spec, None, parts[0])
        if parts[0] == "column":
            if len(parts) not in (2, 3) or not parts[1]:
                raise ConfigError(f"method {spec!r}: write column:NAME or column:NAME:SELECTOR")
            selector = parts[2] if len(parts) == 3 else "topk"
            _check_selector(selector, spec)
            return cls(spec, None, selector, column=parts[1])
        if parts[0] not in SCORERS:
            raise ConfigError(f"unknown method {parts[0]!r}; choose from {', '.join(BASELINES)}, column:NAME, or "
                              f"a scorer: {', '.join(SCORERS)}")
        if len(parts) > 2:
            raise ConfigError(f"method {spec!r}: write NAME or NAME:SELECTOR")
        selector = parts[1] if len(parts) == 2 else DEFAULT_SELECTORS.get(parts[0], "topk")
        _check_selector(selector, spec)
        return cls(spec, parts[0], selector)


def _check_selector(selector: str, spec: str) -> None:
    if selector not in SELECTORS or selector == "threshold":
        valid = [s for s in SELECTORS if s != "threshold"]
        raise ConfigError(f"method {spec!r}: selector must be one of {', '.join(valid)}")


def parse_methods(text: str | list[str]) -> list[Method]:
    """Comma-separated (or listed) method specs; ``random`` is always added, since everything is compared to it."""
    specs = [s for s in (text.split(",") if isinstance(text, str) else text) if str(s).strip()]
    methods = [Method.parse(s) for s in specs]
    seen: dict[tuple, str] = {}
    for m in methods:  # "dsir" and "dsir:gumbel" are one method under two names
        key = (m.scorer, m.selector, m.column)
        if key in seen:
            raise ConfigError(f"method listed twice: {seen[key]!r} and {m.label!r} are the same method")
        seen[key] = m.label
    if "random" not in seen.values():
        methods.append(Method("random", None, "random"))
    return methods


def budget_records(budget: Budget, n_pool: int, n_words: np.ndarray) -> int | None:
    """Records a record budget allows on the whole pool (the same for every method); None for token budgets."""
    if budget.kind == "tokens":
        if budget.value > n_words.sum():
            raise ConfigError(f"budget {budget} exceeds the pool's {int(n_words.sum()):,} words")
        return None
    return budget.records(n_pool)


def stratified_rows(groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k records, random within each group, with group counts proportional to the pool (largest remainder)."""
    names, inverse, counts = np.unique(groups.astype(str), return_inverse=True, return_counts=True)
    quota = counts * k / len(groups)
    take = np.floor(quota).astype(int)
    short = k - take.sum()
    if short:
        order = np.lexsort((np.arange(len(names)), -(quota - take)))  # largest remainder, ties by group order
        take[order[:short]] += 1
    rng = np.random.default_rng(seed)
    keys = rng.random(len(groups))
    rows = []
    for g in range(len(names)):
        members = np.flatnonzero(inverse == g)
        rows.append(members[np.argsort(keys[members], kind="stable")[: take[g]]])
    rows_all = np.concatenate(rows)
    return rows_all[np.argsort(keys[rows_all], kind="stable")]


def draw(method: Method, scores: np.ndarray | None, eligible: np.ndarray, budget: Budget, k: int | None,
         n_words: np.ndarray, groups: np.ndarray | None, seed: int) -> np.ndarray:
    """Row indices (into the pool) that ``method`` selects at ``budget`` with ``seed``, best or first drawn first.

    ``eligible`` masks the records a scoring method may pick (its length floor); baselines pick from the whole pool.
    """
    if method.selector == "stratified":
        if groups is None:
            raise ConfigError("the stratified baseline needs a group column (--group-field)")
        if k is None:
            raise ConfigError("the stratified baseline needs a record budget (a count or a fraction), not tokens")
        return stratified_rows(groups, k, seed)
    idx = np.flatnonzero(eligible) if not method.is_baseline else np.arange(len(n_words))
    if k is not None and k > len(idx):
        raise ConfigError(f"method {method.label!r}: budget {budget} asks for {k:,} records but only {len(idx):,} "
                          "are eligible (after its length floor)")
    selector = make_selector(method.selector)
    local_budget = Budget("count", float(k)) if k is not None else budget
    picked = selector.select(None if scores is None else scores[idx], local_budget, n_words[idx], seed)
    return idx[picked]
