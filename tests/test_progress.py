"""Long jobs report progress where people run them: one-line progress in logs (stderr not a terminal), the same
``progress=True`` default in Python and the CLI, and per-stage results from ``thresher run``."""

from __future__ import annotations

import inspect
import io
import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import thresher as th
from thresher.cli import main
from thresher.demo import sample_path
from thresher.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^stage (\S+(?: \(\w+\))?): ([\d,]+)/([\d,]+) records \((\d+)%\), \d+\.\d s", re.M)


def test_log_lines_count_and_percent_when_not_a_terminal():
    stream = io.StringIO()
    with Progress("featurize", total=93_695, stream=stream, interval=0) as bar:
        bar.update(40_000)
        bar.update(53_695)
    lines = stream.getvalue().splitlines()
    assert LINE.match(lines[0]).groups() == ("featurize", "40,000", "93,695", "43")
    assert LINE.match(lines[1]).groups()[1:] == ("93,695", "93,695", "100")
    assert lines[-1].endswith("(done)") and len(lines) == 3


def test_log_lines_wait_for_the_interval_and_short_stages_stay_quiet():
    stream = io.StringIO()
    with Progress("score", stream=stream, interval=3600) as bar:
        for _ in range(50):
            bar.update(10)
    assert stream.getvalue() == ""
    assert bar.line().startswith("stage score: 500 records, ")  # unknown total: no percentage
    off = io.StringIO()
    with Progress("score", stream=off, interval=0, enabled=False) as bar:
        bar.update(10)
    assert off.getvalue() == "" and bar.n == 0


def test_python_and_cli_default_to_progress():
    from thresher.api import label
    from thresher.jobs.label import run_labeling
    from thresher.jobs.select import reselect, run_selection
    from thresher.pipeline import Pipeline

    for fn in (th.select, th.score, th.embed, th.evaluate, label, Pipeline.run, run_labeling, run_selection,
               reselect):
        assert inspect.signature(fn).parameters["progress"].default is True, fn.__qualname__


def test_a_python_job_logs_its_stages_to_stderr(tmp_path):
    """th.select with default arguments, stderr a pipe (as in CI): the featurize stage logs its count."""
    code = ("import thresher as th\nfrom thresher.demo import sample_path\n"
            "th.select(th.read(sample_path('pool.parquet')), target=sample_path('target_news.jsonl'), "
            "budget='1%', out='run', workers=2, report=False)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "THRESHER_PROGRESS_INTERVAL": "0"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    stages = LINE.findall(proc.stderr)
    assert stages and {s[0] for s in stages} == {"featurize"}
    assert stages[-1][1:] == ("7,450", "7,450", "100")
    assert proc.stdout == ""  # progress never mixes into stdout


def test_run_prints_what_each_stage_did(tmp_path):
    pool = sample_path("pool.parquet")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"pool: {pool}\nout: {tmp_path / 'run'}\nsteps:\n  - score: gopher\n"
                      "  - filter: gopher_pass\n  - select: topk\n    score: gopher_words\n    budget: 100\n")
    result = CliRunner().invoke(main, ["run", str(recipe), "--workers", "2", "--no-report"])
    assert result.exit_code == 0, result.output
    stages = result.output.split("stages:\n", 1)[1]
    assert re.search(r"^  filter: gopher_pass: dropped [\d,]+$", stages, re.M)
    assert re.search(r"^  gopher   pass +\d+\.\d%   fails: too_few_words [\d,]+", stages, re.M)
    assert "selector topk | budget 100" in result.output
