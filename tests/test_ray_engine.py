"""The Ray engine on a real two-node Ray cluster started on this machine: every job that maps over batches gives
byte-identical outputs to the local engine, and a task whose worker dies is retried without changing anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray  # the test extra installs ray
from ray.cluster_utils import Cluster

import thresher as th
from thresher.demo import sample_path
from thresher.errors import ConfigError

TARGET = str(sample_path("target_news.jsonl"))
BBC = str(sample_path("labeled/bbc_news.parquet"))
LFS = str(Path(__file__).resolve().parents[1] / "examples" / "label" / "bbc_news.yaml")


@pytest.fixture(scope="module")
def cluster():
    """A head node and a worker node, one CPU each: tasks really run in other processes on other raylets."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    ray.shutdown()  # the in-process tests connected this driver to it
    c.shutdown()


def _cli(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "thresher.cli", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def _both(tmp_path: Path, cluster, *args: str, mapped: str | None = "manifest.json") -> tuple[Path, Path]:
    """Run one CLI job locally and on the cluster, into two run directories; ``mapped``: the manifest of the part
    that ran on the engine."""
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    _cli(*args, "--out", str(local), "--workers", "2", "--no-report")
    _cli(*args, "--out", str(on_ray), "--workers", "2", "--no-report", "--engine", "ray", "--ray-address",
         cluster.address)
    if mapped:
        assert json.loads((on_ray / mapped).read_text())["engine"]["engine"] == "ray"
        assert json.loads((local / mapped).read_text())["engine"]["engine"] == "local"
    return local, on_ray


def _same(a: Path, b: Path, *names: str) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_select_is_identical_on_ray(tmp_path, cluster, small_pool):
    local, on_ray = _both(tmp_path, cluster, "select", "--pool", str(small_pool), "--target", TARGET, "--budget",
                          "5%", "--batch-size", "200")
    _same(local, on_ray, "selected/ids.txt", "scores/scores.parquet", "selected/part-00000.parquet")


def test_selection_over_many_score_parts_runs_as_ray_tasks(tmp_path, cluster, small_pool):
    """The select stage's tasks (counts, sketches, candidates, baseline, ids) over 15 parts of a real score table,
    on the cluster and locally: the same chosen and baseline positions and ids."""
    from thresher.engine import LocalEngine
    from thresher.engine.ray import RayEngine
    from thresher.jobs import select_parts as sp

    run = th.select(small_pool, target=TARGET, budget=10, out=tmp_path / "run", workers=1, report=False)
    path = tmp_path / "scores.parquet"
    pq.write_table(run.scores(), path, row_group_size=100)
    parts = sp.score_parts(str(path), 100)
    rule = sp.checked_rule(pq.read_schema(path), sp.Rule("gumbel", None, None, "dsir", "n_words", None, 20, "3%", 5,
                                                          False))
    outcomes = []
    for engine in (LocalEngine(2), RayEngine(2, cluster.address)):
        with engine:
            counts = sp.count_parts(parts, rule, engine)
            budget = sp.resolve_budget(rule.budget, counts.n)
            chosen = sp.choose(parts, rule, engine, counts, budget)
            baseline = sp.draw_baseline(parts, rule, engine, counts, budget, len(chosen))
            found = sp.resolve(parts, rule, engine, chosen, baseline)
            outcomes.append((chosen.tolist(), baseline.tolist(), found.ids.to_pylist(), counts.filtered))
    assert len(parts) == 15 and len(outcomes[0][0]) == 45
    assert outcomes[0] == outcomes[1]


def test_scoring_pipeline_is_identical_on_ray(tmp_path, cluster, small_pool):
    local, on_ray = _both(tmp_path, cluster, "score", "--pool", str(small_pool), "--target", TARGET, "--scorers",
                          "gopher,dsir,tokens", "--batch-size", "300")
    _same(local, on_ray, "scores/scores.parquet")


def test_labelling_is_identical_on_ray(tmp_path, cluster):
    local, on_ray = _both(tmp_path, cluster, "label", "--pool", BBC, "--lfs", LFS, "--batch-size", "64")
    _same(local, on_ray, "scores/scores.parquet", "labels/matrix.npz")


def test_embeddings_are_identical_on_ray(tmp_path, cluster, small_pool):
    local, on_ray = _both(tmp_path, cluster, "embed", "--pool", str(small_pool), "--batch-size", "500")
    a, b = th.Run(local).embeddings(), th.Run(on_ray).embeddings()
    assert a[0] == b[0] and (a[1] == b[1]).all()


def test_embedding_jobs_run_their_kmeans_passes_on_ray(tmp_path, cluster, small_pool):
    """k-means for --selector clusters and for SemDeDup: every Lloyd pass is a map over the embed run's shards, on
    the cluster; SemDeDup's shuffle by cluster and its component rounds too."""
    emb = tmp_path / "emb"
    _cli("embed", "--pool", str(small_pool), "--batch-size", "100", "--out", str(emb), "--no-report")
    local, on_ray = _both(tmp_path, cluster, "select", "--pool", str(small_pool), "--target", TARGET, "--budget",
                          "60", "--selector", "clusters", "--embeddings", str(emb), "--selector-param",
                          "n_clusters=6", "--score", "dsir")
    _same(local, on_ray, "selected/ids.txt", "scores/scores.parquet")
    local, on_ray = _both(tmp_path / "sem", cluster, "dedup", "--pool", str(small_pool), "--method", "semantic",
                          "--embeddings", str(emb), "--similarity", "0.9")  # SemDeDup: k-means, shuffle, rounds
    _same(local, on_ray, "selected/ids.txt", "scores/scores.parquet")
    assert json.loads((on_ray / "manifest.json").read_text())["shuffle"]["semantic"]["component_rounds"] >= 3


def test_mix_is_identical_on_ray(tmp_path, cluster, small_pool):
    """thresher mix --method regmix: token counts per group and every n-gram proxy run are Ray tasks."""
    args = ("mix", "--pool", str(small_pool), "--group-field", "domain", "--method", "regmix", "--target", TARGET,
            "--runs", "4", "--proxy-tokens", "20000 tokens", "--samples", "2000", "--top-k", "20", "--folds", "2",
            "--workers", "2", "--quiet")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    _cli(*args, "--out", str(local))
    _cli(*args, "--out", str(on_ray), "--engine", "ray", "--ray-address", cluster.address)
    assert json.loads((on_ray / "manifest.json").read_text())["engine"]["engine"] == "ray"
    _same(local, on_ray, "mixture.yaml", "runs.parquet")


def test_a_task_whose_worker_dies_is_retried_and_the_result_is_unchanged(tmp_path, cluster):
    marker_dir = tmp_path / "markers"
    marker_dir.mkdir()

    def square_once_dying(i: int) -> int:  # the first attempt at item 3 kills its worker process outright
        marker = marker_dir / str(i)
        if i == 3 and not marker.exists():
            marker.touch()
            os._exit(1)
        return i * i

    with th.engine("ray", address=cluster.address):
        from thresher.engine import make_engine

        with make_engine(2) as engine:
            assert list(engine.map(square_once_dying, ((i,) for i in range(8)))) == [i * i for i in range(8)]
    assert (marker_dir / "3").exists()  # it did die once


def test_python_jobs_run_on_the_engine_in_a_with_block(tmp_path, cluster, small_pool):
    with th.engine("ray", address=cluster.address):
        run = th.select(small_pool, target=TARGET, budget=50, out=tmp_path / "r", workers=2, report=False)
    assert run.manifest["engine"]["engine"] == "ray" and len(run.selected_ids()) == 50
    local = th.select(small_pool, target=TARGET, budget=50, out=tmp_path / "l", workers=2, report=False)
    assert local.manifest["engine"]["engine"] == "local" and local.selected_ids() == run.selected_ids()


def test_engine_choices_are_checked():
    with pytest.raises(ConfigError, match="unknown engine"), th.engine("spark"):
        pass
    with pytest.raises(ConfigError, match="needs --engine ray"), th.engine("local", address="auto"):
        pass


def test_recipe_is_identical_on_ray(tmp_path, cluster, small_pool):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"pool: {{path: {small_pool}, batch_size: 300}}\ntarget: {TARGET}\nseed: 3\nsteps:\n"
                      "  - score: gopher\n  - filter: gopher_pass\n  - score: dsir\n"
                      "  - select: topk\n    score: dsir\n    budget: 40\n")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    _cli("run", str(recipe), "--out", str(local), "--workers", "2", "--no-report")
    _cli("run", str(recipe), "--out", str(on_ray), "--workers", "2", "--no-report", "--engine", "ray",
         "--ray-address", cluster.address)
    _same(local, on_ray, "scores/scores.parquet", "selected/ids.txt")


def test_evaluation_is_identical_on_ray(tmp_path, cluster, small_pool):
    local, on_ray = _both(tmp_path, cluster, "evaluate", "--pool", str(small_pool), "--target", TARGET,
                          "--methods", "dsir,random", "--budgets", "5%", "--seeds", "2", "--metrics", "kl",
                          "--label-column", "domain", "--positive", "news", "--batch-size", "300",
                          mapped="scoring/manifest.json")
    _same(local, on_ray, "results.csv", "selections.parquet")


def test_dedup_is_identical_on_ray(tmp_path, cluster, small_pool):
    local, on_ray = _both(tmp_path, cluster, "dedup", "--pool", str(small_pool), "--batch-size", "300")
    _same(local, on_ray, "selected/ids.txt", "scores/scores.parquet")


def test_audit_with_training_dynamics_is_identical_on_ray(tmp_path, cluster):
    """Cross-validation folds, kNN outlier blocks, MinHash duplicates and the seeded SGD runs all on Ray tasks."""
    local, on_ray = _both(tmp_path, cluster, "audit", "--pool", BBC, "--dynamics", "el2n,aum", "--dynamics-param",
                          "epochs=3", "--dynamics-param", "seeds=2")
    _same(local, on_ray, "scores/scores.parquet")


def test_decontamination_is_identical_on_ray(tmp_path, cluster, small_pool):
    local, on_ray = _both(tmp_path, cluster, "dedup", "--pool", str(small_pool), "--against", TARGET,
                          "--batch-size", "300")
    _same(local, on_ray, "selected/ids.txt", "scores/scores.parquet")
    assert json.loads((local / "manifest.json").read_text())["counts"]["filtered"]["reference_duplicate"] > 0


def test_a_killed_driver_resumes_on_the_cluster_with_identical_outputs(tmp_path, cluster, small_pool):
    import signal
    import time

    args = ["select", "--pool", str(small_pool), "--target", TARGET, "--budget", "5%", "--batch-size", "50",
            "--workers", "2", "--no-report", "--quiet"]
    ray_args = ["--engine", "ray", "--ray-address", cluster.address]
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "thresher.cli", *args, *ray_args, "--out", str(out)],
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(out.glob("cache/ngrams-*/shard-*.npz"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    done = len(list(out.glob("cache/ngrams-*/shard-*.npz")))
    assert done >= 3 and not (out / "manifest.json").exists()  # killed after some of its 30 shards, unfinished
    _cli(*args, *ray_args, "--out", str(out))
    _cli(*args, "--out", str(tmp_path / "local"))
    _same(out, tmp_path / "local", "selected/ids.txt", "scores/scores.parquet")


def test_select_reading_parquet_pieces_in_tasks_is_identical_on_ray(tmp_path, cluster):
    """Ray tasks read their own row groups of a multi-row-group Parquet file (several pieces): the local bytes."""
    pool = tmp_path / "pool.parquet"
    pq.write_table(pq.read_table(sample_path("pool.parquet")).slice(0, 1500), pool, row_group_size=100)
    local, on_ray = _both(tmp_path, cluster, "select", "--pool", str(pool), "--target", TARGET, "--budget", "5%",
                          "--batch-size", "25")
    _same(local, on_ray, "selected/ids.txt", "scores/scores.parquet", "selected/part-00000.parquet")
    shards = [sorted(p.name for p in next((run / "cache").iterdir()).glob("shard-*.npz")) for run in (local, on_ray)]
    assert shards[0] == shards[1] and "shard-000003-0000.npz" in shards[0]  # four pieces of 400 rows


class _KillsOnce:
    """An engine that runs another's tasks, except that the first attempt at one item of each named task function
    kills its worker process right after the task's work (its spill files written): the retry must redo it
    idempotently. A marker file per function tells a retry from the first attempt."""

    def __init__(self, engine, names: tuple[str, ...], marker_dir: Path, item: int = 1):
        self.engine, self.names, self.marker_dir, self.item = engine, names, marker_dir, item
        self.workers = engine.workers

    def map(self, fn, items):
        if fn.__name__ not in self.names:
            return self.engine.map(fn, items)
        marker, item = self.marker_dir / fn.__name__, self.item

        def dies_once(k, *args):
            out = fn(*args)
            if k == item and not marker.exists():
                marker.touch()
                os._exit(1)
            return out

        return self.engine.map(dies_once, ((k, *args) for k, args in enumerate(items)))


def test_a_worker_killed_during_the_dedup_shuffle_changes_nothing(tmp_path, cluster):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from thresher.dedup import MinHashConfig, near_duplicates
    from thresher.engine import LocalEngine, make_engine

    table = pq.read_table(sample_path("pool.parquet"), columns=["id", "text"]).slice(0, 3000)
    table = pa.concat_tables([table, table.slice(0, 300)])  # 300 copies: real clusters
    config = MinHashConfig(threshold=0.7, keep="longest")
    with LocalEngine(2) as engine:
        local = near_duplicates(table.to_batches(max_chunksize=1000), config, engine=engine, partitions=3)
    stages = ("spill_sketch", "partition_pairs", "verify_pairs", "large_star", "small_star")
    with th.engine("ray", address=cluster.address), make_engine(2) as engine:
        on_ray = near_duplicates(table.to_batches(max_chunksize=1000), config, partitions=3, spill_dir=tmp_path,
                                 engine=_KillsOnce(engine, stages, tmp_path), group_records=1000)  # 4 sketch tasks
    assert all((tmp_path / name).exists() for name in stages)  # each stage lost a worker once
    assert local.stats["dropped"] >= 300
    assert on_ray.to_table().equals(local.to_table()) and on_ray.stats == local.stats

