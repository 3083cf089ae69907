"""Shared fixtures: the bundled real-text sample (the package's own data, never ../shared)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from thresher.demo import sample_path


@pytest.fixture(scope="session")
def sample_pool() -> Path:
    return sample_path("pool.parquet")


@pytest.fixture(scope="session")
def news_target() -> Path:
    return sample_path("target_news.jsonl")


@pytest.fixture(scope="session")
def small_pool(tmp_path_factory) -> Path:
    """The first 1,500 records of the bundled pool: big enough to be real, small enough to run often."""
    path = tmp_path_factory.mktemp("small") / "pool.parquet"
    pq.write_table(pq.read_table(sample_path("pool.parquet")).slice(0, 1500), path, row_group_size=400)
    return path


@pytest.fixture
def run_recipe(tmp_path):
    """``run_recipe(body, name)``: write a recipe into ``tmp_path`` and run it as users do (``thresher run``, one
    worker, from that folder); the finished process."""

    def run(body: str, name: str = "recipe.yaml") -> subprocess.CompletedProcess:
        path = tmp_path / name
        path.write_text(body)
        return subprocess.run([sys.executable, "-m", "thresher.cli", "run", str(path), "--workers", "1", "--quiet"],
                              capture_output=True, text=True, cwd=tmp_path)

    return run


@pytest.fixture(scope="session")
def sample_records(sample_pool) -> list[dict]:
    return pq.read_table(sample_pool).slice(0, 60).to_pylist()


#: A record whose text would run script if the report did not escape it.
XSS_TEXT = ('Breaking: <script>alert(1)</script> and <img src=x onerror="window.__xss=1"> '
            "the council voted on the budget for the new harbour and the school district on Tuesday evening.")


@pytest.fixture(scope="session")
def report_select_run(tmp_path_factory, news_target) -> Path:
    """A top-k selection over 19 real records plus one hostile one: small enough that the report shows every
    record as an example (ten deciles of two, up to two examples of each kind), so the hostile text is on the page."""
    import pyarrow as pa

    from thresher.io.dataset import Dataset
    from thresher.jobs.select import SelectConfig, run_selection

    root = tmp_path_factory.mktemp("report-select")
    table = pq.read_table(sample_path("pool.parquet"), columns=["id", "text", "domain"]).slice(0, 19)
    hostile = pa.table({"id": ["hostile-000"], "text": [XSS_TEXT], "domain": ["news"]}).cast(table.schema)
    pq.write_table(pa.concat_tables([table, hostile]), root / "pool.parquet")
    run_selection(Dataset([str(root / "pool.parquet")]), Dataset([str(news_target)]), root / "run",
                  SelectConfig(selector="topk", budget="6", min_tokens=0, workers=1), progress=False)
    return root / "run"


@pytest.fixture(scope="session")
def report_evaluate_dir(tmp_path_factory) -> Path:
    """An evaluate-style directory for rendering tests only: the numbers are a hand-written table in the layout
    `thresher evaluate` writes (manifest.json + results.csv), not results of any evaluation."""
    import csv
    import json

    root = tmp_path_factory.mktemp("report-eval") / "eval"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({
        "job": "evaluate", "command": ["thresher", "evaluate", "--pool", "pool.parquet"], "created_unix": 1700000000,
        "inputs": {"pool": {"paths": ["pool.parquet"]}, "target": {"paths": ["target_news.jsonl"]}},
        "counts": {"input_records": 7450}}))
    columns = ["target", "method", "budget", "budget_records", "metric", "higher_is_better", "estimate", "lo", "hi",
               "baseline", "baseline_estimate", "delta", "delta_lo", "delta_hi", "p_better", "verdict", "n_seeds",
               "level", "interval"]
    # (metric, higher_is_better, interval): {method: [(estimate, lo, hi) per budget]}
    values = {
        ("kl_reduction", True, "bootstrap-2level"): {
            "random": [(0.0, -0.004, 0.004), (0.0, -0.002, 0.002), (0.0, -0.001, 0.001)],
            "dsir": [(0.061, 0.050, 0.072), (0.112, 0.104, 0.120), (0.098, 0.093, 0.104)],
            "classifier": [(0.002, -0.006, 0.010), (0.041, 0.033, 0.049), (-0.012, -0.018, -0.006)]},
        ("precision", True, "beta"): {
            "random": [(0.094, 0.054, 0.151), (0.099, 0.071, 0.132), (0.094, 0.074, 0.117)],
            "dsir": [(0.973, 0.911, 0.995), (0.989, 0.972, 0.997), (0.701, 0.667, 0.734)],
            "classifier": [(0.120, 0.069, 0.190), (0.082, 0.057, 0.113), (0.090, 0.070, 0.113)]},
    }
    budgets = [("1%", 75), ("5%", 372), ("10%", 745)]
    with (root / "results.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for (metric, hib, interval), methods in values.items():
            for method, cells in methods.items():
                for (label, n), (est, lo, hi) in zip(budgets, cells):
                    base = methods["random"][budgets.index((label, n))]
                    if method == "random":
                        w.writerow(["news", method, label, n, metric, hib, est, lo, hi, "", "", "", "", "", "",
                                    "baseline", 5, 0.95, interval])
                        continue
                    d, dlo, dhi = est - base[0], lo - base[2], hi - base[1]
                    verdict = "better" if dlo > 0 else "worse" if dhi < 0 else "inconclusive"
                    w.writerow(["news", method, label, n, metric, hib, est, lo, hi, "random", base[0], round(d, 4),
                                round(dlo, 4), round(dhi, 4), "" if metric == "precision" else 0.9, verdict, 5,
                                0.95, interval])
    return root
