"""The targeted selection job end to end on the bundled real-text sample, from Python and from the CLI."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.demo import sample_path
from thresher.errors import ConfigError, ThresherError
from thresher.io.errors import ErrorLog


@pytest.fixture(scope="module")
def news_run(tmp_path_factory, sample_pool, news_target):
    out = tmp_path_factory.mktemp("runs") / "news"
    return th.select(sample_pool, target=news_target, budget="5%", seed=0, out=out, workers=1)


def test_selection_finds_the_target_domain_far_above_random(news_run, sample_pool):
    comp = {r["group"]: r for r in news_run.metrics["composition"]}
    assert comp["news"]["selected_share"] > 0.8
    assert comp["news"]["random_share"] < 0.2
    assert news_run.metrics["kl_reduction"] > 0.05
    assert news_run.metrics["kl_target_selected"] < news_run.metrics["kl_target_random"]


def test_run_directory_layout_and_accounting(news_run, sample_pool):
    n = pq.ParquetFile(sample_pool).metadata.num_rows
    m = news_run.manifest
    assert m["counts"]["input_records"] == n and m["counts"]["all_accounted_for"]
    assert m["counts"]["selected"] == round(0.05 * n) == len(news_run.selected_ids())
    assert m["inputs"]["pool"]["files"][0]["bytes"] > 0 and len(m["inputs"]["pool"]["files"][0]["fingerprint"]) == 32
    assert set(m["timings"]) >= {"featurize_pool", "score", "select", "write"}
    assert m["config"]["seed"] == 0 and m["versions"]["pyarrow"]
    scores = news_run.scores()
    assert scores.num_rows == n and {"id", "dsir", "dsir_logw", "n_words"} <= set(scores.column_names)
    # selected records keep every original field, and are exactly the selected ids
    records = news_run.selected_records()
    assert set(records.column_names) == {"id", "text", "domain", "source"}
    assert sorted(records["id"].to_pylist()) == sorted(news_run.selected_ids())


def test_gumbel_order_follows_scores(news_run):
    scores = news_run.scores()
    by_id = dict(zip(scores["id"].to_pylist(), scores["dsir"].to_pylist()))
    chosen = np.array([by_id[i] for i in news_run.selected_ids()])
    rest = np.array([v for k, v in by_id.items() if k not in set(news_run.selected_ids())])
    assert np.median(chosen) > np.percentile(rest, 95)


def test_identical_across_batch_sizes_and_workers(tmp_path, small_pool, news_target):
    runs = []
    for k, (batch, workers) in enumerate([(4096, 1), (137, 1), (300, 2)]):
        pool = th.read(small_pool, batch_size=batch)
        runs.append(th.select(pool, target=news_target, budget=40, seed=3, out=tmp_path / f"r{k}", workers=workers))
    ids = [(r.path / "selected" / "ids.txt").read_bytes() for r in runs]
    assert ids[0] == ids[1] == ids[2]
    scores = [r.scores() for r in runs]
    for col in scores[0].column_names:
        assert scores[0][col].equals(scores[1][col]), col
        assert scores[0][col].equals(scores[2][col]), col


def test_reselect_reuses_scores_without_featurizing(tmp_path, small_pool, news_target):
    first = th.select(small_pool, target=news_target, budget=30, seed=0, out=tmp_path / "a", workers=1)
    store = first.manifest["feature_store"]
    shard_times = sorted(p.stat().st_mtime_ns for p in __import__("pathlib").Path(store).glob("shard-*.npz"))
    again = th.reselect(first, out=tmp_path / "b", budget="60", seed=5, selector="topk", output_format="jsonl.gz")
    assert "featurize_pool" not in again.manifest["timings"] and "score" not in again.manifest["timings"]
    assert shard_times == sorted(p.stat().st_mtime_ns for p in __import__("pathlib").Path(store).glob("shard-*.npz"))
    assert again.scores().equals(first.scores())
    fresh = th.select(small_pool, target=news_target, budget=60, seed=5, selector="topk", out=tmp_path / "c",
                      workers=1)
    assert again.selected_ids() == fresh.selected_ids()
    assert again.metrics["kl_reduction"] == pytest.approx(fresh.metrics["kl_reduction"])
    with gzip.open(tmp_path / "b" / "selected" / "records.jsonl.gz", "rt") as f:
        assert [json.loads(line)["id"] for line in f] == sorted(again.selected_ids(), key=fresh_order(fresh))
    with pytest.raises(ConfigError, match="change the scores"):
        th.reselect(first, out=tmp_path / "d", method="random")


def fresh_order(run):
    order = {i: k for k, i in enumerate(run.scores()["id"].to_pylist())}
    return order.__getitem__


def test_token_budget_and_min_tokens(tmp_path, small_pool, news_target):
    run = th.select(small_pool, target=news_target, budget="20k tokens", min_tokens=50, out=tmp_path / "t",
                    selector="topk", workers=1)
    scores = run.scores()
    words = dict(zip(scores["id"].to_pylist(), scores["n_words"].to_pylist()))
    tokens = dict(zip(scores["id"].to_pylist(), scores["n_tokens"].to_pylist()))
    chosen = run.selected_ids()
    assert 19_000 < sum(words[i] for i in chosen) <= 20_000 and min(tokens[i] for i in chosen) >= 50
    c = run.counts
    assert c["filtered"]["too_short"] == sum(1 for v in tokens.values() if v < 50) > 0
    assert c["selected"] + c["not_selected"] + c["filtered"]["too_short"] == c["input_records"]


def test_random_method_and_ids_format(tmp_path, small_pool):
    run = th.select(small_pool, method="random", budget=25, out=tmp_path / "rnd", format="ids")
    assert len(run.selected_ids()) == 25 and "kl_reduction" not in run.metrics
    assert run.manifest["outputs"]["records"] == []
    with pytest.raises(ConfigError, match="needs a target"):
        th.select(small_pool, method="dsir", out=tmp_path / "x")
    with pytest.raises(ConfigError, match="cannot rank"):
        th.select(small_pool, method="random", selector="topk", out=tmp_path / "y")


def test_length_corrections_keep_short_records_from_winning_by_collision(tmp_path, small_pool, news_target):
    """Per-n-gram mean scores let very short records win on a few lucky buckets; shrinkage and the target-derived
    minimum length both stop that."""
    def short_share(**kw):
        run = th.select(small_pool, target=news_target, budget=50, selector="topk",
                        out=tmp_path / "_".join(f"{k}{v}" for k, v in kw.items()),
                        workers=1, **kw)
        words = dict(zip(run.scores()["id"].to_pylist(), run.scores()["n_words"].to_pylist()))
        return np.mean([words[i] < 15 for i in run.selected_ids()]), run

    mean, _ = short_share(length_norm="mean", shrink=0, min_tokens=0)
    shrunk, _ = short_share(length_norm="ref", shrink=20, min_tokens=0)
    auto, run = short_share(length_norm="mean", shrink=0, min_tokens="auto", smoothing=1.0)
    assert mean > 0.1 and shrunk < mean / 4 and auto == 0
    target_tokens = np.load(run.path / "fit" / "target_tokens.npy")
    assert run.manifest["selection"]["min_tokens"] == int(np.percentile(target_tokens, 5) // 2) > 0
    assert run.counts["filtered"]["too_short"] > 0


def test_cli_select_and_from_run(tmp_path, small_pool, news_target):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "thresher.cli", "select", "--pool", str(small_pool), "--target", str(news_target),
           "--budget", "2%", "--out", str(out), "--format", "jsonl", "--workers", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "KL reduction" in proc.stdout and "news" in proc.stdout
    lines = (out / "selected" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 30 and set(json.loads(lines[0])) == {"id", "text", "domain", "source"}
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--from-run", str(out), "--budget", "5",
                           "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["counts"]["selected"] == 5
    assert len((out / "selected" / "ids.txt").read_text().splitlines()) == 5


def test_cli_help_has_examples_and_demo_runs(tmp_path):
    helps = subprocess.run([sys.executable, "-m", "thresher.cli", "select", "--help"], capture_output=True,
                           text=True)
    assert "Examples:" in helps.stdout and "--from-run" in helps.stdout
    demo = subprocess.run([sys.executable, "-m", "thresher.cli", "demo", "--out", str(tmp_path / "demo"),
                           "--workers", "1"], capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr
    assert "share of 'news' records: selected" in demo.stdout
    assert (tmp_path / "demo" / "manifest.json").is_file()


def test_reselect_refuses_a_changed_pool_and_survives_a_deleted_cache(tmp_path, sample_records, news_target):
    import shutil

    import pyarrow as pa

    pool = tmp_path / "pool.parquet"
    pq.write_table(pa.Table.from_pylist(sample_records), pool)
    run = th.select(pool, target=news_target, budget=5, out=tmp_path / "run", workers=1, min_tokens=0)
    shutil.rmtree(run.manifest["feature_store"])
    again = th.reselect(run, out=tmp_path / "again", budget=7)
    assert len(again.selected_ids()) == 7 and "kl_reduction" not in again.metrics
    pq.write_table(pa.Table.from_pylist(sample_records[:-1]), pool)
    with pytest.raises(ConfigError, match="pool changed"):
        th.reselect(run, out=tmp_path / "third", budget=7)
    assert len(th.reselect(run, out=tmp_path / "ids", budget=7, output_format="ids").selected_ids()) == 7


def test_a_dead_worker_is_a_clear_error():
    import os

    from thresher.engine.local import LocalEngine
    from thresher.errors import ThresherError

    with LocalEngine(2) as engine, pytest.raises(ThresherError, match="a worker process died"):
        list(engine.map(os._exit, [(3,), (3,)]))


def test_selected_records_are_picked_by_position_and_checked_against_their_ids(tmp_path):
    """The write stage takes the selected rows by position (one pass, no per-chunk id lookup) and refuses rows whose
    ids are not the selected ones."""
    import pyarrow as pa

    from thresher.io.dataset import read
    from thresher.io.writers import write_selection

    pool = read(sample_path("pool.parquet"), batch_size=700)
    ids = pa.concat_arrays([b.column("id") for b in pool.iter_batches(ErrorLog("raise"))])
    rows = np.array([4999, 3, 1400, 701, 700, 0])
    written = write_selection(pool, ids.take(pa.array(rows)), tmp_path / "ok", "jsonl", rows)
    got = [json.loads(line)["id"] for line in (tmp_path / "ok" / "selected" / "records.jsonl").open()]
    assert written["rows"] == 6 and got == ids.take(pa.array(np.sort(rows))).to_pylist()  # input order
    with pytest.raises(ThresherError, match="changed between scoring and writing"):
        write_selection(pool, ids.take(pa.array(rows)), tmp_path / "bad", "parquet", rows + 1)
