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
import pyarrow as pa
import pyarrow.compute as pc

from thresher.dedup.reference import ReferenceConfig, build_index, contaminated, match_batch, stacked
from thresher.engine import make_engine
from thresher.engine.pieces import map_pieces
from thresher.errors import ConfigError
from thresher.io.atomic import write_json, write_parquet
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_info, versions
from thresher.io.writers import FORMATS, AllBut, write_selection
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
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ref_errors = [ErrorLog(ds.on_error) for ds in against]
    index = build_index(against, config, ref_errors)
    timings["reference_index"] = round(time.perf_counter() - t0, 4)
    errors = ErrorLog(pool.on_error)
    t0 = time.perf_counter()
    with make_engine(workers) as engine:
        ids, parts = [], []
        for piece_ids, result in map_pieces(pool, engine, match_batch, (index.hashes, index.owner, config), errors,
                                            combine=stacked):
            ids.append(piece_ids)
            parts.append(result)
        if not ids or not sum(len(i) for i in ids):
            raise ConfigError(f"the pool has no usable records ({', '.join(pool.paths)})")
        record_ids = pa.concat_arrays(ids)
        result = np.concatenate(parts)
        dropped = contaminated(result, config)
        timings["match"] = round(time.perf_counter() - t0, 4)
        t0 = time.perf_counter()
        (out / "scores").mkdir(exist_ok=True)
        write_parquet(_scores_table(record_ids, result, dropped, index, config), out / "scores" / "scores.parquet")
        written = write_selection(pool, None, out, output_format, None, engine,
                                  selection=AllBut(np.flatnonzero(dropped), record_ids))
        engine_info = engine.describe()
    timings["write"] = round(time.perf_counter() - t0, 4)
    failed = errors.to_dict()
    n, n_dropped = len(record_ids), int(dropped.sum())
    ref_failed = [e.to_dict() for e in ref_errors]
    counts = {"input_records": n + failed["total"], "scored": n, "selected": n - n_dropped, "not_selected": 0,
              "filtered": {"reference_duplicate": n_dropped}, "failed": failed["total"], "pool_failed": failed,
              "reference": {"records": index.records, "failed": sum(f["total"] for f in ref_failed),
                            "failed_by_set": ref_failed, "hashes": int(len(index.hashes))}}
    counts["all_accounted_for"] = counts["selected"] + n_dropped + counts["failed"] == counts["input_records"]
    by_source = np.bincount(index.source[result[dropped, 2]], minlength=len(index.sources)) if n_dropped else \
        np.zeros(len(index.sources), np.int64)
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "dedup", "method": f"{config.method}-against",
        "config": {"reference": {**asdict(config), "exact": asdict(config.exact)}},
        "inputs": {"pool": dataset_info(pool), "against": [dataset_info(ds) for ds in against]},
        "versions": versions(), "engine": engine_info, "counts": counts,
        "metrics": {"reference": {"method": config.method, "ngram": config.ngram, "min_overlap": config.min_overlap,
                                  "reference_records": index.records, "reference_hashes": int(len(index.hashes)),
                                  "records_with_any_match": int((result[:, 1] > 0).sum()),
                                  "dropped": n_dropped},
                    "dropped_by_reference": dict(zip(index.sources, map(int, by_source)))},
        "timings": timings,
        "outputs": {"scores": "scores/scores.parquet", "ids": "selected/ids.txt",
                    "records": [f"selected/{f}" for f in written["files"]], "records_written": written["rows"]},
    }
    write_json(manifest, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return Run(out)


def _scores_table(ids: pa.Array, result: np.ndarray, dropped: np.ndarray, index, config: ReferenceConfig
                  ) -> pa.Table:
    grams, matched, best = result[:, 0], result[:, 1], result[:, 2]
    has = best >= 0
    match = pc.if_else(pa.array(has), index.ids.take(pa.array(np.maximum(best, 0))), pa.scalar(None, index.ids.type))
    sources = np.asarray(index.sources, dtype=object)[index.source[np.maximum(best, 0)]]
    reason = pc.if_else(pa.array(dropped), pc.binary_join_element_wise(
        pa.scalar(f"{config.method}_match_in_reference", pa.large_string()), match.cast(pa.large_string()),
        pa.scalar(":", pa.large_string())),
        pa.scalar(None, pa.large_string()))
    return pa.table({"id": ids, "dup_keep": pa.array(~dropped), "dup_reason": reason,
                     "ref_ngrams": pa.array(grams, pa.int64()), "ref_matched": pa.array(matched, pa.int64()),
                     "ref_overlap": pa.array(matched / np.maximum(grams, 1), pa.float64()), "ref_match": match,
                     "ref_source": pa.array(sources, pa.large_string(), mask=~has)})
