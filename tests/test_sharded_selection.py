"""Selection from per-shard candidates and an exact merge equals the global selection; position-keyed noise has the
right distribution."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from thresher.errors import ConfigError
from thresher.selectors import Budget, make_selector, noise
from thresher.selectors.diversity import token_upper_bound
from thresher.selectors.quotas import Quotas
from thresher.selectors.sharded import (
    candidates,
    combine,
    cutoff,
    fitting_records,
    merge,
    plan_selection,
    select_sharded,
    summarize,
)


def _outcome(fn, *args):
    """The result of ``fn(*args)`` or the message of the ConfigError it raises (so errors can be compared too)."""
    try:
        return ("ok", fn(*args))
    except ConfigError as e:
        return ("error", str(e))


def _global(selector, scores, budget, tokens, seed, positions):
    """The global selection as pool positions."""
    return positions[selector.select(scores, budget, tokens, seed, positions)]


def _global_quotas(quotas, labels, budget, scores, positions, tokens=None):
    """Quotas over the whole table; under a token budget as the set-level selectors take one: rank as many records
    as the shortest could fill, then keep the prefix that fits."""
    b = Budget.parse(budget)
    if b.kind != "tokens":
        return positions[quotas.select(labels, budget, scores, positions)]
    order = quotas.select(labels, token_upper_bound(b, tokens), scores, positions)
    return positions[b.take(order, len(labels), np.asarray(tokens))]


def _same(a, b) -> bool:
    return a[0] == b[0] and (np.array_equal(a[1], b[1]) if a[0] == "ok" else a[1] == b[1])


def _split(rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    """Random shard boundaries over n records, empty shards included."""
    cuts = np.sort(rng.integers(0, n + 1, size=rng.integers(0, 8)))
    if rng.random() < 0.3 and n:
        cuts = np.sort(np.concatenate([cuts, [cuts[0] if len(cuts) else 0] * 2]))  # repeated cut: empty shards
    bounds = [0, *cuts.tolist(), n]
    return list(zip(bounds[:-1], bounds[1:]))


def _data(rng: np.random.Generator, n: int):
    """Scores with ties, NaN and infinities; integer tokens (zeros too); increasing pool positions with gaps."""
    scores = np.round(rng.normal(size=n), int(rng.integers(0, 3)))  # rounding makes ties
    scores[rng.random(n) < rng.choice([0.0, 0.1, 0.6])] = np.nan
    scores[rng.random(n) < 0.03] = -np.inf
    scores[rng.random(n) < 0.03] = np.inf
    tokens = rng.integers(0 if rng.random() < 0.3 else 1, rng.choice([3, 50, 400]), size=n)
    positions = np.sort(rng.choice(4 * n + 10, size=n, replace=False))
    return scores, tokens, positions


def _budget(rng: np.random.Generator, n: int, tokens: np.ndarray, with_tokens: bool = True) -> Budget | None:
    kind = rng.choice(["count", "fraction", "tokens", "none"] if with_tokens else ["count", "fraction"])
    if kind == "count":  # sometimes more than there are: the error case
        return Budget("count", float(rng.integers(1, max(2, n + 4))))
    if kind == "fraction":
        return Budget("fraction", float(rng.choice([0.001, 0.05, 0.3, 0.5, 1.0, rng.random() or 0.5])))
    if kind == "tokens":
        total = int(tokens.sum())
        return Budget("tokens", float(rng.integers(1, max(2, total + 40))))
    return None


SELECTOR_CASES = ["random", "topk", "gumbel", "threshold"]


def _selector(rng: np.random.Generator, name: str):
    if name == "gumbel":
        return make_selector("gumbel", temperature=float(rng.choice([0.1, 1.0, 3.0])))
    if name == "threshold":
        return make_selector("threshold", threshold=float(rng.choice([-0.5, 0.0, 1.0, 5.0])))
    return make_selector(name)


@pytest.mark.parametrize("name", SELECTOR_CASES)
def test_sharded_equals_global_for_every_basic_selector(name):
    rng = np.random.default_rng(100 + SELECTOR_CASES.index(name))
    kinds = {"ok": 0, "error": 0}
    for case in range(150):
        n = int(rng.choice([0, 1, 2, 5, 30, 200, 1000]))
        scores, tokens, positions = _data(rng, n)
        selector = _selector(rng, name)
        budget = _budget(rng, n, tokens)
        if budget is None and name != "threshold" and rng.random() < 0.7:
            budget = Budget("count", 3.0)
        seed = int(rng.integers(0, 2**63))
        s = None if name == "random" else scores
        want = _outcome(_global, selector, s, budget, tokens, seed, positions)
        splits = [_split(rng, n) for _ in range(2)]
        for split in splits:
            shards = [(None if s is None else s[a:b], positions[a:b], tokens[a:b]) for a, b in split]
            got = _outcome(select_sharded, selector, budget, shards, seed)
            assert _same(want, got), (case, name, n, budget, split, want, got)
        kinds[want[0]] += 1
    assert kinds["ok"] > 50  # both the selections and the error cases were exercised (a threshold's budget is a cap)
    assert kinds["error"] > 5 if name != "threshold" else kinds["error"] == 0


@pytest.mark.parametrize("within", ["topk", "random", "gumbel"])
def test_sharded_quotas_equal_global(within):
    rng = np.random.default_rng(7 + ["topk", "random", "gumbel"].index(within))
    kinds = {"ok": 0, "error": 0}
    by_tokens = 0
    for case in range(120):
        n = int(rng.choice([1, 3, 20, 150, 600]))
        scores, tokens, positions = _data(rng, n)
        groups = [f"g{i}" for i in range(int(rng.integers(1, 6)))]
        labels = rng.choice(groups, size=n, p=rng.dirichlet(np.ones(len(groups))))
        allocation = str(rng.choice(["proportional", "equal", "sqrt", "weights"]))
        weights = {g: float(rng.choice([0.0, 0.5, 2.0])) for g in groups if rng.random() < 0.8} \
            if allocation == "weights" else None
        q = Quotas(allocation=allocation, weights=weights, within=within, temperature=float(rng.choice([0.5, 2.0])),
                   seed=int(rng.integers(0, 1000)))
        budget = _budget(rng, n, tokens, with_tokens=False)
        if rng.random() < 0.4:
            budget = Budget("tokens", float(rng.integers(1, int(tokens.sum()) + 40)))
        s = None if within == "random" else scores
        want = _outcome(_global_quotas, q, labels, budget, s, positions, tokens)
        for split in (_split(rng, n), _split(rng, n)):
            shards = [(None if s is None else s[a:b], positions[a:b], tokens[a:b], labels[a:b]) for a, b in split]
            got = _outcome(select_sharded, q, budget, shards)
            assert _same(want, got), (case, within, allocation, weights, budget, split, want, got)
        kinds[want[0]] += 1
        by_tokens += want[0] == "ok" and budget.kind == "tokens"
    assert kinds["ok"] > 50 and by_tokens > 15


def _mixture_reference(mixture, labels, budget, scores, positions, tokens):
    """A mixture drawn over the whole table, written out plainly: each weighted group's records best first (key,
    then position) while the group's tokens stay within weight x budget, then the stratified interleave."""
    from thresher.selectors.quotas import stratified_order

    quotas = mixture.quotas(budget)
    names = sorted(quotas)
    for g in names:
        have = tokens[labels == g].sum()
        if quotas[g] > 0 and g not in set(labels):
            raise ConfigError("missing")
        if have < quotas[g] - budget.value * 1e-6:
            raise ConfigError("short")
    keys = mixture.keys(scores, positions)
    codes = np.array([names.index(v) if v in names else len(names) for v in labels])
    counts = np.zeros(len(names) + 1, dtype=np.int64)
    for g in range(len(names)):
        rows = np.flatnonzero(codes == g)
        rows = rows[np.lexsort((rows, -keys[rows]))]
        counts[g] = np.searchsorted(np.cumsum(tokens[rows]), quotas[names[g]], side="right")
    return positions[stratified_order(codes, counts, keys)]


@pytest.mark.parametrize("within", ["random", "score"])
def test_sharded_mixtures_equal_a_plain_whole_table_draw(within):
    """A mixture over shards (each sends every weighted group's best records within its quota; the merge refills
    the quotas and interleaves) equals the plain whole-table draw, errors too (groups the pool lacks, or that hold
    less than their share)."""
    from thresher.selectors.mixture import MixtureQuotas

    rng = np.random.default_rng(11 + (within == "score"))
    kinds = {"ok": 0, "error": 0}
    for case in range(150):
        n = int(rng.choice([1, 5, 40, 300, 900]))
        scores, tokens, positions = _data(rng, n)
        tokens = tokens.astype(float)
        groups = [f"g{i}" for i in range(int(rng.integers(1, 5)))]
        labels = rng.choice(groups, size=n).astype(str)
        weighted = groups if rng.random() < 0.8 else groups + ["absent"]
        raw = rng.dirichlet(np.ones(len(weighted)))
        mixture = MixtureQuotas(dict(zip(weighted, raw / raw.sum())), within=within, seed=int(rng.integers(0, 99)))
        budget = Budget("tokens", float(rng.integers(1, int(tokens.sum()) + 2)))
        s = scores if within == "score" else None
        try:
            want = ("ok", _mixture_reference(mixture, labels, budget, s, positions, tokens))
        except ConfigError:
            want = ("error", None)
        for split in (_split(rng, n), _split(rng, n)):
            shards = [(None if s is None else s[a:b], positions[a:b], tokens[a:b], labels[a:b]) for a, b in split]
            got = _outcome(select_sharded, mixture, budget, shards)
            assert got[0] == want[0] and (got[0] == "error" or np.array_equal(got[1], want[1])), \
                (case, split, want, got)
        kinds[want[0]] += 1
    assert kinds["ok"] > 40 and kinds["error"] > 10


def test_records_per_token_count_give_the_sorted_upper_bound():
    """fitting_records from a histogram (what shards can send) equals sorting every record's count."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 400))
        tokens = rng.integers(0 if rng.random() < 0.3 else 1, rng.choice([2, 40, 900]), size=n).astype(float)
        limit = float(rng.integers(1, int(tokens.sum()) + 50))
        halves = [summarize(tokens[:n // 3], lengths=True), summarize(tokens[n // 3:], lengths=True)]
        fits = fitting_records(combine(halves).lengths, limit)
        assert max(1, min(n, fits)) == token_upper_bound(Budget("tokens", limit), tokens)


def test_error_messages_are_the_global_ones():
    scores = np.arange(10, dtype=np.float64)
    tokens = np.full(10, 5)
    positions = np.arange(10)
    shards = [(scores[:4], positions[:4], tokens[:4]), (scores[4:4], positions[4:4], tokens[4:4]),
              (scores[4:], positions[4:], tokens[4:])]
    topk = make_selector("topk")
    for budget, match in [(Budget("count", 11.0), "asks for 11 records but only 10"),
                          (Budget("tokens", 51.0), "exceeds the 50 tokens"),
                          (Budget("tokens", 4.0), "smaller than the first record")]:
        with pytest.raises(ConfigError, match=match) as glob:
            topk.select(scores, budget, tokens, 0, positions)
        with pytest.raises(ConfigError) as shard:
            select_sharded(topk, budget, shards)
        assert str(shard.value) == str(glob.value)
    with pytest.raises(ConfigError, match="needs scores"):
        select_sharded(topk, Budget("count", 2.0), [(None, positions, tokens)])
    # a threshold's budget is a cap: more than passes is not an error, sharded or not
    th = make_selector("threshold", threshold=7.0)
    np.testing.assert_array_equal(select_sharded(th, Budget("count", 11.0), shards), [9, 8, 7])


def test_determinism_across_shard_splits_and_noise_is_keyed_by_position():
    rng = np.random.default_rng(3)
    n = 5000
    scores = rng.normal(size=n)
    tokens = rng.integers(1, 100, n)
    positions = np.arange(n) * 3 + 11
    gumbel = make_selector("gumbel")
    results = []
    for n_shards in (1, 2, 7, 64):
        bounds = np.linspace(0, n, n_shards + 1).astype(int)
        shards = [(scores[a:b], positions[a:b], tokens[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        results.append(select_sharded(gumbel, Budget("tokens", 20_000.0), shards, seed=5))
    assert all(np.array_equal(results[0], r) for r in results[1:])
    assert 300 < len(results[0]) < 1000
    # a record's noise does not depend on which records come before it: dropping the first half changes nothing
    keys_all = gumbel.keys(scores, positions, 5)
    np.testing.assert_array_equal(gumbel.keys(scores[n // 2:], positions[n // 2:], 5), keys_all[n // 2:])
    # but the seed and the stream do matter
    assert not np.array_equal(noise.uniform(5, positions), noise.uniform(6, positions))
    assert not np.array_equal(noise.uniform(5, positions, noise.STREAM_RANDOM),
                              noise.uniform(5, positions, noise.STREAM_GUMBEL))


def test_merge_holds_only_candidates_near_the_budget():
    rng = np.random.default_rng(11)
    n, n_shards = 40_000, 20
    scores = rng.normal(size=n)
    tokens = rng.integers(10, 20, n)
    positions = np.arange(n)
    edges = np.linspace(0, n, n_shards + 1).astype(int)
    bounds = list(zip(edges[:-1], edges[1:]))
    # k = 10% is more than a shard holds: without the cutoff every shard would send everything
    for selector, budget in [(make_selector("gumbel"), Budget("count", 4000.0)),
                             (make_selector("topk"), Budget("tokens", 30_000.0))]:
        total = combine([summarize(tokens[a:b]) for a, b in bounds])
        plan = plan_selection(selector, budget, total)
        parts = [candidates(selector, plan, scores[a:b], positions[a:b], tokens[a:b], 1) for a, b in bounds]
        sketches = [p.sketch() for p in parts]
        tau = cutoff(plan, sketches)
        sent = [p.above(tau) for p in parts]
        want = selector.select(scores, budget, tokens, 1, positions)
        np.testing.assert_array_equal(merge(selector, plan, sent), want)
        slack = sum(math.isqrt(len(p.keys)) for p in parts)
        points = sum(len(p.keys) // max(1, math.isqrt(len(p.keys))) for p in parts)  # about sqrt(c) a shard
        assert sum(len(sk.keys) for sk in sketches) <= points
        assert len(want) <= sum(len(p.positions) for p in sent) <= len(want) + 1 + 2 * slack
        assert sum(len(p.positions) for p in parts) > 4 * sum(len(p.positions) for p in sent)


def test_splitmix64_known_answer():
    # the first outputs of SplitMix64 seeded with 1234567 (the reference test vector): the stream is the standard one
    z = (np.arange(3, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1234567)
    assert noise._finalize(z).tolist() == [6457827717110365317, 3203168211198807973, 9817491932198370423]
    u = noise.uniform(0, np.arange(200_000))
    assert u.min() > 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert np.isfinite(noise.gumbel(0, np.arange(200_000))).all()


def _inclusion_probabilities(w: np.ndarray, k: int) -> np.ndarray:
    """Exact P(record i is among k draws without replacement, each draw proportional to w among those left)."""
    pi = np.zeros(len(w))
    for seq in itertools.permutations(range(len(w)), k):
        p, left = 1.0, w.sum()
        for i in seq:
            p *= w[i] / left
            left -= w[i]
        pi[list(seq)] += p
    return pi


def test_gumbel_top_k_matches_sampling_without_replacement():
    w = np.array([1.0, 2.0, 3.0, 6.0, 12.0])
    k, n_seeds = 2, 20_000
    temperature = 0.5
    selector = make_selector("gumbel", temperature=temperature)
    scores = np.log(w) * temperature  # exp(score / temperature) = w
    tokens = np.ones(5, dtype=np.int64)
    positions = np.array([3, 8, 9, 40, 41])
    picks = np.array([selector.select(scores, Budget("count", 2.0), tokens, s, positions) for s in range(n_seeds)])
    freq = np.bincount(picks.ravel(), minlength=5) / n_seeds
    pi = _inclusion_probabilities(w, k)
    sigma = np.sqrt(pi * (1 - pi) / n_seeds)
    assert np.abs(freq - pi).max() < 4 * sigma.max()
    # the tolerance tells the right scheme from plausible wrong ones: inclusion proportional to w, or w ** 2
    for wrong in (np.minimum(k * w / w.sum(), 1), _inclusion_probabilities(w ** 2, k)):
        assert np.abs(wrong - pi).max() > 8 * 4 * sigma.max()
    # the ordered pairs (first draw, second draw) follow successive sampling: chi-square over the 20 pairs
    pairs = list(itertools.permutations(range(5), 2))
    expected = np.array([w[i] / w.sum() * w[j] / (w.sum() - w[i]) for i, j in pairs]) * n_seeds
    index = {p: t for t, p in enumerate(pairs)}
    observed = np.bincount([index[tuple(p)] for p in picks.tolist()], minlength=len(pairs))
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_random_is_uniform_over_records_and_orders():
    selector = make_selector("random")
    tokens = np.ones(6, dtype=np.int64)
    positions = np.array([0, 5, 6, 7, 100, 2**40])
    picks = np.array([selector.select(None, Budget("count", 2.0), tokens, s, positions) for s in range(12_000)])
    counts = np.bincount(picks.ravel(), minlength=6)
    assert stats.chisquare(counts).pvalue > 1e-3  # every record equally likely
    ordered = np.bincount(picks[:, 0] * 6 + picks[:, 1], minlength=36).reshape(6, 6)
    assert (np.diag(ordered) == 0).all()
    assert stats.chisquare(ordered[~np.eye(6, dtype=bool)]).pvalue > 1e-3  # every ordered pair equally likely
    # a scheme that favours low positions would fail the same test
    assert stats.chisquare(counts + np.array([300, 0, 0, 0, 0, 0])).pvalue < 1e-3


def test_zero_token_records_after_a_full_budget_are_still_taken():
    # the budget is met exactly at a sketch point (rank 4 of 16); the two 0-token records after it still fit, so the
    # cutoff must keep going until the tokens exceed the budget
    scores = -np.arange(16, dtype=np.float64)
    tokens = np.array([1, 1, 1, 1, 0, 0] + [1] * 10)
    positions = np.arange(16)
    topk = make_selector("topk")
    want = topk.select(scores, Budget("tokens", 4.0), tokens, 0, positions)
    np.testing.assert_array_equal(want, [0, 1, 2, 3, 4, 5])
    shards = [(scores, positions, tokens), (scores[:0], positions[:0], tokens[:0])]
    np.testing.assert_array_equal(select_sharded(topk, Budget("tokens", 4.0), shards), want)
