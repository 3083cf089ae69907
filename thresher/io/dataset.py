"""A :class:`Dataset` is a lazy, re-readable view of input files as a stream of validated Arrow record batches.

Every batch has the columns ``id`` and ``text`` (large strings) plus any requested extra columns. Records without a
usable text are reported to the error policy; records without an id get a stable one from file name and position.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.errors import ConfigError, InputError
from thresher.io.errors import ErrorLog, OnError
from thresher.io.readers import READERS, Chunk
from thresher.io.sources import InputFile, expand_paths

DEFAULT_BATCH_SIZE = 4096


@dataclass
class Dataset:
    """Input files plus how to read them. Cheap to create; nothing is read until you iterate.

    Parameters
    ----------
    paths: files, globs or directories (JSONL[.gz|.zst|.bz2|.xz], Parquet, CSV/TSV, .txt, Arrow / HF save_to_disk).
    text_field: the field holding the text.
    id_field: the field holding a unique id; when the files lack it, ids are ``<file>:<line or row>``.
    on_error: ``"raise"`` stops at the first malformed record; ``"skip"`` skips and counts it.
    batch_size: records per Arrow batch; bounds memory.
    """

    paths: list[str]
    text_field: str = "text"
    id_field: str = "id"
    on_error: OnError = "raise"
    batch_size: int = DEFAULT_BATCH_SIZE
    files: list[InputFile] = field(init=False)
    _description: list[dict] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.paths, (str, os.PathLike)):
            self.paths = [self.paths]
        self.paths = [os.fspath(p) for p in self.paths]
        if not self.paths:
            raise ConfigError("no input paths given")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        ErrorLog(self.on_error)  # validates on_error
        self.files = expand_paths(self.paths)

    def describe(self) -> list[dict]:
        """Per-file path, format, size and fingerprint, for manifests and cache keys.

        Computed once per Dataset (a run needs it for the cache key and again for the manifest); open a new
        Dataset to see changed files.
        """
        if self._description is None:
            self._description = [f.describe() for f in self.files]
        return self._description

    def iter_batches(self, errors: ErrorLog, extra_columns: Iterable[str] = ()) -> Iterator[pa.RecordBatch]:
        """Validated batches with ``id``, ``text`` and ``extra_columns`` (as strings; null where absent)."""
        extra = [c for c in dict.fromkeys(extra_columns) if c not in ("id", "text")]
        wanted = list(dict.fromkeys([self.id_field, self.text_field, *extra]))
        pending: list[pa.Table] = []
        n_pending = 0
        for src in self.files:
            for chunk in READERS[src.format](src, wanted, self.batch_size, errors, self.text_field):
                table = self._normalise(src, chunk, errors, extra)
                if table.num_rows == 0:
                    continue
                pending.append(table)
                n_pending += table.num_rows
                if n_pending >= self.batch_size:
                    yield from _rebatch(pending, self.batch_size, final=False)
                    n_pending = sum(t.num_rows for t in pending)
        yield from _rebatch(pending, self.batch_size, final=True)

    def iter_tables(self, errors: ErrorLog) -> Iterator[tuple[pa.Array, pa.Table]]:
        """(ids, full records) per chunk, every original field kept: what output writers need."""
        for src in self.files:
            for chunk in READERS[src.format](src, None, self.batch_size, errors, self.text_field):
                ids, keep = self._ids_and_valid(src, chunk, ErrorLog("skip"))
                table = chunk.table.filter(pa.array(keep)) if not keep.all() else chunk.table
                yield ids.filter(pa.array(keep)) if not keep.all() else ids, table

    def _ids_and_valid(self, src: InputFile, chunk: Chunk, errors: ErrorLog) -> tuple[pa.Array, np.ndarray]:
        """The record ids of a chunk and a mask of records with a usable text (reporting the others)."""
        table = chunk.table
        n = table.num_rows
        has_ids = self.id_field in table.column_names and table[self.id_field].null_count < n
        if has_ids:
            ids = pc.cast(table[self.id_field].combine_chunks(), pa.large_string())
        elif self.id_field != "id":
            raise ConfigError(f"{src.path}: no id field {self.id_field!r} in these records")
        else:
            ids = _derived_ids(src, chunk)
        if self.text_field not in table.column_names:
            _report_rows(errors, src, chunk, np.ones(n, bool), "missing_text",
                         f"no field {self.text_field!r} (fields: {', '.join(table.column_names) or 'none'})")
            return ids, np.zeros(n, bool)
        text = table[self.text_field]
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
            _report_rows(errors, src, chunk, np.ones(n, bool), "bad_text_type",
                         f"field {self.text_field!r} has type {text.type}, not string")
            return ids, np.zeros(n, bool)
        missing = text.is_null().to_numpy(zero_copy_only=False)
        empty = ~missing & (pc.utf8_length(pc.utf8_trim_whitespace(text.fill_null(""))).to_numpy(
            zero_copy_only=False) == 0)
        null_id = ids.is_null().to_numpy(zero_copy_only=False)
        _report_rows(errors, src, chunk, missing, "missing_text", f"record has no field {self.text_field!r}")
        _report_rows(errors, src, chunk, empty, "empty_text", "record has an empty text")
        _report_rows(errors, src, chunk, null_id & ~missing & ~empty, "missing_id",
                     f"record has no value in id field {self.id_field!r}")
        return ids, ~(missing | empty | null_id)

    def _normalise(self, src: InputFile, chunk: Chunk, errors: ErrorLog, extra: list[str]) -> pa.Table:
        ids, keep = self._ids_and_valid(src, chunk, errors)
        if not keep.any():  # nothing usable (and the text column may not even be a string): nothing to cast
            return pa.table({"id": pa.array([], pa.large_string())})
        table = chunk.table
        if not keep.all():
            table, ids = table.filter(pa.array(keep)), ids.filter(pa.array(keep))
        cols = {"id": ids, "text": pc.cast(table[self.text_field], pa.large_string())}
        for c in extra:
            cols[c] = (pc.cast(table[c], pa.large_string()) if c in table.column_names
                       else pa.nulls(table.num_rows, pa.large_string()))
        return pa.table(cols)


def _derived_ids(src: InputFile, chunk: Chunk) -> pa.Array:
    """Stable ids ``<file name>:<line>`` (line formats) or ``<file name>:<row>``; a .txt file's id is its name."""
    if src.format == "txt":
        return pa.array([src.name], pa.large_string())
    locs = pc.cast(pa.array(chunk.locs), pa.large_string())
    return pc.binary_join_element_wise(pa.scalar(src.name, pa.large_string()), locs,
                                       pa.scalar(":", pa.large_string()))


def _report_rows(errors: ErrorLog, src: InputFile, chunk: Chunk, mask: np.ndarray, reason: str, detail: str) -> None:
    """Report the rows in ``mask`` as one problem: the first row is named, all of them are counted."""
    count = int(mask.sum())
    if not count:
        return
    first = int(chunk.locs[np.argmax(mask)])
    line = first if chunk.loc_kind == "line" else None
    where = "" if line is not None else f" (row {first})"
    more = f"; {count} such records in this batch" if count > 1 else ""
    errors.report(src.path, reason, f"{detail}{where}{more}", line, records=count)


def _rebatch(pending: list[pa.Table], size: int, final: bool) -> Iterator[pa.RecordBatch]:
    """Yield full batches of ``size`` rows from ``pending`` (in place); with ``final``, the remainder too."""
    if not pending:
        return
    table = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
    pending.clear()
    start = 0
    while table.num_rows - start >= size or (final and start < table.num_rows):
        part = table.slice(start, size).combine_chunks()
        start += part.num_rows
        yield from part.to_batches() or []
    if start < table.num_rows:
        pending.append(table.slice(start))


def read(paths: str | os.PathLike | Iterable[str | os.PathLike], *, text_field: str = "text", id_field: str = "id",
         on_error: OnError = "raise", batch_size: int = DEFAULT_BATCH_SIZE) -> Dataset:
    """Open input files for streaming (see :class:`Dataset`); nothing is read until iterated."""
    return Dataset(paths if not isinstance(paths, (str, os.PathLike)) else [paths], text_field=text_field,
                   id_field=id_field, on_error=on_error, batch_size=batch_size)


__all__ = ["Dataset", "read", "InputError"]
