"""report.html without a browser: sections present for each run kind, hostile text escaped, deterministic bytes,
the jobs' hook (on by default, off with --no-report, never fatal) and `thresher report`."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from conftest import XSS_TEXT

import thresher as th
from thresher.cli import main
from thresher.report.html import write_report


class Page(HTMLParser):
    """The parts of a page the tests look at: tags seen, section ids, text, table rows, badges."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: Counter = Counter()
        self.sections: list[str] = []
        self.badges: Counter = Counter()
        self.text_parts: list[str] = []
        self.rows_by_table: list[int] = []
        self.attrs_seen: list[tuple[str, str | None]] = []
        self.feed(text)
        self.text = "".join(self.text_parts)

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        self.attrs_seen += attrs
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "table":
            self.rows_by_table.append(0)
        if tag == "tr" and self.rows_by_table:
            self.rows_by_table[-1] += 1
        if tag == "span" and "badge" in (a.get("class") or ""):
            self.badges[a["class"].split()[1]] += 1

    def handle_data(self, data):
        self.text_parts.append(data)


def test_select_report_has_every_section_and_escapes_hostile_text(report_select_run):
    path = write_report(report_select_run)
    raw = path.read_text(encoding="utf-8")
    page = Page(raw)
    assert page.sections == ["counts", "metrics", "scores", "composition", "examples", "timings"]
    assert page.tags["svg"] >= 3  # dsir, dsir_logw, lengths... and the composition chart
    assert page.tags["script"] == 0 and page.tags["img"] == 0 and page.tags["link"] == 0
    assert not any(k.startswith("on") for k, _ in page.attrs_seen)  # no event handler attribute got in
    assert "<script>alert(1)</script>" in page.text  # shown as text...
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw  # ...because it was escaped
    assert "hostile-000" in page.text
    # nothing to fetch: no external references of any kind (namespace URIs of the SVGs are not fetched)
    assert not [v for k, v in page.attrs_seen if k in ("src", "href", "xlink:href") and not (v or "").startswith("#")]
    assert "url(http" not in raw and "@import" not in raw
    # 20 records in ten deciles of two: every record is shown once as an example
    ids = th.Run(report_select_run).scores()["id"].to_pylist()
    assert len(ids) == 20 and all(i in page.text for i in ids)
    assert "every input record is accounted for" in page.text
    assert "cut: lowest selected" in raw  # top-k marks its cut on the score histogram


def test_report_is_byte_identical_when_written_again(report_select_run, tmp_path):
    first = write_report(report_select_run, tmp_path / "a.html").read_bytes()
    second = write_report(report_select_run, tmp_path / "b.html").read_bytes()
    assert first == second
    assert len(first) < 1_000_000


def test_excerpts_are_capped(report_select_run):
    page = Page(write_report(report_select_run).read_text(encoding="utf-8"))
    assert XSS_TEXT[:40] in page.text
    # The hostile text is 160 characters: shown whole; long texts end in an ellipsis within 300 characters.
    assert "\u2026" in page.text


def test_evaluate_report_tables_badges_and_curves(report_evaluate_dir):
    page = Page(write_report(report_evaluate_dir).read_text(encoding="utf-8"))
    assert page.sections == ["counts", "comparison", "curves"]
    rows = list(csv.DictReader((report_evaluate_dir / "results.csv").open()))
    verdicts = Counter(r["verdict"] for r in rows)
    assert page.badges == verdicts  # one badge per cell, coloured by its verdict
    panels = {(r["target"], r["metric"]) for r in rows}
    assert page.tags["svg"] == len(panels)
    assert sum(1 for n in page.rows_by_table if n == 1 + 3) == len(panels)  # header + 3 methods per table
    for method in ("dsir", "classifier"):
        mine = Counter(r["verdict"] for r in rows if r["method"] == method)
        sentence = (f"{method} beats random on {mine['better']} of {sum(mine.values())} comparisons; "
                    f"{mine['inconclusive']} inconclusive; {mine['worse']} worse")
        assert sentence in page.text
    assert "95% intervals" in page.text


def test_score_and_dedup_reports(tmp_path, small_pool, news_target):
    scored = th.score(small_pool, ["gopher", "classifier"], target=news_target, out=tmp_path / "s",
                      pool_sample=300, workers=1)
    page = Page((scored.path / "report.html").read_text(encoding="utf-8"))
    assert {"counts", "metrics", "scores", "examples"} <= set(page.sections)
    assert 4 <= page.tags["svg"] <= 12  # capped, the rest listed as not plotted
    assert "classifier_logit" in page.text and "Rule families" in page.text
    assert "held-out" in page.text
    kept = th.deduplicate(small_pool, out=tmp_path / "d")
    page = Page((kept.path / "report.html").read_text(encoding="utf-8"))
    assert "dedup" in page.sections and "counts" in page.sections


def test_a_failing_report_warns_and_keeps_the_run(tmp_path, small_pool, capsys):
    out = tmp_path / "d"
    (out / "report.html").mkdir(parents=True)  # a directory where the page should go: writing it must fail
    run = th.deduplicate(small_pool, out=out)
    assert run.counts["all_accounted_for"] and (out / "selected" / "ids.txt").is_file()
    err = capsys.readouterr().err
    assert "warning: could not write" in err and "thresher report" in err


def test_no_report_flag_and_report_command(tmp_path, small_pool):
    out = tmp_path / "d"
    result = CliRunner().invoke(main, ["dedup", "--pool", str(small_pool), "--out", str(out), "--no-report",
                                       "--quiet", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").is_file() and not (out / "report.html").exists()
    result = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").is_file() and result.output.strip().endswith("r.html")
    assert th.Run(out).report() == out / "report.html"
    result = CliRunner().invoke(main, ["report", str(tmp_path)])  # not a run directory
    assert result.exit_code == 2 and "no manifest.json" in result.output


@pytest.mark.parametrize("module", ["thresher", "thresher.run", "thresher.report.html"])
def test_report_does_not_load_matplotlib_until_it_draws(module):
    code = f"import sys, {module}; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
