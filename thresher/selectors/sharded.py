"""Selection over a sharded pool without gathering it: per-shard candidates, then an exact merge.

The basic selectors (:mod:`thresher.selectors.base`) rank records by a per-record key (the score, the score plus
position-keyed Gumbel noise, or a position-keyed uniform) high to low, NaN last, ties by position, and a budget takes
a prefix of that ranking. Both the key and the tie-break are local to a record, so the global ranking restricted to
one shard is that shard's own ranking, and a shard can tell which of its records could possibly be in the prefix:

- a record budget of k: the shard's top k (no more than k of them can be among the global top k);
- a token budget of T: the shard's best records while their cumulative tokens stay within T, plus the next one (a
  record of the global prefix has only prefix records of its shard ahead of it, and the one after the shard's
  fitting run is where the global prefix may stop);
- threshold: the records at or above the threshold, capped as above when there is a budget.

:func:`merge` sorts the candidates by (key desc, position) and applies :meth:`Budget.take` with the pool-wide counts,
which gives the same records in the same order, and the same errors, as ``selector.select`` over the concatenated
shards (positions increasing in reading order).

A shard's list can still be large (k = 5% of a pool of 100 shards is more than a shard holds), so before sending it a
shard sends a :class:`Sketch` of it (every s-th key, s = sqrt of its length, with the counts and tokens down to it),
:func:`cutoff` finds the highest key whose prefix surely holds the selection, and shards send only the candidates at
or above it. :class:`~thresher.selectors.quotas.Quotas` decomposes too: its
allocation depends only on group sizes, which a first cheap pass counts per shard; then each shard sends its top
``quota[g]`` records of every group g and the merge runs the same stratified interleave. Under a token budget the
first pass also counts records per token count, which gives how many records the quotas split (as many of the
shortest as fit), and the merge keeps the interleave's prefix that fits. A mixture
(:class:`~thresher.selectors.mixture.MixtureQuotas`, a token quota per group) brings its own three steps through
``sharded_plan``, ``shard_candidates`` and ``merge_candidates``: each shard sends every group's best records within
the group's quota plus the next one, as for a token budget, and the merge fills the quotas again.

Memory: the driver holds only sketches and candidates, never all scores. With a record budget of k over S shards of
candidate lists of length c_s (c_s <= k), the sketches hold sum(sqrt(c_s)) points and the candidates after the cutoff
about ``k + sum(sqrt(c_s)) + max(sqrt(c_s))`` records, plus any records tied with the cutoff key; a token budget
likewise, with k the records of the selected prefix plus one; 24 bytes a record (key, position, tokens). Without
the cutoff it would be at most ``S x k`` (or ``S x (m + 1)``, m the most records any prefix within T holds). Quotas
send every shard's top ``quota[g]`` per group (at most ``S x k`` records; no cutoff yet). A threshold without a
budget sends every record that passes (that is the output itself). Exactness of a token budget's "exceeds the
total" check and of its cutoff assumes integer token counts (float sums of integers below 2**53 are exact in any
order).

Protocol::

    total = combine([summarize(n_tokens_s, labels_s) for each shard s])            # pass 1: counts only
    plan = plan_selection(selector, budget, total)                                  # driver: errors, quotas
    parts = [candidates(selector, plan, scores_s, positions_s, n_tokens_s, seed, labels_s) for each shard s]
    tau = cutoff(plan, [part.sketch() for part in parts])                          # driver: a few keys per shard
    chosen_positions = merge(selector, plan, [part.above(tau) for part in parts])  # driver: exact selection
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors.base import Selector, sort_keys
from thresher.selectors.budget import Budget
from thresher.selectors.diversity import as_scores, record_count
from thresher.selectors.quotas import Quotas, stratified_order


@dataclass(frozen=True)
class ShardSummary:
    """What a first pass counts per shard: eligible records, their tokens, (for quotas) records per group label and,
    under a token budget, records per token count (``lengths``), which fix how many records quotas rank."""

    n: int
    tokens: float
    groups: dict[str, int] = field(default_factory=dict)
    lengths: dict[float, int] = field(default_factory=dict)
    group_tokens: dict[str, float] = field(default_factory=dict)


def summarize(n_tokens: np.ndarray, labels: np.ndarray | list | None = None, lengths: bool = False) -> ShardSummary:
    """The counts of one shard's eligible records (``labels``: the group column, for quotas; ``lengths``: count
    records per token count too)."""
    n_tokens = np.asarray(n_tokens)
    groups: dict[str, int] = {}
    group_tokens: dict[str, float] = {}
    if labels is not None and len(labels):
        names, inverse, counts = np.unique(np.asarray(labels).astype(str), return_inverse=True, return_counts=True)
        groups = {str(a): int(b) for a, b in zip(names, counts)}
        sums = np.bincount(inverse, weights=np.nan_to_num(n_tokens.astype(np.float64)), minlength=len(names))
        group_tokens = {str(a): float(t) for a, t in zip(names, sums)}
    histogram: dict[float, int] = {}
    if lengths and len(n_tokens):
        values, counts = np.unique(n_tokens.astype(np.float64), return_counts=True)
        histogram = {float(a): int(b) for a, b in zip(values, counts)}
    return ShardSummary(len(n_tokens), n_tokens.sum().item() if len(n_tokens) else 0, groups, histogram,
                        group_tokens)


def _added(dicts) -> dict:
    out: dict = {}
    for d in dicts:
        for key, count in d.items():
            out[key] = out.get(key, 0) + count
    return dict(sorted(out.items()))


def combine(summaries: Sequence[ShardSummary]) -> ShardSummary:
    """The pool-wide counts from the shards' summaries."""
    return ShardSummary(sum(s.n for s in summaries), sum(s.tokens for s in summaries),
                        _added(s.groups for s in summaries), _added(s.lengths for s in summaries),
                        _added(s.group_tokens for s in summaries))


def fitting_records(lengths: dict[float, int], limit: float) -> int:
    """How many of the shortest records fit in ``limit`` tokens, from records per token count: what
    :func:`~thresher.selectors.diversity.token_upper_bound` finds by sorting every record's count."""
    values = np.array(list(lengths), dtype=np.float64)
    counts = np.array(list(lengths.values()), dtype=np.int64)
    before = np.concatenate([[0.0], np.cumsum(values * counts)])  # tokens of every record shorter than values[i]
    i = int(np.searchsorted(before[1:], limit, side="right"))  # blocks 0..i-1 fit whole
    fits = int(counts[:i].sum())
    if i < len(values):
        fits += int(min(counts[i], (limit - before[i]) // values[i])) if values[i] > 0 else int(counts[i])
    return fits


@dataclass(frozen=True)
class Plan:
    """What the driver tells every shard: the budget, the records it allows (a fraction resolved against the whole
    pool; None for tokens or no budget), the pool-wide counts, and for quotas the group names and quotas."""

    budget: Budget | None
    k: int | None
    n: int
    tokens: float
    names: tuple[str, ...] = ()
    quotas: np.ndarray | None = None


def plan_selection(selector: Selector | Quotas, budget: Budget | str | int | float | None,
                   total: ShardSummary) -> Plan:
    """Check the budget against the pool-wide counts (same errors as a global selection) and resolve it."""
    if hasattr(selector, "sharded_plan"):  # a selector that budgets per group its own way (a mixture)
        return selector.sharded_plan(budget, total)
    if isinstance(selector, Quotas):
        if total.n == 0:
            raise ConfigError("group labels must be a non-empty 1-D column, got shape (0,)")
        if budget is not None and Budget.parse(budget).kind == "tokens":  # rank as many as the shortest could fill
            k = max(1, min(total.n, fitting_records(total.lengths, Budget.parse(budget).value)))
        else:
            k = record_count(budget, total.n)
        names = tuple(total.groups)
        sizes = np.array([total.groups[g] for g in names], dtype=np.int64)
        return Plan(Budget.parse(budget), k, total.n, total.tokens, names, selector.group_quotas(list(names), sizes, k))
    if budget is None:
        return Plan(None, None, total.n, total.tokens)
    budget = Budget.parse(budget)
    cap = selector.budget_is_cap
    k = budget.records(total.n, cap)  # raises as Budget.take would
    if k is None:
        budget.check_tokens(total.tokens, cap)
    return Plan(budget, k, total.n, total.tokens)


@dataclass(frozen=True)
class Candidates:
    """One shard's candidates: sort keys (NaN as -inf), global positions, tokens, best first; for quotas also group
    codes, in position order."""

    keys: np.ndarray
    positions: np.ndarray
    tokens: np.ndarray
    codes: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.positions, self.tokens, self.codes) if a is not None)

    def sketch(self) -> Sketch:
        """Every s-th candidate's key, with how many candidates and tokens reach down to it (s = sqrt of count)."""
        stride = max(1, math.isqrt(len(self.keys)))
        at = np.arange(stride - 1, len(self.keys), stride)
        return Sketch(self.keys[at], at + 1, np.cumsum(self.tokens)[at] if len(at) else np.zeros(0))

    def above(self, cutoff: float) -> Candidates:
        """The candidates whose key is at least ``cutoff`` (a prefix: they are best first)."""
        if cutoff == -np.inf:
            return self
        keep = int(np.searchsorted(-self.keys, -cutoff, side="right"))
        return Candidates(self.keys[:keep], self.positions[:keep], self.tokens[:keep],
                          None if self.codes is None else self.codes[:keep])


@dataclass(frozen=True)
class Sketch:
    """A few points of one shard's candidate list: at least ``counts[i]`` candidates, holding at least
    ``tokens[i]`` tokens, have a key of at least ``keys[i]``."""

    keys: np.ndarray
    counts: np.ndarray
    tokens: np.ndarray


def cutoff(plan: Plan, sketches: Sequence[Sketch]) -> float:
    """The highest key such that the records at or above it surely hold the whole selection (-inf: keep all).

    The records with a key at or above any value form a prefix of the global order; the sketches give a lower bound
    on how many records (and tokens) that prefix holds, and once it holds ``k`` records, or more than the token
    budget (so the record where the budget stops is inside too), nothing below the cutoff can be selected.
    """
    if plan.budget is None or plan.quotas is not None or not sketches:
        return -np.inf
    keys = np.concatenate([sk.keys for sk in sketches])
    if not len(keys):
        return -np.inf
    shard = np.concatenate([np.full(len(sk.keys), i) for i, sk in enumerate(sketches)])
    # each point raises its shard's lower bound from the shard's previous point to its own
    gain = np.concatenate([np.diff(sk.counts, prepend=0) for sk in sketches])
    gain_tokens = np.concatenate([np.diff(sk.tokens, prepend=0) for sk in sketches])
    order = np.lexsort((np.arange(len(keys)), shard, -keys))  # high to low; a shard's points stay in their order
    if plan.k is not None:
        reached = np.cumsum(gain[order]) >= plan.k
    else:
        reached = np.cumsum(gain_tokens[order]) > plan.budget.value
    first = int(np.argmax(reached))
    return float(keys[order[first]]) if reached[first] else -np.inf


def _best(keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``keys`` (no NaN), ties to the lower index, sorted best first, ties by index."""
    m = len(keys)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < m:
        neg = -keys
        kth = np.partition(neg, k - 1)[k - 1]
        above = np.flatnonzero(neg < kth)
        ties = np.flatnonzero(neg == kth)[: k - len(above)]
        idx = np.concatenate([above, ties])
    else:
        idx = np.arange(m)
    return idx[np.lexsort((idx, -keys[idx]))]


def _within_tokens(keys: np.ndarray, tokens: np.ndarray, limit: float) -> np.ndarray:
    """The best records while their cumulative tokens stay within ``limit``, plus the next one (best first)."""
    m = len(keys)
    mean = max(float(np.mean(tokens)), 1e-9) if m else 1.0
    want = min(m, max(16, int(limit / mean * 1.25) + 2))
    while True:
        idx = _best(keys, want)
        cum = np.cumsum(tokens[idx])
        fits = int(np.searchsorted(cum, limit, side="right"))
        if fits < len(idx) or want >= m:
            return idx[: fits + 1]
        want = min(m, 2 * want)


def candidates(selector: Selector | Quotas, plan: Plan, scores: np.ndarray | None, positions: np.ndarray,
               n_tokens: np.ndarray, seed: int = 0, labels: np.ndarray | list | None = None) -> Candidates:
    """The records of one shard that may be selected under ``plan``; ``positions`` are their global positions in
    the pool's reading order (increasing), ``seed`` the selection seed (Quotas carry their own)."""
    positions = np.asarray(positions, dtype=np.int64)
    n_tokens = np.asarray(n_tokens)
    m = len(n_tokens)
    if len(positions) != m:
        raise ConfigError(f"got {len(positions)} record positions for {m} records")
    if isinstance(selector, Quotas):
        return _quota_candidates(selector, plan, scores, positions, n_tokens, labels)
    if hasattr(selector, "shard_candidates"):
        return selector.shard_candidates(plan, scores, positions, n_tokens, labels)
    selector.check(scores)
    keys = sort_keys(selector.keys(scores, positions, seed)) if m else np.zeros(0)
    ok = selector.passes(scores)
    idx = np.arange(m) if ok is None else np.flatnonzero(ok)
    if plan.budget is None:
        pick = idx[_best(keys[idx], len(idx))]
    elif plan.budget.kind == "tokens":
        pick = idx[_within_tokens(keys[idx], n_tokens[idx], plan.budget.value)]
    else:
        pick = idx[_best(keys[idx], min(plan.k, len(idx)))]
    return Candidates(keys[pick], positions[pick], n_tokens[pick])


def _quota_candidates(selector: Quotas, plan: Plan, scores: np.ndarray | None, positions: np.ndarray,
                      n_tokens: np.ndarray, labels: np.ndarray | list | None) -> Candidates:
    """A shard's top ``quota[g]`` records of every group g."""
    m = len(positions)
    if labels is None or len(labels) != m:
        raise ConfigError(f"selector 'quotas' needs a group label per record ({m} records)")
    scores = as_scores(scores, m, selector.within != "random", f"within-group rule {selector.within!r}")
    names = np.array(plan.names, dtype=str)
    values = np.asarray(labels).astype(str)
    codes = np.searchsorted(names, values).astype(np.int64)
    known = codes < len(names)
    known[known] = names[codes[known]] == values[known]
    if not known.all():
        raise ConfigError("a shard has a group label that the first pass did not count")
    keys = sort_keys(selector.keys(scores, positions)) if m else np.zeros(0)
    order = np.lexsort((np.arange(m), -keys, codes))
    g = codes[order]
    rank = np.arange(m) - np.searchsorted(g, g, side="left")
    pick = np.sort(order[rank < plan.quotas[g]])
    return Candidates(keys[pick], positions[pick], n_tokens[pick], codes[pick])


def within_quotas(keys: np.ndarray, positions: np.ndarray, n_tokens: np.ndarray, codes: np.ndarray,
                   quotas: np.ndarray, next_one: bool = False) -> np.ndarray:
    """Indices of every group g's best records (key desc, then position) while their tokens stay within
    ``quotas[g]`` (``next_one``: and the record after them, where a group's draw over every shard may stop); codes
    beyond the quotas are never taken."""
    order = np.lexsort((positions, -keys, codes))
    g = codes[order]
    starts = np.searchsorted(g, np.arange(len(quotas) + 1))
    taken = []
    for code in range(len(quotas)):
        rows = order[starts[code]:starts[code + 1]]
        cum = np.cumsum(n_tokens[rows])
        taken.append(rows[: int(np.searchsorted(cum, quotas[code], side="right")) + next_one])
    return np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)


def merge(selector: Selector | Quotas, plan: Plan, parts: Sequence[Candidates]) -> np.ndarray:
    """Global positions of the selected records in priority order: exactly ``selector.select`` over all shards."""
    if hasattr(selector, "merge_candidates"):  # a selector that budgets per group its own way (a mixture)
        return selector.merge_candidates(plan, parts)
    keys = np.concatenate([p.keys for p in parts]) if parts else np.zeros(0)
    positions = np.concatenate([p.positions for p in parts]) if parts else np.zeros(0, dtype=np.int64)
    if isinstance(selector, Quotas):
        codes = np.concatenate([p.codes for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        by_position = np.argsort(positions, kind="stable")
        chosen = by_position[stratified_order(codes[by_position], plan.quotas, keys[by_position])]
        if plan.budget is not None and plan.budget.kind == "tokens":  # the interleave's prefix that fits
            tokens = np.concatenate([p.tokens for p in parts])
            chosen = plan.budget.take(chosen, plan.n, tokens, total_tokens=plan.tokens)
        return positions[chosen]
    tokens = np.concatenate([p.tokens for p in parts]) if parts else np.zeros(0)
    order = np.lexsort((positions, -keys))
    if plan.budget is None:
        return positions[order]
    # the pool-wide counts stand in for the records that were not sent (a fraction is of the whole pool)
    taken = plan.budget.take(order, plan.n, tokens, cap=selector.budget_is_cap, total_tokens=plan.tokens)
    return positions[taken]


def select_sharded(selector: Selector | Quotas, budget: Budget | str | int | float | None,
                   shards: Sequence[tuple], seed: int = 0) -> np.ndarray:
    """Run the whole protocol over in-memory shards ``(scores, positions, n_tokens[, labels])``: global positions of
    the selected records, best first. The reference the tests compare with ``selector.select``."""
    labels_of = [s[3] if len(s) > 3 else None for s in shards]
    lengths = isinstance(selector, Quotas) and budget is not None and Budget.parse(budget).kind == "tokens"
    total = combine([summarize(s[2], lab, lengths) for s, lab in zip(shards, labels_of)])
    plan = plan_selection(selector, budget, total)
    parts = [candidates(selector, plan, s[0], s[1], s[2], seed, lab) for s, lab in zip(shards, labels_of)]
    tau = cutoff(plan, [p.sketch() for p in parts])
    return merge(selector, plan, [p.above(tau) for p in parts])
