"""Budgets per group: stratified selection from a label column, and QuaDMix-style quality-diversity sampling.

:func:`apportion` splits a record count between groups exactly (largest remainder, no group above its size, the
excess of a full group redistributed); :class:`Quotas` then fills each group's quota by score, at random or by
Gumbel sampling (noise keyed by record position, :mod:`thresher.selectors.noise`, so shards can draw it).
:class:`QualityDiversity` instead gives every record a sampling probability from its quality rank within its group
and the group's weight, and samples without replacement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors import noise
from thresher.selectors.budget import Budget
from thresher.selectors.diversity import as_scores, group_codes, record_count

ALLOCATIONS = ("proportional", "equal", "sqrt", "weights")
WITHIN = ("topk", "random", "gumbel")


def apportion(k: int, weights: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Integer parts of ``k`` proportional to ``weights``, part g at most ``caps[g]``, summing exactly to ``k``.

    Groups whose proportional share exceeds their cap get the cap and the rest is shared again among the others
    (water-filling); the final shares are rounded by largest remainder, ties to the lower group. Groups with weight 0
    get nothing.
    """
    weights = np.asarray(weights, dtype=np.float64)
    caps = np.asarray(caps, dtype=np.int64)
    if (weights < 0).any() or not np.isfinite(weights).all():
        raise ConfigError("group weights must be finite and >= 0")
    usable = int(caps[weights > 0].sum())
    if k > usable:
        raise ConfigError(f"asked for {k} records but the groups with a positive weight hold only {usable}")
    out = np.zeros(len(weights), dtype=np.int64)
    active = (weights > 0) & (caps > 0)
    left = k
    while left > 0:
        share = np.zeros(len(weights))
        share[active] = left * weights[active] / weights[active].sum()
        full = active & (share >= caps - out)
        if full.any():  # these groups are exhausted: give them everything, share the rest again
            left -= int((caps - out)[full].sum())
            out[full] = caps[full]
            active &= ~full
            continue
        base = np.floor(share).astype(np.int64)
        rest = left - int(base[active].sum())
        frac = np.where(active, share - base, -1.0)
        extra = np.argsort(-frac, kind="stable")[:rest]
        out[active] += base[active]
        out[extra] += 1
        left = 0
    return out


def allocate(sizes: np.ndarray, k: int, allocation: str = "proportional",
             weights: np.ndarray | None = None) -> np.ndarray:
    """Per-group counts for a budget of ``k``: ``proportional`` to size, ``equal``, or by ``weights``; exact total."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if allocation == "proportional":
        w = sizes.astype(np.float64)
    elif allocation == "equal":
        w = np.ones(len(sizes))
    elif allocation == "sqrt":
        w = np.sqrt(sizes.astype(np.float64))
    elif allocation == "weights":
        if weights is None:
            raise ConfigError("allocation 'weights' needs a weight per group")
        w = np.asarray(weights, dtype=np.float64)
    else:
        raise ConfigError(f"unknown allocation {allocation!r}; choose from proportional, equal, sqrt, weights")
    return apportion(k, w, sizes)


def stratified_order(codes: np.ndarray, quotas: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The ``quotas[g]`` highest-``keys`` records of every group g, interleaved so any prefix stays near the quotas'
    proportions: a group's r-th record is placed at ``(r + 0.5) / quota``; ties by group, then record position."""
    n = len(codes)
    keys = np.where(np.isnan(keys), -np.inf, keys)
    order = np.lexsort((np.arange(n), -keys, codes))  # by group, best first, then position
    sorted_codes = codes[order]
    rank = np.arange(n) - np.searchsorted(sorted_codes, sorted_codes, side="left")
    take = rank < quotas[sorted_codes]
    chosen, rank, g = order[take], rank[take], sorted_codes[take]
    place = (rank + 0.5) / quotas[g]
    return chosen[np.lexsort((chosen, g, place))]


def _group_values(value: float | Mapping[str, float] | None, names: list[str], default: float,
                  what: str) -> np.ndarray:
    """A per-group parameter given as one number or as ``{label: value}`` (missing labels get ``default``)."""
    if value is None:
        return np.full(len(names), default, dtype=np.float64)
    if isinstance(value, Mapping):
        unknown = sorted(set(map(str, value)) - set(names))
        if unknown:
            raise ConfigError(f"{what} names groups that are not in the data: {', '.join(unknown)}")
        given = {str(k): float(v) for k, v in value.items()}
        return np.array([given.get(name, default) for name in names], dtype=np.float64)
    return np.full(len(names), float(value), dtype=np.float64)


@dataclass(frozen=True)
class Quotas:
    """Stratified selection: the budget is split between the groups of a label column, then each group is filled.

    allocation: ``proportional`` to group size (largest remainder), ``equal`` (a group smaller than its share gives
    the rest to the others), ``sqrt`` (proportional to the square root of the size) or ``weights``
    (``{label: weight}``; labels not listed get weight 0 and are never selected). within: ``topk`` (highest score),
    ``random`` (uniform) or ``gumbel`` (sampling without replacement with probability proportional to
    ``exp(score / temperature)``). The counts per group are exact.
    """

    allocation: str = "proportional"
    weights: Mapping[str, float] | None = None
    within: str = "topk"
    temperature: float = 1.0
    seed: int = 0

    name = "quotas"

    def __post_init__(self) -> None:
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(f"allocation must be one of {ALLOCATIONS}, got {self.allocation!r}")
        if (self.allocation == "weights") != (self.weights is not None):
            raise ConfigError("give weights exactly when allocation='weights'")
        if self.within not in WITHIN:
            raise ConfigError(f"within-group rule must be one of {WITHIN}, got {self.within!r}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")

    def counts(self, labels: np.ndarray | list, budget: int | str | Budget) -> dict[str, int]:
        """How many records each group gets under ``budget``."""
        names, codes = group_codes(labels)
        quotas = self._quotas(names, codes, record_count(budget, len(codes)))
        return dict(zip(names, quotas.tolist()))

    def _quotas(self, names: list[str], codes: np.ndarray, k: int) -> np.ndarray:
        return self.group_quotas(names, np.bincount(codes, minlength=len(names)), k)

    def group_quotas(self, names: list[str], sizes: np.ndarray, k: int) -> np.ndarray:
        """Each group's count for a budget of ``k``: a function of the group sizes only (so shards can count)."""
        weights = _group_values(self.weights, names, 0.0, "weights") if self.allocation == "weights" else None
        return allocate(sizes, k, self.allocation, weights)

    def keys(self, scores: np.ndarray | None, positions: np.ndarray) -> np.ndarray:
        """The within-group sort key of every record (higher first); random noise is keyed by record position."""
        if self.within == "topk":
            return np.asarray(scores, dtype=np.float64)
        if self.within == "random":
            return noise.uniform(self.seed, positions, noise.STREAM_QUOTA_RANDOM)
        return np.asarray(scores, dtype=np.float64) / self.temperature + \
            noise.gumbel(self.seed, positions, noise.STREAM_QUOTA_GUMBEL)

    def select(self, labels: np.ndarray | list, budget: int | str | Budget,
               scores: np.ndarray | None = None, positions: np.ndarray | None = None) -> np.ndarray:
        """Indices of the selected records, groups interleaved in proportion to their quotas.

        ``positions``: the records' global positions in the pool (increasing; default ``arange(n)``), which key the
        random and Gumbel noise (see :mod:`thresher.selectors.noise`).
        """
        names, codes = group_codes(labels)
        n = len(codes)
        k = record_count(budget, n)
        scores = as_scores(scores, n, self.within != "random", f"within-group rule {self.within!r}")
        positions = np.arange(n) if positions is None else np.asarray(positions)
        if len(positions) != n:
            raise ConfigError(f"got {len(positions)} record positions for {n} records")
        return stratified_order(codes, self._quotas(names, codes, k), self.keys(scores, positions))


def quality_percentiles(scores: np.ndarray, codes: np.ndarray, score_weights: np.ndarray | None = None) -> np.ndarray:
    """Each record's quality rank within its group as a fraction in (0, 1], best = smallest; ties share a rank.

    Several score columns (``scores`` n x m) are first merged as ``sum_c score_weights[c] * pct_c``, where
    ``pct_c`` is column c's rank percentile over all records (so columns on different scales can be mixed).
    """
    from scipy.stats import rankdata  # scipy.stats costs ~0.6 s to import: every CLI command would pay it

    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2:
        w = np.ones(s.shape[1]) if score_weights is None else np.asarray(score_weights, dtype=np.float64)
        if w.shape != (s.shape[1],):
            raise ConfigError(f"got {len(w)} score weights for {s.shape[1]} score columns")
        filled = np.where(np.isnan(s), -np.inf, s)
        s = sum(w[c] * rankdata(filled[:, c]) / len(s) for c in range(s.shape[1]))
    s = np.where(np.isnan(s), -np.inf, s)
    out = np.empty(len(s))
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for idx in np.split(order, bounds):
        out[idx] = rankdata(-s[idx], method="average") / len(idx)
    return out


@dataclass(frozen=True)
class QualityDiversity:
    """Quality-diversity sampling after QuaDMix (Liu et al., 2025, "QuaDMix: Quality-Diversity Balanced Data Selection
    for Efficient LLM Pretraining", arXiv:2504.16511): every record gets a sampling weight from its quality rank
    *within its group* (domain or cluster) and from per-group parameters, and records are drawn without replacement.

    For record i of group g, with within-group quality percentile ``r_i`` in (0, 1] (best near 0; see
    :func:`quality_percentiles`, which also merges several score columns):

        w_i = group_weight[g] * exp(-sharpness[g] * r_i)    if r_i <= threshold[g], else 0

    - ``group_weight`` (eta): multiplies a whole group's sampling rate. With 1 everywhere, groups are drawn in
      proportion to their (eligible) size; labels not listed keep 1; 0 drops a group.
    - ``sharpness`` (lambda, an inverse temperature on the rank): 0 is uniform within a group; otherwise a record
      ranked ``1 / sharpness`` lower (as a fraction of its group) is ``e`` times less likely, and the group's best
      record is ``exp(sharpness * threshold)`` times likelier than its last eligible one.
    - ``threshold`` (omega): the share of each group eligible at all, by quality (1 keeps every record).
    - ``max_share``: no group may take more than this fraction of the selection (its place goes to the next draws).

    Drawing is the Gumbel top-k trick on ``log w`` (sequential sampling without replacement proportional to ``w``).
    Differences from QuaDMix: its sampling function is a sigmoid of the rank with per-domain parameters found by
    searching with proxy models, and it may repeat records; here the shape is exponential, the parameters are set
    by hand, and a record is drawn at most once. ``sharpness`` and ``threshold`` may be one number or
    ``{label: value}``.
    """

    group_weights: Mapping[str, float] | None = None
    sharpness: float | Mapping[str, float] = 5.0
    threshold: float | Mapping[str, float] = 1.0
    max_share: float = 1.0
    score_weights: tuple[float, ...] | None = None
    seed: int = 0

    name = "quadmix"

    def __post_init__(self) -> None:
        if not 0 < self.max_share <= 1:
            raise ConfigError(f"max_share must be in (0, 1], got {self.max_share}")

    def weights(self, labels: np.ndarray | list, scores: np.ndarray) -> np.ndarray:
        """The unnormalised sampling weight ``w_i`` of every record (see the class docstring)."""
        names, codes = group_codes(labels)
        return self._weights(names, codes, scores)

    def _weights(self, names: list[str], codes: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape[0] != len(codes):
            raise ConfigError(f"got {scores.shape[0]} scores for {len(codes)} records")
        eta = _group_values(self.group_weights, names, 1.0, "group_weights")
        lam = _group_values(self.sharpness, names, 5.0, "sharpness")
        omega = _group_values(self.threshold, names, 1.0, "threshold")
        if (eta < 0).any() or (lam < 0).any() or ((omega <= 0) | (omega > 1)).any():
            raise ConfigError("group weights and sharpness must be >= 0 and thresholds in (0, 1]")
        r = quality_percentiles(scores, codes, None if self.score_weights is None else np.array(self.score_weights))
        w = eta[codes] * np.exp(-lam[codes] * r)
        return np.where(r <= omega[codes], w, 0.0)

    def select(self, labels: np.ndarray | list, budget: int | str | Budget, scores: np.ndarray) -> np.ndarray:
        """Indices of the drawn records, first drawn first; exactly the budget, each group under its cap."""
        names, codes = group_codes(labels)
        n = len(codes)
        k = record_count(budget, n)
        w = self._weights(names, codes, scores)
        cap = int(np.floor(self.max_share * k + 1e-9))
        room = np.minimum(np.bincount(codes, weights=w > 0, minlength=len(names)).astype(np.int64), cap)
        if room.sum() < k:
            raise ConfigError(f"only {int(room.sum())} records can be drawn (positive weight, group cap "
                              f"{cap}); the budget asks for {k}: lower it, raise threshold or max_share")
        with np.errstate(divide="ignore"):
            keys = np.log(w) + np.random.default_rng(self.seed).gumbel(size=n)
        order = np.lexsort((np.arange(n), -keys))
        order = order[w[order] > 0]
        if cap >= k:
            return order[:k]
        # walk the draws; a record whose group is full is skipped (the cap binds only when a group is popular)
        g = codes[order]
        by_group = np.lexsort((np.arange(len(order)), g))
        rank = np.empty(len(order), dtype=np.int64)  # how many earlier draws share the group
        rank[by_group] = np.arange(len(order)) - np.searchsorted(g[by_group], g[by_group], side="left")
        return order[rank < cap][:k]
