"""thresher evalset: reading score tables, choosing items (random, stratified, anchor points), estimating new
systems with conformal intervals, and checking methods against random over seen/new splits, on a real leaderboard
(classifiers trained on the bundled BBC sample) and on synthetic tables with known answers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from thresher.cli import main
from thresher.errors import ConfigError
from thresher.evalset.check import CheckConfig, run_check
from thresher.evalset.estimate import calibrate
from thresher.evalset.methods import choose
from thresher.evalset.table import ScoreTable, read_scores

SAMPLE = Path(__file__).resolve().parents[1] / "thresher" / "data" / "sample" / "labeled" / "bbc_news.parquet"


@pytest.fixture(scope="module")
def leaderboard(tmp_path_factory) -> tuple[ScoreTable, Path]:
    """24 classifiers trained on 40% of the BBC sample, scored (0/1) on the other 150 articles."""
    from thresher.evalset.leaderboard import build_leaderboard

    t = pq.read_table(SAMPLE)
    order = np.random.default_rng(0).permutation(t.num_rows)
    train, test = t.take(pa.array(np.sort(order[100:]))), t.take(pa.array(np.sort(order[:100])))
    train, test = test, train  # 100 records to train on, 150 items to evaluate on
    correct, _ = build_leaderboard(train["text"].combine_chunks(), np.array(train["label"].to_pylist()),
                                   test["text"].combine_chunks(), np.array(test["label"].to_pylist()),
                                   test["id"].to_pylist(), n_systems=24, seed=0)
    path = tmp_path_factory.mktemp("evalset") / "scores.parquet"
    pq.write_table(correct.to_long(), path)
    return correct, path


def _types_table(n_types: int = 6, n_systems: int = 30, seed: int = 0) -> tuple[ScoreTable, np.ndarray]:
    """Items of a few kinds: every item of a kind is scored the same by every system."""
    rng = np.random.default_rng(seed)
    kind_scores = rng.random((n_types, n_systems))
    kinds = rng.integers(0, n_types, 400)
    kinds[:n_types] = np.arange(n_types)
    table = ScoreTable(tuple(f"i{k}" for k in range(400)), tuple(f"s{k}" for k in range(n_systems)),
                       kind_scores[kinds])
    return table, kinds


def test_long_and_wide_files_read_to_the_same_table_and_bad_cells_name_their_row(tmp_path, leaderboard):
    table, path = leaderboard
    wide = pa.table({"item": list(table.items), **{s: table.scores[:, k] for k, s in enumerate(table.systems)}})
    pq.write_table(wide, tmp_path / "wide.parquet")
    again = read_scores(tmp_path / "wide.parquet")
    assert again.items == read_scores(path).items == table.items and again.systems == table.systems
    np.testing.assert_array_equal(again.scores, read_scores(path).scores)
    rows = [{"item": f"a{i}", "system": f"s{k}", "score": float((i + k) % 2)} for i in range(2) for k in range(3)]
    with open(tmp_path / "bad.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["item", "system", "score"])
        w.writeheader()
        w.writerows([*rows[:3], {**rows[3], "score": "abc"}, *rows[4:]])
    with pytest.raises(ConfigError, match=r"bad.csv: row 4: score 'abc' is not a number"):
        read_scores(tmp_path / "bad.csv")
    pq.write_table(pa.Table.from_pylist([*rows, rows[2]]), tmp_path / "twice.parquet")
    with pytest.raises(ConfigError, match=r"twice.parquet: row 7: item .* have two scores"):
        read_scores(tmp_path / "twice.parquet")
    pq.write_table(pa.Table.from_pylist(rows[:-1]), tmp_path / "hole.parquet")
    with pytest.raises(ConfigError, match=r"no score of system .s2. on item .a1. \(1 cells missing\)"):
        read_scores(tmp_path / "hole.parquet")


def test_anchor_points_recover_every_full_set_score_when_items_come_in_kinds():
    """With six kinds of items (all items of a kind scored alike), six anchors are one item of each kind weighted
    by its kind's share: every system's full-set score exactly; random items of the same budget are not."""
    table, kinds = _types_table()
    subset = choose("anchor", table, 6, seed=1)
    assert sorted(kinds[subset.rows].tolist()) == list(range(6))
    np.testing.assert_allclose(subset.estimate(table.scores[subset.rows]), table.full_means(), atol=1e-12)
    rand = choose("random", table, 6, seed=1)
    assert np.abs(rand.estimate(table.scores[rand.rows]) - table.full_means()).max() > 0.01


def test_stratified_weights_make_a_per_label_constant_exact():
    table, kinds = _types_table()
    labels = np.array([f"k{k}" for k in kinds])
    subset = choose("stratified", table, 30, seed=2, labels=labels)
    assert len(subset.rows) == 30 == len(set(subset.rows)) and subset.weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(subset.estimate(table.scores[subset.rows]), table.full_means(), atol=1e-12)
    with pytest.raises(ConfigError, match="needs a label per item"):
        choose("stratified", table, 30)
    with pytest.raises(ConfigError, match="budget must be a whole number of items from 1 to 400"):
        choose("random", table, 401)


def test_conformal_intervals_cover_new_systems_at_their_level():
    """Systems drawn exchangeably (a latent ability and noisy item difficulties): over many seen/new splits,
    random-subset intervals, and the default's cross-fitted ones, cover the new systems' full-set scores about as
    often as their level says (90%, and 50%: they are not just wide)."""
    rng = np.random.default_rng(5)
    ability, difficulty = rng.normal(size=60), rng.normal(size=300)
    p = 1 / (1 + np.exp(-(ability[None, :] - difficulty[:, None])))
    table = ScoreTable(tuple(map(str, range(300))), tuple(map(str, range(60))), (rng.random(p.shape) < p) * 1.0)
    for level, low, high in ((0.9, 0.87, 0.99), (0.5, 0.4, 0.65)):  # 40 overlapping splits: a Monte Carlo margin
        result = run_check(table, CheckConfig(("random", "difficulty"), (20,), splits=40, level=level))
        for method in ("random", "difficulty"):
            coverage = next(r["mean"] for r in result.rows if r["metric"] == "coverage" and r["method"] == method)
            assert low <= coverage <= high, (method, level, coverage)
    seen = table.take_systems(np.arange(30))
    subset = choose("random", seen, 20, 0)
    cal = calibrate("random", seen, subset, 20, 0)
    assert cal.half_width(0.9) == np.sort(cal.residuals)[int(np.ceil(31 * 0.9)) - 1]
    assert cal.half_width(0.99) == np.inf  # 30 seen systems cannot give a 99% quantile


def test_cli_chooses_estimates_and_checks_on_a_real_leaderboard(tmp_path, leaderboard):
    table, path = leaderboard
    seen_cols, new_cols = np.arange(0, 24, 2), np.arange(1, 24, 2)
    pq.write_table(table.take_systems(seen_cols).to_long(), tmp_path / "seen.parquet")
    out = tmp_path / "es"
    result = CliRunner().invoke(main, ["evalset", "--scores", str(tmp_path / "seen.parquet"), "--budget", "30",
                                       "--out", str(out)])  # the default: difficulty strata, control variates
    assert result.exit_code == 0, result.output
    assert "estimator: control" in result.output
    ids = (out / "selected" / "ids.txt").read_text().splitlines()
    assert len(ids) == 30 == len(set(ids)) and set(ids) <= set(table.items)
    # the new systems are scored on the chosen items only
    new = table.take_systems(new_cols)
    chosen = [table.items.index(i) for i in ids]
    only = ScoreTable(tuple(ids), new.systems, new.scores[chosen])
    pq.write_table(only.to_long(), tmp_path / "new.parquet")
    result = CliRunner().invoke(main, ["evalset", "estimate", "--from-run", str(out), "--scores",
                                       str(tmp_path / "new.parquet"), "--out", str(tmp_path / "est")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "est" / "estimates.csv").open()))
    assert [r["system"] for r in rows] == list(new.systems)
    # what the run saved gives the estimates the subset gives in memory
    in_memory = choose("difficulty", table.take_systems(seen_cols), 30, seed=0)
    assert [table.items[r] for r in in_memory.rows] == ids
    np.testing.assert_allclose([float(r["estimate"]) for r in rows], in_memory.estimate(new.scores[chosen]))
    assert all(float(r["lo"]) <= float(r["estimate"]) <= float(r["hi"]) for r in rows)
    assert sorted(int(r["rank"]) for r in rows) == list(range(1, 13))
    pq.write_table(ScoreTable(tuple(ids[1:]), new.systems, new.scores[chosen[1:]]).to_long(), tmp_path / "less.parquet")
    result = CliRunner().invoke(main, ["evalset", "estimate", "--from-run", str(out), "--scores",
                                       str(tmp_path / "less.parquet"), "--out", str(tmp_path / "est2")])
    assert result.exit_code == 2 and "no scores on 1 of the 30 chosen items" in result.output
    for k in (1, 2):  # --check: the same results from the same seed
        result = CliRunner().invoke(main, ["evalset", "--check", "--scores", str(path), "--methods", "random,anchor",
                                           "--budgets", "10,30", "--splits", "12", "--out", str(tmp_path / f"c{k}")])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "c1" / "results.csv").read_text() == (tmp_path / "c2" / "results.csv").read_text()
    check = list(csv.DictReader((tmp_path / "c1" / "results.csv").open()))
    assert {(r["method"], r["budget"]) for r in check} == {(m, b) for m in ("random", "anchor") for b in ("10", "30")}
    verdicts = {r["verdict"] for r in check if r["method"] == "anchor" and r["metric"] in ("kendall_tau", "mae")}
    assert verdicts <= {"better", "worse", "inconclusive"} and "budget 30" in result.output


def test_the_python_api_chooses_and_estimates_like_the_cli(tmp_path):
    """th.evalset / th.evalset_estimate / th.evalset_check: on items of six kinds, anchors chosen on 20 seen systems
    estimate 10 new systems exactly."""
    import thresher as th

    table, _ = _types_table(n_systems=30, seed=3)
    pq.write_table(table.take_systems(np.arange(20)).to_long(), tmp_path / "seen.parquet")
    run = th.evalset(tmp_path / "seen.parquet", budget=6, out=tmp_path / "es", method="anchor")
    new = table.take_systems(np.arange(20, 30))
    pq.write_table(new.to_long(), tmp_path / "new.parquet")  # every item: the extra ones are ignored
    rows = th.evalset_estimate(run, tmp_path / "new.parquet", out=tmp_path / "est")
    np.testing.assert_allclose([r["estimate"] for r in rows], new.full_means(), atol=1e-12)
    check = th.evalset_check(tmp_path / "seen.parquet", out=tmp_path / "chk", budgets=(6,), splits=5,
                             methods=("random", "anchor"))
    mae = {r["method"]: r["mean"] for r in check if r["metric"] == "mae"}
    assert mae["anchor"] < 1e-9 < mae["random"]


def test_a_2pl_fit_recovers_known_item_parameters_and_abilities():
    """A synthetic 2PL table (200 items, 300 systems): the fit recovers difficulties, discriminations and abilities;
    p-IRT from 20 items uses the model for the other 180 and equals the mean when every item is observed."""
    from thresher.evalset.irt import fit_2pl

    rng = np.random.default_rng(0)
    a, b, theta = np.exp(rng.normal(0, 0.4, 200)), rng.normal(0, 1, 200), rng.normal(0, 1, 300)
    p = 1 / (1 + np.exp(-(a[:, None] * (theta[None, :] - b[:, None]))))
    y = (rng.random(p.shape) < p) * 1.0
    model = fit_2pl(y)
    assert np.corrcoef(model.b, b)[0, 1] > 0.97 and np.corrcoef(model.a, a)[0, 1] > 0.85
    assert np.corrcoef(model.theta, theta)[0, 1] > 0.97
    rows = rng.choice(200, 20, replace=False)
    estimates = model.p_irt(rows, y[rows])
    assert np.corrcoef(estimates, y.mean(axis=0))[0, 1] > 0.9
    np.testing.assert_allclose(model.p_irt(np.arange(200), y), y.mean(axis=0))
    # an ability estimated from a few items follows the fitted one
    assert np.corrcoef(model.abilities(rows, y[rows]), model.theta)[0, 1] > 0.7


def test_irt_runs_write_the_item_model_and_estimate_new_systems_from_the_chosen_items(tmp_path):
    """--method irt: the run keeps every item's (a, b); estimate uses it for the items a new system was not scored
    on, so a system scored only on the chosen items gets the p-IRT estimate the model gives in memory."""
    from thresher.evalset.irt import fit_2pl

    rng = np.random.default_rng(4)
    a, b, theta = np.exp(rng.normal(0, 0.3, 150)), rng.normal(0, 1, 150), rng.normal(0, 1, 50)
    y = (rng.random((150, 50)) < 1 / (1 + np.exp(-(a[:, None] * (theta[None, :] - b[:, None]))))) * 1.0
    table = ScoreTable(tuple(f"q{i}" for i in range(150)), tuple(f"m{s}" for s in range(50)), y)
    pq.write_table(table.take_systems(np.arange(40)).to_long(), tmp_path / "seen.parquet")
    result = CliRunner().invoke(main, ["evalset", "--scores", str(tmp_path / "seen.parquet"), "--budget", "25",
                                       "--method", "irt", "--out", str(tmp_path / "es")])
    assert result.exit_code == 0, result.output
    irt = pq.read_table(tmp_path / "es" / "irt.parquet")
    assert irt.num_rows == 150 and irt["item"].to_pylist() == list(table.items)
    ids = (tmp_path / "es" / "selected" / "ids.txt").read_text().splitlines()
    rows = np.array([table.items.index(i) for i in ids])
    new = table.take_systems(np.arange(40, 50))
    pq.write_table(ScoreTable(tuple(ids), new.systems, new.scores[rows]).to_long(), tmp_path / "new.parquet")
    result = CliRunner().invoke(main, ["evalset", "estimate", "--from-run", str(tmp_path / "es"), "--scores",
                                       str(tmp_path / "new.parquet"), "--out", str(tmp_path / "est")])
    assert result.exit_code == 0, result.output
    got = [float(r["estimate"]) for r in csv.DictReader((tmp_path / "est" / "estimates.csv").open())]
    model = fit_2pl(table.take_systems(np.arange(40)).scores)
    np.testing.assert_allclose(got, model.p_irt(rows, new.scores[rows]), rtol=1e-6)
    assert np.abs(np.array(got) - new.full_means()).mean() < np.abs(new.scores[rows].mean(0) - new.full_means()).mean()


def test_control_variates_are_exact_for_mixtures_of_seen_systems_and_run_from_the_saved_run(tmp_path):
    """New systems that score every item as a fixed mix of seen systems: the control estimate from 15 random items
    is their full-set score (the plain mean is not); a new system unlike every seen one still gets an estimate in
    the table's range. The run directory alone reproduces the estimates."""
    rng = np.random.default_rng(7)
    seen_scores = rng.random((300, 12))
    mixes = rng.dirichlet(np.full(3, 0.7), size=5)
    new_scores = np.column_stack([seen_scores[:, [k, k + 3, k + 7]] @ m for k, m in enumerate(mixes)])
    seen = ScoreTable(tuple(f"i{i}" for i in range(300)), tuple(f"s{k}" for k in range(12)), seen_scores)
    subset = choose("random+control", seen, 15, seed=3)
    got = subset.estimate(new_scores[subset.rows])
    np.testing.assert_allclose(got, new_scores.mean(axis=0), atol=1e-6)
    plain = choose("random", seen, 15, seed=3)
    assert np.array_equal(plain.rows, subset.rows)
    assert np.abs(plain.estimate(new_scores[plain.rows]) - new_scores.mean(axis=0)).max() > 0.01
    odd = subset.estimate(rng.random((15, 1)))
    assert 0 <= odd[0] <= 1
    pq.write_table(seen.to_long(), tmp_path / "seen.parquet")
    result = CliRunner().invoke(main, ["evalset", "--scores", str(tmp_path / "seen.parquet"), "--budget", "15",
                                       "--method", "random", "--estimator", "control", "--seed", "3",
                                       "--out", str(tmp_path / "es")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "es" / "control.parquet").is_file()
    ids = (tmp_path / "es" / "selected" / "ids.txt").read_text().splitlines()
    assert ids == [seen.items[r] for r in subset.rows]
    new = ScoreTable(tuple(ids), tuple(f"n{k}" for k in range(5)), new_scores[subset.rows])
    pq.write_table(new.to_long(), tmp_path / "new.parquet")
    import thresher as th

    rows = th.evalset_estimate(tmp_path / "es", tmp_path / "new.parquet", out=tmp_path / "est")
    np.testing.assert_allclose([r["estimate"] for r in rows], got, rtol=1e-9)


def test_difficulty_strata_sample_contested_items_densely_and_the_weighted_mean_stays_unbiased():
    """Half the items every seen system gets right; the other half split them. Neyman allocation puts most of a
    budget of 40 on the contested half, every stratum keeps at least one item, and over 4,000 draws the weighted
    mean of a new system (one that fails some of the 'easy' items) is its full-set score within Monte Carlo error."""
    rng = np.random.default_rng(11)
    easy = np.ones((200, 20))
    contested = (rng.random((200, 20)) < rng.random(20)[None, :]) * 1.0
    seen = ScoreTable(tuple(map(str, range(400))), tuple(map(str, range(20))), np.vstack([easy, contested]))
    order = np.lexsort((np.arange(400), seen.scores.mean(axis=1)))
    new = np.concatenate([(rng.random(200) < 0.8) * 1.0, (rng.random(200) < 0.5) * 1.0])
    estimates = []
    for seed in range(4000):
        subset = choose("difficulty+mean", seen, 40, seed=seed)
        assert subset.weights.sum() == pytest.approx(1.0) and len(set(subset.rows)) == 40
        estimates.append(subset.estimate(new[subset.rows, None])[0])
        if seed == 0:
            place = np.empty(400, dtype=np.int64)
            place[order] = np.arange(400)
            strata = place[subset.rows] * 5 // 400
            assert set(strata) == set(range(5))
            assert (subset.rows >= 200).sum() > 28  # proportional allocation would give 20
    estimates = np.array(estimates)
    assert abs(estimates.mean() - new.mean()) < 4 * estimates.std() / np.sqrt(len(estimates))


def test_active_testing_draws_hard_items_more_often_and_lure_weights_keep_every_estimate_unbiased():
    """--method active on a table where seen systems fail a quarter of the items: those items are drawn far more
    often than their share, yet over 4,000 draws the LURE-weighted mean of two new systems (one strong, one weak,
    correlated with difficulty differently) is unbiased; the unweighted mean of the same items is not. Drawing
    every item gives the exact full-set score."""
    from thresher.evalset.methods import lure_draw

    rng = np.random.default_rng(13)
    hard = np.arange(300) < 75
    seen_scores = np.where(hard[:, None], rng.random((300, 16)) < 0.2, rng.random((300, 16)) < 0.95) * 1.0
    seen = ScoreTable(tuple(map(str, range(300))), tuple(map(str, range(16))), seen_scores)
    new = np.column_stack([np.where(hard, rng.random(300) < 0.6, rng.random(300) < 0.9),
                           np.where(hard, rng.random(300) < 0.05, rng.random(300) < 0.7)]) * 1.0
    lure, plain, hard_share = [], [], []
    for seed in range(4000):
        subset = choose("active", seen, 20, seed=seed)
        lure.append(subset.estimate(new[subset.rows]))
        plain.append(new[subset.rows].mean(axis=0))
        hard_share.append(hard[subset.rows].mean())
    lure, plain = np.array(lure), np.array(plain)
    se = lure.std(axis=0) / np.sqrt(len(lure))
    assert np.all(np.abs(lure.mean(axis=0) - new.mean(axis=0)) < 4 * se), (lure.mean(axis=0), new.mean(axis=0))
    assert np.all(np.abs(plain.mean(axis=0) - new.mean(axis=0)) > 10 * se)
    assert np.mean(hard_share) > 0.45  # 25% of the items
    rows, weights = lure_draw(np.linspace(0.1, 1, 300), 300, np.random.default_rng(0))
    np.testing.assert_allclose(weights @ new[rows], new.mean(axis=0))
    with pytest.raises(ConfigError, match="positive and finite"):
        lure_draw(np.zeros(300), 5, np.random.default_rng(0))


def test_a_recipe_chooses_estimates_and_checks_like_the_cli(tmp_path, leaderboard):
    """`thresher run` on an evalset recipe: the same items and estimates as the CLI commands, a check directory, and
    a misplaced key named with its line."""
    table, path = leaderboard
    seen_cols, new_cols = np.arange(0, 24, 2), np.arange(1, 24, 2)
    pq.write_table(table.take_systems(seen_cols).to_long(), tmp_path / "seen.parquet")
    pq.write_table(table.take_systems(new_cols).to_long(), tmp_path / "new.parquet")
    (tmp_path / "r.yaml").write_text("scores: seen.parquet\nout: rec\nseed: 2\nsteps:\n"
                                     "  - evalset: difficulty\n    budget: 20\n"
                                     "  - estimate: new.parquet\n"
                                     "  - check: [random, difficulty]\n    budgets: [10]\n    splits: 4\n")
    result = CliRunner().invoke(main, ["run", str(tmp_path / "r.yaml"), "--quiet"])
    assert result.exit_code == 0, result.output
    for args in (["evalset", "--scores", str(tmp_path / "seen.parquet"), "--budget", "20", "--seed", "2", "--out",
                  str(tmp_path / "cli")],
                 ["evalset", "estimate", "--from-run", str(tmp_path / "cli"), "--scores",
                  str(tmp_path / "new.parquet"), "--out", str(tmp_path / "cli-est")]):
        assert CliRunner().invoke(main, args).exit_code == 0
    rec = tmp_path / "rec"
    assert (rec / "selected" / "ids.txt").read_text() == (tmp_path / "cli" / "selected" / "ids.txt").read_text()
    assert (rec / "estimate" / "estimates.csv").read_text() == (tmp_path / "cli-est" / "estimates.csv").read_text()
    check = list(csv.DictReader((rec / "check" / "results.csv").open()))
    assert {r["method"] for r in check} == {"random", "difficulty"} and {r["budget"] for r in check} == {"10"}
    page = (rec / "report.html").read_text()
    assert all(s in page for s in ("Chosen items", "New systems, estimated", "Methods against random"))
    tau = next(r for r in check if r["method"] == "difficulty" and r["metric"] == "kendall_tau")
    assert f"{float(tau['mean']):.4g}" in page and tau["verdict"] in page  # the check's numbers, not a template
    assert "Methods against random" in (rec / "check" / "report.html").read_text()
    (tmp_path / "bad.yaml").write_text("scores: seen.parquet\npool: x.parquet\nsteps:\n  - evalset: random\n"
                                       "    budget: 5\n")
    result = CliRunner().invoke(main, ["run", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "bad.yaml:1: an evalset recipe has no pool" in result.output
    (tmp_path / "bad2.yaml").write_text("scores: seen.parquet\nsteps:\n  - evalset: random\n    budget: 5\n"
                                        "  - select: topk\n")
    result = CliRunner().invoke(main, ["run", str(tmp_path / "bad2.yaml"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "bad2.yaml:5: after an evalset step" in result.output
    (tmp_path / "bad3.yaml").write_text("pool: p.parquet\nscores: seen.parquet\nsteps:\n  - score: gopher\n")
    result = CliRunner().invoke(main, ["run", str(tmp_path / "bad3.yaml"), "--out", str(tmp_path / "y")])
    assert result.exit_code == 2 and "bad3.yaml:2: 'scores' belongs to a recipe" in result.output


def test_gp_irt_mixes_the_mean_and_p_irt_by_their_errors_and_runs_from_the_saved_run(tmp_path):
    """gp-IRT: with no p-IRT error it is p-IRT, with a huge one the weighted mean, in between a per-system mix;
    `--estimator gp-irt` saves what `evalset estimate` needs to give the in-memory estimates."""
    from dataclasses import replace

    rng = np.random.default_rng(8)
    a, b, theta = np.exp(rng.normal(0, 0.3, 120)), rng.normal(0, 1, 120), rng.normal(0, 1, 36)
    y = (rng.random((120, 36)) < 1 / (1 + np.exp(-(a[:, None] * (theta[None, :] - b[:, None]))))) * 1.0
    table = ScoreTable(tuple(f"q{i}" for i in range(120)), tuple(f"m{s}" for s in range(36)), y)
    seen, new = table.take_systems(np.arange(30)), y[:, 30:]
    subset = choose("irt+gp-irt", seen, 20, seed=1)
    gp = subset.estimator
    assert gp.bias2 > 0
    on = new[subset.rows]
    mean, pirt = subset.weights @ on, gp.model.p_irt(subset.rows, on)
    got = subset.estimate(on)
    assert np.all((np.minimum(mean, pirt) - 1e-12 <= got) & (got <= np.maximum(mean, pirt) + 1e-12))
    np.testing.assert_allclose(replace(gp, bias2=0.0).estimate(on), pirt)
    np.testing.assert_allclose(replace(gp, bias2=1e9).estimate(on), mean, atol=1e-6)
    pq.write_table(seen.to_long(), tmp_path / "seen.parquet")
    result = CliRunner().invoke(main, ["evalset", "--scores", str(tmp_path / "seen.parquet"), "--budget", "20",
                                       "--method", "irt", "--estimator", "gp-irt", "--seed", "1",
                                       "--out", str(tmp_path / "es")])
    assert result.exit_code == 0, result.output
    ids = [table.items[r] for r in subset.rows]
    pq.write_table(ScoreTable(tuple(ids), table.systems[30:], on).to_long(), tmp_path / "new.parquet")
    import thresher as th

    rows = th.evalset_estimate(tmp_path / "es", tmp_path / "new.parquet", out=tmp_path / "est")
    np.testing.assert_allclose([r["estimate"] for r in rows], got, rtol=1e-6)


def test_a_budget_in_cost_buys_cheap_contested_items_and_keeps_the_estimate_unbiased(tmp_path):
    """Costs per item (an --items column): difficulty spends a cost budget in expectation (the most items whose
    expected cost fits), leans to the cheaper half of each stratum, and its weighted mean stays unbiased over
    3,000 draws; random buys budget / mean cost items. Methods without a cost design, and budgets too small for
    one item per stratum, are refused; the CLI records what the chosen items cost."""
    from thresher.evalset.methods import cost_counts

    rng = np.random.default_rng(21)
    scores = (rng.random((400, 20)) < rng.random(400)[:, None]) * 1.0
    costs = np.exp(rng.normal(0, 0.8, 400))
    seen = ScoreTable(tuple(f"i{i}" for i in range(400)), tuple(f"s{k}" for k in range(20)), scores)
    new = (rng.random(400) < 0.6) * 1.0
    budget = 30 * float(costs.mean())
    estimates, spent, cheap = [], [], []
    for seed in range(3000):
        subset = choose("difficulty+mean", seen, budget, seed=seed, costs=costs)
        estimates.append(subset.estimate(new[subset.rows, None])[0])
        spent.append(costs[subset.rows].sum())
        cheap.append((costs[subset.rows] < np.median(costs)).mean())
    estimates = np.array(estimates)
    assert abs(estimates.mean() - new.mean()) < 4 * estimates.std() / np.sqrt(len(estimates))
    assert np.mean(spent) <= budget * 1.01 and np.mean(cheap) > 0.6
    codes = np.repeat(np.arange(4), 100)
    counts = cost_counts(codes, np.ones(4), costs, budget)
    mean_cost = np.bincount(codes, weights=costs) / 100
    assert counts.min() >= 1 and counts @ mean_cost <= budget
    from thresher.selectors.quotas import allocate

    one_more = 1 + allocate(np.full(4, 99), int(counts.sum()) + 1 - 4, "weights", weights=np.ones(4))
    assert one_more @ mean_cost > budget  # the most items whose expected cost fits
    assert len(choose("random", seen, budget, seed=0, costs=costs).rows) == int(budget // costs.mean())
    with pytest.raises(ConfigError, match="a budget in cost works with"):
        choose("anchor", seen, budget, costs=costs)
    with pytest.raises(ConfigError, match="does not buy one item of each"):
        choose("difficulty", seen, 0.5 * float(costs.min()), costs=costs)
    pq.write_table(seen.to_long(), tmp_path / "seen.parquet")
    pq.write_table(pa.table({"item": list(seen.items), "minutes": costs}), tmp_path / "items.parquet")
    args = ["evalset", "--scores", str(tmp_path / "seen.parquet"), "--items", str(tmp_path / "items.parquet"),
            "--cost-field", "minutes"]
    result = CliRunner().invoke(main, [*args, "--budget", f"{budget}", "--out", str(tmp_path / "es")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "es" / "manifest.json").read_text())
    ids = (tmp_path / "es" / "selected" / "ids.txt").read_text().splitlines()
    assert manifest["cost"]["chosen"] == pytest.approx(sum(costs[seen.items.index(i)] for i in ids))
    result = CliRunner().invoke(main, [*args, "--check", "--budgets", f"{budget}", "--splits", "4",
                                       "--out", str(tmp_path / "chk")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "chk" / "results.csv").open()))
    assert {r["method"] for r in rows} == {"random", "difficulty", "random+control"}
    assert all(0 < float(r["mean"]) <= 1.5 * budget for r in rows if r["metric"] == "cost")
    result = CliRunner().invoke(main, ["evalset", "--scores", str(tmp_path / "seen.parquet"), "--budget", "2.5",
                                       "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "a cost needs --cost-field" in result.output


def test_subset2evaluate_selectors_take_the_items_of_highest_utility_as_its_package_defines_them():
    """variance, consistency (Kendall tau-c against the systems' full-set scores, as scipy computes it, constant
    items at 0) and diffdisc (a x b of the 2PL fit) pick the top items, equally weighted, estimated with control
    variates by default; the plain IRT estimator is the model's mean prediction."""
    from scipy import stats

    from thresher.evalset.irt import fit_2pl
    from thresher.evalset.utilities import consistency

    rng = np.random.default_rng(17)
    scores = (rng.random((120, 14)) < rng.random(14)[None, :]) * 1.0
    scores[:5] = 1.0  # constant items
    seen = ScoreTable(tuple(map(str, range(120))), tuple(map(str, range(14))), scores)
    means = scores.mean(axis=0)
    tau_c = np.array([np.nan_to_num(stats.kendalltau(r, means, variant="c").statistic) for r in scores])
    np.testing.assert_allclose(consistency(scores, block=13), tau_c, atol=1e-12)
    expected = {"variance": scores.var(axis=1), "consistency": tau_c}
    model = fit_2pl(scores)
    expected["diffdisc"] = model.a * model.b
    for method, utility in expected.items():
        subset = choose(method, seen, 12, seed=0)
        assert subset.estimator.name == "control" and np.allclose(subset.weights, 1 / 12)
        assert sorted(utility[subset.rows]) == sorted(np.sort(utility)[::-1][:12]), method
    every = {name: choose(f"random+{name}", seen, 120, seed=0) for name in ("irt", "p-irt")}
    got = {name: subset.estimate(scores[subset.rows]) for name, subset in every.items()}
    np.testing.assert_allclose(got["p-irt"], means)  # every item observed: p-IRT is the mean
    assert np.abs(got["irt"] - means).max() > 1e-3 and np.corrcoef(got["irt"], means)[0, 1] > 0.95  # the model's


def test_auto_picks_consistency_when_half_the_items_are_noise_and_returns_that_methods_subset():
    """Half the items score systems at random, half by their ability: an inner check on the seen systems finds that
    the consistent items rank better and auto takes consistency's subset; with five seen systems there is nothing
    to check and auto takes the safe default."""
    from thresher.evalset.methods import auto_pick

    rng = np.random.default_rng(23)
    ability = np.sort(rng.normal(0, 0.3, 24))
    informative = (rng.random((200, 24)) < 1 / (1 + np.exp(-(ability[None, :] * 3 - rng.normal(0, 1, (200, 1)))))) * 1.0
    noise = (rng.random((200, 24)) < 0.5) * 1.0
    seen = ScoreTable(tuple(map(str, range(400))), tuple(map(str, range(24))), np.vstack([noise, informative]))
    assert auto_pick(seen, 30, 0, "control") == "consistency"
    subset = choose("auto", seen, 30, seed=0)
    again = choose("consistency", seen, 30, seed=0)
    assert np.array_equal(subset.rows, again.rows) and (subset.rows >= 200).mean() > 0.8
    assert auto_pick(seen.take_systems(np.arange(5)), 30, 0, "control") == "difficulty"
