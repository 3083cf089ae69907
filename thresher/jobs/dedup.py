"""The dedup job: exact and near-duplicate (MinHash LSH) removal into a run directory like a selection's.

``scores/scores.parquet`` keeps, per record, its cluster (the index of the record kept for it), whether it is kept,
and why not (``exact_duplicate_of:<id>`` or ``near_duplicate_of:<id>``), so clusters can be inspected and the
decision changed; ``selected/`` holds the kept ids (and records); the manifest counts what was dropped and why.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.dedup import ExactConfig, MinHashConfig, exact_duplicates, near_duplicates
from thresher.dedup.clusters import DedupResult
from thresher.dedup.decisions import Decisions
from thresher.dedup.semantic import SemanticConfig, semantic_duplicates
from thresher.dedup.spill import remove_stale_spills
from thresher.embeddings.store import store_blocks
from thresher.engine import Engine, make_engine
from thresher.engine.pieces import map_pieces
from thresher.engine.plan import GLOBAL, Plan, Stage, Values, stage_seconds
from thresher.errors import ConfigError
from thresher.io.atomic import ParquetStream, write_json
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_info, versions
from thresher.io.writers import FORMATS, AllBut, write_selection
from thresher.jobs.rundir import claims_run_dir
from thresher.run import Run

METHODS = ("exact", "minhash", "both", "semantic")


@claims_run_dir("out")
def run_dedup(pool: Dataset, out: str | os.PathLike, method: str = "both", exact: ExactConfig | None = None,
              minhash: MinHashConfig | None = None, scores: np.ndarray | None = None,
              output_format: str = "parquet", command: list[str] | None = None,
              semantic: SemanticConfig | None = None, embeddings: str | os.PathLike | None = None,
              report: bool = True, workers: int | None = None) -> Run:
    """Deduplicate ``pool``; ``both`` runs exact then near-duplicate detection, and exact reasons win;
    ``semantic`` (SemDeDup) needs ``embeddings``, an embed run of the same pool.

    ``scores`` (one per record, reading order) serve ``keep="highest"``. ``report``: write ``report.html``.
    """
    if output_format not in FORMATS:
        raise ConfigError(f"unknown format {output_format!r}; choose from {', '.join(FORMATS)}")
    exact = exact or ExactConfig()
    minhash = minhash or MinHashConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_spills(out)  # this job holds the run folder's lock: spills found here are from crashed runs
    errors = ErrorLog(pool.on_error)
    with make_engine(workers) as engine:
        decisions, results, stages = find_duplicates(pool, errors, method, exact, minhash, semantic, embeddings,
                                                     scores, spill_dir=out, engine=engine)
        engine_info = engine.describe()
        (out / "scores").mkdir(exist_ok=True)
        with ParquetStream(out / "scores" / "scores.parquet") as stream:  # reason strings a slice at a time
            for part in decisions.slices():
                stream.write(part)
        written = write_selection(pool, None, out, output_format, None, engine,
                                  selection=AllBut(decisions.dropped_positions(), decisions.ids))
    failed = errors.to_dict()
    dropped = {f"{kind}_duplicate": count for kind, count in decisions.dropped().items()
               if method in METHOD_KINDS[kind]}
    counts = removal_counts(len(decisions), decisions.n_kept, dropped, failed)
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "dedup", "method": method,
        "config": {"exact": asdict(exact), "minhash": {**asdict(minhash), "bands_rows": minhash.bands_rows},
                   "semantic": asdict(semantic or SemanticConfig()), "embeddings": str(embeddings or "") or None},
        "inputs": {"pool": dataset_info(pool)}, "versions": versions(), "engine": engine_info, "counts": counts,
        "metrics": {kind: r.stats for kind, r in results.items()}, "timings": stage_seconds(stages),
        "stages": stages,
        "shuffle": {kind: r.shuffle for kind, r in results.items() if r.shuffle},
        "outputs": removal_outputs(written),
    }
    write_json(manifest, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return Run(out)


def removal_counts(n: int, kept: int, dropped: dict[str, int], failed: dict) -> dict:
    """A removal run's record accounting: ``n`` usable records, ``kept`` of them, the rest dropped for the reasons
    in ``dropped``, plus the ``failed`` ones (``ErrorLog.to_dict()``); ``all_accounted_for`` checks they add up."""
    counts = {"input_records": n + failed["total"], "scored": n, "selected": kept,
              "not_selected": 0, "filtered": dropped, "failed": failed["total"], "pool_failed": failed}
    counts["all_accounted_for"] = counts["selected"] + sum(dropped.values()) + counts["failed"] == \
        counts["input_records"]
    return counts


def removal_outputs(written: dict) -> dict:
    """The manifest's ``outputs`` of a removal run, from :func:`~thresher.io.writers.write_selection`'s report."""
    return {"scores": "scores/scores.parquet", "ids": "selected/ids.txt",
            "records": [f"selected/{f}" for f in written["files"]], "records_written": written["rows"]}


def find_duplicates(pool: Dataset, errors: ErrorLog, method: str, exact: ExactConfig, minhash: MinHashConfig,
                    semantic: SemanticConfig | None = None, embeddings: str | os.PathLike | None = None,
                    scores: np.ndarray | None = None, workers: int | None = None,
                    spill_dir: str | os.PathLike | None = None,
                    engine: Engine | None = None) -> tuple[Decisions, dict[str, DedupResult], list[dict]]:
    """The per-record decisions (reading order) of ``method``, the results per method and the stages that ran.

    Bad records are reported to ``errors`` once. MinHash's shuffle spills to a fresh folder under ``spill_dir``
    (the run folder for a dedup run, which Ray's nodes must share; default the system's temporary directory),
    removed at the end. ``engine``: the caller's (else one of ``workers``)."""
    if method not in METHODS:
        raise ConfigError(f"unknown dedup method {method!r}; choose from {', '.join(METHODS)}")
    if method == "semantic" and embeddings is None:
        raise ConfigError("semantic dedup needs --embeddings, an embed run of this pool (thresher embed)")
    passes = [0]

    def reading() -> ErrorLog:
        # The first pass reports bad records under the user's policy; later passes stay silent.
        log = errors if passes[0] == 0 else ErrorLog("skip")
        passes[0] += 1
        return log

    # hashes, sketches, LSH buckets, verification and components on the engine, whose tasks read the pool's pieces
    # themselves (a caller's engine stays open for its next stage)
    with nullcontext(engine) if engine is not None else make_engine(workers) as engine:
        v = FIND_PLAN.run(reading=reading, method=method, exact=exact, minhash=minhash, semantic=semantic,
                          embeddings=embeddings, scores=scores, engine=engine, spill_dir=spill_dir, pool=pool)
    return v.decisions, v.results, v.stages


def _semantic(v: Values) -> dict:
    if v.method != "semantic":
        return {"semantic_result": None}
    ids, lengths = [], []  # tasks read the pool for its ids and lengths: the texts were embedded already
    for piece_ids, out in map_pieces(v.pool, v.engine, _text_lengths, (), v.reading(), combine=_concatenated):
        ids.append(piece_ids)
        lengths.append(out)
    if not ids or not sum(len(x) for x in ids):
        raise ConfigError(f"the pool has no usable records ({', '.join(v.pool.paths)})")
    record_ids = pa.concat_arrays(ids)
    run = Run(v.embeddings)
    found = pc.index_in(record_ids, value_set=run.embedding_ids().cast(record_ids.type))
    if found.null_count:
        missing = record_ids.filter(found.is_null())
        raise ConfigError(f"{len(missing):,} records have no embedding in {v.embeddings} (e.g. "
                          f"{missing[0].as_py()!r})")
    positions = found.to_numpy().astype(np.int64)
    order = np.argsort(positions, kind="stable")  # the records in the embed run's row order, shard by shard
    blocks = store_blocks(run.embedding_store(), positions[order])
    return {"semantic_result": semantic_duplicates(blocks, v.semantic, ids=record_ids,
                                                   lengths=np.concatenate(lengths), scores=v.scores,
                                                   engine=v.engine, order=order, spill_dir=v.spill_dir)}


def _text_lengths(batch: pa.RecordBatch, where: tuple[int, int]) -> np.ndarray:
    """Engine task: characters per record of one batch."""
    return pc.utf8_length(batch.column("text")).to_numpy(zero_copy_only=False).astype(np.int64)


def _concatenated(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _exact(v: Values) -> dict:
    if v.method not in ("exact", "both"):
        return {"exact_result": None}
    return {"exact_result": exact_duplicates(v.pool, v.exact, v.scores, engine=v.engine, errors=v.reading())}


def _near(v: Values) -> dict:
    if v.method not in ("minhash", "both"):
        return {"minhash_result": None}
    skip = None
    exact = v.exact_result
    if exact is not None and exact.piece_starts is not None and exact.n_dropped and not v.exact.nfkc:
        # exact dedup already drops these, and each has a kept copy with the same words (case, spacing and, with
        # "punct", punctuation aside; not so under NFKC), so the same shingles: sketching them again can change
        # no decision, only cost time
        skip = (exact.members[exact.kept_of != exact.members], exact.piece_starts)
    return {"minhash_result": near_duplicates(v.pool, v.minhash, v.scores, engine=v.engine, spill_dir=v.spill_dir,
                                              errors=v.reading(), skip=skip)}


def _decide(v: Values) -> dict:
    results = {kind: r for kind, r in (("semantic", v.semantic_result), ("exact", v.exact_result),
                                        ("minhash", v.minhash_result)) if r is not None}
    if next(iter(results.values())).n_records == 0:
        raise ConfigError(f"the pool has no usable records ({', '.join(v.pool.paths)})")
    return {"decisions": Decisions.of(results), "results": results}


SEMANTIC = Stage("semantic", GLOBAL, "SemDeDup over an embed run's shards on the engine: k-means passes, vectors "
                 "shuffled by cluster, near neighbours within each, components in rounds", _semantic,
                 ("method", "reading", "pool", "embeddings", "semantic", "scores", "engine", "spill_dir"),
                 ("semantic_result",))
EXACT = Stage("exact", GLOBAL, "normalised-text hashes per piece on the engine, grouped by hash", _exact,
              ("method", "pool", "reading", "exact", "scores", "engine"), ("exact_result",))
NEAR = Stage("minhash", GLOBAL, "MinHash sketches per piece (not of exact copies already dropped), spilled by band "
             "key; pairs and Jaccard verification per partition; large-star/small-star components; all on the engine",
             _near,
             ("method", "pool", "reading", "minhash", "exact", "scores", "engine", "spill_dir", "exact_result"),
             ("minhash_result",))
DECIDE = Stage("decide", GLOBAL, "one kept record per cluster; an exact reason wins over a near one", _decide,
               ("semantic_result", "exact_result", "minhash_result", "pool"), ("decisions", "results"))
FIND_PLAN = Plan("dedup", ("reading", "method", "exact", "minhash", "semantic", "embeddings", "scores", "engine",
                           "spill_dir", "pool"), (SEMANTIC, EXACT, NEAR, DECIDE))


#: Which methods can give each kind of reason.
METHOD_KINDS = {"exact": ("exact", "both"), "near": ("minhash", "both"), "semantic": ("semantic",)}

#: ``--normalize`` presets for exact dedup, from strictest to loosest.
NORMALIZE = {
    "none": ExactConfig(lowercase=False, collapse_whitespace=False),
    "whitespace": ExactConfig(lowercase=False),
    "lower": ExactConfig(),
    "punct": ExactConfig(strip_punctuation=True),
    "nfkc": ExactConfig(nfkc=True, strip_punctuation=True),
}


def scores_by_id(pool: Dataset, run_dir: str | os.PathLike, column: str) -> np.ndarray:
    """A score column of another run, aligned to ``pool``'s reading order (NaN where a record has no score).

    A run that scored none of the pool's ids is an error (``keep highest`` would silently be ``keep first``); one
    that misses some is a warning with the count, since those records rank lowest.
    """
    import sys

    from thresher.io.columns import as_float
    from thresher.scorers.registry import primary_column

    table = Run(run_dir).scores()
    column = primary_column(column, table.column_names)
    lookup = dict(zip(table["id"].to_pylist(), as_float(table[column])))
    ids = [i for b in pool.iter_batches(ErrorLog("skip")) for i in b.column("id").to_pylist()]
    missing = sum(1 for i in ids if i not in lookup)
    if ids and missing == len(ids):
        raise ConfigError(f"none of the pool's {len(ids):,} record ids is in {run_dir} (a run over another pool?), so "
                          f"--keep highest could not rank by {column}; score this pool (thresher score) first")
    if missing:
        sys.stderr.write(f"thresher: warning: {missing:,} of the pool's {len(ids):,} records have no {column} in "
                         f"{run_dir} (a run over another pool?); they rank lowest when choosing which copy stays\n")
    return np.array([lookup.get(i, np.nan) for i in ids], dtype=np.float64)
