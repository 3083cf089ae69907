"""The map stage of a dedup shuffle: a task turns consecutive texts into one spill file, numbering them from 0.

Two kinds of input, one contract. A :class:`~thresher.io.dataset.Dataset` goes piece by piece: each engine task
reads its own piece (the main process sends where it is, never the text) and writes the piece's file. Texts a
caller holds (arrays, lists of str, tables) are sent to the tasks in groups of about ``group_records`` records.
Either way the main process learns each file's record count, so where its records start in reading order
(:func:`~thresher.dedup.spill.save_file_starts`), plus ids and, when asked for, lengths.

A map task is ``task(texts, file_no, spill, *args) -> (records, records without words, lengths or None, bytes)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.dedup.clusters import as_batches, compact, split_batch
from thresher.dedup.spill import save_file_starts
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog

#: Records per text slice a task works on at once (its work arrays are several bytes per text byte).
SLICE_RECORDS = 4096
#: Records per map task, and per spill file, for texts the caller sends: the reduce tasks read every file, so
#: fewer, larger files keep their reads at (records / this) x partitions.
GROUP_RECORDS = 65_536

MapTask = Callable[..., tuple[int, int, np.ndarray | None, int]]


@dataclass
class Spilled:
    """What a map stage tells the main process: each spill file's first record in reading order, counts, lengths
    and the ids it read or was sent."""

    files: list[tuple[int, int]] = field(default_factory=list)
    n: int = 0
    without_words: int = 0
    written: int = 0
    length_chunks: list[np.ndarray] = field(default_factory=list)
    id_chunks: list[pa.Array] = field(default_factory=list)
    have_ids: bool = True

    def add(self, file_no: int, count: int, empty: int, lengths: np.ndarray | None, written: int) -> None:
        self.files.append((file_no, self.n))
        self.n, self.without_words, self.written = self.n + count, self.without_words + empty, self.written + written
        if lengths is not None:
            self.length_chunks.append(lengths)

    def lengths(self) -> np.ndarray | None:
        return np.concatenate(self.length_chunks) if self.length_chunks else None

    def ids(self) -> pa.Array | None:
        return pa.concat_arrays(self.id_chunks) if self.have_ids and self.id_chunks else None


def text_slices(texts: list[pa.Array]) -> Iterator[pa.Array]:
    """The texts in slices of at most :data:`SLICE_RECORDS` records, in order."""
    for text in texts:
        for start in range(0, len(text), SLICE_RECORDS):
            yield text.slice(start, SLICE_RECORDS)


def _batch_text(batch: pa.RecordBatch, where: tuple[int, int], task: MapTask, spill: str, args: tuple,
                skip: np.ndarray | None = None, batch_size: int = 0) -> tuple:
    """Engine task, per batch of a piece: its texts, with what the piece's task needs; the piece's rows in ``skip``
    (batch ``where[1]`` starts at row ``where[1] * batch_size``) become empty texts, which have no words."""
    text = batch.column("text").cast(pa.large_string()).fill_null("")
    if skip is not None and len(skip):
        start = where[1] * batch_size
        rows = skip[(skip >= start) & (skip < start + len(text))] - start
        if len(rows):
            blank = np.zeros(len(text), bool)
            blank[rows] = True
            text = pc.if_else(pa.array(blank), pa.scalar("", pa.large_string()), text)
    return task, spill, args, where[0], text


def _run_on_piece(parts: list[tuple]) -> tuple | None:
    """Combine (on the worker): the map task over the piece's texts, into the spill file named by the piece."""
    if not parts:
        return None
    task, spill, args, file_no, _ = parts[0]
    return file_no, *task([p[4] for p in parts], file_no, spill, *args)


def spill_input(batches: Dataset | Iterable | Callable[[], Iterable], runner, spill: Path, task: MapTask,
                args: tuple, text_field: str = "text", id_field: str = "id",
                group_records: int = GROUP_RECORDS, errors: ErrorLog | None = None,
                skip: tuple[np.ndarray, dict[int, int]] | None = None) -> Spilled:
    """Run map task ``task`` over ``batches`` on ``runner``, one spill file per piece (a dataset) or per group of
    texts (anything else), and record the files' starts in ``spill``. ``skip`` (a dataset only): records (reading
    order, increasing) whose texts the task sees as empty, and each piece's first record."""
    out = Spilled()
    if isinstance(batches, Dataset):
        from thresher.engine.pieces import map_pieces

        def piece_args(piece) -> tuple:
            if skip is None:
                return task, str(spill), args
            rows, starts = skip
            first = starts[piece.index]
            end = starts.get(piece.index + 1, np.iinfo(np.int64).max)
            return task, str(spill), args, rows[(rows >= first) & (rows < end)] - first, batches.batch_size

        for ids, done in map_pieces(batches, runner, _batch_text, piece_args, errors, combine=_run_on_piece):
            out.id_chunks.append(ids)
            if done is not None:
                out.add(*done)
    else:
        stream = iter(batches() if callable(batches) else as_batches(batches))

        def items():  # the texts go to the engine in groups; ids stay here, in reading order
            group, size, file_no = [], 0, 0
            for batch in stream:
                text, ids = split_batch(batch, text_field, id_field)
                out.have_ids = out.have_ids and ids is not None
                if out.have_ids:
                    out.id_chunks.append(ids)
                for piece in text_slices([text]):
                    group.append(compact(piece))
                    size += len(piece)
                    if size >= group_records:
                        yield group, file_no, str(spill), *args
                        group, size, file_no = [], 0, file_no + 1
            if group:
                yield group, file_no, str(spill), *args

        for file_no, done in enumerate(runner.map(task, items())):
            out.add(file_no, *done)
    save_file_starts(spill, out.files)
    return out
