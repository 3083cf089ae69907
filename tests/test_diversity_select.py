"""Diversity and quota selectors through thresher select --from-run, Python re-selection and recipes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

import thresher as th
from thresher.errors import ConfigError
from thresher.io.dataset import read
from thresher.jobs.embed import run_embedding
from thresher.pipeline import run_scoring
from thresher.recipe import Recipe


@pytest.fixture(scope="module")
def scored(tmp_path_factory, small_pool, news_target):
    root = tmp_path_factory.mktemp("div")
    run_embedding(read(small_pool), root / "emb", workers=1, progress=False)
    run = run_scoring(read(small_pool), ["tokens", "dsir"], root / "scored", target=read(news_target), workers=1,
                      progress=False, pool_sample=500)
    return root, run


def _domains(run) -> Counter:
    group = dict(zip(run.scores()["id"].to_pylist(), run.scores()["group"].to_pylist()))
    return Counter(group[i] for i in run.selected_ids())


def test_kcenter_and_facility_spread_over_more_domains_than_topk(scored, tmp_path):
    root, run = scored
    top = th.reselect(run, out=tmp_path / "top", selector="topk", score="dsir", budget=40)
    spread = {}
    for name in ("kcenter", "facility", "clusters"):
        sel = th.reselect(run, out=tmp_path / name, selector=name, embeddings=str(root / "emb"), budget=40,
                           selector_params={"n_clusters": 8} if name == "clusters" else {})
        assert len(sel.selected_ids()) == 40 and len(set(sel.selected_ids())) == 40
        spread[name] = len(_domains(sel))
    assert min(spread.values()) > len(_domains(top)), (spread, _domains(top))


def test_clusters_reads_the_embed_runs_shards_on_the_engine(scored, tmp_path, small_pool):
    """k-means passes for the clusters selector read the embed run's shards in engine tasks: the selection is the
    same on one and on two worker processes, and an embed run whose rows are in another order (a shuffled copy of
    the pool, embedded in small shards) is found by id and gives a full selection that keeps the filter."""
    import numpy as np
    import pyarrow.parquet as pq

    root, run = scored
    params = {"n_clusters": 8, "allocation": "equal"}
    one = th.reselect(run, out=tmp_path / "w1", selector="clusters", embeddings=str(root / "emb"), budget=48,
                      selector_params=params, workers=1, report=False)
    two = th.reselect(run, out=tmp_path / "w2", selector="clusters", embeddings=str(root / "emb"), budget=48,
                      selector_params=params, workers=2, report=False)
    assert one.selected_ids() == two.selected_ids() and len(set(one.selected_ids())) == 48
    table = pq.read_table(small_pool)
    shuffled = tmp_path / "shuffled.parquet"
    pq.write_table(table.take(np.random.default_rng(0).permutation(table.num_rows)), shuffled)
    run_embedding(read(shuffled, batch_size=64), tmp_path / "emb-shuffled", workers=1, progress=False)
    other = th.reselect(run, out=tmp_path / "sh", selector="clusters", embeddings=str(tmp_path / "emb-shuffled"),
                        budget=48, selector_params=params, where="n_words > 30", report=False)
    ids = other.selected_ids()
    assert len(set(ids)) == 48
    words = dict(zip(run.scores()["id"].to_pylist(), run.scores()["n_words"].to_pylist()))
    assert all(words[i] > 30 for i in ids)


def test_quotas_are_exact_per_group(scored, tmp_path):
    _, run = scored
    sel = th.reselect(run, out=tmp_path / "q", selector="quotas", labels="group", score="dsir", budget=90,
                       selector_params={"allocation": "equal", "within": "topk"})
    counts = _domains(sel)
    assert sum(counts.values()) == 90 and max(counts.values()) - min(counts.values()) <= 1, counts


def test_cli_and_errors(scored, tmp_path):
    root, run = scored
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--from-run", str(run.path), "--out",
                           str(tmp_path / "f"), "--selector", "facility", "--embeddings", str(root / "emb"),
                           "--selector-param", "k_neighbors=16", "--budget", "2000 tokens", "--token-column",
                           "n_tiktoken", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert 0 < out["metrics"]["selected_tokens"] <= 2000 and out["counts"]["all_accounted_for"]
    with pytest.raises(ConfigError, match="needs embeddings"):
        th.reselect(run, out=tmp_path / "x", selector="kcenter", budget=10)
    with pytest.raises(ConfigError, match="does not take colour"):
        th.reselect(run, out=tmp_path / "y", selector="facility", embeddings=str(root / "emb"), budget=10,
                     selector_params={"colour": 1})


def test_recipe_with_a_diversity_select(scored, tmp_path, small_pool, news_target):
    root, _ = scored
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
pool: {small_pool}
target: {news_target}
pool_sample: 400
steps:
  - score: classifier
  - filter: "classifier_prob > 0.2"
  - select: kcenter
    embeddings: {root / "emb"}
    budget: 20
""")
    run = Recipe.load(recipe).run(out=tmp_path / "out", workers=1, progress=False)
    scores = run.scores()
    prob = dict(zip(scores["id"].to_pylist(), scores["classifier_prob"].to_pylist()))
    assert len(run.selected_ids()) == 20 and all(prob[i] > 0.2 for i in run.selected_ids())
