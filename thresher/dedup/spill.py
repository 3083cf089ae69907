"""Spill files of a shuffle: a fresh directory per call, arrays written atomically as raw bytes, read back exactly.

A spill file is one or more arrays one after another; a *partitioned* file starts with ``parts + 1`` int64 offsets
(where each partition's rows start) followed by rows of two 8-byte columns sorted by partition, so a reduce task reads
its range with two small reads. Names are fixed by the task that writes them, so a retried task rewrites the same
bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from thresher.io.atomic import atomic_path

#: Name prefix of a shuffle's spill directory.
SPILL_PREFIX = ".thresher-spill-"


@contextmanager
def spill_area(parent: str | os.PathLike | None = None) -> Iterator[Path]:
    """A fresh directory for one shuffle under ``parent`` (default: the system's temporary directory), removed on
    exit however the block ends. Unique per call, so files a crashed run left behind are never read."""
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"{SPILL_PREFIX}{uuid.uuid4().hex}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_spills(parent: str | os.PathLike) -> None:
    """Remove spill directories that crashed runs left in ``parent``; only for a caller that holds ``parent``
    alone (a locked run folder), since another run's live spill looks the same."""
    for stale in Path(parent).glob(f"{SPILL_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def write_arrays(path: Path, *arrays: np.ndarray) -> int:
    """Write ``arrays``' raw bytes one after another, atomically; return the bytes written."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for a in arrays:
            f.write(np.ascontiguousarray(a).data)
    return sum(a.nbytes for a in arrays)


def read_array(path: Path, dtype: type, count: int, offset: int) -> np.ndarray:
    """``count`` items of ``dtype`` from byte ``offset`` of ``path``."""
    if count <= 0:
        return np.zeros(0, dtype)
    out = np.fromfile(path, dtype=dtype, count=count, offset=offset)
    if len(out) != count:
        raise OSError(f"{path}: truncated spill file ({len(out)} of {count} items at byte {offset})")
    return out


def write_partitioned(path: Path, part: np.ndarray, n_parts: int, columns: np.ndarray) -> int:
    """Write rows ``columns`` (n x width, 8-byte values) sorted by ``part`` (each row's partition in [0, n_parts))
    after the partitions' offsets; return the bytes written."""
    order = np.argsort(part, kind="stable")
    index = np.searchsorted(part[order], np.arange(n_parts + 1)).astype(np.int64)
    return write_arrays(path, index, columns[order])


def read_partitions(path: Path, dtype: type, lo: int, hi: int, n_parts: int, width: int = 2) -> np.ndarray:
    """Rows of partitions ``lo`` to ``hi - 1`` of a partitioned file with ``n_parts`` partitions, as (rows, width)."""
    start, end = read_array(path, np.int64, 1, 8 * lo)[0], read_array(path, np.int64, 1, 8 * hi)[0]
    rows = read_array(path, dtype, width * int(end - start), 8 * (n_parts + 1) + 8 * width * int(start))
    return rows.reshape(-1, width)


def save_file_starts(spill: Path, files: list[tuple[int, int]]) -> None:
    """Record a map stage's spill files in reading order, each with the reading-order number of its first record
    (tasks number their records from 0: a task that reads its own piece of the input knows no more)."""
    np.save(spill / "files.npy", np.array(files, dtype=np.int64).reshape(-1, 2))


def file_starts(spill: Path) -> np.ndarray:
    """(file number, first record) of every spill file of the map stage, in reading order."""
    return np.load(spill / "files.npy")
