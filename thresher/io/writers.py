"""Write the selected records with every original field, as Parquet, JSONL (optionally gzipped), or ids only."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.engine import Engine, make_engine
from thresher.errors import ConfigError, ThresherError
from thresher.io.atomic import atomic_path, write_parquet
from thresher.io.dataset import Dataset
from thresher.io.pieces import Piece, count_records, full_records

FORMATS = ("parquet", "jsonl", "jsonl.gz", "ids")
#: Selected rows buffered before a Parquet part is written: bounds memory, keeps parts few.
PART_ROWS = 65_536


def write_ids(ids: Iterable[str], path: Path) -> None:
    """One id per line, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i in ids:
            f.write(f"{i}\n")


#: Pool records one write task reads at most, so a big pool's write spreads over the workers whatever the selection.
TASK_POOL_ROWS = 1 << 20


@dataclass(frozen=True)
class WriteTask:
    """One write task: a run of consecutive pieces, the reading-order position of each one's first record, and the
    selected records among them (sorted positions and their ids)."""

    pieces: tuple[Piece, ...]
    starts: tuple[int, ...]
    positions: np.ndarray
    ids: pa.Array
    rename: bool  # duplicate ids were renamed when read: written records carry the renamed ids


@dataclass(frozen=True)
class Listed:
    """Selected records given as their rows in reading order (increasing) and their ids, aligned."""

    positions: np.ndarray
    ids: pa.Array

    def before(self, rows: np.ndarray) -> np.ndarray:
        """How many selected records lie before each of ``rows``."""
        return np.searchsorted(self.positions, rows)

    def last(self) -> int:
        return int(self.positions[-1]) if len(self.positions) else -1

    def between(self, lo: int, hi: int) -> tuple[np.ndarray, pa.Array]:
        """The selected rows in ``lo:hi`` and their ids."""
        a, b = np.searchsorted(self.positions, [lo, hi])
        return self.positions[a:b], self.ids.slice(a, b - a)


@dataclass(frozen=True)
class AllBut:
    """Every record but the ``dropped`` rows (increasing), with ``ids``, the ids of all records: what a dedup run
    keeps, told by what it drops (the kept rows are never listed whole)."""

    dropped: np.ndarray
    ids: pa.Array

    def before(self, rows: np.ndarray) -> np.ndarray:
        return rows - np.searchsorted(self.dropped, rows)

    def last(self) -> int:
        return len(self.ids) - 1

    def between(self, lo: int, hi: int) -> tuple[np.ndarray, pa.Array]:
        keep = np.ones(hi - lo, dtype=bool)
        a, b = np.searchsorted(self.dropped, [lo, hi])
        keep[self.dropped[a:b] - lo] = False
        return np.flatnonzero(keep) + lo, self.ids.slice(lo, hi - lo).filter(pa.array(keep))  # a copy


def write_selected_records(dataset: Dataset, selected_ids: pa.Array | None, out_dir: Path, fmt: str,
                           positions: np.ndarray | None, engine: Engine | None = None,
                           piece_rows: np.ndarray | None = None, selection: Listed | AllBut | None = None) -> dict:
    """Write the selected records (``positions``: their rows in reading order, aligned with ``selected_ids``; or a
    ``selection``) with every original field, in input order; each engine task reads its own run of the pool's
    pieces and writes its own file (the main process only names the files, or joins JSONL chunks), and each task's
    rows are worked out as it is sent, so no list of every selected row is built.

    ``piece_rows``: usable records per piece, when a job already counted them (else a counting pass finds them).
    Returns what was written (files, rows).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "ids":
        return {"files": [], "rows": 0}
    engine = engine or make_engine(1)
    pieces = dataset.pieces()
    if piece_rows is None or len(piece_rows) != len(pieces):
        piece_rows = np.fromiter(engine.map(count_records, ((p,) for p in pieces)), dtype=np.int64, count=len(pieces))
    selection = selection or _listed(selected_ids, positions)
    suffix = ".parquet" if fmt == "parquet" else ".jsonl" + (".gz" if fmt == "jsonl.gz" else "")
    chunks: list[Path] = []

    def items():
        for k, task in enumerate(_write_tasks(pieces, np.asarray(piece_rows), selection,
                                              dataset.duplicate_ids == "rename")):
            chunks.append(out_dir / f".chunk-{k:05d}{suffix}")
            yield task, fmt, str(chunks[-1])

    try:
        rows = list(engine.map(write_task, items()))
        if fmt == "parquet":
            files = [f"part-{k:05d}.parquet" for k in range(len(chunks))]
            for chunk, name in zip(chunks, files):
                os.replace(chunk, out_dir / name)
            return {"files": files, "rows": sum(rows)}
        name = "records" + suffix
        with atomic_path(out_dir / name) as tmp, open(tmp, "wb") as f:
            for chunk in chunks:  # gzip members one after another are one gzip stream
                with open(chunk, "rb") as part:
                    shutil.copyfileobj(part, f, 1 << 20)
        return {"files": [name], "rows": sum(rows)}
    finally:
        for chunk in chunks:
            chunk.unlink(missing_ok=True)


def _listed(selected_ids: pa.Array, positions: np.ndarray) -> Listed:
    """Selected rows and ids in any order, sorted by row."""
    order = np.argsort(np.asarray(positions, dtype=np.int64), kind="stable")
    return Listed(np.asarray(positions, dtype=np.int64)[order],
                  _array(selected_ids.take(pa.array(order)).cast(pa.large_string())))


def _write_tasks(pieces: list[Piece], piece_rows: np.ndarray, selection: Listed | AllBut,
                 rename: bool) -> Iterator[WriteTask]:
    """Consecutive pieces grouped until a group holds ``PART_ROWS`` selected records or reads ``TASK_POOL_ROWS``
    records (a layout that depends on the pool, the batch size and the selection only); groups without a selected
    record are left out. Each task's rows and ids are taken when it is yielded."""
    starts = np.concatenate([[0], np.cumsum(piece_rows)])
    if selection.last() >= starts[-1]:
        raise ThresherError(f"a selected record is at row {selection.last():,} but the pool has {int(starts[-1]):,} "
                            "usable records now; run the selection again")
    cut = selection.before(starts)  # selected records before each piece
    first = 0
    for p in range(len(pieces)):
        selected, read = cut[p + 1] - cut[first], starts[p + 1] - starts[first]
        if selected >= PART_ROWS or read >= TASK_POOL_ROWS or p == len(pieces) - 1:
            if selected:
                positions, ids = selection.between(int(starts[first]), int(starts[p + 1]))
                yield WriteTask(tuple(pieces[first:p + 1]), tuple(int(x) for x in starts[first:p + 1]), positions,
                                _array(ids.cast(pa.large_string())), rename)
            first = p + 1


def write_task(task: WriteTask, fmt: str, path: str) -> int:
    """Engine task: read the task's pieces, keep the selected records (each checked against its id) and write them
    to ``path`` in ``fmt``; return how many."""
    tables = []
    for piece, start in zip(task.pieces, task.starts):
        offset = start
        for ids, table in full_records(piece):
            lo, hi = np.searchsorted(task.positions, [offset, offset + len(ids)])
            if hi > lo:
                local = pa.array(task.positions[lo:hi] - offset)
                tables.append(_with_ids(table.take(local), ids.take(local), task.ids.slice(lo, hi - lo), piece,
                                        task.rename))
            offset += len(ids)
    table = pa.concat_tables(tables, promote_options="permissive")
    if fmt == "parquet":
        write_parquet(table, path)
    else:
        with atomic_path(path) as tmp, (gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6)
                                        if fmt == "jsonl.gz" else open(tmp, "w", encoding="utf-8")) as f:
            for rec in table.to_pylist():
                f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
    return table.num_rows


def _with_ids(table: pa.Table, read: pa.Array, want: pa.Array, piece: Piece, rename: bool) -> pa.Table:
    """The picked records, checked against the ids they were selected by; under renamed duplicate ids the id field
    holds the renamed ids (string ids keep their type, others become strings, so all parts share one schema)."""
    read = _array(read.cast(pa.large_string()))
    if not read.equals(want):
        same = np.asarray(pc.equal(read, want).to_numpy(zero_copy_only=False), dtype=bool)
        differ = pa.array(~same)
        if not rename or not all(w.startswith(f"{r}#") for r, w in zip(read.filter(differ).to_pylist(),
                                                                        want.filter(differ).to_pylist())):
            raise ThresherError("the pool's records changed between scoring and writing the selection (other ids at "
                                "the selected rows); run the selection again")
    id_field = piece.options.id_field
    if rename and id_field in table.column_names:
        k = table.column_names.index(id_field)
        kind = table.schema.field(k).type
        table = table.set_column(k, id_field, want.cast(kind) if pa.types.is_string(kind) else want)
    return table


def _array(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def write_selection(dataset: Dataset, selected_ids: pa.Array | None, out: Path, fmt: str,
                    positions: np.ndarray | None, engine: Engine | None = None, piece_rows: np.ndarray | None = None,
                    selection: AllBut | None = None) -> dict:
    """A run's ``selected/`` folder, replaced whole: ``ids.txt`` in priority order, and the records in ``fmt``
    (``positions``: the selected records' rows in reading order, aligned with ``selected_ids``; or ``selection``:
    every record but some, in reading order)."""
    sel_dir = Path(out) / "selected"
    if sel_dir.exists():
        shutil.rmtree(sel_dir)
    sel_dir.mkdir(parents=True)
    if selection is not None:
        write_ids(_kept_ids(selection), sel_dir / "ids.txt")
    else:
        write_ids(selected_ids.to_pylist(), sel_dir / "ids.txt")
    return write_selected_records(dataset, selected_ids, sel_dir, fmt, positions, engine, piece_rows, selection)


def _kept_ids(selection: AllBut, rows: int = 1 << 16) -> Iterator[str]:
    """The ids of every record but the dropped ones, a slice at a time."""
    for lo in range(0, len(selection.ids), rows):
        yield from selection.between(lo, min(lo + rows, len(selection.ids)))[1].to_pylist()
