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
from thresher.io.pieces import (
    DEFAULT_BATCH_SIZE,
    PIECE_BATCHES,
    Batcher,
    Piece,
    PieceMerge,
    ReadOptions,
    checked_ids,
    chunks,
    cut,
    file_spans,
    ids_and_valid,
    place,
    validated,
)
from thresher.io.sources import InputFile, expand_paths_reporting

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
    _spans: list[list] | None = field(init=False, default=None, repr=False)  # each file's pieces (footers read once)
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

    def pieces(self, extra_columns: Iterable[str] = ()) -> list[Piece]:
        """The dataset cut into pieces that workers can read on their own (see :mod:`thresher.io.pieces`), in
        reading order; ``extra_columns`` as for :meth:`iter_batches`."""
        if self._spans is None:
            rows = self.batch_size * PIECE_BATCHES
            self._spans = [file_spans(src, rows) for src in self.files]
        options = ReadOptions(self.text_field, self.id_field, self.on_error, self.batch_size,
                              tuple(dict.fromkeys(extra_columns)))
        return cut(self.files, self._spans, options)

    def iter_batches(self, errors: ErrorLog, extra_columns: Iterable[str] = ()) -> Iterator[pa.RecordBatch]:
        """Validated batches with ``id``, ``text`` and ``extra_columns`` (as strings; null where absent)."""
        check = self._id_check()
        out = Batcher(self.batch_size)
        for piece in self.pieces(extra_columns):
            for part in validated(piece, errors):
                yield from out.add(part.table.set_column(0, "id", checked_ids(check, part)))
        self._id_check_done(check)
        yield from out.flush()

    def read_all(self, errors: ErrorLog, extra_columns: Iterable[str] = ()) -> pa.Table:
        """Every usable record in one table (``id``, ``text``, ``extra_columns``), for jobs that need the whole
        dataset at once; empty, with those columns, when there is none."""
        batches = list(self.iter_batches(errors, extra_columns))
        if not batches:
            columns = ["id", "text", *dict.fromkeys(extra_columns)]
            return pa.table({c: pa.array([], pa.large_string()) for c in columns})
        return pa.Table.from_batches(batches).combine_chunks()

    def merge(self, errors: ErrorLog) -> PieceMerge:
        """The main-process side of reading this dataset's pieces elsewhere: feed it each piece's result in order."""
        return PieceMerge(errors, self._id_check())

    def merged(self, merge: PieceMerge) -> None:
        """Every piece went through ``merge``: remember the duplicate-id outcome, as a complete read does."""
        self._id_check_done(merge.check)

    def _id_check(self) -> IdCheck | None:
        """A fresh duplicate-id check for one read pass; None once a complete pass found every id unique."""
        return None if self.renamed_ids == 0 else IdCheck(self.duplicate_ids, self._locate_id)

    def _id_check_done(self, check: IdCheck | None) -> None:
        """Remember a complete pass's outcome (for the manifest, and to skip checking ids already known unique)."""
        if check is not None:
            self.renamed_ids, self.rename_examples = check.renamed, check.examples

    def _locate_id(self, record_id: str) -> str:
        """Where the first usable record with this id is (a second read, only when a repeated id was seen)."""
        for piece in self.pieces():
            for chunk in chunks(piece, [self.id_field, self.text_field], ErrorLog("skip")):
                ids, keep = ids_and_valid(piece.file, chunk, ErrorLog("skip"), piece.options)
                hits = np.flatnonzero(keep & pc.equal(ids, record_id).fill_null(False).to_numpy(zero_copy_only=False))
                if len(hits):
                    return place(piece.file, chunk.loc_kind, int(chunk.locs[hits[0]]))
        raise AssertionError(f"id {record_id!r} was read but cannot be found again")  # the files changed under us


def read(paths: str | os.PathLike | Iterable[str | os.PathLike], *, text_field: str = "text", id_field: str = "id",
         on_error: OnError = "raise", batch_size: int = DEFAULT_BATCH_SIZE,
         duplicate_ids: str | None = None) -> Dataset:
    """Open input files for streaming (see :class:`Dataset`); nothing is read until iterated."""
    return Dataset(paths if not isinstance(paths, (str, os.PathLike)) else [paths], text_field=text_field,
                   id_field=id_field, on_error=on_error, batch_size=batch_size, duplicate_ids=duplicate_ids)


__all__ = ["Dataset", "read", "InputError"]
