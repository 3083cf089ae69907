"""thresher audit on real labelled text: planted label flips are found, flags match cleanlab's on the same
probabilities, every record is accounted for, and results do not depend on the number of workers."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.audit.confident import FILTERS, confident_joint, find_label_issues
from thresher.audit.crossval import stratified_folds
from thresher.audit.quality import QUALITY_METHODS, knn_outlier_scores, label_quality
from thresher.demo import sample_path
from thresher.errors import ConfigError
from thresher.recipe import Recipe

BBC = sample_path("labeled/bbc_news.parquet")
CLASSES = ["business", "entertainment", "politics", "sport", "tech"]


def _flip(table: pa.Table, rate: float, seed: int, field: str = "label") -> tuple[pa.Table, np.ndarray]:
    """The table with ``rate`` of its labels moved to another class at random; which rows were flipped."""
    y = np.array([CLASSES.index(v) for v in table.column(field).to_pylist()])
    rng = np.random.default_rng(seed)
    flipped = rng.random(len(y)) < rate
    noisy = np.where(flipped, (y + rng.integers(1, len(CLASSES), len(y))) % len(CLASSES), y)
    return table.set_column(table.column_names.index(field), field,
                            pa.array([CLASSES[i] for i in noisy], pa.large_string())), flipped


@pytest.fixture(scope="module")
def noisy_bbc(tmp_path_factory):
    """The bundled 250 BBC articles with 10% of their labels flipped to another topic, and the flipped rows."""
    table, flipped = _flip(pq.read_table(BBC), 0.1, seed=0)
    path = tmp_path_factory.mktemp("audit") / "bbc_noisy.parquet"
    pq.write_table(table, path)
    return path, flipped


@pytest.fixture(scope="module")
def noisy_run(noisy_bbc, tmp_path_factory):
    path, _ = noisy_bbc
    return th.audit(path, out=tmp_path_factory.mktemp("audit-run") / "run", workers=1, progress=False)


def test_planted_flips_are_found(noisy_bbc, noisy_run):
    """Most flagged records are planted flips and most planted flips are flagged (10% were flipped), and the
    suggested label of a found flip is mostly its true topic."""
    _, flipped = noisy_bbc
    scores = noisy_run.scores()
    flagged = np.asarray(scores.column("is_label_issue").to_pylist())
    hits = flagged & flipped
    assert hits.sum() / flagged.sum() >= 0.7, (flagged.sum(), hits.sum())
    assert hits.sum() / flipped.sum() >= 0.5, (flipped.sum(), hits.sum())
    truth = pq.read_table(BBC).column("label").to_pylist()
    suggested = scores.column("suggested_label_name").to_pylist()
    right = sum(suggested[i] == truth[i] for i in np.flatnonzero(hits))
    assert right >= 0.8 * hits.sum()
    # flagged records have lower label quality than the rest
    quality = np.asarray(scores.column("label_quality").to_pylist())
    assert quality[flagged].mean() < quality[~flagged].mean() - 0.3


def test_counts_add_up_and_manifest_says_what_was_found(noisy_run):
    m = noisy_run.manifest
    c = m["counts"]
    assert c["input_records"] == 250 and c["audited"] == 250 and c["all_accounted_for"]
    assert c["label_issues"] == sum(row["label_issues"] for row in c["by_class"].values())
    assert sum(row["records"] for row in c["by_class"].values()) == 250
    joint = np.asarray(m["confident_joint"])
    assert joint.sum() == 250  # calibrated to the record count
    noise = np.asarray(m["noise_matrix"])
    assert np.allclose(noise.sum(axis=0), 1.0, atol=1e-5)
    assert 0.04 <= m["metrics"]["estimated_noise_rate"] <= 0.2  # 10% planted
    assert m["examples"]["label_issues"] and m["examples"]["label_issues"][0]["text"]
    qualities = [e["label_quality"] for e in m["examples"]["label_issues"]]
    assert qualities == sorted(qualities)
    assert "Label audit" in (noisy_run.path / "report.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("filter_by", FILTERS)
def test_same_flags_as_cleanlab_on_the_same_probabilities(noisy_run, filter_by):
    """Confident learning as cleanlab 2.9 implements it: the same records flagged from the same probabilities,
    on real cross-validated probabilities and on random ones with up to 19 classes."""
    cleanlab_filter = pytest.importorskip("cleanlab.filter", reason="cleanlab is in the test extra")
    scores = noisy_run.scores()
    y = np.asarray(scores.column("label").to_pylist())
    probs = np.column_stack([scores.column(f"prob_{c}").to_numpy() for c in CLASSES])
    cases = [(y, probs)]
    for seed in range(40):
        rng = np.random.default_rng(seed)
        k, n = int(rng.integers(2, 20)), int(rng.integers(40, 500))
        labels = np.arange(n) % k
        logits = rng.normal(size=(n, k)) * rng.uniform(0.5, 4)
        logits[np.arange(n), labels] += rng.uniform(0, 3)
        cases.append((labels, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for labels, p in cases:
            theirs = cleanlab_filter.find_label_issues(labels, p, filter_by=filter_by, n_jobs=1)
            assert np.array_equal(find_label_issues(labels, p, filter_by), theirs)


def test_confident_joint_counts_confident_records():
    """Records labelled 0, two of them confidently 1 (off the diagonal); the 0.7 record labelled 1 is below class
    1's threshold (its members' mean, 0.8) and above none, so it is not counted; calibrated rows keep label
    counts."""
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.85, 0.15], [0.1, 0.9], [0.2, 0.8],
                      [0.1, 0.9], [0.3, 0.7], [0.2, 0.8]])
    joint = confident_joint(labels, probs, calibrate=False)
    assert joint.counts.tolist() == [[3, 2], [0, 2]]
    assert np.allclose(joint.thresholds, [0.57, 0.8])
    assert np.flatnonzero(joint.off_diagonal).tolist() == [3, 4]
    calibrated = confident_joint(labels, probs)
    assert calibrated.counts.sum(axis=1).tolist() == [5, 3]
    assert find_label_issues(labels, probs).tolist() == [False] * 3 + [True, True] + [False] * 3


def test_label_quality_methods_rank_a_wrong_label_lowest():
    labels = np.array([0, 0, 1])
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]])
    for method in QUALITY_METHODS:
        q = label_quality(labels, probs, method)
        assert q.argmin() == 1 and ((q >= 0) & (q <= 1)).all(), method
    assert label_quality(labels, probs, "self_confidence").tolist() == [0.9, 0.2, 0.7]
    with pytest.raises(ConfigError, match="self_confidence"):
        label_quality(labels, probs, "nope")


def test_folds_are_stratified_and_seeded():
    labels = np.repeat([0, 1, 2], [50, 30, 7])
    folds = stratified_folds(labels, 5, seed=3)
    for c in range(3):
        sizes = np.bincount(folds[labels == c], minlength=5)
        assert sizes.max() - sizes.min() <= 1
    assert np.array_equal(folds, stratified_folds(labels, 5, seed=3))
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=4))


def test_outlier_score_finds_the_record_unlike_the_rest(tmp_path):
    """A Python traceback among BBC articles is the farthest from its neighbours."""
    table = pq.read_table(BBC).slice(0, 60)
    odd = ('Traceback (most recent call last): File "main.py", line 3, in <module> import numpy as np '
           "ModuleNotFoundError: No module named 'numpy'")
    rows = table.to_pylist() + [{"id": "odd", "text": odd, "label": "tech", "split": "pool"}]
    path = tmp_path / "odd.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    run = th.audit(path, out=tmp_path / "run", workers=1, progress=False, report=False)
    scores = run.scores()
    outlier = np.asarray(scores.column("outlier_score").to_pylist())
    assert scores.column("id")[int(outlier.argmax())].as_py() == "odd"
    assert run.manifest["examples"]["outliers"][0]["id"] == "odd"
    x = np.eye(4)
    assert np.allclose(knn_outlier_scores(x, k=1), 1.0)  # orthogonal rows: cosine distance 1 to everything


def test_unlabelled_records_are_scored_and_counted_not_flagged(tmp_path):
    table = pq.read_table(BBC)
    labels = table.column("label").to_pylist()
    labels[:10] = [None] * 10
    path = tmp_path / "partial.parquet"
    pq.write_table(table.set_column(table.column_names.index("label"), "label", pa.array(labels)), path)
    run = th.audit(path, out=tmp_path / "run", workers=1, progress=False, report=False, outlier_k=0)
    c = run.manifest["counts"]
    assert (c["audited"], c["unlabelled"], c["all_accounted_for"]) == (240, 10, True)
    scores = run.scores()
    assert scores.column("label").to_pylist()[:10] == [-1] * 10
    assert scores.column("is_label_issue").to_pylist()[:10] == [False] * 10
    assert scores.column("label_quality").null_count == 10
    probs = np.column_stack([scores.column(f"prob_{c}").to_numpy() for c in CLASSES])
    assert np.allclose(probs.sum(axis=1), 1.0)
    # the fold models agree with the true topic on most unlabelled articles
    truth = table.column("label").to_pylist()[:10]
    assert sum(CLASSES[i] == t for i, t in zip(probs[:10].argmax(axis=1), truth)) >= 7
    assert "outlier_score" not in scores.column_names
    # the next records for annotators: the least sure unlabelled ones (margin sampling), as an explicit selection
    uncertainty = scores.column("uncertainty").to_numpy()
    top2 = -np.sort(-probs, axis=1)[:, :2]
    assert np.allclose(uncertainty, 1 - (top2[:, 0] - top2[:, 1]))
    picked = th.reselect(run, out=tmp_path / "next", where="label < 0", selector="topk", score="uncertainty",
                         budget=3, progress=False, report=False)
    ids = scores.column("id").to_pylist()
    assert picked.selected_ids() == [ids[i] for i in np.argsort(-uncertainty[:10], kind="stable")[:3]]


def test_probs_from_uses_the_given_probabilities(noisy_bbc, noisy_run, tmp_path):
    """Auditing with a run's own probabilities (--probs-from) flags exactly what that run flagged; a file missing
    a record's probabilities is an error naming it."""
    path, _ = noisy_bbc
    again = th.audit(path, out=tmp_path / "again", probs_from=noisy_run.path, workers=1, progress=False,
                     report=False)
    first, second = noisy_run.scores(), again.scores()
    assert first.column("is_label_issue").equals(second.column("is_label_issue"))
    assert again.manifest["config"]["probs_from"] == str(noisy_run.path)
    partial = tmp_path / "probs.parquet"
    pq.write_table(first.select(["id", *[f"prob_{c}" for c in CLASSES]]).slice(1), partial)
    first_id = first.column("id")[0].as_py()
    with pytest.raises(ConfigError, match=first_id):
        th.audit(path, out=tmp_path / "bad", probs_from=partial, workers=1, progress=False, report=False)


def test_same_scores_with_one_or_two_workers(noisy_bbc, noisy_run, tmp_path):
    path, _ = noisy_bbc
    two = th.audit(path, out=tmp_path / "two", workers=2, progress=False, report=False)
    assert two.scores().equals(noisy_run.scores())


def test_bad_labels_and_options_are_clear_errors(tmp_path):
    table = pq.read_table(BBC).slice(0, 20)
    with pytest.raises(ConfigError, match=r"label = .(sport|entertainment|tech). is not a class \(business, politics"):
        th.audit(BBC, out=tmp_path / "a", classes=["business", "politics"], progress=False, report=False)
    with pytest.raises(ConfigError, match="no record has a value in 'topic'"):
        th.audit(BBC, out=tmp_path / "b", label_field="topic", progress=False, report=False)
    one_class = tmp_path / "one.parquet"
    pq.write_table(table.filter(pa.compute.equal(table.column("label"), "business")), one_class)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        th.audit(one_class, out=tmp_path / "c", progress=False, report=False)
    with pytest.raises(ConfigError, match="filter_by"):
        th.audit(BBC, out=tmp_path / "d", filter_by="nope", progress=False, report=False)


def test_cli_recipe_and_selection_drop_flagged_records_explicitly(noisy_bbc, tmp_path):
    """`thresher audit` end to end, then a recipe that audits and keeps the unflagged records: the selection has
    exactly the records not flagged, and the audit columns still say what was flagged."""
    path, _ = noisy_bbc
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "thresher.cli", "audit", "--pool", str(path), "--out", str(out),
                           "--workers", "1", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    flagged = summary["counts"]["label_issues"]
    assert summary["counts"]["all_accounted_for"] and flagged > 0
    printed = subprocess.run([sys.executable, "-m", "thresher.cli", "audit", "--pool", str(path), "--out",
                              str(tmp_path / "cli2"), "--workers", "1", "--no-report"], capture_output=True,
                             text=True)
    assert "label issues (prune_by_noise_rate)" in printed.stdout and "-> " in printed.stdout
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"pool: {path}\nout: {tmp_path / 'recipe-run'}\nseed: 0\nworkers: 1\nsteps:\n"
                      "  - audit: label\n  - filter: \"not is_label_issue\"\n  - select: threshold\n"
                      "    score: label_quality\n    threshold: 0\n", encoding="utf-8")
    run = Recipe.load(recipe).run(progress=False)
    assert run.counts["selected"] == 250 - flagged
    selected = (run.path / "selected" / "ids.txt").read_text(encoding="utf-8").split()
    scores = run.scores()
    issue_ids = {i for i, f in zip(scores.column("id").to_pylist(), scores.column("is_label_issue").to_pylist())
                 if f}
    assert len(issue_ids) == flagged and not issue_ids & set(selected)
    assert run.manifest["audit_metrics"]["label_issues"] == flagged


def test_near_duplicates_across_splits_and_label_conflicts(tmp_path):
    """A test article that is a lightly edited copy of a train article points at it (leakage); a copy filed under
    another topic is a label conflict; the other articles have no near-duplicate."""
    rows = pq.read_table(BBC).slice(0, 40).to_pylist()
    for r in rows:
        r["split"] = "train"
    leaked = dict(rows[0], id="leaked", split="test", text=rows[0]["text"].replace(" the ", " a ", 1))
    relabelled = dict(rows[1], id="relabelled", label="sport" if rows[1]["label"] != "sport" else "tech")
    path = tmp_path / "dups.parquet"
    pq.write_table(pa.Table.from_pylist(rows + [leaked, relabelled]), path)
    run = th.audit(path, out=tmp_path / "run", split_field="split", workers=1, progress=False, report=False)
    scores = run.scores()
    ids = scores.column("id").to_pylist()
    partner = dict(zip(ids, scores.column("near_duplicate_of").to_pylist()))
    cross = dict(zip(ids, scores.column("cross_split_duplicate").to_pylist()))
    conflict = dict(zip(ids, scores.column("label_conflict").to_pylist()))
    assert partner["leaked"] == rows[0]["id"] and partner[rows[0]["id"]] == "leaked"
    assert cross["leaked"] and cross[rows[0]["id"]] and not cross["relabelled"]
    assert partner["relabelled"] == rows[1]["id"] and conflict["relabelled"] and conflict[rows[1]["id"]]
    assert not conflict["leaked"]
    assert sum(p is not None for p in partner.values()) == 4
    dups = run.manifest["counts"]["near_duplicates"]
    assert dups == {"records_with_near_duplicate": 4, "records_in_label_conflicts": 2,
                    "cross_split_records": {"test": 1, "train": 1}}
    off = th.audit(path, out=tmp_path / "off", duplicate_threshold=None, workers=1, progress=False, report=False)
    assert "near_duplicate_of" not in off.scores().column_names


@pytest.fixture(scope="module")
def dynamics_run(noisy_bbc, tmp_path_factory):
    """The noisy BBC articles plus one article repeated eight times (a record the model memorises), with every
    training-dynamics score."""
    path, flipped = noisy_bbc
    table = pq.read_table(path)
    rows = table.to_pylist() + [dict(table.slice(5, 1).to_pylist()[0], id=f"copy{i}") for i in range(8)]
    out = tmp_path_factory.mktemp("dynamics")
    pq.write_table(pa.Table.from_pylist(rows), out / "pool.parquet")
    run = th.audit(out / "pool.parquet", out=out / "run", dynamics="all", workers=1, progress=False, report=False)
    return run, np.r_[flipped, np.zeros(8, dtype=bool)]


def test_training_dynamics_separate_flipped_and_memorised_records(dynamics_run):
    run, flipped = dynamics_run
    s = run.scores()
    col = {c: np.asarray(s.column(c).to_pylist()) for c in ("el2n", "grand", "forgetting_events", "aum",
                                                           "carto_confidence", "carto_variability",
                                                           "carto_correctness")}
    copies = np.asarray([i.startswith("copy") for i in s.column("id").to_pylist()])
    # the memorised article (eight copies and the original) has the lowest EL2N of all; planted flips: high EL2N,
    # low margin
    lowest = set(np.argsort(col["el2n"], kind="stable")[:9])
    assert lowest == set(np.flatnonzero(copies)) | {5}
    top = col["el2n"] >= np.quantile(col["el2n"], 0.85)
    assert flipped[top].mean() >= 0.35  # 10% flipped overall: over three times as many among the top 15%
    # 250 articles are memorised, flips too (margins end positive), but later and less surely than the rest
    assert col["aum"][flipped].mean() < col["aum"][~flipped].mean()
    assert col["carto_confidence"][flipped].mean() < col["carto_confidence"][~flipped].mean()
    assert np.corrcoef(col["el2n"], col["grand"])[0, 1] > 0.99  # unit-length hashed rows: GraNd ~ EL2N
    assert col["forgetting_events"].min() >= 0 and col["carto_correctness"].max() <= 1
    regions = s.column("carto_region").to_pylist()
    assert {regions[i] for i in np.flatnonzero(copies)} == {"easy"}
    assert sum(regions[i] == "easy" for i in np.flatnonzero(flipped)) <= 0.2 * flipped.sum()
    assert sum(run.manifest["counts"]["carto_regions"].values()) == len(regions)
    assert run.manifest["config"]["dynamics"] == ["el2n", "grand", "forgetting", "aum", "cartography"]


def test_training_dynamics_same_with_two_workers_and_selectable(dynamics_run, tmp_path):
    """Seeded runs give the same scores whichever worker runs them; `select --score el2n` keeps the hardest."""
    run, _ = dynamics_run
    path = run.manifest["inputs"]["pool"]["files"][0]["path"]
    two = th.audit(path, out=tmp_path / "two", dynamics="all", workers=2, progress=False, report=False)
    assert two.scores().equals(run.scores())
    hardest = th.reselect(run, out=tmp_path / "hard", selector="topk", score="el2n", budget=50)
    picked = set((hardest.path / "selected" / "ids.txt").read_text(encoding="utf-8").split())
    s = run.scores()
    el2n = dict(zip(s.column("id").to_pylist(), s.column("el2n").to_pylist()))
    assert len(picked) == 50 and min(el2n[i] for i in picked) >= sorted(el2n.values())[-50]
    with pytest.raises(ConfigError, match="unknown training-dynamics"):
        th.audit(path, out=tmp_path / "bad", dynamics="el2n,nope", progress=False, report=False)


def test_score_cli_computes_training_dynamics_like_the_audit(dynamics_run, tmp_path):
    """`thresher score --scorers el2n,aum --label-field label` gives the audit's columns and values for them (the
    same seeded SGD runs); mixed with a per-record scorer, or a label field without them, is a clear error."""
    run, _ = dynamics_run
    path = run.manifest["inputs"]["pool"]["files"][0]["path"]
    done = subprocess.run([sys.executable, "-m", "thresher.cli", "score", "--pool", path, "--scorers", "el2n,aum",
                           "--label-field", "label", "--param", "el2n.seeds=3", "--workers", "1", "--no-report",
                           "--out", str(tmp_path / "td")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    scored = pq.read_table(tmp_path / "td" / "scores" / "scores.parquet")
    for column in ("el2n", "aum"):
        assert scored.column(column).equals(run.scores().column(column))
    assert "forgetting_events" not in scored.column_names and "outlier_score" not in scored.column_names
    for args, message in ((["--scorers", "el2n,gopher"], "score them on their own, not with gopher"),
                          (["--scorers", "gopher", "--label-field", "label"], "--label-field is for the training")):
        bad = subprocess.run([sys.executable, "-m", "thresher.cli", "score", "--pool", path, *args, "--out",
                              str(tmp_path / "bad")], capture_output=True, text=True)
        assert bad.returncode != 0 and message in bad.stderr
    (tmp_path / "r.yaml").write_text(f"pool: {path}\nout: o\nsteps:\n  - score: aum\n")
    with pytest.raises(ConfigError, match=r"r.yaml:4: 'aum' is a training-dynamics score.*audit step with dynamics"):
        Recipe.load(tmp_path / "r.yaml")  # a pipeline step scores record by record: the message says where to go


def test_tfidf_features_are_unit_rows_that_weigh_rare_words_up():
    from scipy import sparse

    from thresher.jobs.audit import idf_weighted

    x = sparse.csr_matrix(np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 1.0]]))
    w = idf_weighted(x).toarray()
    assert np.allclose(np.linalg.norm(w, axis=1), 1.0)
    assert w[0, 1] > w[0, 0] and w[2, 2] > w[2, 0]  # the word every record has counts for less
