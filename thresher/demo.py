"""``thresher demo``: a targeted selection on the bundled sample, compared with a random sample of the same size."""

from __future__ import annotations

import tempfile
from importlib.resources import files
from pathlib import Path

from thresher.io.dataset import Dataset
from thresher.jobs.select import SelectConfig, run_selection


def sample_path(name: str) -> Path:
    """Path of a file of the bundled sample (see thresher/data/sample/README.md for provenance)."""
    return Path(str(files("thresher") / "data" / "sample" / name))


def run_demo(out: Path | None = None, target: str = "news", budget: str = "5%", seed: int = 0,
             workers: int | None = None) -> str:
    """Run the demo selection and return the text to print."""
    out = out or Path(tempfile.mkdtemp(prefix="thresher-demo-"))
    pool = Dataset([str(sample_path("pool.parquet"))])
    target_ds = Dataset([str(sample_path(f"target_{target}.jsonl"))])
    run = run_selection(pool, target_ds, out, SelectConfig(budget=budget, seed=seed, workers=workers),
                        progress=True, command=["thresher", "demo"])
    comp = {row["group"]: row for row in run.metrics.get("composition", [])}
    hit = comp.get(target, {})
    lines = [
        f"thresher demo: select {budget} of the bundled pool of {run.counts['scored']:,} records (DSIR importance "
        f"resampling, seed {seed}) toward the '{target}' target, a separate sample of "
        f"{run.counts['target']['records']} {target} records that are not in the pool",
        "",
        run.summary(),
        "",
        f"share of '{target}' records: selected {hit.get('selected_share', 0):.1%} vs random "
        f"{hit.get('random_share', 0):.1%} (pool {hit.get('pool_share', 0):.1%})",
        f"run directory: {run.path}",
        f"report: {run.path / 'report.html'}",
    ]
    return "\n".join(lines)
