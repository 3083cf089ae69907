"""The decontamination job (``thresher dedup --against REF``): drop pool records that repeat text of reference sets
(13-gram overlap or exact normalised text), into a run directory like dedup's; the reference is only read.

``scores/scores.parquet``: per pool record ``dup_keep``, ``dup_reason`` (``<method>_match_in_reference:<ref id>``),
``ref_ngrams`` (its n-grams), ``ref_matched`` (how many are in the reference), ``ref_overlap`` (the share),
``ref_match`` (the reference record sharing most) and ``ref_source`` (the reference set it is in); ``selected/``:
the kept records; the manifest counts every pool and reference record.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from thresher.dedup.reference import ReferenceConfig, find_contaminated
from thresher.engine import make_engine
from thresher.errors import ConfigError
from thresher.io.atomic import write_json, write_parquet
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_info, versions
from thresher.io.writers import FORMATS, AllBut, write_selection
from thresher.jobs.dedup import removal_counts, removal_outputs
from thresher.jobs.rundir import claims_run_dir
from thresher.run import Run


@claims_run_dir("out")
def run_decontamination(pool: Dataset, against: list[Dataset], out: str | os.PathLike,
                        config: ReferenceConfig | None = None, output_format: str = "parquet",
                        command: list[str] | None = None, report: bool = True, workers: int | None = None) -> Run:
    """Drop the records of ``pool`` that ``config`` matches in the ``against`` datasets; see the module docstring."""
    if output_format not in FORMATS:
        raise ConfigError(f"unknown format {output_format!r}; choose from {', '.join(FORMATS)}")
    if not against:
        raise ConfigError("decontamination needs reference sets (--against PATH)")
    config = config or ReferenceConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    errors = ErrorLog(pool.on_error)
    t0 = time.perf_counter()
    with make_engine(workers) as engine:
        decisions = find_contaminated(pool, against, config, engine, errors)
        timings = {"match": round(time.perf_counter() - t0, 4)}
        t0 = time.perf_counter()
        (out / "scores").mkdir(exist_ok=True)
        write_parquet(decisions.table(), out / "scores" / "scores.parquet")
        written = write_selection(pool, None, out, output_format, None, engine,
                                  selection=AllBut(np.flatnonzero(decisions.dropped), decisions.ids))
        engine_info = engine.describe()
    timings["write"] = round(time.perf_counter() - t0, 4)
    failed = errors.to_dict()
    ref_failed = decisions.index.failed
    counts = removal_counts(len(decisions), int((~decisions.dropped).sum()),
                            {"reference_duplicate": int(decisions.dropped.sum())}, failed)
    counts["reference"] = {"records": decisions.index.records, "failed": sum(f["total"] for f in ref_failed),
                           "failed_by_set": ref_failed}
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "dedup", "method": f"{config.method}-against",
        "config": {"reference": asdict(config)},
        "inputs": {"pool": dataset_info(pool), "against": [dataset_info(ds) for ds in against]},
        "versions": versions(), "engine": engine_info, "counts": counts,
        "metrics": {"reference": decisions.stats()}, "timings": timings, "outputs": removal_outputs(written),
    }
    write_json(manifest, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return Run(out)
