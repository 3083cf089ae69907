"""The embed job: every record's embedding, cached on disk, for similarity scores and diversity selection.

Batches go through the engine (each worker loads the model once); shards are written as they come, so a crashed
run resumes from the shards it wrote, and a second run over the same data and model reads the cache instead of
encoding. The run directory records the ids in order and where the matrix lives; :meth:`Run.embeddings` reads it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa

from thresher.embeddings import EmbeddingStore, embed_shard, make_backend
from thresher.engine import make_engine
from thresher.errors import ConfigError
from thresher.io.atomic import write_json, write_parquet
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_fingerprint, dataset_info, versions
from thresher.jobs.rundir import claims_run_dir
from thresher.progress import Progress, known_rows
from thresher.run import Run


@claims_run_dir("out")
def run_embedding(pool: Dataset, out: str | os.PathLike, backend: str = "static", dtype: str = "float16",
                  workers: int | None = None, cache_dir: str | os.PathLike | None = None, progress: bool = True,
                  command: list[str] | None = None, report: bool = True, **backend_params: object) -> Run:
    """Embed every record of ``pool`` with ``backend`` (``static`` or ``minilm``) and write a run directory
    (with ``report.html`` unless ``report=False``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = make_backend(backend, **backend_params)
    store = EmbeddingStore(Path(cache_dir) if cache_dir else out / "cache", model, dataset_fingerprint(pool), dtype)
    errors = ErrorLog(pool.on_error)
    ids: list[pa.Array] = []
    t0 = time.perf_counter()

    def items():
        for i, batch in enumerate(pool.iter_batches(errors)):
            ids.append(batch.column("id"))
            yield model, store, i, batch.column("text")

    n_rows, dim = 0, None
    bar = Progress(f"embed ({model.name})", total=known_rows(pool), enabled=progress)
    with make_engine(workers) as engine:
        for matrix in engine.map(embed_shard, items()):
            n_rows += len(matrix)
            dim = matrix.shape[1]
            bar.update(len(matrix))
        engine_info = engine.describe()
    bar.close()
    if not ids:
        raise ConfigError(f"the pool has no usable records ({', '.join(pool.paths)})")
    store.mark_complete({"n_shards": len(ids), "n_rows": n_rows, "dim": dim, "dtype": dtype, "backend": model.name,
                         "backend_fingerprint": store.backend_fingerprint, "data_fingerprint": store.data_fingerprint})
    (out / "embeddings").mkdir(exist_ok=True)
    write_parquet(pa.table({"id": pa.concat_arrays(ids)}), out / "embeddings" / "ids.parquet")
    failed = errors.to_dict()
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "embed",
        "inputs": {"pool": dataset_info(pool)}, "versions": versions(), "engine": engine_info,
        "embedding": {"backend": model.name, "backend_fingerprint": store.backend_fingerprint, "dim": dim,
                      "dtype": dtype, "store": str(store.root.resolve()), "params": backend_params},
        "counts": {"input_records": n_rows + failed["total"], "embedded": n_rows, "failed": failed["total"],
                   "pool_failed": failed},
        "timings": {"embed": round(time.perf_counter() - t0, 4)},
        "outputs": {"ids": "embeddings/ids.parquet", "records": []},
    }
    write_json(manifest, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return Run(out)
