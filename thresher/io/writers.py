"""Write the selected records with every original field, as Parquet, JSONL (optionally gzipped), or ids only."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError, ThresherError
from thresher.io.atomic import atomic_path, write_parquet
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog

FORMATS = ("parquet", "jsonl", "jsonl.gz", "ids")
#: Selected rows buffered before a Parquet part is written: bounds memory, keeps parts few.
PART_ROWS = 65_536


def write_ids(ids: Iterable[str], path: Path) -> None:
    """One id per line, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i in ids:
            f.write(f"{i}\n")


def write_selected_records(dataset: Dataset, selected_ids: pa.Array, out_dir: Path, fmt: str,
                           positions: np.ndarray) -> dict:
    """Re-read ``dataset`` and write the selected records (``positions``: their rows in reading order, aligned with
    ``selected_ids``), in input order.

    Returns what was written (files, rows). Records that failed to parse were accounted for when the pool was first
    read, so this pass skips them silently.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "ids":
        return {"files": [], "rows": 0}
    files: list[str] = []
    rows = 0
    if fmt == "parquet":
        buffer: list[pa.Table] = []
        n_buffer = 0

        def flush() -> None:
            nonlocal buffer, n_buffer
            if not buffer:
                return
            name = f"part-{len(files):05d}.parquet"
            write_parquet(pa.concat_tables(buffer, promote_options="permissive"), out_dir / name)
            files.append(name)
            buffer, n_buffer = [], 0

        for part in _selected_tables(dataset, selected_ids, positions):
            buffer.append(part)
            n_buffer += part.num_rows
            rows += part.num_rows
            if n_buffer >= PART_ROWS:
                flush()
        flush()
        return {"files": files, "rows": rows}
    name = "records.jsonl" + (".gz" if fmt == "jsonl.gz" else "")
    with atomic_path(out_dir / name) as tmp, (gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6)
                                               if fmt == "jsonl.gz" else open(tmp, "w", encoding="utf-8")) as f:
        for part in _selected_tables(dataset, selected_ids, positions):
            for rec in part.to_pylist():
                f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
                rows += 1
    return {"files": [name], "rows": rows}


def _selected_tables(dataset: Dataset, selected_ids: pa.Array, positions: np.ndarray) -> Iterator[pa.Table]:
    """The selected records, chunk by chunk in input order, picked by position (a lookup of ids per chunk rebuilt
    its hash table of every selected id each time: minutes at 10M records); each is checked against its id."""
    order = np.argsort(np.asarray(positions, dtype=np.int64), kind="stable")
    pos = np.asarray(positions, dtype=np.int64)[order]
    want = _array(selected_ids.take(pa.array(order)).cast(pa.large_string()))
    offset = 0
    for ids, table in dataset.iter_tables(ErrorLog("skip")):
        lo, hi = np.searchsorted(pos, [offset, offset + len(ids)])
        if hi > lo:
            local = pa.array(pos[lo:hi] - offset)
            if not _array(ids.take(local).cast(pa.large_string())).equals(want.slice(lo, hi - lo)):
                raise ThresherError("the pool's records changed between scoring and writing the selection (other "
                                    "ids at the selected rows); run the selection again")
            yield table.take(local)
        offset += len(ids)


def _array(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def write_selection(dataset: Dataset, selected_ids: pa.Array, out: Path, fmt: str, positions: np.ndarray) -> dict:
    """A run's ``selected/`` folder, replaced whole: ``ids.txt`` in priority order, and the records in ``fmt``
    (``positions``: the selected records' rows in reading order, aligned with ``selected_ids``)."""
    sel_dir = Path(out) / "selected"
    if sel_dir.exists():
        shutil.rmtree(sel_dir)
    sel_dir.mkdir(parents=True)
    write_ids(selected_ids.to_pylist(), sel_dir / "ids.txt")
    return write_selected_records(dataset, selected_ids, sel_dir, fmt, positions)
