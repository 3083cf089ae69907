"""Atomic file writes: write to a temporary name beside the target, then rename, so readers and resumed runs
never see a half-written file."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` (same suffix, so writers keep formats)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_parquet(table: pa.Table, path: str | os.PathLike) -> None:
    """A zstd Parquet file, atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


class ParquetStream:
    """One zstd Parquet file written table by table (or batch by batch) in order, atomically: opened with
    ``schema`` or the first write's, renamed into place when the ``with`` block ends without an error. A block that
    wrote nothing must raise (there is no schema to write an empty file with)."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema | None = None):
        self.path, self.schema = Path(path), schema
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ParquetStream:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    @property
    def started(self) -> bool:
        return self._writer is not None

    def write(self, data: pa.Table | pa.RecordBatch, row_group_size: int | None = None) -> None:
        """Append ``data`` (a table's rows in row groups of ``row_group_size``, default Arrow's; a batch as one)."""
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, self.schema or data.schema, compression="zstd")
        if isinstance(data, pa.RecordBatch):
            self._writer.write_batch(data)
        else:
            self._writer.write_table(data, row_group_size=row_group_size)

    def __exit__(self, *exc: object) -> bool | None:
        if self._writer is not None:
            self._writer.close()
        return self._atomic.__exit__(*exc)


def write_csv(path: str | os.PathLike, rows: list[dict], columns: list[str]) -> None:
    """A CSV with a header of ``columns`` and one line per row (None empty, booleans true/false, floats by repr),
    atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    with atomic_path(path) as tmp:
        Path(tmp).write_text(buf.getvalue(), encoding="utf-8")


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def write_json(obj: dict, path: str | os.PathLike) -> None:
    """Indented JSON (numpy scalars and arrays converted), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o: object) -> object:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
