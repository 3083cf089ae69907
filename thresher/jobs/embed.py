"""The embed job: every record's embedding, cached on disk, for similarity scores and diversity selection.

Each engine task reads its own piece of the pool and embeds its batches (each worker loads the model once), one
cache shard per batch, named by piece and part; shards are written as they come, so a crashed run resumes from the
shards it wrote, and a second run over the same data and model reads the cache instead of encoding.
The run directory records the ids in order and where the matrix lives; :meth:`Run.embeddings` reads it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa

from thresher.embeddings import EmbeddingStore, embed_shard, make_backend
from thresher.embeddings.store import piece_shard_name
from thresher.engine import make_engine
from thresher.engine.pieces import map_pieces
from thresher.engine.plan import GLOBAL, MAP, Plan, Stage, Values, stage_seconds
from thresher.errors import ConfigError
from thresher.io.atomic import write_json, write_parquet
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_fingerprint, dataset_info, versions
from thresher.jobs.rundir import claims_run_dir
from thresher.progress import Progress, known_rows
from thresher.run import Run

#: The cache's file layout, part of its key: one shard per batch of each input piece, named by piece and part.
STORE_LAYOUT = "pieces-3"  # 2: a big JSONL file or Parquet row group is cut into pieces; 3: also by bytes


def embed_part(batch: pa.RecordBatch, where: tuple[int, int], model, store: EmbeddingStore) -> tuple[str, int, int]:
    """Worker task: one batch of an input piece embedded into its shard (or found there); its name and shape."""
    name = piece_shard_name(*where)
    matrix = embed_shard(model, store, name, batch.column("text"))
    return name, matrix.shape[0], matrix.shape[1]


def _embed(v: Values) -> dict:
    errors = ErrorLog(v.pool.on_error)
    ids: list[pa.Array] = []
    shards: list[str] = []
    n_rows, dim = 0, None
    bar = Progress(f"embed ({v.model.name})", total=known_rows(v.pool), enabled=v.progress)
    for piece_ids, parts in map_pieces(v.pool, v.engine, embed_part, (v.model, v.store), errors, progress_bar=bar):
        ids.append(piece_ids)
        for name, rows, cols in parts:
            shards.append(name)
            n_rows, dim = n_rows + rows, cols
    bar.close()
    if not shards:
        raise ConfigError(f"the pool has no usable records ({', '.join(v.pool.paths)})")
    return {"ids": ids, "shards": shards, "errors": errors, "n_rows": n_rows, "dim": dim}


def _index(v: Values) -> dict:
    v.store.mark_complete({"n_shards": len(v.shards), "shards": v.shards, "n_rows": v.n_rows, "dim": v.dim,
                           "dtype": v.dtype, "backend": v.model.name,
                           "backend_fingerprint": v.store.backend_fingerprint,
                           "data_fingerprint": v.store.data_fingerprint})
    (v.out / "embeddings").mkdir(exist_ok=True)
    write_parquet(pa.table({"id": pa.concat_arrays(v.ids)}), v.out / "embeddings" / "ids.parquet")
    return {}


EMBED = Stage("embed", MAP, "the embedding of every record batch, cached per shard with a checksum", _embed,
              ("pool", "model", "store", "engine", "progress"), ("ids", "shards", "errors", "n_rows", "dim"))
INDEX = Stage("index", GLOBAL, "the store marked complete and the ids in embedding order (embeddings/ids.parquet)",
              _index, ("store", "ids", "shards", "n_rows", "dim", "dtype", "model", "out"), ())
EMBED_PLAN = Plan("embed", ("pool", "model", "store", "dtype", "engine", "progress", "out"), (EMBED, INDEX))

@claims_run_dir("out")
def run_embedding(pool: Dataset, out: str | os.PathLike, backend: str = "static", dtype: str = "float16",
                  workers: int | None = None, cache_dir: str | os.PathLike | None = None, progress: bool = True,
                  command: list[str] | None = None, report: bool = True, **backend_params: object) -> Run:
    """Embed every record of ``pool`` with ``backend`` (``static`` or ``minilm``) and write a run directory
    (with ``report.html`` unless ``report=False``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = make_backend(backend, **backend_params)
    store = EmbeddingStore(Path(cache_dir) if cache_dir else out / "cache", model,
                           dataset_fingerprint(pool, layout=STORE_LAYOUT), dtype)
    with make_engine(workers) as engine:
        v = EMBED_PLAN.run(pool=pool, model=model, store=store, dtype=dtype, engine=engine, progress=progress,
                           out=out)
        engine_info = engine.describe()
    errors, n_rows, dim = v.errors, v.n_rows, v.dim
    failed = errors.to_dict()
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "embed",
        "inputs": {"pool": dataset_info(pool)}, "versions": versions(), "engine": engine_info,
        "embedding": {"backend": model.name, "backend_fingerprint": store.backend_fingerprint, "dim": dim,
                      "dtype": dtype, "store": str(store.root.resolve()), "params": backend_params},
        "counts": {"input_records": n_rows + failed["total"], "embedded": n_rows, "failed": failed["total"],
                   "pool_failed": failed},
        "timings": stage_seconds(v.stages), "stages": v.stages,
        "outputs": {"ids": "embeddings/ids.parquet", "records": []},
    }
    write_json(manifest, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return Run(out)
