"""The label job end to end on real labelled text, from the CLI and from Python: counts that add up, label columns
a selector can use, dev metrics, the end model, determinism, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import thresher as th
from thresher.cli import main
from thresher.demo import sample_path
from thresher.errors import ConfigError, InputError
from thresher.label import LabelMatrix

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "label"


@pytest.fixture(scope="module")
def bbc_split(tmp_path_factory) -> tuple[Path, Path]:
    table = pq.read_table(sample_path("labeled/bbc_news.parquet"))
    folder = tmp_path_factory.mktemp("bbc")
    for name in ("pool", "dev"):
        pq.write_table(table.filter(pc.equal(table["split"], name)), folder / f"{name}.parquet")
    return folder / "pool.parquet", folder / "dev.parquet"


@pytest.fixture(scope="module")
def cli_run(bbc_split, tmp_path_factory) -> Path:
    pool, dev = bbc_split
    out = tmp_path_factory.mktemp("runs") / "bbc"
    result = CliRunner().invoke(main, ["label", "--pool", str(pool), "--lfs", str(EXAMPLES / "bbc_news.yaml"),
                                       "--dev", str(dev), "--end-model", "hashed", "--workers", "2",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "dev metrics" in result.output and "coverage" in result.output
    return out


def test_cli_writes_label_columns_matrix_and_counts_that_add_up(cli_run, bbc_split):
    run = th.Run(cli_run)
    c = run.counts
    n_pool = pq.read_metadata(bbc_split[0]).num_rows
    assert c["input_records"] == n_pool and c["all_accounted_for"]
    assert c["labelled"] + c["abstained"] + c["failed"] == n_pool
    scores = run.scores()
    classes = run.manifest["classes"]
    probs = np.stack([scores[f"prob_{k}"].to_numpy() for k in classes], axis=1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    label = scores["label"].to_numpy()
    votes = scores["n_votes"].to_numpy()
    assert ((label == -1) == (votes == 0)).all()  # abstain exactly where no LF voted
    covered = label != -1
    assert (scores["label_confidence"].to_numpy(zero_copy_only=False)[covered]
            == probs[covered, label[covered]]).all()
    assert scores["label_name"].null_count == (~covered).sum()
    matrix = LabelMatrix.load(cli_run / "labels" / "matrix.npz")
    assert matrix.n_records == scores.num_rows and (matrix.n_votes() == votes).all()
    assert run.manifest["class_balance"]["source"] == "estimated"
    assert len(run.manifest["analysis"]["per_lf"]) == matrix.n_lfs


def test_dev_metrics_are_real_and_the_end_model_labels_everything(cli_run):
    run = th.Run(cli_run)
    dev = run.metrics["dev"]
    model = run.manifest["config"]["model"]
    assert set(dev) >= {model, "majority_vote", "end_model"}
    # topic keywords on BBC news: far better than chance (0.2) over all dev records, abstains counted wrong
    assert dev[model]["accuracy"] > 0.6 and dev["majority_vote"]["accuracy"] > 0.6
    assert dev[model]["accuracy"] <= dev[model]["coverage"] + 1e-12
    assert dev["end_model"]["coverage"] == 1.0 and dev["end_model"]["accuracy"] > 0.6
    scores = th.Run(cli_run).scores()
    assert scores["end_label"].null_count == 0
    per_lf = run.manifest["analysis"]["per_lf"]
    assert all("emp_accuracy" in r for r in per_lf) and all("learned_accuracy" in r for r in per_lf)


def test_the_report_shows_the_lf_analysis_class_balance_and_dev_metrics(cli_run):
    page = (cli_run / "report.html").read_text(encoding="utf-8")
    section = page[page.index('id="labelling"'):]
    section = section[: section.index("</section>")]
    run = th.Run(cli_run)
    for r in run.manifest["analysis"]["per_lf"]:
        assert f"<td>{r['lf']}</td>" in section  # one row per LF
    assert "emp_accuracy" in section and "estimated" in section and "majority_vote" in section
    assert section.count("<tr>") >= len(run.manifest["analysis"]["per_lf"]) + len(run.manifest["classes"]) + 2


def test_a_selection_can_filter_and_rank_on_the_label_columns(cli_run, tmp_path):
    out = tmp_path / "sport"
    result = CliRunner().invoke(main, ["select", "--from-run", str(cli_run), "--where",
                                       "label_name == 'sport' and label_confidence > 0.5", "--score",
                                       "label_confidence", "--selector", "topk", "--budget", "5", "--format", "ids",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    ids = (out / "selected" / "ids.txt").read_text().split()
    scores = th.Run(cli_run).scores().to_pylist()
    by_id = {r["id"]: r for r in scores}
    assert len(ids) == 5 and all(by_id[i]["label_name"] == "sport" for i in ids)
    eligible = sorted((r["label_confidence"] for r in scores if r["label_name"] == "sport"
                       and r["label_confidence"] > 0.5), reverse=True)
    assert [by_id[i]["label_confidence"] for i in ids] == eligible[:5]


def test_python_api_with_decorated_lfs_is_deterministic_across_workers(tmp_path):
    rt = sample_path("labeled/rotten_tomatoes.parquet")

    @th.lf
    def praise(text):
        return "fresh" if any(w in text.lower() for w in ("great", "best", "funny", "beautiful")) else None

    @th.lf
    def pan(text):
        return "rotten" if any(w in text.lower() for w in ("dull", "boring", "worst", "mess")) else None

    runs = [th.label(rt, [praise, pan], classes=["fresh", "rotten"], out=tmp_path / f"w{w}", workers=w,
                     model="majority_vote") for w in (1, 2)]
    bytes_ = [(r.path / "scores" / "scores.parquet").read_bytes() for r in runs]
    assert bytes_[0] == bytes_[1]
    assert runs[0].counts["labelled"] > 20 and runs[0].counts["all_accounted_for"]
    assert "praise" in runs[0].summary() and runs[0].manifest["lfs"]["lfs"][0]["name"] == "praise"


def test_class_balance_given_and_from_dev_are_reported_with_their_source(bbc_split, tmp_path):
    pool, dev = bbc_split
    lfs = EXAMPLES / "bbc_news.yaml"
    given = th.label(pool, lfs, out=tmp_path / "g", class_balance=[1, 1, 1, 2, 1], workers=1)
    assert given.manifest["class_balance"]["source"] == "given"
    assert given.manifest["class_balance"]["values"] == pytest.approx([1 / 6] * 3 + [1 / 3, 1 / 6])
    from_dev = th.label(pool, lfs, out=tmp_path / "d", dev=dev, class_balance="dev", workers=1)
    assert from_dev.manifest["class_balance"]["source"] == "dev"
    y = pq.read_table(dev)["label"].to_pylist()
    expected = [y.count(c) / len(y) for c in from_dev.manifest["classes"]]
    assert from_dev.manifest["class_balance"]["values"] == pytest.approx(expected, abs=0.02)  # (may be smoothed)


def test_bad_inputs_fail_clearly_or_are_counted(bbc_split, tmp_path):
    pool, dev = bbc_split
    lfs = EXAMPLES / "bbc_news.yaml"
    bad_dev = tmp_path / "bad_dev.parquet"
    t = pq.read_table(dev)
    pq.write_table(t.set_column(t.column_names.index("label"), "label",
                                pa.array(["weather"] + t["label"].to_pylist()[1:])), bad_dev)
    with pytest.raises(ConfigError, match=r"dev record .*label = 'weather' is not a class"):
        th.label(pool, lfs, out=tmp_path / "x", dev=bad_dev, workers=1)
    with pytest.raises(ConfigError, match="class_balance 'dev' needs a dev set"):
        th.label(pool, lfs, out=tmp_path / "x", class_balance="dev", workers=1)
    with pytest.raises(ConfigError, match="unknown label model"):
        th.label(pool, lfs, out=tmp_path / "x", model="snorkel", workers=1)
    dirty = tmp_path / "dirty.jsonl"
    rows = pq.read_table(pool).slice(0, 20).select(["id", "text"]).to_pylist()
    dirty.write_text("\n".join([json.dumps(r) for r in rows] + ['{"id": "no-text"}', "{not json"]) + "\n")
    result = CliRunner().invoke(main, ["label", "--pool", str(dirty), "--lfs", str(lfs), "--on-error", "skip",
                                       "--workers", "1", "--json", "--out", str(tmp_path / "dirty")])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)["counts"]  # stderr may carry the fit check's warning
    assert counts["input_records"] == 22 and counts["failed"] == 2 and counts["all_accounted_for"]
    result = CliRunner().invoke(main, ["label", "--pool", str(dirty), "--lfs", str(lfs), "--workers", "1",
                                       "--out", str(tmp_path / "strict")])
    assert result.exit_code == 2 and "dirty.jsonl:22" in result.output and "bad_json" in result.output


def test_recipe_label_then_filter_and_select_on_the_label_columns(bbc_split, tmp_path):
    from thresher.recipe import Recipe

    pool, dev = bbc_split
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"pool: {pool}\nout: {tmp_path / 'run'}\nworkers: 1\nsteps:\n"
                      f"  - label: {EXAMPLES / 'bbc_news.yaml'}\n    dev: {dev}\n"
                      "  - filter: \"label_name == 'tech'\"\n"
                      "  - select: topk\n    score: label_confidence\n    budget: 4\n")
    run = Recipe.load(recipe).run(progress=False)
    assert run.manifest["label_metrics"]["dev"]  # the label job's dev metrics survive the selection
    by_id = {r["id"]: r for r in run.scores().to_pylist()}
    assert len(run.selected_ids()) == 4 and {by_id[i]["label_name"] for i in run.selected_ids()} == {"tech"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"pool: {pool}\nsteps:\n  - label: {EXAMPLES / 'bbc_news.yaml'}\n  - score: gopher\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:3: after a label step come only filter steps"):
        Recipe.load(bad)
    # filters act only through a select: filters with no select after them would be silently ignored
    bad.write_text(f"pool: {pool}\nsteps:\n  - label: {EXAMPLES / 'bbc_news.yaml'}\n"
                   "  - filter: \"label_name == 'tech'\"\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:3: after a label step come only filter steps"):
        Recipe.load(bad)
    bad.write_text(f"pool: {pool}\nsteps:\n  - label: {EXAMPLES / 'bbc_news.yaml'}\n    modle: metal\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:3: unknown key\(s\) modle in label step"):
        Recipe.load(bad)


def test_recipe_label_step_uses_the_seed_and_no_report_and_keeps_the_label_config(bbc_split, tmp_path):
    # Regression: the select step ran with seed 0 whatever the recipe said, --no-report still wrote report.html,
    # and the select step's config replaced the label model's settings in the manifest.
    from thresher.recipe import Recipe

    pool, dev = bbc_split
    runs = {}
    for seed in (7, 0, 7):
        recipe = tmp_path / f"r{seed}.yaml"
        recipe.write_text(f"pool: {pool}\nseed: {seed}\nworkers: 1\nsteps:\n"
                          f"  - label: {EXAMPLES / 'bbc_news.yaml'}\n    dev: {dev}\n"
                          "  - filter: \"label_name == 'sport'\"\n  - select: random\n    budget: 20\n")
        out = tmp_path / f"run{len(runs)}"
        runs[len(runs)] = Recipe.load(recipe).run(out=out, progress=False, report=len(runs) != 0)
    seven, zero, seven_again = runs[0], runs[1], runs[2]
    assert seven.selected_ids() == seven_again.selected_ids() != zero.selected_ids()
    assert seven.manifest["seed"] == 7 and zero.manifest["seed"] == 0
    assert seven.manifest["label_config"]["seed"] == 7 and seven.manifest["label_config"]["model"]
    assert seven.manifest["config"]["selector"] == "random"
    assert not (seven.path / "report.html").exists() and (zero.path / "report.html").exists()
    no_select = tmp_path / "label_only.yaml"
    no_select.write_text(f"pool: {pool}\nworkers: 1\nsteps:\n  - label: {EXAMPLES / 'bbc_news.yaml'}\n")
    run = Recipe.load(no_select).run(out=tmp_path / "label_only", progress=False, report=False)
    assert not (run.path / "report.html").exists()


def test_no_report_with_an_end_model_writes_no_report(bbc_split, tmp_path):
    # Regression: the end model's report dict overwrote the report flag.
    pool, _ = bbc_split
    from thresher.jobs.label import run_labeling

    run = run_labeling(th.read(pool), EXAMPLES / "bbc_news.yaml", tmp_path / "r", end_model="hashed", workers=1,
                       report=False)
    assert not (run.path / "report.html").exists() and run.metrics["end_model"]["trained_on"] > 0
    result = CliRunner().invoke(main, ["label", "--pool", str(pool), "--lfs", str(EXAMPLES / "bbc_news.yaml"),
                                       "--end-model", "hashed", "--no-report", "--workers", "1",
                                       "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "cli" / "report.html").exists()


def test_lf_errors_score_columns_dev_fields_and_duplicate_ids_fail_clearly(bbc_split, tmp_path):
    pool, dev = bbc_split
    lf_file = tmp_path / "raises.py"
    lf_file.write_text("import thresher as th\nCLASSES = ['a', 'b']\n\n@th.lf\ndef f(text):\n"
                       "    if 'Chelsea' in text:\n        raise KeyError('boom')\n    return None\n")
    first = next(r["id"] for r in pq.read_table(pool).to_pylist() if "Chelsea" in r["text"])
    result = CliRunner().invoke(main, ["label", "--pool", str(pool), "--lfs", str(lf_file), "--workers", "2",
                                       "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert f"labelling function 'f' failed on record '{first}': KeyError: 'boom'" in result.output
    assert "worker process died" not in result.output
    score = tmp_path / "score.yaml"
    score.write_text("classes: [a, b]\nlfs:\n  - {name: kw, label: a, keywords: [the]}\n"
                     "  - {name: hi, label: a, column: dsir, threshold: 0}\n")
    result = CliRunner().invoke(main, ["label", "--pool", str(pool), "--lfs", str(score), "--workers", "1",
                                       "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "LF 'hi': column 'dsir' is not in the pool" in result.output
    with pytest.raises(ConfigError, match="dev has no field 'nosuch'"):
        th.label(pool, EXAMPLES / "bbc_news.yaml", out=tmp_path / "x", dev=dev, label_field="nosuch", workers=1)
    t = pq.read_table(dev)
    null_dev = tmp_path / "null_dev.parquet"
    pq.write_table(t.set_column(t.column_names.index("label"), "label", pa.array([None] + t["label"].to_pylist()[1:])),
                   null_dev)
    with pytest.raises(ConfigError, match=rf"dev record '{t['id'][0]}' has no value in field 'label'"):
        th.label(pool, EXAMPLES / "bbc_news.yaml", out=tmp_path / "x", dev=null_dev, workers=1)
    dup = tmp_path / "dup.parquet"
    p = pq.read_table(pool)
    pq.write_table(pa.concat_tables([p, p.slice(0, 1)]), dup)
    # the dataset layer's id check (thresher.io.ids) stops it first, naming both rows
    with pytest.raises(InputError, match=rf"duplicate id '{p['id'][0]}': .*dup.parquet row {p.num_rows} repeats "
                                         rf"the id of .*dup.parquet row 0"):
        th.label(dup, EXAMPLES / "bbc_news.yaml", out=tmp_path / "x", workers=1)


def test_the_fit_check_is_in_the_manifest_summary_and_report(cli_run):
    run = th.Run(cli_run)
    check = run.manifest["class_balance"]["fit_check"]
    assert check["misfit"] >= 0 and check["anchored"] == (check["misfit"] > check["misfit_threshold"])
    lo, hi = np.array(check["vote_class_balance_interval"]).T
    assert (lo <= np.array(check["vote_class_balance"])).all() and (np.array(check["vote_class_balance"]) <= hi).all()
    assert "fit check: χ²/cell" in th.Run(cli_run).summary()
    assert "fit check" in (cli_run / "report.html").read_text(encoding="utf-8")


def test_lfs_that_fire_together_anchor_the_model_and_warn(tmp_path, capsys):
    # texts made from votes whose "ham" LFs fire together in bursts (make_bursty): the words are the LFs' keywords
    from thresher.label.synthetic import make_bursty

    data = make_bursty(4_000, seed=1)
    L, y = data.L, data.y
    dense = L.to_dense()
    words = [f"hamword{j}" for j in range(4)] + [f"spamword{j}" for j in range(3)]  # [:-5] is the class
    texts = [" ".join(["filler"] + [words[j] for j in np.flatnonzero(row >= 0)]) for row in dense]
    pq.write_table(pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": texts}), tmp_path / "pool.parquet")
    lfs = ["classes: [ham, spam]", "lfs:"] + [f"  - {{name: lf_{w}, label: {w[:-5]}, keywords: [{w}]}}" for w in words]
    (tmp_path / "lfs.yaml").write_text("\n".join(lfs) + "\n")
    run = th.label(tmp_path / "pool.parquet", tmp_path / "lfs.yaml", out=tmp_path / "run", workers=1)
    check = run.manifest["class_balance"]["fit_check"]
    assert check["anchored"] and check["misfit"] > check["misfit_threshold"]
    assert check["warning"] and "far from the majority vote" in check["warning"]
    assert "far from the majority vote" in capsys.readouterr().err
    assert run.manifest["class_balance"]["values"] == pytest.approx(check["vote_class_balance"], abs=1e-4)
    label = run.scores()["label"].to_numpy()
    mv = th.label(tmp_path / "pool.parquet", tmp_path / "lfs.yaml", out=tmp_path / "mv", model="majority_vote",
                  workers=1).scores()["label"].to_numpy()
    assert (label == y).mean() >= (mv == y).mean() - 0.005
