"""Materialise a mixture: each group's share of a token budget, filled inside the group by a seeded random draw or
by the highest score; ``thresher mix`` writes the weights (``mixture.yaml``), ``thresher select --mixture`` draws.

Inside a group, records are taken best first (position-keyed noise for ``random``, so the draw is the same whatever
is filtered out or how the pool is cut) while the group's tokens stay within its quota: weight x budget. A group
holding fewer tokens than its quota is an error, never a silent repeat or shortfall.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors import noise
from thresher.selectors.budget import Budget
from thresher.selectors.quotas import stratified_order
from thresher.selectors.sharded import Candidates, Plan, ShardSummary, select_sharded, within_quotas

MIXTURE_WITHIN = ("random", "score")
#: Weights may miss 1 by this much (published mixtures round each weight to a few decimals); they are renormalised.
WEIGHT_TOLERANCE = 0.01
STREAM_MIXTURE = 0x4D495854  # "MIXT": the random order inside a group of a mixture
#: mixture.yaml rounds weights to 6 decimals: a group that a mixture takes whole (UniMax at its epoch cap) may be
#: asked for a fraction of a token more than it holds; up to this share of the budget is not a shortfall.
ROUNDING = 1e-6


@dataclass(frozen=True)
class MixtureQuotas:
    """weights: group -> share of the token budget (sums to 1). within: ``random`` or ``score`` (highest first)."""

    weights: Mapping[str, float] = field(default_factory=dict)
    within: str = "random"
    seed: int = 0

    name = "mixture"

    def __post_init__(self) -> None:
        if not self.weights:
            raise ConfigError("a mixture needs a weight per group (--mixture mixture.yaml from thresher mix)")
        bad = {g: w for g, w in self.weights.items() if not (isinstance(w, (int, float)) and np.isfinite(w) and w >= 0)}
        if bad:
            raise ConfigError(f"mixture weights must be non-negative numbers, got {bad}")
        total = sum(self.weights.values())
        if abs(total - 1) > WEIGHT_TOLERANCE:
            raise ConfigError(f"mixture weights must sum to 1 (within {WEIGHT_TOLERANCE}), got {total:.4f}")
        if self.within not in MIXTURE_WITHIN:
            raise ConfigError(f"within-group rule must be one of {MIXTURE_WITHIN}, got {self.within!r}")

    def quotas(self, budget: Budget) -> dict[str, float]:
        """Tokens per group under a token budget (weights renormalised to sum to exactly 1)."""
        total = sum(self.weights.values())
        return {str(g): budget.value * w / total for g, w in sorted(self.weights.items())}

    def keys(self, scores: np.ndarray | None, positions: np.ndarray) -> np.ndarray:
        """The within-group sort key of every record (higher first): its score, or position-keyed noise."""
        if self.within == "score":
            if scores is None:
                raise ConfigError("within-group rule 'score' needs scores: give --score COLUMN")
            return np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
        return noise.uniform(self.seed, np.asarray(positions), STREAM_MIXTURE)

    def sharded_plan(self, budget: Budget | str | int | float | None, total: ShardSummary) -> Plan:
        """The token quota per weighted group, checked against what each group holds (the pool-wide counts of the
        sharded protocol, :mod:`thresher.selectors.sharded`)."""
        budget = Budget.parse(budget) if budget is not None else None
        if budget is None or budget.kind != "tokens":
            raise ConfigError(f"a mixture is drawn under a token budget (e.g. '50M tokens'), got {budget}")
        quotas = self.quotas(budget)
        names = tuple(sorted(quotas))
        missing = [g for g in names if quotas[g] > 0 and g not in total.groups]
        if missing:
            raise ConfigError(f"the mixture names groups the pool does not have: {', '.join(missing)} (groups: "
                              f"{', '.join(sorted(total.groups))}); was it made with the same --group-field?")
        for name in names:
            have = total.group_tokens.get(name, 0.0)
            if have < quotas[name] - budget.value * ROUNDING:
                raise ConfigError(f"group {name!r} holds {have:,.0f} tokens but the mixture asks for "
                                  f"{quotas[name]:,.0f} ({self.weights[name]:.1%} of {budget}): lower --budget, or "
                                  "make the mixture with thresher mix --method unimax --max-epochs 1 --budget ...")
        return Plan(budget, None, total.n, total.tokens, names, np.array([quotas[g] for g in names], dtype=np.float64))

    def shard_candidates(self, plan: Plan, scores: np.ndarray | None, positions: np.ndarray, n_tokens: np.ndarray,
                         labels: np.ndarray | list | None) -> Candidates:
        """A shard's best records of every weighted group g while their tokens stay within g's quota, and the next
        one (the records of the global draw in this shard have no more tokens ahead of them here than in the whole
        group, and the record where the global draw stops is among them or is that next one)."""
        m = len(positions)
        if labels is None or len(labels) != m:
            raise ConfigError(f"a mixture needs a group label per record ({m} records)")
        keys = self.keys(scores, positions)
        names, values = np.array(plan.names, dtype=str), np.asarray(labels).astype(str)
        codes = np.searchsorted(names, values).astype(np.int64)
        known = codes < len(names)
        known[known] = names[codes[known]] == values[known]
        codes[~known] = len(names)  # a group without a weight: never drawn
        pick = np.sort(within_quotas(keys, positions, n_tokens, codes, plan.quotas, next_one=True))
        return Candidates(keys[pick], positions[pick], n_tokens[pick], codes[pick])

    def merge_candidates(self, plan: Plan, parts: list[Candidates]) -> np.ndarray:
        """Every group's quota filled again over all shards' candidates, then the groups interleaved."""
        def joined(name: str, empty: np.ndarray) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts]) if parts else empty

        positions = joined("positions", np.zeros(0, np.int64))
        by_position = np.argsort(positions, kind="stable")
        positions, keys = positions[by_position], joined("keys", np.zeros(0))[by_position]
        codes, tokens = joined("codes", np.zeros(0, np.int64))[by_position], joined("tokens", np.zeros(0))[by_position]
        counts = np.bincount(codes[within_quotas(keys, positions, tokens, codes, plan.quotas)],
                             minlength=len(plan.quotas) + 1)
        return positions[stratified_order(codes, counts, keys)]

    def select_tokens(self, labels: np.ndarray | list, n_tokens: np.ndarray, budget: Budget,
                      scores: np.ndarray | None = None, positions: np.ndarray | None = None) -> np.ndarray:
        """Indices of the selected records: every group's best records while its tokens stay within its quota,
        groups interleaved so that any prefix keeps the mixture's proportions (the sharded protocol over one shard:
        the same code a run over parts of the scores uses)."""
        n = len(labels)
        positions = np.arange(n) if positions is None else np.asarray(positions)
        chosen = select_sharded(self, budget, [(None if scores is None else np.asarray(scores, dtype=np.float64),
                                                positions, np.asarray(n_tokens, dtype=np.float64),
                                                np.asarray(labels).astype(str))])
        return np.searchsorted(positions, chosen)


def read_mixture(path: str | Path) -> dict[str, float]:
    """The weights of a ``mixture.yaml`` that ``thresher mix`` wrote."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read the mixture {path}: {e}") from None
    weights = data.get("weights") if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise ConfigError(f"{path} has no 'weights' (group: weight); make one with thresher mix")
    return {str(g): w for g, w in weights.items()}


__all__ = ["MixtureQuotas", "read_mixture"]
