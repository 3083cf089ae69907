"""Distribution matching (``--selector match``): the set closest to the target's n-gram distribution."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
from scipy import sparse

import thresher as th
from thresher.errors import ConfigError
from thresher.evaluate.distribution import kl_divergence
from thresher.evaluate.harness import EvaluateConfig, run_evaluation
from thresher.evaluate.methods import Method
from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer
from thresher.selectors.match import MATCH_FEATURES, KLMatch
from thresher.selectors.setwise import percentiles

GROUPS = ("alpha", "beta", "gamma", "delta")


def _group_text(rng: np.random.Generator, group: int, n_words: int) -> str:
    """A record of one group: words from the group's own vocabulary mixed with function words every group uses."""
    own = [f"{GROUPS[group]}{i}" for i in rng.integers(0, 300, n_words)]
    common = ["the", "of", "and", "a", "to", "in", "is", "that"]
    return " ".join(w if rng.random() < 0.7 else common[rng.integers(0, len(common))] for w in own)


def _features(texts: list[str], config: HashedNgramConfig = MATCH_FEATURES):
    f = HashedNgramFeaturizer(config).transform(pa.array(texts))
    return f.to_csr(config.num_buckets), f.n_tokens


@pytest.fixture(scope="module")
def mixture_task():
    """A pool with 800 records of each of four groups, and a target that mixes them 55/30/15/0 (by records)."""
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(4), 800)
    pool = [_group_text(rng, g, int(rng.integers(30, 200))) for g in groups]
    shares = np.array([0.55, 0.30, 0.15, 0.0])
    target_groups = rng.choice(4, 400, p=shares)
    target = [_group_text(rng, g, int(rng.integers(30, 200))) for g in target_groups]
    X, tokens = _features(pool)
    T, target_tokens = _features(target)
    target_share = np.bincount(target_groups, weights=target_tokens, minlength=4) / target_tokens.sum()
    return X, tokens, groups, np.asarray(T.sum(axis=0)).ravel(), target_share


def _token_shares(rows, tokens, groups):
    return np.bincount(groups[rows], weights=tokens[rows], minlength=4) / tokens[rows].sum()


def test_group_shares_converge_to_the_known_target_mixture(mixture_task):
    X, tokens, groups, target_counts, target_share = mixture_task
    for budget in (200, 600):
        rows = KLMatch().select(X, target_counts, budget)
        assert len(rows) == budget and len(set(rows.tolist())) == budget
        share = _token_shares(rows, tokens, groups)
        assert np.abs(share - target_share).max() < 0.05, (budget, share, target_share)
    # DSIR's per-record importance takes the group most over-represented in the target and little else
    pool_counts = np.asarray(X.sum(axis=0)).ravel()
    log_ratio = np.log((target_counts + 1) / (target_counts.sum() + len(target_counts))) - \
        np.log((pool_counts + 1) / (pool_counts.sum() + len(pool_counts)))
    top = np.argsort(-(X @ log_ratio), kind="stable")[:600]
    dsir_share = _token_shares(top, tokens, groups)
    assert np.abs(dsir_share - target_share).sum() > 3 * np.abs(_token_shares(rows, tokens, groups)
                                                                - target_share).sum()
    assert kl_divergence(target_counts, np.asarray(X[rows].sum(axis=0)).ravel()) < \
        kl_divergence(target_counts, np.asarray(X[top].sum(axis=0)).ravel())


def _objective(X, target_counts, rows, a=1.0):
    p = (target_counts + a) / (target_counts.sum() + a * len(target_counts))
    c = np.asarray(X[rows].sum(axis=0)).ravel()
    return float(p @ np.log(c + a) - np.log(c.sum() + a * len(c)))


def _reference_greedy(X, target_counts, k):
    """Step-by-step greedy on the objective itself, every candidate evaluated at every step."""
    chosen: list[int] = []
    left = list(range(X.shape[0]))
    for _ in range(k):
        values = [_objective(X, target_counts, chosen + [r]) for r in left]
        chosen.append(left.pop(int(np.argmax(values))))
    return chosen


def test_rounds_of_one_pick_are_step_by_step_greedy_and_the_default_is_close(sample_pool, news_target):
    texts = pq.read_table(sample_pool).column("text").slice(0, 150).to_pylist()
    X, _ = _features(texts)
    lines = news_target.read_text().splitlines()[:40]
    target = np.asarray(_features([json.loads(line)["text"] for line in lines])[0].sum(axis=0)).ravel()
    reference = _reference_greedy(X, target, 12)
    exact = KLMatch(growth=1e-9, candidates=10_000, quality_weight=0).select(X, target, 12)
    assert exact.tolist() == reference
    batched = KLMatch(quality_weight=0).select(X, target, 40)
    slow = KLMatch(growth=1e-9, candidates=10_000, quality_weight=0).select(X, target, 40)
    gap = _objective(X, target, slow.tolist()) - _objective(X, target, batched.tolist())
    assert abs(gap) < 1e-3 * abs(_objective(X, target, slow.tolist()))


def test_token_budget_fills_by_gain_per_token_and_never_overflows(mixture_task):
    X, tokens, groups, target_counts, target_share = mixture_task
    budget = 20_000
    rows = KLMatch().select(X, target_counts, f"{budget} tokens", n_tokens=tokens)
    spent = tokens[rows].sum()
    assert spent <= budget and spent > budget - tokens.max()
    assert np.abs(_token_shares(rows, tokens, groups) - target_share).max() < 0.05
    with pytest.raises(ConfigError, match="token count"):
        KLMatch().select(X, target_counts, "100 tokens")


def test_quality_weight_trades_distance_for_quality(mixture_task):
    X, tokens, groups, target_counts, _ = mixture_task
    quality = np.random.default_rng(3).random(len(groups))  # a quality signal independent of the groups
    plain = KLMatch(quality_weight=0).select(X, target_counts, 400, quality=quality)
    assert plain.tolist() == KLMatch().select(X, target_counts, 400).tolist()  # no quality given: the same
    means = [percentiles(quality)[KLMatch(quality_weight=w).select(X, target_counts, 400, quality=quality)].mean()
             for w in (0, 0.05, 0.5)]
    assert means[0] < means[1] < means[2]
    kls = [kl_divergence(target_counts, np.asarray(X[KLMatch(quality_weight=w).select(
        X, target_counts, 400, quality=quality)].sum(axis=0)).ravel()) for w in (0, 0.5)]
    assert kls[0] < kls[1]


def test_bad_parameters_and_inputs_are_clear_errors(mixture_task):
    X, _, _, target_counts, _ = mixture_task
    for params, message in [({"quality_weight": -1}, "quality_weight"), ({"growth": 0}, "growth"),
                            ({"smoothing": 0}, "smoothing"), ({"candidates": 0}, "candidates")]:
        with pytest.raises(ConfigError, match=message):
            KLMatch(**params)
    with pytest.raises(ConfigError, match="does not take temperature"):
        KLMatch.from_params({"temperature": 2})
    with pytest.raises(ConfigError, match="must be a number"):
        KLMatch.from_params({"growth": "fast"})
    with pytest.raises(ConfigError, match="buckets"):
        KLMatch().select(X, target_counts[:10], 10)
    with pytest.raises(ConfigError, match="no n-grams"):
        KLMatch().select(X, np.zeros_like(target_counts), 10)
    with pytest.raises(ConfigError):
        KLMatch().select(X, target_counts, X.shape[0] + 1)
    assert KLMatch().select(sparse.csr_matrix(X), target_counts, 5).tolist() == \
        KLMatch().select(X.tocoo(), target_counts, 5).tolist()


def test_hash_seed_moves_buckets_and_keeps_the_default_cache_keys():
    text = pa.array(["The council met on Tuesday to vote on the harbour budget."])
    plain = HashedNgramFeaturizer(HashedNgramConfig()).transform(text)
    seeded = HashedNgramFeaturizer(HashedNgramConfig(seed=1)).transform(text)
    again = HashedNgramFeaturizer(HashedNgramConfig(seed=1)).transform(text)
    assert not np.array_equal(plain.buckets[0], seeded.buckets[0])
    assert np.array_equal(seeded.buckets[1], again.buckets[1])
    old_key = xxhash.xxh3_64_hexdigest(json.dumps(
        {"v": 1, "num_buckets": 10_000, "ngrams": 2, "tokenizer": "wordpunct", "lowercase": True},
        sort_keys=True).encode())
    assert HashedNgramConfig().fingerprint() == old_key
    assert HashedNgramConfig(seed=1).fingerprint() != old_key
    assert MATCH_FEATURES.num_buckets != HashedNgramConfig().num_buckets and MATCH_FEATURES.seed != 0
    with pytest.raises(ConfigError, match="seed"):
        HashedNgramConfig(seed=-1)


def _select_cli(pool, target, out, *extra):
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--pool", str(pool), "--target",
                           str(target), "--selector", "match", "--budget", "60", "--out", str(out), "--quiet",
                           "--no-report", *extra], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "manifest.json").read_text()), (out / "selected" / "ids.txt").read_text().split()


def test_select_cli_matches_in_its_own_space_the_same_with_any_worker_count(tmp_path, small_pool, news_target):
    manifest, ids = _select_cli(small_pool, news_target, tmp_path / "one", "--workers", "1")
    _, ids_two = _select_cli(small_pool, news_target, tmp_path / "two", "--workers", "2")
    assert ids == ids_two and len(ids) == 60
    assert manifest["config"]["selector"] == "match"
    assert manifest["config"]["features"]["num_buckets"] == MATCH_FEATURES.num_buckets
    assert manifest["config"]["features"]["seed"] == MATCH_FEATURES.seed
    assert manifest["counts"]["all_accounted_for"]
    m = manifest["metrics"]
    assert m["kl_reduction"] > 0
    news = next(r for r in m["composition"] if r["group"] == "news")
    assert news["selected_share"] > 5 * news["pool_share"]
    assert "16,384 buckets" in m["kl_note"]  # the run's own KL is flagged as measured where it was optimised
    # without DSIR's importance as quality the selection differs
    _, ids_plain = _select_cli(small_pool, news_target, tmp_path / "plain", "--workers", "1",
                               "--selector-param", "quality_weight=0")
    assert ids_plain != ids


def test_python_api_recipe_and_reselect(tmp_path, small_pool, news_target, run_recipe):
    run = th.select(small_pool, target=news_target, selector="match", budget=60, out=tmp_path / "py",
                    workers=1, progress=False, report=False)
    _, cli_ids = _select_cli(small_pool, news_target, tmp_path / "cli", "--workers", "1")
    assert run.selected_ids() == cli_ids
    proc = run_recipe(f"pool: {small_pool}\ntarget: {news_target}\nout: run\nsteps:\n  - score: dsir\n"
                      "  - select: match\n    score: dsir\n    budget: 60\n    min_tokens: 0\n")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["counts"]["selected"] == 60 and manifest["config"]["selector"] == "match"
    assert manifest["config"]["features"]["seed"] == MATCH_FEATURES.seed
    # re-selecting a DSIR run with match keeps that run's features (its saved target counts are in that space)
    dsir = th.select(small_pool, target=news_target, budget=60, out=tmp_path / "dsir", workers=1, progress=False,
                     report=False)
    again = th.reselect(dsir.path, out=tmp_path / "again", selector="match")
    assert again.manifest["config"]["features"]["num_buckets"] == 10_000
    assert "10,000 buckets" in again.manifest["metrics"]["kl_note"]
    assert len(again.selected_ids()) == 60 and again.selected_ids() != dsir.selected_ids()
    assert again.manifest["metrics"]["kl_target_selected"] < dsir.manifest["metrics"]["kl_target_selected"]


def test_match_without_a_target_is_a_clear_error(tmp_path, small_pool):
    scored = th.score(small_pool, ["c4"], out=tmp_path / "scored", workers=1, progress=False, report=False)
    with pytest.raises(ConfigError, match="target"):
        th.reselect(scored.path, out=tmp_path / "m", selector="match", budget=20)


def test_evaluate_runs_match_as_a_method(tmp_path, small_pool, news_target):
    for spec in ("match:-1", "match:x", "match:1:2"):
        with pytest.raises(ConfigError, match="match:WEIGHT"):
            Method.parse(spec)
    assert Method.parse("match:0").quality_weight == 0 and not Method.parse("match").is_baseline
    result = run_evaluation(th.read(small_pool), None, tmp_path / "ev", target=th.read(news_target),
                            config=EvaluateConfig(methods=["match", "match:0", "random"], budgets=["5%"], seeds=2,
                                                  metrics=["kl", "precision"], label_column="domain",
                                                  positive="news"),
                            workers=1, progress=False, report=False)
    verdicts = result.verdicts()
    assert verdicts["match", "5%", "kl_to_heldout"] == "better"
    assert verdicts["match", "5%", "precision"] == "better"
    chosen = pq.read_table(tmp_path / "ev" / "selections.parquet").to_pylist()
    per_seed = {}
    for r in chosen:
        if r["method"] == "match":
            per_seed.setdefault(r["seed"], []).append(r["id"])
    assert len(per_seed) == 2 and all(len(ids) == 75 for ids in per_seed.values())
    assert len({tuple(ids) for ids in per_seed.values()}) == 1  # deterministic: one selection for every seed


def test_records_without_ngrams_neither_hang_nor_crash(mixture_task):
    X, _, _, target_counts, _ = mixture_task
    empty = sparse.csr_matrix((3, X.shape[1]), dtype=np.int32)
    assert sorted(KLMatch().select(empty, target_counts, 2).tolist()) == [0, 1]
    assert KLMatch().select(sparse.csr_matrix((1, X.shape[1]), dtype=np.int32), target_counts, 1).tolist() == [0]
    mixed = sparse.vstack([empty, X[:20]], format="csr")  # the empty records add nothing: chosen last
    assert set(KLMatch().select(mixed, target_counts, 20).tolist()) == set(range(3, 23))


def test_a_quality_weight_without_a_quality_column_is_an_error(small_pool, news_target, run_recipe):
    """A recipe that scored no dsir column gives matching no quality: an explicit weight is refused, not ignored."""
    proc = run_recipe(f"pool: {small_pool}\ntarget: {news_target}\nout: run\nsteps:\n  - score: c4\n"
                      "  - select: match\n    budget: 40\n    params:\n      quality_weight: 1\n")
    assert proc.returncode != 0 and "quality_weight needs a quality score" in proc.stderr
