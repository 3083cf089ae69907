"""A :class:`Dataset` is a lazy, re-readable view of input files as a stream of validated Arrow record batches.

Every batch has the columns ``id`` and ``text`` (large strings) plus any requested extra columns. Records without a
usable text are reported to the error policy; records without an id get a stable one from file name and position;
ids must be unique (checked as the records stream by, see :mod:`thresher.io.ids`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.errors import ConfigError, InputError
from thresher.io.errors import ErrorLog, OnError
from thresher.io.ids import IdCheck, check_policy
from thresher.io.readers import READERS, Chunk
from thresher.io.sources import InputFile, expand_paths_reporting

DEFAULT_BATCH_SIZE = 4096
#: The duplicate-id policy of Datasets that do not name one (the CLI's --duplicate-ids sets it for one command).
_DUPLICATE_IDS_DEFAULT: contextvars.ContextVar[str] = contextvars.ContextVar("duplicate_ids", default="error")


@contextlib.contextmanager
def duplicate_ids_default(policy: str) -> Iterator[None]:
    """Within the block, Datasets created without ``duplicate_ids`` use ``policy`` (what one CLI command asked)."""
    token = _DUPLICATE_IDS_DEFAULT.set(check_policy(policy))
    try:
        yield
    finally:
        _DUPLICATE_IDS_DEFAULT.reset(token)


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
    duplicate_ids: ``"error"`` (default) stops at the first repeated id, naming both places; ``"rename"`` keeps every
        record and renames the 2nd, 3rd, ... record with id X to ``X#2``, ``X#3``, ... (see :mod:`thresher.io.ids`).
    """

    paths: list[str]
    text_field: str = "text"
    id_field: str = "id"
    on_error: OnError = "raise"
    batch_size: int = DEFAULT_BATCH_SIZE
    duplicate_ids: str | None = None
    files: list[InputFile] = field(init=False)
    #: Files inside the given folders that were not read because their type is not supported.
    unsupported_files: list[str] = field(init=False)
    _description: list[dict] | None = field(init=False, default=None, repr=False)
    #: After a complete read: how many ids were renamed (None before); a clean "error" pass is not checked again.
    renamed_ids: int | None = field(init=False, default=None, repr=False)
    rename_examples: list[dict] = field(init=False, default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.paths, (str, os.PathLike)):
            self.paths = [self.paths]
        self.paths = [os.fspath(p) for p in self.paths]
        if not self.paths:
            raise ConfigError("no input paths given")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        ErrorLog(self.on_error)  # validates on_error
        self.duplicate_ids = check_policy(self.duplicate_ids or _DUPLICATE_IDS_DEFAULT.get())
        self.files, self.unsupported_files = expand_paths_reporting(self.paths)

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
        check = self._id_check()
        for src in self.files:
            for k, chunk in enumerate(READERS[src.format](src, wanted, self.batch_size, errors, self.text_field)):
                if k == 0:
                    self._check_text_field(src, chunk)
                table = self._normalise(src, chunk, errors, extra, check)
                if table.num_rows == 0:
                    continue
                pending.append(table)
                n_pending += table.num_rows
                if n_pending >= self.batch_size:
                    yield from _rebatch(pending, self.batch_size, final=False)
                    n_pending = sum(t.num_rows for t in pending)
        self._id_check_done(check)
        yield from _rebatch(pending, self.batch_size, final=True)

    def iter_tables(self, errors: ErrorLog) -> Iterator[tuple[pa.Array, pa.Table]]:
        """(ids, full records) per chunk, every original field kept: what output writers need.

        Under ``duplicate_ids="rename"`` the id field holds the (string) ids the records were read with, renamed
        ones included, so written records match ``ids.txt`` and the scores.
        """
        check = self._id_check()
        for src in self.files:
            for chunk in READERS[src.format](src, None, self.batch_size, errors, self.text_field):
                ids, keep = self._ids_and_valid(src, chunk, ErrorLog("skip"))
                table = chunk.table.filter(pa.array(keep)) if not keep.all() else chunk.table
                ids = _checked_ids(check, src, chunk, keep, ids.filter(pa.array(keep)) if not keep.all() else ids)
                if self.duplicate_ids == "rename" and self.id_field in table.column_names:
                    # written records carry the ids they were selected by (renamed ones included): string ids keep
                    # their type (so unique-id pools are written byte for byte as without renaming); others become
                    # strings in every chunk, so all parts share one schema
                    k = table.column_names.index(self.id_field)
                    kind = table.schema.field(k).type
                    table = table.set_column(k, self.id_field, ids.cast(kind) if pa.types.is_string(kind) else ids)
                yield ids, table
        self._id_check_done(check)

    def _id_check(self) -> IdCheck | None:
        """A fresh duplicate-id check for one read pass; None once a complete pass found every id unique."""
        return None if self.renamed_ids == 0 else IdCheck(self.duplicate_ids, self._locate_id)

    def _id_check_done(self, check: IdCheck | None) -> None:
        """Remember a complete pass's outcome (for the manifest, and to skip checking ids already known unique)."""
        if check is not None:
            self.renamed_ids, self.rename_examples = check.renamed, check.examples

    def _locate_id(self, record_id: str) -> str:
        """Where the first usable record with this id is (a second read, only when a repeated id was seen)."""
        for src in self.files:
            for chunk in READERS[src.format](src, [self.id_field, self.text_field], self.batch_size,
                                             ErrorLog("skip"), self.text_field):
                ids, keep = self._ids_and_valid(src, chunk, ErrorLog("skip"))
                hits = np.flatnonzero(keep & pc.equal(ids, record_id).fill_null(False).to_numpy(zero_copy_only=False))
                if len(hits):
                    return _place(src, chunk, int(hits[0]))
        raise AssertionError(f"id {record_id!r} was read but cannot be found again")  # the files changed under us

    def _check_text_field(self, src: InputFile, chunk: Chunk) -> None:
        """A text field that a file's records do not have at all is a wrong ``--text-field``, not a set of bad
        records (skipping them would drop everything): say so, listing the fields the records do have."""
        table = chunk.table
        if self.text_field in table.column_names and table[self.text_field].null_count < table.num_rows:
            return
        first = next(READERS[src.format](src, None, 64, ErrorLog("skip"), self.text_field), None)
        fields = first.table.column_names if first is not None else []
        if not fields or self.text_field in fields:
            return  # the field is there, only empty or null: those records are reported one by one
        raise ConfigError(f"{src.path}: the records have no field {self.text_field!r}; their fields are "
                          f"{', '.join(fields)} (choose the text with --text-field)")

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
        # JSONL readers report null texts themselves, so a null left in a line format is an absent field
        _report_rows(errors, src, chunk, missing, "missing_text", f"record has no field {self.text_field!r}"
                     if chunk.loc_kind == "line" else f"field {self.text_field!r} is null")
        _report_rows(errors, src, chunk, empty, "empty_text", "record has an empty text")
        _report_rows(errors, src, chunk, null_id & ~missing & ~empty, "missing_id",
                     f"record has no value in id field {self.id_field!r}")
        return ids, ~(missing | empty | null_id)

    def _normalise(self, src: InputFile, chunk: Chunk, errors: ErrorLog, extra: list[str],
                   check: IdCheck | None) -> pa.Table:
        ids, keep = self._ids_and_valid(src, chunk, errors)
        if not keep.any():  # nothing usable (and the text column may not even be a string): nothing to cast
            return pa.table({"id": pa.array([], pa.large_string())})
        table = chunk.table
        if not keep.all():
            table, ids = table.filter(pa.array(keep)), ids.filter(pa.array(keep))
        ids = _checked_ids(check, src, chunk, keep, ids)
        cols = {"id": ids, "text": pc.cast(table[self.text_field], pa.large_string())}
        for c in extra:
            cols[c] = (pc.cast(table[c], pa.large_string()) if c in table.column_names
                       else pa.nulls(table.num_rows, pa.large_string()))
        return pa.table(cols)


def _place(src: InputFile, chunk: Chunk, i: int) -> str:
    """Where row ``i`` of a chunk is, for messages: ``file:line``, ``file row N``, or a .txt file's path."""
    if src.format == "txt":
        return src.path
    loc = int(chunk.locs[i])
    return f"{src.path}:{loc}" if chunk.loc_kind == "line" else f"{src.path} row {loc}"


def _checked_ids(check: IdCheck | None, src: InputFile, chunk: Chunk, keep: np.ndarray, ids: pa.Array) -> pa.Array:
    """The kept records' ids through the pass's duplicate-id check (which may raise, or rename repeats)."""
    if check is None:
        return ids
    rows = np.flatnonzero(keep)
    return check.apply(ids, lambda i: _place(src, chunk, int(rows[i])))


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
         on_error: OnError = "raise", batch_size: int = DEFAULT_BATCH_SIZE,
         duplicate_ids: str | None = None) -> Dataset:
    """Open input files for streaming (see :class:`Dataset`); nothing is read until iterated."""
    return Dataset(paths if not isinstance(paths, (str, os.PathLike)) else [paths], text_field=text_field,
                   id_field=id_field, on_error=on_error, batch_size=batch_size, duplicate_ids=duplicate_ids)


__all__ = ["Dataset", "read", "InputError"]
