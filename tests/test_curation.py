"""thresher evaluate --experiment on an audited real pool: pruning by training-dynamics scores and dropping
flagged labels, each against random subsets of the same size, with paired intervals."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.demo import sample_path
from thresher.errors import ConfigError
from thresher.evaluate.curation import CurationConfig, keep_rows, stratified_sample

BBC = sample_path("labeled/bbc_news.parquet")
CLASSES = ["business", "entertainment", "politics", "sport", "tech"]


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """The bundled BBC pool rows with 25% of labels flipped, audited with training dynamics; the dev rows as the
    test set."""
    root = tmp_path_factory.mktemp("curation")
    table = pq.read_table(BBC)
    pool = table.filter(pc.equal(table.column("split"), "pool"))
    y = np.array([CLASSES.index(v) for v in pool.column("label").to_pylist()])
    rng = np.random.default_rng(1)
    flipped = rng.random(len(y)) < 0.25
    noisy = np.where(flipped, (y + rng.integers(1, 5, len(y))) % 5, y)
    pool = pool.set_column(pool.column_names.index("label"), "label", pa.array([CLASSES[i] for i in noisy]))
    pq.write_table(pool, root / "pool.parquet")
    pq.write_table(table.filter(pc.equal(table.column("split"), "dev")), root / "test.parquet")
    run = th.audit(root / "pool.parquet", out=root / "audit", dynamics="all", workers=1, progress=False,
                   report=False)
    return run, root / "test.parquet", root


def test_dropping_flagged_labels_beats_dropping_as_many_at_random(audited):
    run, test, root = audited
    rows = th.evaluate_curation(run, test, out=root / "drop", experiment="label-errors", seeds=10, workers=1)
    acc = {r["method"]: r for r in rows if r["metric"] == "accuracy"}
    assert acc["random"]["verdict"] == "baseline"
    flagged = run.manifest["counts"]["label_issues"]
    assert acc["drop_flagged"]["budget"] == f"drop {flagged}"
    assert acc["drop_flagged"]["budget_records"] == acc["random"]["budget_records"] == 194 - flagged
    assert acc["drop_flagged"]["delta"] > 0  # a quarter of the labels are wrong; the flagged are mostly those
    assert acc["drop_flagged"]["interval"] == "bootstrap-bca"  # ten pairs: a real interval, not sign-flip
    with open(root / "drop" / "per_seed.csv", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 20


def test_pruning_rows_pair_every_method_with_random_at_each_size(audited):
    run, test, root = audited
    rows = th.evaluate_curation(run, test, out=root / "prune", methods=["el2n", "easy", "stratified"],
                                fractions=[0.5, 0.7], seeds=10, workers=2)
    cells = {(r["method"], r["budget"], r["metric"]) for r in rows}
    assert cells == {(m, b, k) for m in ("random", "el2n", "easy", "stratified") for b in ("50%", "70%")
                     for k in ("accuracy", "macro_f1")}
    sizes = {(r["method"], r["budget"]): r["budget_records"] for r in rows}
    assert {sizes[(m, "50%")] for m in ("random", "el2n", "easy", "stratified")} == {97}
    by = {(r["method"], r["budget"]): r for r in rows if r["metric"] == "accuracy"}
    # with a quarter of the labels flipped, keeping the hardest half by EL2N keeps the flips: worse than random
    assert by[("el2n", "50%")]["verdict"] == "worse"
    assert by[("easy", "50%")]["estimate"] > by[("el2n", "50%")]["estimate"]
    again = th.evaluate_curation(run, test, out=root / "prune1", methods=["el2n", "easy", "stratified"],
                                 fractions=[0.5], seeds=10, workers=1)
    assert again == [r for r in rows if r["budget"] == "50%"]  # the same for any number of workers


def test_keep_rows_and_stratified_sample():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    rng = np.random.default_rng(0)
    rows = stratified_sample(labels, 50, rng)
    assert len(set(rows)) == 50 and np.bincount(labels[rows]).tolist() == [30, 15, 5]
    scores = {"el2n": np.arange(100, dtype=float)}
    assert keep_rows("el2n", 3, scores, labels, rng).tolist() == [97, 98, 99]
    assert keep_rows("easy", 3, scores, labels, rng).tolist() == [0, 1, 2]
    with pytest.raises(ConfigError, match="carto_variability"):
        keep_rows("ambiguous", 3, scores, labels, rng)
    with pytest.raises(ConfigError, match="unknown pruning method"):
        CurationConfig(methods=("nope",))
    with pytest.raises(ConfigError, match="seeds"):
        CurationConfig(seeds=1)


def test_cli_experiment_end_to_end(audited):
    run, test, root = audited
    done = subprocess.run([sys.executable, "-m", "thresher.cli", "evaluate", "--experiment", "pruning", "--from-run",
                           str(run.path), "--heldout", str(test), "--methods", "aum,ambiguous", "--budgets", "60%",
                           "--workers", "1", "--out", str(root / "cli")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pruning (test set) · accuracy" in done.stdout and "ambiguous" in done.stdout
    with open(root / "cli" / "results.csv", encoding="utf-8") as f:
        results = list(csv.DictReader(f))
    assert {r["method"] for r in results} == {"random", "aum", "ambiguous"}
    assert {r["n_seeds"] for r in results} == {"10"}  # --seeds not given: 10, enough for a real interval
    manifest = json.loads((root / "cli" / "manifest.json").read_text())
    c = manifest["counts"]
    assert manifest["experiment"] == "pruning" and c["all_accounted_for"]
    assert c["evaluated"] + c["unlabelled"] == c["input_records"] == run.manifest["counts"]["input_records"]
    page = (root / "cli" / "report.html").read_text()  # evaluate's comparison tables, one per metric
    assert "Comparison with the baseline" in page and "ambiguous" in page and "macro_f1" in page
    assert f"report: {root / 'cli' / 'report.html'}" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "thresher.cli", "evaluate", "--experiment", "pruning", "--heldout",
                          str(test), "--out", str(root / "bad")], capture_output=True, text=True)
    assert bad.returncode != 0 and "--from-run" in bad.stderr


def test_recipe_audits_then_runs_its_experiments_and_selects(audited):
    """An audit step followed by evaluate steps and a select: each experiment in OUT/<experiment> on the audit's
    columns (the same rows as from Python), the selection after them."""
    _, test, root = audited
    recipe = root / "curate.yaml"
    recipe.write_text(f"""pool: pool.parquet
out: recipe-run
steps:
  - audit: label
    dynamics: [el2n]
  - evaluate: pruning
    heldout: {test.name}
    methods: [el2n, easy]
    budgets: [50%]
    seeds: 4
  - evaluate: label-errors
    heldout: {test.name}
    seeds: 4
  - filter: "not is_label_issue"
  - select: threshold
    score: label_quality
    threshold: 0
""")
    done = subprocess.run([sys.executable, "-m", "thresher.cli", "run", str(recipe), "--workers", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = root / "recipe-run"
    with open(out / "pruning" / "results.csv", encoding="utf-8") as f:
        pruning = list(csv.DictReader(f))
    assert {(r["method"], r["budget"]) for r in pruning} == {(m, "50%") for m in ("random", "el2n", "easy")}
    direct = th.evaluate_curation(out, test, out=root / "direct", methods=["el2n", "easy"], fractions=[0.5], seeds=4,
                                  workers=1, report=False)
    assert [round(float(r["estimate"]), 12) for r in pruning] == [round(r["estimate"], 12) for r in direct]
    assert (out / "label-errors" / "report.html").is_file() and (out / "pruning" / "report.html").is_file()
    kept = (out / "selected" / "ids.txt").read_text().split()
    issues = pq.read_table(out / "scores" / "scores.parquet").column("is_label_issue").to_pylist()
    assert len(kept) == len(issues) - sum(issues) > 0


@pytest.mark.parametrize("steps, message", [
    ("  - evaluate: pruning\n    heldout: t.parquet\n", "pruning and label-errors follow an audit step"),
    ("  - audit: label\n  - evaluate: active\n    heldout: t.parquet\n", "evaluate is one of pruning, label-errors"),
    ("  - audit: label\n  - evaluate: pruning\n", "needs 'heldout'"),
    ("  - audit: label\n  - evaluate: pruning\n    heldout: t.parquet\n    budgets: [lots]\n", "a share kept"),
    ("  - audit: label\n  - evaluate: pruning\n    heldout: t.parquet\n    start_labels: 5\n", "unknown key"),
])
def test_recipe_refuses_misplaced_or_malformed_evaluate_steps(tmp_path, steps, message):
    from thresher.recipe import Recipe

    pq.write_table(pa.table({"text": ["a"], "label": ["x"]}), tmp_path / "t.parquet")
    (tmp_path / "r.yaml").write_text(f"pool: t.parquet\nout: o\nsteps:\n{steps}")
    with pytest.raises(ConfigError, match=message) as e:
        Recipe.load(tmp_path / "r.yaml")
    assert "r.yaml:" in str(e.value)  # the error names the recipe and its line
