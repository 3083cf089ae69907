"""The select stage over the side-car scores' row groups, for the ranking selectors (top-k, Gumbel top-k, random,
threshold), group quotas and mixtures: each engine task reads one part of ``scores.parquet`` (a run of row groups)
and answers for its records only; the driver merges exactly (:mod:`thresher.selectors.sharded`), so it holds the
selection and a few keys per part, never the score table.

Passes over the parts, each a stateless task that reads only the columns it needs:

1. **count**: eligibility (pipeline filters, ``--where``, length floor, token pricing) and its counts (per group
   label, for quotas, whose allocation depends only on them);
2. **chosen**: a sketch of the part's candidates, then the candidates above the merged cutoff;
3. **baseline**: the same for the random baseline (same size as the selection, drawn from the whole pool);
4. **resolve**: ids, words, tokens and group counts of the chosen and baseline records.

The result equals ``selector.select`` over the whole table (tested), so a run's selection does not depend on how the
scores were cut into parts or on the engine.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.engine import Engine
from thresher.errors import ConfigError
from thresher.io.columns import as_float
from thresher.selectors import Budget, make_selector
from thresher.selectors.base import Random
from thresher.selectors.diversity import DIVERSITY_SELECTORS, make_diversity_selector
from thresher.selectors.eligibility import eligibility
from thresher.selectors.setwise import TARGETED
from thresher.selectors.sharded import ShardSummary, candidates, combine, cutoff, merge, plan_selection, summarize
from thresher.selectors.where import WhereExpression

#: Set-level selectors that decompose over parts: each budgets per group of a label column.
GROUP_SELECTORS = ("quotas", "mixture")
#: Rows per part: big enough that a task's start-up cost is small, small enough that a worker holds one easily.
PART_ROWS = 1 << 18


@dataclass(frozen=True)
class ScorePart:
    """A run of row groups of a scores file: where it is and the table position of its first row."""

    path: str
    row_groups: tuple[int, ...]
    start: int
    rows: int

    def read(self, columns: list[str] | None) -> pa.Table:
        return pq.ParquetFile(self.path).read_row_groups(list(self.row_groups), columns=columns)


def score_parts(path: str, part_rows: int = PART_ROWS) -> list[ScorePart]:
    """Cut a scores file into runs of whole row groups of at least ``part_rows`` rows (the last may be smaller)."""
    meta = pq.ParquetFile(path).metadata
    parts: list[ScorePart] = []
    groups: list[int] = []
    start = rows = 0
    for g in range(meta.num_row_groups):
        groups.append(g)
        rows += meta.row_group(g).num_rows
        if rows >= part_rows or g == meta.num_row_groups - 1:
            parts.append(ScorePart(str(path), tuple(groups), start, rows))
            start, groups, rows = start + rows, [], 0
    return parts


@dataclass(frozen=True)
class Rule:
    """What every task needs to decide for its records: the selector, the columns and filters, the seed."""

    selector: str
    temperature: float | None
    threshold: float | None
    score: str | None  # the ranked column (None: the selector needs no scores)
    token_column: str
    where: str | None
    min_tokens: int
    budget: str | None  # as given (eligibility prices records only under a token budget)
    seed: int
    has_group: bool
    labels: str | None = None  # the group column quotas (or a mixture) split the budget over
    params: dict = field(default_factory=dict)  # the quotas (or mixture) selector's parameters

    def make_selector(self):
        """The selector every task and the merge use."""
        if self.selector in GROUP_SELECTORS:
            return make_diversity_selector(self.selector, seed=self.seed, **self.params)
        return make_selector(self.selector, temperature=self.temperature, threshold=self.threshold)

    def group_labels(self, table: pa.Table) -> np.ndarray | None:
        """The label of every row (quotas), as the whole-table selection reads them: ``(none)`` where missing."""
        if self.labels is None:
            return None
        return np.array(["(none)" if v is None else str(v) for v in table[self.labels].to_pylist()], dtype=object)

    def columns(self, schema: pa.Schema) -> list[str] | None:
        """The columns the tasks read (None: all, when ``where`` may name any)."""
        if self.where is not None:
            return None
        wanted = {"n_tokens" if "n_tokens" in schema.names else "n_words", self.token_column, "filtered_by",
                  self.score, self.labels}
        return [c for c in schema.names if c in wanted]


@dataclass(frozen=True)
class PartCount:
    """Pass 1 of one part: its rows, what the filters removed, and the counts of its eligible and pool records."""

    rows: int
    filtered: dict[str, int]
    eligible: ShardSummary
    pool: ShardSummary  # the rows a random baseline draws from (under a token budget: those with a token count)


def _eligible(part: ScorePart, rule: Rule) -> tuple[pa.Table, np.ndarray, dict[str, int], np.ndarray]:
    table = part.read(rule.columns(pq.ParquetFile(part.path).schema_arrow))
    eligible, filtered = eligibility(table, rule.where, rule.min_tokens, rule.budget, rule.token_column)
    return table, eligible, filtered, as_float(table[rule.token_column])


def _by_tokens(rule: Rule) -> bool:
    return rule.budget is not None and Budget.parse(rule.budget).kind == "tokens"


def _pool_rows(rule: Rule, tokens: np.ndarray) -> np.ndarray:
    """The rows a random baseline may draw: all, or under a token budget only those it can price."""
    return np.flatnonzero(np.isfinite(tokens)) if _by_tokens(rule) else np.arange(len(tokens))


def count_part(part: ScorePart, rule: Rule) -> PartCount:
    """Engine task (pass 1): eligibility counts of one part."""
    table, eligible, filtered, tokens = _eligible(part, rule)
    pool = _pool_rows(rule, tokens)
    labels = rule.group_labels(table)
    return PartCount(part.rows, filtered, summarize(tokens[eligible], None if labels is None else labels[eligible],
                                                    lengths=labels is not None and _by_tokens(rule)),
                     summarize(tokens[pool]))


def part_candidates(part: ScorePart, rule: Rule, which: str, plan, tau: float | None):
    """Engine task (passes 2 and 3): the sketch (``tau`` None) or the candidates at or above ``tau`` of one part,
    for the chosen records (``which='chosen'``) or the random baseline."""
    table, eligible, _, tokens = _eligible(part, rule)
    labels = None
    if which == "chosen":
        rows = np.flatnonzero(eligible)
        selector = rule.make_selector()
        values = as_float(table[rule.score])[rows] if rule.score is not None else None
        labels = rule.group_labels(table)
        labels = None if labels is None else labels[rows]
    else:
        rows, selector, values = _pool_rows(rule, tokens), Random(), None
    found = candidates(selector, plan, values, rows + part.start, tokens[rows], rule.seed, labels)
    return found.sketch() if tau is None else found.above(tau)


@dataclass
class Chosen:
    """What the measure and write stages need of a selection (or of one part of it): the chosen ids, their words
    and tokens, and group counts of the pool, the chosen and the baseline records."""

    ids: pa.Array
    words: int
    tokens: float
    groups: tuple[Counter, Counter, Counter] | None


def resolve_part(part: ScorePart, rule: Rule, chosen: np.ndarray, baseline: np.ndarray) -> Chosen:
    """Engine task (pass 4): what the measure and write stages need of the part's chosen (sorted positions within
    the part) and baseline records."""
    columns = ["id", "n_words", rule.token_column] + (["group"] if rule.has_group else [])
    table = part.read(list(dict.fromkeys(columns)))
    tokens = as_float(table[rule.token_column])[chosen]
    groups = None
    if rule.has_group:
        values = np.asarray(table["group"].fill_null("(none)").to_numpy(zero_copy_only=False), dtype=object)
        groups = (Counter(values.tolist()), Counter(values[chosen].tolist()), Counter(values[baseline].tolist()))
    return Chosen(table["id"].take(pa.array(chosen, pa.int64())).combine_chunks(),
                  int(table["n_words"].to_numpy()[chosen].sum()), float(np.nansum(tokens)), groups)


@dataclass(frozen=True)
class Counts:
    """Pass 1 over every part: rows scored, what the filters removed, and the eligible and baseline pools' counts."""

    n: int
    filtered: dict[str, int]
    eligible: ShardSummary
    pool: ShardSummary


def _filtered(parts: list[PartCount]) -> dict[str, int]:
    """The parts' filter counts summed, keys in the order one pass over the whole table gives them."""
    total: Counter = Counter()
    for p in parts:
        total.update(p.filtered)
    late = ("where", "too_short", "no_token_count")
    present = set().union(*(p.filtered for p in parts))
    return {**{k: total[k] for k in sorted(present - set(late))}, **{k: total[k] for k in late if k in present}}


def count_parts(parts: list[ScorePart], rule: Rule, engine: Engine) -> Counts:
    """Pass 1: eligibility counts over every part; fails when no record passes the filters."""
    counts = list(engine.map(count_part, ((p, rule) for p in parts)))
    filtered = _filtered(counts)
    eligible = combine([c.eligible for c in counts])
    if eligible.n == 0:
        raise ConfigError(f"no record passes the filters (--where, --min-tokens {rule.min_tokens}): {filtered}")
    return Counts(sum(c.rows for c in counts), filtered, eligible, combine([c.pool for c in counts]))


def resolve_budget(spec: str | None, n: int) -> Budget | None:
    """The budget, a fraction resolved to records of the whole scored pool (not of what a length filter leaves:
    "5%" means the same records count whatever --min-tokens is)."""
    budget = Budget.parse(spec) if spec is not None else None
    if budget is not None and budget.kind == "fraction":
        budget = Budget("count", float(max(1, round(budget.value * n))))
    return budget


def _exact(engine: Engine, parts: list[ScorePart], rule: Rule, which: str, selector, plan) -> np.ndarray:
    """Sketches, the cutoff, then the candidates above it, merged: the selected positions, best first."""
    sketches = list(engine.map(part_candidates, ((p, rule, which, plan, None) for p in parts)))
    tau = cutoff(plan, sketches)
    found = list(engine.map(part_candidates, ((p, rule, which, plan, tau) for p in parts)))
    return merge(selector, plan, found)


def choose(parts: list[ScorePart], rule: Rule, engine: Engine, counts: Counts, budget: Budget | None) -> np.ndarray:
    """Passes 2: positions of the chosen records, best first, exactly as ``selector.select`` over the whole table
    of eligible records (the budget's errors too)."""
    selector = rule.make_selector()
    return _exact(engine, parts, rule, "chosen", selector, plan_selection(selector, budget, counts.eligible))


def draw_baseline(parts: list[ScorePart], rule: Rule, engine: Engine, counts: Counts, budget: Budget | None,
                  n_chosen: int) -> np.ndarray:
    """Passes 3: what a user gets without thresher, a uniform sample of the whole pool with the selection's size
    (or its token budget) and seed."""
    if not n_chosen:
        return np.zeros(0, dtype=np.int64)
    by_tokens = budget is not None and budget.kind == "tokens"
    plan = plan_selection(Random(), budget if by_tokens else Budget("count", n_chosen), counts.pool)
    return _exact(engine, parts, rule, "baseline", Random(), plan)


def resolve(parts: list[ScorePart], rule: Rule, engine: Engine, chosen: np.ndarray, baseline: np.ndarray) -> Chosen:
    """Ids (in ``chosen``'s order), words, tokens and group counts of the chosen and baseline positions."""
    ends = np.array([p.start + p.rows for p in parts])
    by_pos, base = np.sort(chosen), np.sort(baseline)

    def within(rows: np.ndarray, i: int) -> np.ndarray:
        lo, hi = np.searchsorted(rows, [parts[i].start, ends[i]])
        return rows[lo:hi] - parts[i].start

    found = list(engine.map(resolve_part, ((p, rule, within(by_pos, i), within(base, i))
                                           for i, p in enumerate(parts))))
    ids = pa.concat_arrays([f.ids for f in found]) if found else pa.array([], pa.large_string())
    groups = None
    if rule.has_group:
        groups = tuple(sum((f.groups[k] for f in found), Counter()) for k in range(3))
    return Chosen(ids.take(pa.array(np.searchsorted(by_pos, chosen), pa.int64())), sum(f.words for f in found),
                  sum(f.tokens for f in found), groups)


def checked_rule(schema: pa.Schema, rule: Rule) -> Rule:
    """The rule with its columns checked against the scores' schema: the same errors a whole-table selection
    gives, before any task runs."""
    if rule.token_column not in schema.names:
        raise ConfigError(f"no token column {rule.token_column!r} in the scores (the tokens scorer adds n_tiktoken)")
    if rule.where is not None:
        WhereExpression(rule.where).check_columns(schema.names)
    if rule.labels is not None and rule.labels not in schema.names:
        raise ConfigError(f"no label column {rule.labels!r} in the scores; available: {', '.join(schema.names)}")
    return replace(rule, has_group="group" in schema.names)


def runs_over_parts(selector: str, budget: str | None) -> bool:
    """Whether the select stage runs over parts of the scores: the ranking selectors, and group quotas and mixtures
    with a budget; the other set-level selectors (and distribution matching) read the whole table."""
    if selector in GROUP_SELECTORS:
        return budget is not None
    return selector not in DIVERSITY_SELECTORS and selector not in TARGETED


__all__ = ["GROUP_SELECTORS", "PART_ROWS", "Chosen", "Counts", "Rule", "ScorePart", "checked_rule",
           "choose", "count_parts", "draw_baseline", "resolve", "resolve_budget", "runs_over_parts", "score_parts"]
