"""Regressions found in review: token budgets after filters, --from-run on other jobs, text score columns,
score-only reruns after a selection, and bad selector parameters."""

from __future__ import annotations

import pytest

import thresher as th
from thresher.errors import ConfigError
from thresher.io.dataset import read
from thresher.jobs.dedup import run_dedup
from thresher.pipeline import Filter, Pipeline, Score, Select, run_scoring


def test_token_budget_with_a_tokens_scorer_after_a_filter(tmp_path, small_pool):
    stages = [Score("gopher"), Filter("gopher_pass"), Score("tokens"),
              Select("topk", score="gopher_words", budget="20000 tokens", token_column="n_tiktoken")]
    run = Pipeline(stages).run(read(small_pool), tmp_path / "r", workers=1, progress=False)
    scores = run.scores()
    assert scores["n_words"].null_count == 0  # the pipeline's own word counts, for every record
    assert 0 < run.metrics["selected_tokens"] <= 20000 and run.counts["all_accounted_for"]
    words = th.reselect(run, out=tmp_path / "w", budget="20000 tokens", token_column="n_words")
    assert 0 < words.metrics["selected_words"] <= 20000


def test_from_run_refuses_dedup_runs_and_text_scores(tmp_path, small_pool):
    dd = run_dedup(read(small_pool), tmp_path / "dd", method="exact")
    with pytest.raises(ConfigError, match="is a dedup run"):
        th.reselect(dd, out=tmp_path / "x", budget=10)
    scored = run_scoring(read(small_pool), ["gopher"], tmp_path / "s", workers=1, progress=False)
    with pytest.raises(ConfigError, match="not numbers"):
        th.reselect(scored, out=tmp_path / "y", score="gopher_reason", budget=10)


def test_score_only_rerun_does_not_inherit_a_selection(tmp_path, small_pool):
    Pipeline([Score("c4"), Select("topk", score="c4_pass", budget=10)]).run(read(small_pool), tmp_path / "r",
                                                                            workers=1, progress=False)
    again = Pipeline([Score("c4")]).run(read(small_pool), tmp_path / "r", workers=1, progress=False)
    assert again.manifest["job"] == "score" and "selected" not in again.counts
    assert not (tmp_path / "r" / "selected").exists()


def test_bad_selector_parameter_value_is_a_config_error(tmp_path, small_pool):
    scored = run_scoring(read(small_pool), ["c4"], tmp_path / "s", workers=1, progress=False)
    with pytest.raises(ConfigError, match="quotas"):
        th.reselect(scored, out=tmp_path / "q", selector="quotas", labels="group", budget=10,
                        selector_params={"allocation": 3})
