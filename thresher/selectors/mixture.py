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

    def select_tokens(self, labels: np.ndarray | list, n_tokens: np.ndarray, budget: Budget,
                      scores: np.ndarray | None = None, positions: np.ndarray | None = None) -> np.ndarray:
        """Indices of the selected records: every group's best records while its tokens stay within its quota,
        groups interleaved so that any prefix keeps the mixture's proportions."""
        if budget.kind != "tokens":
            raise ConfigError(f"a mixture is drawn under a token budget (e.g. '50M tokens'), got {budget}")
        labels = np.asarray(labels).astype(str)
        n_tokens = np.asarray(n_tokens, dtype=np.float64)
        n = len(labels)
        positions = np.arange(n) if positions is None else np.asarray(positions)
        if self.within == "score":
            if scores is None:
                raise ConfigError("within-group rule 'score' needs scores: give --score COLUMN")
            keys = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
        else:
            keys = noise.uniform(self.seed, positions, STREAM_MIXTURE)
        quotas = self.quotas(budget)
        names = sorted(quotas)
        present = set(np.unique(labels).tolist())
        missing = [g for g in names if quotas[g] > 0 and g not in present]
        if missing:
            raise ConfigError(f"the mixture names groups the pool does not have: {', '.join(missing)} (groups: "
                              f"{', '.join(sorted(present))}); was it made with the same --group-field?")
        values, inverse = np.unique(labels, return_inverse=True)
        index = {g: k for k, g in enumerate(names)}
        # groups without a weight get the last code, whose quota is 0
        codes = np.array([index.get(v, len(names)) for v in values.tolist()], dtype=np.int64)[inverse]
        counts = np.zeros(len(names) + 1, dtype=np.int64)
        for g, name in enumerate(names):
            rows = np.flatnonzero(codes == g)
            order = rows[np.lexsort((rows, -keys[rows]))]
            cum = np.cumsum(n_tokens[order])
            have = float(cum[-1]) if len(cum) else 0.0
            if have < quotas[name] - budget.value * ROUNDING:
                raise ConfigError(f"group {name!r} holds {have:,.0f} tokens but the mixture asks for "
                                  f"{quotas[name]:,.0f} ({self.weights[name]:.1%} of {budget}): lower --budget, or "
                                  "make the mixture with thresher mix --method unimax --max-epochs 1 --budget ...")
            counts[g] = int(np.searchsorted(cum, quotas[name], side="right"))
        return stratified_order(codes, counts, keys)


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
