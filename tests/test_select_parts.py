"""The select stage over parts of the side-car scores (tasks on the engine, an exact merge in the driver) chooses the
same records, baseline, counts and errors as one selection over the whole table, however the table is cut."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.engine import LocalEngine
from thresher.errors import ConfigError
from thresher.io.columns import as_float
from thresher.jobs.select_parts import (
    Rule,
    checked_rule,
    choose,
    count_parts,
    draw_baseline,
    resolve,
    resolve_budget,
    score_parts,
)
from thresher.selectors import Budget, make_selector
from thresher.selectors.base import Random
from thresher.selectors.eligibility import eligibility

TARGET_NAME = "target_news.jsonl"


@pytest.fixture(scope="module")
def scores_file(tmp_path_factory, sample_pool) -> tuple[pa.Table, str]:
    """A real select run's side-car scores (the whole sample pool, DSIR toward news), rewritten in row groups of
    500 rows so that parts of several sizes exist."""
    root = tmp_path_factory.mktemp("parts")
    run = th.select(sample_pool, target=th.demo.sample_path(TARGET_NAME), budget=10, out=root / "run", workers=1,
                    report=False)
    table = run.scores()
    path = root / "scores.parquet"
    pq.write_table(table, path, row_group_size=500)
    return table, str(path)


def _whole(table: pa.Table, rule: Rule) -> tuple:
    """The selection as one pass over the whole table does it (the reference)."""
    eligible, filtered = eligibility(table, rule.where, rule.min_tokens, rule.budget, rule.token_column)
    elig = np.flatnonzero(eligible)
    if not len(elig):
        raise ConfigError(f"no record passes the filters (--where, --min-tokens {rule.min_tokens}): {filtered}")
    tokens = as_float(table[rule.token_column])
    budget = resolve_budget(rule.budget, table.num_rows)
    selector = make_selector(rule.selector, temperature=rule.temperature, threshold=rule.threshold)
    values = as_float(table[rule.score])[elig] if rule.score else None
    chosen = elig[selector.select(values, budget, tokens[elig], rule.seed, elig)]
    by_tokens = budget is not None and budget.kind == "tokens"
    rows = np.flatnonzero(np.isfinite(tokens)) if by_tokens else np.arange(table.num_rows)
    base = Budget("count", len(chosen)) if not by_tokens else budget
    baseline = rows[Random().select(None, base, tokens[rows], rule.seed, rows)] if len(chosen) else chosen[:0]
    return chosen, baseline, filtered, int(eligible.sum())


def _parts(path: str, rule: Rule, part_rows: int, workers: int) -> tuple:
    parts = score_parts(path, part_rows)
    with LocalEngine(workers) as engine:
        counts = count_parts(parts, rule, engine)
        budget = resolve_budget(rule.budget, counts.n)
        chosen = choose(parts, rule, engine, counts, budget)
        baseline = draw_baseline(parts, rule, engine, counts, budget, len(chosen))
        found = resolve(parts, rule, engine, chosen, baseline)
    return chosen, baseline, counts.filtered, counts.eligible.n, found, len(parts)


def _rule(table: pa.Table, **kw) -> Rule:
    base = dict(selector="gumbel", temperature=None, threshold=None, score="dsir", token_column="n_words",
                where=None, min_tokens=0, budget="5%", seed=3, has_group=False)
    return checked_rule(table.schema, Rule(**(base | kw)))


CASES = [
    dict(),
    dict(selector="topk", budget="40k tokens", min_tokens=30),
    dict(selector="random", score=None, budget=200, seed=11, where="group == 'news'"),
    dict(selector="threshold", threshold=0.0, budget=None),
    dict(selector="threshold", threshold=-1.0, budget="1%", where="n_words > 80"),
    dict(selector="gumbel", temperature=2.0, budget="25k tokens", token_column="n_tokens", min_tokens=200),
]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
@pytest.mark.parametrize("part_rows", [1, 700, 3000, 10**9])
def test_parts_choose_what_the_whole_table_chooses(scores_file, case, part_rows):
    table, path = scores_file
    rule = _rule(table, **case)
    chosen, baseline, filtered, n_eligible = _whole(table, rule)
    got_chosen, got_baseline, got_filtered, got_eligible, found, n_parts = _parts(path, rule, part_rows, 2)
    row_groups, per_part = math.ceil(table.num_rows / 500), math.ceil(part_rows / 500)
    assert n_parts == math.ceil(row_groups / per_part)
    assert len(chosen) > 0 and len(baseline) > 0
    if not (rule.budget and "tokens" in str(rule.budget)):
        assert len(baseline) == len(chosen)
    np.testing.assert_array_equal(got_chosen, chosen)
    np.testing.assert_array_equal(got_baseline, baseline)
    assert got_filtered == filtered and list(got_filtered) == list(filtered)  # same counts, same key order
    assert got_eligible == n_eligible
    # what the measure and write stages get: ids in selection order, words, tokens, group counts
    assert found.ids.to_pylist() == table["id"].take(pa.array(chosen)).to_pylist()
    assert found.words == int(table["n_words"].to_numpy()[chosen].sum())
    assert found.tokens == np.nansum(as_float(table[rule.token_column])[chosen])
    groups = np.asarray(table["group"].to_pylist(), dtype=object)
    pool, sel, rnd = found.groups
    assert sum(pool.values()) == table.num_rows and sel == dict(zip(*np.unique(groups[chosen], return_counts=True)))
    assert rnd == dict(zip(*np.unique(groups[baseline], return_counts=True)))


def test_the_budget_errors_are_those_of_the_whole_table(scores_file):
    table, path = scores_file
    for case in (dict(budget=10**6), dict(budget="1G tokens", selector="topk"), dict(where="n_words < 0")):
        rule = _rule(table, **case)
        with pytest.raises(ConfigError) as whole:
            _whole(table, rule)
        with pytest.raises(ConfigError) as parts:
            _parts(path, rule, 700, 2)
        assert str(parts.value) == str(whole.value)


def test_a_where_naming_a_missing_column_fails_before_any_task(scores_file):
    table, _ = scores_file
    with pytest.raises(ConfigError, match="nope"):
        _rule(table, where="nope > 1")


def test_parts_are_runs_of_whole_row_groups_covering_the_table(scores_file):
    table, path = scores_file
    parts = score_parts(path, 1200)
    assert [p.start for p in parts] == list(np.cumsum([0] + [p.rows for p in parts[:-1]]))
    assert sum(p.rows for p in parts) == table.num_rows
    assert all(p.rows >= 1200 for p in parts[:-1]) and all(len(p.row_groups) == 3 for p in parts[:-1])
    assert pa.concat_tables(p.read(["id"]) for p in parts)["id"].to_pylist() == table["id"].to_pylist()


@pytest.mark.parametrize("within,allocation", [("topk", "proportional"), ("random", "equal"), ("gumbel", "sqrt")])
@pytest.mark.parametrize("part_rows", [500, 1500, 10**9])
def test_group_quotas_over_parts_choose_what_the_whole_table_chooses(scores_file, within, allocation, part_rows):
    """Quotas decompose: the first pass counts eligible records per group label, the driver allocates, each part
    sends its best quota[g] of every group, and the stratified interleave of the merge equals Quotas.select over
    the whole table (position-keyed noise for random and gumbel)."""
    from thresher.selectors.quotas import Quotas

    table, path = scores_file
    rule = _rule(table, selector="quotas", budget="300", where="n_words > 20", labels="group",
                 params={"within": within, "allocation": allocation})
    chosen, baseline, filtered, n_eligible, found, n_parts = _parts(path, rule, part_rows, 2)
    eligible, ref_filtered = eligibility(table, rule.where, 0, rule.budget, rule.token_column)
    elig = np.flatnonzero(eligible)
    labels = np.array(["(none)" if v is None else str(v) for v in table["group"].to_pylist()], dtype=object)[elig]
    quotas = Quotas(allocation=allocation, within=within, seed=rule.seed)
    ref = elig[quotas.select(labels, 300, as_float(table["dsir"])[elig], positions=elig)]
    assert np.array_equal(chosen, ref) and filtered == ref_filtered and n_eligible == len(elig)
    assert (n_parts > 1) == (part_rows < table.num_rows)
    picked = table["group"].take(pa.array(chosen)).to_pylist()
    assert {g: picked.count(g) for g in set(picked)} == {g: c for g, c in quotas.counts(labels, 300).items() if c}
    assert found.ids.to_pylist() == table["id"].take(pa.array(chosen)).to_pylist()


@pytest.mark.parametrize("within", ["topk", "gumbel"])
@pytest.mark.parametrize("part_rows", [500, 10**9])
def test_group_quotas_under_a_token_budget_over_parts_equal_the_whole_table(scores_file, within, part_rows):
    """Under a token budget the first pass also counts records per length: the quotas split as many records as the
    shortest could fill (as the whole-table selector does), and the merge keeps the interleave's prefix that fits
    the budget."""
    from thresher.selectors.diversity import run_diversity_selector
    from thresher.selectors.quotas import Quotas

    table, path = scores_file
    rule = _rule(table, selector="quotas", budget="20000 tokens", where="n_words > 20", labels="group",
                 params={"within": within, "allocation": "sqrt"})
    chosen, _, _, n_eligible, found, _ = _parts(path, rule, part_rows, 2)
    eligible, _ = eligibility(table, rule.where, 0, rule.budget, rule.token_column)
    elig = np.flatnonzero(eligible)
    labels = np.array(["(none)" if v is None else str(v) for v in table["group"].to_pylist()], dtype=object)[elig]
    tokens = as_float(table["n_words"])[elig]
    quotas = Quotas(allocation="sqrt", within=within, seed=rule.seed)
    ref = elig[run_diversity_selector(quotas, "20000 tokens", labels=labels, scores=as_float(table["dsir"])[elig],
                                      n_tokens=tokens)] if within == "topk" else None
    if ref is not None:  # topk's keys do not depend on positions, so the pipeline's own whole-table path agrees
        assert np.array_equal(chosen, ref)
    spent = as_float(table["n_words"])[chosen].sum()
    assert 19_000 < spent <= 20_000 and found.tokens == spent
    groups = set(table["group"].take(pa.array(chosen)).to_pylist())
    assert len(groups) == len(set(labels))  # every group has its share


@pytest.mark.parametrize("within", ["random", "score"])
def test_a_mixture_over_parts_draws_what_the_whole_table_draws(scores_file, within):
    """select --mixture over parts of the scores: each part sends every group's best records within its token
    quota (and the next one), and the merge equals drawing the mixture over the whole table by pool position."""
    from thresher.selectors.mixture import MixtureQuotas

    table, path = scores_file
    names = sorted({"(none)" if v is None else v for v in table["group"].to_pylist()})
    weights = {g: w / sum(range(1, len(names) + 1)) for w, g in enumerate(names, start=1)}
    rule = _rule(table, selector="mixture", budget="6000 tokens", labels="group", score="dsir",
                 params={"weights": weights, "within": within})
    eligible, _ = eligibility(table, rule.where, 0, rule.budget, rule.token_column)
    elig = np.flatnonzero(eligible)
    labels = np.array(["(none)" if v is None else str(v) for v in table["group"].to_pylist()], dtype=object)[elig]
    mixture = MixtureQuotas(weights, within=within, seed=rule.seed)
    ref = elig[mixture.select_tokens(labels, as_float(table["n_words"])[elig], Budget.parse("6000 tokens"),
                                     as_float(table["dsir"])[elig], positions=elig)]
    for part_rows in (500, 10**9):
        chosen, *_ = _parts(path, rule, part_rows, 2)
        assert np.array_equal(chosen, ref)
    spent = {g: as_float(table["n_words"])[chosen][np.array(table["group"].take(pa.array(chosen)).to_pylist()) == g]
             .sum() for g in names}
    assert all(spent[g] <= weights[g] * 6000 for g in names) and sum(spent.values()) > 0.75 * 6000
