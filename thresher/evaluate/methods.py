"""The methods an evaluation compares: scorers with a selector, and the random and stratified baselines.

A method is written ``NAME`` or ``NAME:SELECTOR``: ``dsir`` (importance resampling, its default ``gumbel``),
``classifier:topk``, ``similarity``... any registered scorer; ``random``; ``stratified`` (random within each group,
in the pool's group proportions); ``column:COL`` ranks by an existing column of the scores; ``match`` (or
``match:WEIGHT``) selects the set closest to the target's n-gram distribution, with DSIR's importance as quality at
that weight (:mod:`thresher.selectors.match`); ``cover`` and ``mmd`` cover the target's records or match its mean
embedding (:mod:`thresher.selectors.anchored`, on ``--embedding-backend``). Every method draws
its selection with an explicit seed, so seeds matter for the sampling methods and the baselines, and are
harmless for deterministic ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors import Budget, make_selector
from thresher.selectors.base import SELECTORS
from thresher.selectors.mixture import MixtureQuotas, read_mixture
from thresher.selectors.setwise import TARGETED

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
    mixture: str | None = None  # mixture:SPEC: a thresher mix mixture.yaml, or a baseline over the pool's groups
    quality_weight: float | None = None  # match:WEIGHT (None: the selector's default)

    @property
    def is_baseline(self) -> bool:
        """Picks from the whole pool without scores (random, stratified, a mixture)."""
        return self.scorer is None and self.column is None and self.selector not in TARGETED

    @classmethod
    def parse(cls, spec: str) -> Method:
        """``dsir``, ``classifier:topk``, ``random``, ``stratified``, ``column:my_score[:topk]``,
        ``mixture:runs/mix/mixture.yaml``, ``mixture:proportional`` (``uniform``, ``temperature=3``, ``unimax``)."""
        from thresher.scorers.registry import SCORERS

        spec = spec.strip()
        if spec.startswith("mixture:"):
            mixture = spec[len("mixture:"):]
            _mixture_baseline(mixture) if not Path(mixture).is_file() else read_mixture(mixture)  # fails early
            return cls(spec, None, "mixture", mixture=mixture)
        parts = spec.split(":")
        if parts[0] == "match":
            return cls(spec, None, "match", quality_weight=_match_weight(spec, parts))
        if parts[0] in TARGETED:
            if len(parts) > 1:
                raise ConfigError(f"method {spec!r}: {parts[0]} takes no selector or weight")
            return cls(spec, None, parts[0])
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
            raise ConfigError(f"unknown method {parts[0]!r}; choose from {', '.join(BASELINES)}, column:NAME, "
                              f"{', '.join(TARGETED)}, or a scorer: {', '.join(SCORERS)}")
        if len(parts) > 2:
            raise ConfigError(f"method {spec!r}: write NAME or NAME:SELECTOR")
        selector = parts[1] if len(parts) == 2 else DEFAULT_SELECTORS.get(parts[0], "topk")
        _check_selector(selector, spec)
        return cls(spec, parts[0], selector)


def _match_weight(spec: str, parts: list[str]) -> float | None:
    """The quality weight of ``match:WEIGHT`` (None for plain ``match``), checked."""
    if len(parts) == 1:
        return None
    try:
        if len(parts) != 2:
            raise ValueError
        weight = float(parts[1])
        if not (weight >= 0 and np.isfinite(weight)):
            raise ValueError
    except ValueError:
        raise ConfigError(f"method {spec!r}: write match, or match:WEIGHT with a quality weight >= 0 (e.g. "
                          "match:0 for distribution matching alone)") from None
    return weight


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
        key = (m.scorer, m.selector, m.column, m.mixture, m.quality_weight)
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


def _mixture_baseline(spec: str) -> tuple[str, float | None]:
    """A mixture baseline's name and temperature: ``proportional``, ``uniform``, ``unimax``, ``temperature=T``."""
    from thresher.mix.baselines import BASELINES

    name, _, value = spec.partition("=")
    if name not in BASELINES or (name == "temperature") != bool(value):
        raise ConfigError(f"method 'mixture:{spec}': give a mixture.yaml that exists, or one of proportional, uniform, "
                          "unimax, temperature=TAU")
    try:
        return name, float(value) if value else None
    except ValueError:
        raise ConfigError(f"method 'mixture:{spec}': the temperature must be a number") from None


def mixture_weights(method: Method, groups: np.ndarray, n_words: np.ndarray, budget: Budget) -> dict[str, float]:
    """A mixture method's weight per group: from its mixture.yaml, or its baseline over the pool's whitespace tokens
    per group (as ``thresher mix --method`` counts them)."""
    if Path(method.mixture).is_file():
        return read_mixture(method.mixture)
    from thresher.mix.baselines import baseline_weights

    name, tau = _mixture_baseline(method.mixture)
    names, inverse = np.unique(groups.astype(str), return_inverse=True)
    tokens = np.bincount(inverse, weights=n_words.astype(float), minlength=len(names))
    weights = baseline_weights(name, tokens, tau=tau, budget=budget.value)
    return dict(zip(names.tolist(), weights.tolist()))


def draw(method: Method, scores: np.ndarray | None, eligible: np.ndarray, budget: Budget, k: int | None,
         n_words: np.ndarray, groups: np.ndarray | None, seed: int) -> np.ndarray:
    """Row indices (into the pool) that ``method`` selects at ``budget`` with ``seed``, best or first drawn first.

    ``eligible`` masks the records a scoring method may pick (its length floor); baselines pick from the whole pool.
    """
    if method.selector == "mixture":
        if groups is None:
            raise ConfigError(f"method {method.label!r} needs a group column (--group-field)")
        if budget.kind != "tokens":
            raise ConfigError(f"method {method.label!r}: mixtures are compared at a token budget (e.g. '3M tokens'), "
                              f"not {budget}")
        weights = mixture_weights(method, groups, n_words, budget)
        return MixtureQuotas(weights, seed=seed).select_tokens(groups, n_words, budget)
    if method.selector == "stratified":
        if groups is None:
            raise ConfigError("the stratified baseline needs a group column (--group-field)")
        if k is None:
            raise ConfigError("the stratified baseline needs a record budget (a count or a fraction), not tokens")
        return stratified_rows(groups, k, seed)
    idx, local_budget = candidate_rows(method, eligible, budget, k)
    selector = make_selector(method.selector)
    picked = selector.select(None if scores is None else scores[idx], local_budget, n_words[idx], seed)
    return idx[picked]


def candidate_rows(method: Method, eligible: np.ndarray, budget: Budget, k: int | None) -> tuple[np.ndarray, Budget]:
    """The pool rows ``method`` picks from (the eligible ones; every one for a baseline) and its budget there: the
    pool-wide record count ``k``, or ``budget`` itself in tokens. More records than there are is an error."""
    idx = np.flatnonzero(eligible) if not method.is_baseline else np.arange(len(eligible))
    if k is not None and k > len(idx):
        raise ConfigError(f"method {method.label!r}: budget {budget} asks for {k:,} records but only {len(idx):,} "
                          "are eligible (after its length floor)")
    return idx, Budget("count", float(k)) if k is not None else budget
