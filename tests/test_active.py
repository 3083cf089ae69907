"""Simulated active learning on real labelled text: acquisition never repeats a record, every strategy shares each
seed's starting set, curves are the same for any number of workers, and uncertainty sampling learns faster than
random on BBC topics."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.demo import sample_path
from thresher.errors import ConfigError
from thresher.evaluate.active import STRATEGIES, ActiveConfig, acquire, learning_curve
from thresher.label.end_model import EndModel

BBC = sample_path("labeled/bbc_news.parquet")


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("active")
    table = pq.read_table(BBC)
    for name in ("pool", "dev"):
        pq.write_table(table.filter(pc.equal(table.column("split"), name)), root / f"{name}.parquet")
    return root / "pool.parquet", root / "dev.parquet", root


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_acquisition_takes_new_distinct_records(strategy):
    """Every strategy returns the number asked for, all unlabelled and distinct, even asked for more than exist."""
    table = pq.read_table(BBC)
    x = EndModel().features(table.column("text").combine_chunks()).tocsr()
    rng = np.random.default_rng(0)
    labelled = np.arange(0, 250, 5)
    candidates = np.setdiff1d(np.arange(250), labelled)
    probs = rng.dirichlet(np.ones(5), size=len(candidates))
    for n in (30, 1000):
        new = acquire(strategy, probs, x, labelled, candidates, n, np.random.default_rng(1))
        assert len(new) == min(n, len(candidates)) and len(np.unique(new)) == len(new)
        assert not np.intersect1d(new, labelled).size and np.isin(new, candidates).all()


def test_uncertainty_picks_the_least_sure():
    probs = np.array([[0.98, 0.01, 0.01], [0.4, 0.35, 0.25], [0.6, 0.39, 0.01], [0.34, 0.33, 0.33]])
    candidates = np.array([10, 11, 12, 13])
    x = np.eye(14)
    assert acquire("margin", probs, x, np.array([0]), candidates, 1, None).tolist() == [13]
    assert acquire("entropy", probs, x, np.array([0]), candidates, 2, None).tolist() == [13, 11]
    assert acquire("least_confidence", probs, x, np.array([0]), candidates, 1, None).tolist() == [13]


def test_curves_share_the_start_grow_by_batches_and_margin_beats_random(split):
    pool, dev, root = split
    results = th.evaluate_active(pool, dev, out=root / "al", strategies=["random", "margin", "coreset", "badge"],
                                 start=20, batch=20, max_labels=120, seeds=4, workers=2)
    with open(root / "al" / "per_seed.csv", encoding="utf-8") as f:
        per_seed = list(csv.DictReader(f))
    labels = sorted({int(r["labels"]) for r in per_seed})
    assert labels == [20, 40, 60, 80, 100, 120]
    start = {(r["strategy"], r["seed"]): r["accuracy"] for r in per_seed if r["labels"] == "20"}
    for seed in range(4):  # the same starting set: the same first model for every strategy
        assert len({start[(s, str(seed))] for s in ("random", "margin", "coreset", "badge")}) == 1
    by = {r["strategy"]: r for r in results}
    assert by["margin"]["auc"] > by["random"]["auc"]
    assert by["random"]["labels_to_random_final"] <= 120
    again = th.evaluate_active(pool, dev, out=root / "al1", strategies=["random", "margin", "coreset", "badge"],
                               start=20, batch=20, max_labels=120, seeds=4, workers=1)
    assert again == results


def test_learning_curve_ends_at_the_pool_when_max_labels_exceeds_it():
    table = pq.read_table(BBC).slice(0, 60)
    classes = sorted(set(table.column("label").to_pylist()))
    y = np.array([classes.index(v) for v in table.column("label").to_pylist()])
    x = EndModel().features(table.column("text").combine_chunks()).tocsr()
    curve = learning_curve(x, y, x[:10], y[:10], 5, "badge", ActiveConfig(start=20, batch=25, max_labels=500), 0)
    assert [p["labels"] for p in curve] == [20, 45, 60]
    with pytest.raises(ConfigError, match="unknown acquisition"):
        ActiveConfig(strategies=("random", "psychic"))


def test_cli_active_end_to_end(split):
    pool, dev, root = split
    done = subprocess.run([sys.executable, "-m", "thresher.cli", "evaluate", "--experiment", "active", "--pool",
                           str(pool), "--heldout", str(dev), "--methods", "random,entropy", "--start-labels", "30",
                           "--batch-labels", "30", "--max-labels", "90", "--seeds", "2", "--workers", "1", "--out",
                           str(root / "cli")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "entropy" in done.stdout and "labels to random's final" in done.stdout
    with open(root / "cli" / "curves.csv", encoding="utf-8") as f:
        curves = list(csv.DictReader(f))
    assert {(r["strategy"], r["labels"]) for r in curves} == {(s, str(n)) for s in ("random", "entropy")
                                                              for n in (30, 60, 90)}
    manifest = json.loads((root / "cli" / "manifest.json").read_text())
    assert manifest["job"] == "evaluate active" and manifest["config"]["features"] == ActiveConfig().features
    assert manifest["counts"]["evaluated"] == pq.read_metadata(pool).num_rows
    assert manifest["counts"]["all_accounted_for"]
    page = (root / "cli" / "report.html").read_text()
    assert "Active learning against random" in page and "<svg" in page and "entropy" in page


def test_features_change_the_classifier_not_the_protocol(split):
    """IDF-weighted and plain hashed features give different curves from the same starting sets; unknown features
    are refused before any work."""
    pool, dev, root = split
    runs = {f: th.evaluate_active(pool, dev, out=root / f"feat-{f}", strategies=["random", "margin"], start=20,
                                  batch=20, max_labels=60, seeds=2, features=f, workers=1, report=False)
            for f in ("hashed", "tfidf")}
    assert [r["strategy"] for r in runs["hashed"]] == [r["strategy"] for r in runs["tfidf"]] == ["random", "margin"]
    assert runs["hashed"] != runs["tfidf"]
    assert not (root / "feat-tfidf" / "report.html").exists()
    with pytest.raises(ConfigError, match="features must be one of"):
        ActiveConfig(features="bm25")


def test_recipe_runs_the_simulation_like_python(split):
    """A recipe whose step is 'evaluate: active' gives the curves th.evaluate_active gives, with the recipe's seed."""
    pool, dev, root = split
    (root / "al.yaml").write_text(f"""pool: {pool.name}
out: al-recipe
seed: 3
steps:
  - evaluate: active
    heldout: {dev.name}
    methods: [random, least_confidence]
    start_labels: 20
    batch_labels: 30
    max_labels: 80
    seeds: 2
    features: hashed
""")
    done = subprocess.run([sys.executable, "-m", "thresher.cli", "run", str(root / "al.yaml"), "--workers", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with open(root / "al-recipe" / "results.csv", encoding="utf-8") as f:
        from_recipe = list(csv.DictReader(f))
    direct = th.evaluate_active(pool, dev, out=root / "al-direct", strategies=["random", "least_confidence"],
                                start=20, batch=30, max_labels=80, seeds=2, seed=3, features="hashed", workers=1,
                                report=False)
    assert [float(r["auc"]) for r in from_recipe] == [r["auc"] for r in direct]
    assert (root / "al-recipe" / "report.html").is_file()
