"""``thresher score``: rule-based side-car scores for a whole pool, from the CLI and Python."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from thresher.errors import ConfigError
from thresher.io.dataset import read
from thresher.pipeline import run_scoring
from thresher.scorers.gopher import GopherScorer


def test_scores_every_record_with_every_family(tmp_path, small_pool):
    run = run_scoring(read(small_pool, batch_size=200), ["gopher", "c4", "fineweb"], tmp_path / "a", workers=1)
    scores = run.scores()
    pool_ids = pq.read_table(small_pool, columns=["id"])["id"].to_pylist()
    assert scores["id"].to_pylist() == pool_ids
    assert {"gopher_pass", "gopher_reason", "c4_pass", "fineweb_pass", "gopher_dup_5gram_char_frac"} <= set(
        scores.column_names)
    rules = run.metrics["rules"]["gopher"]
    assert rules["passed"] + sum(rules["failed_by_rule"].values()) == len(pool_ids)
    assert rules["passed"] == sum(scores["gopher_pass"].to_pylist())
    # the side-car columns are what the scorer computes for those texts
    text = pq.read_table(small_pool, columns=["text"])["text"].combine_chunks().slice(0, 50)
    assert list(GopherScorer().score(text)["gopher_reason"]) == scores["gopher_reason"].to_pylist()[:50]
    assert "gopher" in run.summary() and "pass" in run.summary()


def test_same_scores_with_two_workers(tmp_path, small_pool):
    one = run_scoring(read(small_pool, batch_size=300), ["gopher", "fineweb"], tmp_path / "one", workers=1)
    two = run_scoring(read(small_pool, batch_size=300), ["gopher", "fineweb"], tmp_path / "two", workers=2)
    assert one.scores().equals(two.scores())


def test_unknown_scorer_is_a_clear_error(tmp_path, small_pool):
    with pytest.raises(ConfigError, match="unknown scorer.*perplexity"):
        run_scoring(read(small_pool), ["gopher", "perplexity"], tmp_path / "x")


def test_cli_score(tmp_path, small_pool):
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "score", "--pool", str(small_pool), "--scorers",
                           "c4", "--out", str(tmp_path / "c"), "--json", "--workers", "1"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["counts"]["scored"] == 1500 and set(out["metrics"]["rules"]) == {"c4"}
