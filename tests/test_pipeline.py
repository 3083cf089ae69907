"""Pipelines and YAML recipes: score -> filter -> score -> select, from Python and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.errors import ConfigError
from thresher.io.dataset import read
from thresher.pipeline import Dedup, Filter, Pipeline, Score, Select, run_scoring
from thresher.recipe import Recipe

QUALITY = [Score("gopher"), Score("langid"), Filter("gopher_pass and lang == 'en'"),
           Score("classifier", {"l2": 1e-3}), Select("gumbel", score="classifier", budget="5%", temperature=1.0)]


@pytest.fixture(scope="module")
def quality_run(tmp_path_factory, small_pool, news_target):
    out = tmp_path_factory.mktemp("quality")
    return Pipeline(QUALITY).run(read(small_pool, batch_size=400), out, read(news_target), workers=1,
                                 progress=False, pool_sample=800)


def test_filters_apply_before_later_scorers_and_selection(quality_run, small_pool):
    scores = quality_run.scores()
    assert scores.num_rows == 1500
    kept = pc.and_(pc.fill_null(scores["gopher_pass"], False), pc.equal(scores["lang"], "en"))
    kept = np.asarray(kept.to_numpy(zero_copy_only=False), dtype=bool)
    dropped = scores["filtered_by"].is_valid().to_numpy(zero_copy_only=False)
    assert (dropped == ~kept).all() and dropped.sum() > 100
    # the classifier only scored records the filter kept
    assert (scores["classifier_prob"].is_null().to_numpy(zero_copy_only=False) == dropped).all()
    selected = set(quality_run.selected_ids())
    ids = scores["id"].to_pylist()
    assert len(selected) == 75 and all(kept[ids.index(i)] for i in selected)
    c = quality_run.counts
    assert c["filtered"] == {"filter: gopher_pass and lang == 'en'": int(dropped.sum())}
    assert c["selected"] + c["not_selected"] + sum(c["filtered"].values()) + c["failed"] == c["input_records"]
    assert c["all_accounted_for"]


def test_the_selection_is_target_like_and_measured_against_random(quality_run):
    m = quality_run.metrics
    comp = {row["group"]: row for row in m["composition"]}
    assert comp["news"]["selected_share"] > 3 * comp["news"]["pool_share"]
    assert m["kl_reduction"] > 0
    # cross-fitted: two classifiers, each on half the pool sample, each with its own held-out report
    assert m["fit"]["classifier"]["fold_0"]["heldout"]["auc"] > 0.8
    assert m["fit"]["classifier"]["fold_1"]["heldout"]["auc"] > 0.8
    # the classifier learned against the pool sample that passed the filter, not the raw sample
    assert 0 < m["fit"]["pool_sample_after_filters"]["filter: gopher_pass and lang == 'en'"] < 800
    assert (quality_run.path / "fit" / "classifier" / "fold_1" / "classifier.json").is_file()
    assert len(quality_run.selected_records()) == 75


def test_same_selection_and_scores_with_two_workers(quality_run, tmp_path, small_pool, news_target):
    two = Pipeline(QUALITY).run(read(small_pool, batch_size=250), tmp_path / "two", read(news_target), workers=2,
                                progress=False, pool_sample=800)
    assert two.selected_ids() == quality_run.selected_ids()
    assert two.scores().equals(quality_run.scores())


def test_select_from_a_score_run_with_where_and_score(tmp_path, small_pool, news_target):
    scored = run_scoring(read(small_pool), ["gopher", "tokens", "dsir"], tmp_path / "scored",
                         target=read(news_target), workers=1, progress=False)
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--from-run", str(scored.path),
                           "--out", str(tmp_path / "sel"), "--where", "gopher_pass and n_tiktoken >= 200",
                           "--score", "dsir", "--selector", "topk", "--budget", "40", "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    scores = scored.scores()
    ids = np.asarray(scores["id"].to_pylist(), dtype=object)
    eligible = np.flatnonzero(np.asarray(scores["gopher_pass"].to_pylist(), dtype=bool)
                              & (scores["n_tiktoken"].to_numpy() >= 200))
    dsir = scores["dsir"].to_numpy()[eligible]
    expected = ids[eligible[np.argsort(-dsir, kind="stable")[:40]]].tolist()
    assert (tmp_path / "sel" / "selected" / "ids.txt").read_text().split() == expected
    assert out["counts"]["filtered"]["where"] == 1500 - len(eligible)
    assert out["counts"]["all_accounted_for"]


def test_pipeline_validation():
    with pytest.raises(ConfigError, match="unknown scorer 'nope'"):
        Score("nope")
    with pytest.raises(ConfigError, match="no parameter.*min_wordz"):
        Score("gopher", {"min_wordz": 3})
    with pytest.raises(ConfigError, match="select must be the last"):
        Pipeline([Score("gopher"), Select(), Score("c4")])
    with pytest.raises(ConfigError, match="appear twice"):
        Pipeline([Score("gopher"), Score("gopher")])
    with pytest.raises(ConfigError, match="cannot parse"):
        Filter("gopher_pass and")


def test_classifier_without_target_is_a_clear_error(tmp_path, small_pool):
    with pytest.raises(ConfigError, match="needs target texts"):
        Pipeline([Score("classifier")]).run(read(small_pool), tmp_path / "x", None, workers=1, progress=False)


def _write_recipe(tmp_path, body: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(body)
    return path


def test_recipe_runs_from_the_cli(tmp_path, small_pool, news_target):
    recipe = _write_recipe(tmp_path, f"""
pool: {small_pool}
target: {news_target}
out: run
seed: 3
pool_sample: 600
steps:
  - score: c4
  - filter: c4_pass
  - score: dsir
  - select: topk
    score: dsir
    budget: 50
""")
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "run", str(recipe), "--workers", "1", "--json"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())  # 'out' is relative to the recipe
    assert manifest["counts"]["selected"] == 50 and manifest["seed"] == 3
    assert manifest["recipe"]["steps"][1] == {"filter": "c4_pass"}
    scores = pq.read_table(tmp_path / "run" / "scores" / "scores.parquet")
    ids = (tmp_path / "run" / "selected" / "ids.txt").read_text().split()
    passed = dict(zip(scores["id"].to_pylist(), scores["c4_pass"].to_pylist()))
    assert all(passed[i] for i in ids)


@pytest.mark.parametrize("steps, message", [
    ("  - score: gopher\n  - score: classifer\n", r"recipe.yaml:5: unknown scorer 'classifer'"),
    ("  - score: gopher\n    min_wordz: 3\n", r"recipe.yaml:4: scorer 'gopher' has no parameter"),
    ("  - score: gopher\n  - select: topk\n    budget: lots\n", r"recipe.yaml:5: .*budget"),
    ("  - score: gopher\n  - select: topk\n    colour: red\n", r"recipe.yaml:5: unknown key\(s\) colour"),
    ("  - filter: 'gopher_pass and'\n", r"recipe.yaml:4: cannot parse"),
    ("  - sort: gopher\n", r"recipe.yaml:4: a step starts with dedup, score, filter, select or mix"),
    ("  - score: [unclosed\n", r"recipe.yaml:\d+: not valid YAML"),
])
def test_recipe_errors_name_the_line(tmp_path, small_pool, steps, message):
    recipe = _write_recipe(tmp_path, f"pool: {small_pool}\nout: run\nsteps:\n{steps}")
    with pytest.raises(ConfigError, match=message):
        Recipe.load(recipe)
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "run", str(recipe)], capture_output=True, text=True)
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_token_budget_counts_the_chosen_token_column(tmp_path, small_pool):
    scored = run_scoring(read(small_pool), ["tokens", "gopher"], tmp_path / "scored", workers=1, progress=False)
    run = th.reselect(scored, out=tmp_path / "sel", score="gopher_mean_word_length", selector="topk",
                          budget="20000 tokens", token_column="n_tiktoken")
    scores = scored.scores()
    tokens = dict(zip(scores["id"].to_pylist(), scores["n_tiktoken"].to_pylist()))
    words = dict(zip(scores["id"].to_pylist(), scores["n_words"].to_pylist()))
    chosen = run.selected_ids()
    ids = scores["id"].to_pylist()
    order = [ids[j] for j in np.argsort(-scores["gopher_mean_word_length"].to_numpy(), kind="stable")]
    assert chosen == order[: len(chosen)]  # the longest prefix of the ranking that fits
    assert sum(tokens[i] for i in chosen) <= 20000 < sum(tokens[i] for i in order[: len(chosen) + 1])
    assert run.metrics["selected_tokens"] == sum(tokens[i] for i in chosen)
    assert sum(words[i] for i in chosen) != run.metrics["selected_tokens"]  # words are not what was budgeted
    with pytest.raises(ConfigError, match="no token column 'n_bpe'"):
        th.reselect(scored, out=tmp_path / "bad", score="gopher_mean_word_length", budget="1000 tokens",
                        token_column="n_bpe")


def test_scores_are_reused_when_inputs_and_stages_are_unchanged(tmp_path, small_pool, news_target):
    stages = [Score("c4"), Score("dsir")]
    first = Pipeline([*stages, Select("topk", score="dsir", budget=30)]).run(
        read(small_pool), tmp_path / "r", read(news_target), workers=1, progress=False, pool_sample=300)
    first_ids = first.selected_ids()
    scores_file = tmp_path / "r" / "scores" / "scores.parquet"
    mtime = scores_file.stat().st_mtime_ns
    again = Pipeline([*stages, Select("topk", score="dsir", budget=60)]).run(
        read(small_pool), tmp_path / "r", read(news_target), workers=1, progress=False, pool_sample=300)
    assert scores_file.stat().st_mtime_ns == mtime and again.manifest["scores_reused"]
    assert again.selected_ids()[:30] == first_ids and len(again.selected_ids()) == 60
    changed = Pipeline([Score("c4", {"min_sentences": 2}), Score("dsir"), Select("topk", score="dsir", budget=30)]
                       ).run(read(small_pool), tmp_path / "r", read(news_target), workers=1, progress=False,
                             pool_sample=300)
    assert scores_file.stat().st_mtime_ns != mtime and not changed.manifest.get("scores_reused")


def test_dedup_stage_drops_duplicates_before_scoring(tmp_path, small_pool):
    table = pq.read_table(small_pool).slice(0, 300)
    copies = table.slice(0, 5)
    copies = copies.set_column(copies.schema.get_field_index("id"), "id",
                               pa.array([f"copy-{i}" for i in copies["id"].to_pylist()]))
    path = tmp_path / "pool.parquet"
    pq.write_table(pa.concat_tables([table, copies.cast(table.schema)]), path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"pool: {path}\nsteps:\n  - dedup: exact\n  - score: gopher\n  - select: topk\n"
                      f"    score: gopher_words\n    budget: 20\n")
    run = Recipe.load(recipe).run(out=tmp_path / "out", workers=1, progress=False)
    scores = run.scores()
    reason = dict(zip(scores["id"].to_pylist(), scores["dup_reason"].to_pylist()))
    originals = table.slice(0, 5)["id"].to_pylist()
    assert [reason[f"copy-{i}"] for i in originals] == [f"exact_duplicate_of:{i}" for i in originals]
    assert sum(r is not None for r in reason.values()) == 5
    assert run.counts["filtered"] == {"dedup": 5} and run.counts["all_accounted_for"]
    dropped = [i for i, r in reason.items() if r is not None]
    gopher = dict(zip(scores["id"].to_pylist(), scores["gopher_words"].to_pylist()))
    assert all(gopher[i] is None for i in dropped)  # dropped before the scorer ran
    assert not set(dropped) & set(run.selected_ids())
    with pytest.raises(ConfigError, match="first stage"):
        Pipeline([Score("gopher"), Dedup()])
