"""A dataset cut into *pieces* that workers read on their own, and the one validating read of a piece.

A piece is a whole file, a run of whole row groups of a Parquet file, a range of rows inside one big row group, or a
range of lines of a big plain JSONL file, so that one big file, the most common input, still feeds every worker.
CSV/TSV (a quoted field may hold a newline), .txt (one record per file), Arrow and compressed files (which cannot be
entered in the middle) are read whole. The cut depends only on the files and the batch size, never on the worker
count. Pieces start where the whole file's read starts a chunk (a row group's first row plus a multiple of the
batch size; a line number that is a multiple of the batch size plus one), so reading a piece (:func:`validated`)
checks records, reports bad ones and derives missing ids exactly as reading the whole dataset in one process does:
:meth:`~thresher.io.dataset.Dataset.iter_batches` is this read over every piece in order.

What needs every record in reading order stays with the process that merges the pieces' results, in piece order
(:class:`PieceMerge`): the duplicate-id check (and ``rename``'s new ids), the error log's examples, and under
``on_error="raise"`` which error is raised: a worker returns the error that stopped its piece
(:class:`PieceReader`), and it is raised only once every earlier piece has been merged, so it is the error a
sequential read would raise first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thresher.errors import ConfigError, ThresherError
from thresher.io.compression import codec_of
from thresher.io.errors import ErrorLog, OnError
from thresher.io.ids import IdCheck
from thresher.io.readers import READERS, Chunk, read_jsonl, read_parquet
from thresher.io.sources import InputFile

DEFAULT_BATCH_SIZE = 4096
#: A piece holds at least this many batches' rows (or lines), or ...
PIECE_BATCHES = 16
#: ... at least this many bytes (of a plain JSONL file; uncompressed, of a Parquet file's row groups): a piece ends at
#: the first batch or row-group boundary where either is reached, so that a file of long texts (a few thousand
#: records, tens of MB) still makes pieces for every worker.
PIECE_BYTES = 8 << 20
_SCAN_BLOCK = 8 << 20
_NOT_BLANK = re.compile(rb"[^ \t\n\r\x0b\x0c]")  # what bytes.strip() keeps: a line with one is not blank


@dataclass(frozen=True)
class ReadOptions:
    """How records are read and checked: what a worker needs besides the piece's place in its file."""

    text_field: str = "text"
    id_field: str = "id"
    on_error: OnError = "raise"
    batch_size: int = DEFAULT_BATCH_SIZE
    extra: tuple[str, ...] = ()  # string columns kept besides id and text (null where absent)


@dataclass(frozen=True)
class Piece:
    """Part ``index`` (in reading order) of a dataset: a whole file, or the part of one file the fields below say."""

    index: int
    file: InputFile
    options: ReadOptions
    row_groups: tuple[int, int] | None = None  # Parquet: row groups (first, stop)
    first_row: int = 0  # Parquet: the file's row number of the piece's first row (for derived ids and messages)
    rows: tuple[int, int] | None = None  # Parquet: only rows (first, stop) of its one row group
    byte_range: tuple[int, int] | None = None  # plain JSONL: bytes [start, stop), each a line start or the end
    first_line: int = 1  # JSONL: the file's line number of the piece's first line


def file_spans(src: InputFile, rows: int) -> list[dict]:
    """Where each piece of one file is (:class:`Piece` fields; ``{}`` is the whole file), from ``rows``, the rows
    of :data:`PIECE_BATCHES` batches (what :class:`~thresher.io.dataset.Dataset` passes), and :data:`PIECE_BYTES`.

    Parquet: runs of whole row groups of >= ``rows`` rows or :data:`PIECE_BYTES` uncompressed bytes; a row group
    of more is cut into about ``max(its rows / rows, its bytes / PIECE_BYTES)`` pieces of whole batches (Parquet
    cannot seek to a row: a piece decodes the rows of its group before its own, unless its process read the piece
    before it, where it continues; see :func:`~thresher.io.readers.read_parquet`). Plain JSONL: pieces of whole
    batches of lines ending at the first batch boundary after ``rows`` lines or :data:`PIECE_BYTES` bytes. Other
    files, one-piece files and files whose footer cannot be read (the reader reports those) are one piece."""
    batch = max(1, rows // PIECE_BATCHES)
    if src.format == "parquet":
        spans = _parquet_spans(src.path, rows, batch)
    elif src.format == "jsonl" and codec_of(src.path) is None:
        spans = _line_spans(src.path, rows, batch, PIECE_BYTES)
    else:
        spans = []
    return spans if len(spans) > 1 else [{}]


def _parquet_spans(path: str, rows: int, batch: int) -> list[dict]:
    """Pieces of a Parquet file: runs of small row groups, and big row groups cut at batch boundaries."""
    try:
        meta = pq.read_metadata(path)
    except (pa.ArrowException, OSError):
        return []
    spans: list[dict] = []
    start = first = n = n_bytes = 0
    for g in range(meta.num_row_groups):
        size, size_bytes = meta.row_group(g).num_rows, meta.row_group(g).total_byte_size
        if size > rows or size_bytes > PIECE_BYTES:  # a big group: close the run before it, then cut it
            if g > start:
                spans.append({"row_groups": (start, g), "first_row": first})
            k = max(-(-size // rows), -(-size_bytes // PIECE_BYTES))
            step = -(-size // (k * batch)) * batch
            spans += [{"row_groups": (g, g + 1), "first_row": first + n + a, "rows": (a, min(a + step, size))}
                      for a in range(0, size, step)]
            start, first, n, n_bytes = g + 1, first + n + size, 0, 0
            continue
        n, n_bytes = n + size, n_bytes + size_bytes
        if n >= rows or n_bytes >= PIECE_BYTES or g == meta.num_row_groups - 1:
            spans.append({"row_groups": (start, g + 1), "first_row": first})
            start, first, n, n_bytes = g + 1, first + n, 0, 0
    return spans


def _line_spans(path: str, rows: int, batch: int, piece_bytes: int) -> list[dict]:
    """Pieces of a plain line file, found in one pass that counts newlines (at the speed of ``bytes.count``, with
    numpy only near a cut): a piece ends after a line whose number is a multiple of ``batch`` once it holds
    ``rows`` lines or ``piece_bytes`` bytes. A file of blank lines only is left whole (it reports itself empty)."""
    try:
        size = os.path.getsize(path)
        if size <= piece_bytes and size < rows:  # fewer bytes than either limit: fewer lines too
            return []
        spans: list[dict] = []
        start, start_line = 0, 0  # the current piece's first byte, and the lines before it
        lines, at = 0, 0  # newlines before the block, and the block's offset
        blank = True
        with open(path, "rb") as f:
            while block := f.read(_SCAN_BLOCK):
                blank = blank and _NOT_BLANK.search(block) is None
                count = block.count(b"\n")
                end_lines = lines + count
                if end_lines >= start_line + rows or at + len(block) >= start + piece_bytes:
                    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10) + (at + 1)  # after each newline
                    numbers = np.arange(lines + 1, end_lines + 1)
                    for i in np.flatnonzero(numbers % batch == 0):
                        n, end = int(numbers[i]), int(ends[i])
                        if (n >= start_line + rows or end >= start + piece_bytes) and end < size:
                            spans.append({"byte_range": (start, end), "first_line": start_line + 1})
                            start, start_line = end, n
                lines, at = end_lines, at + len(block)
    except OSError:
        return []  # the reader reports it
    if blank:
        return []
    spans.append({"byte_range": (start, size), "first_line": start_line + 1})
    return spans


def cut(files: list[InputFile], spans: list[list[dict]], options: ReadOptions) -> list[Piece]:
    """The pieces of ``files`` (each file's spans from :func:`file_spans`), numbered in reading order."""
    pieces: list[Piece] = []
    for src, file_spans_ in zip(files, spans):
        for span in file_spans_:
            pieces.append(Piece(len(pieces), src, options, **span))
    return pieces


def chunks(piece: Piece, columns: list[str] | None, errors: ErrorLog) -> Iterator[Chunk]:
    """The raw reader chunks of one piece (``columns``: None for every field)."""
    o, src = piece.options, piece.file
    if piece.row_groups is not None:
        return read_parquet(src, columns, o.batch_size, errors, o.text_field, piece.row_groups, piece.first_row,
                            piece.rows)
    if piece.byte_range is not None:
        return read_jsonl(src, columns, o.batch_size, errors, o.text_field, piece.byte_range, piece.first_line)
    return READERS[src.format](src, columns, o.batch_size, errors, o.text_field)


@dataclass
class Part:
    """Validated records of one reader chunk: ``table`` has ``id`` (unchecked for repeats), ``text`` and the extra
    columns; ``locs`` are the records' lines or rows in ``src``."""

    src: InputFile
    table: pa.Table
    locs: np.ndarray
    loc_kind: str

    def place(self, i: int) -> str:
        return place(self.src, self.loc_kind, int(self.locs[i]))


def validated(piece: Piece, errors: ErrorLog) -> Iterator[Part]:
    """The usable records of one piece, chunk by chunk, bad ones reported to ``errors`` (raise or count)."""
    o = piece.options
    extra = [c for c in dict.fromkeys(o.extra) if c not in ("id", "text")]
    wanted = list(dict.fromkeys([o.id_field, o.text_field, *extra]))
    for k, chunk in enumerate(chunks(piece, wanted, errors)):
        if k == 0:
            check_text_field(piece, chunk)
        ids, keep = ids_and_valid(piece.file, chunk, errors, o)
        if not keep.any():  # nothing usable (and the text column may not even be a string): nothing to cast
            continue
        table = chunk.table
        if not keep.all():
            table, ids = table.filter(pa.array(keep)), ids.filter(pa.array(keep))
        cols = {"id": ids, "text": pc.cast(table[o.text_field], pa.large_string())}
        for c in extra:
            cols[c] = (pc.cast(table[c], pa.large_string()) if c in table.column_names
                       else pa.nulls(table.num_rows, pa.large_string()))
        yield Part(piece.file, pa.table(cols), chunk.locs[keep], chunk.loc_kind)


def full_records(piece: Piece) -> Iterator[tuple[pa.Array, pa.Table]]:
    """(ids as read, records with every original field) of one piece's usable records, chunk by chunk: what output
    writers need. Bad records were accounted for when the pool was first read, so here they are skipped."""
    for chunk in chunks(piece, None, ErrorLog("skip")):
        ids, keep = ids_and_valid(piece.file, chunk, ErrorLog("skip"), piece.options)
        if keep.all():
            yield ids, chunk.table
        else:
            mask = pa.array(keep)
            yield ids.filter(mask), chunk.table.filter(mask)


def count_records(piece: Piece) -> int:
    """Engine task: how many usable records one piece holds (a record's position is its rank in reading order)."""
    return sum(part.table.num_rows for part in validated(piece, ErrorLog("skip")))


def check_text_field(piece: Piece, chunk: Chunk) -> None:
    """A text field that a file's records do not have at all is a wrong ``--text-field``, not a set of bad
    records (skipping them would drop everything): say so, listing the fields the records do have."""
    src, text_field, table = piece.file, piece.options.text_field, chunk.table
    if text_field in table.column_names and table[text_field].null_count < table.num_rows:
        return
    first = next(READERS[src.format](src, None, 64, ErrorLog("skip"), text_field), None)
    fields = first.table.column_names if first is not None else []
    if not fields or text_field in fields:
        return  # the field is there, only empty or null: those records are reported one by one
    raise ConfigError(f"{src.path}: the records have no field {text_field!r}; their fields are "
                      f"{', '.join(fields)} (choose the text with --text-field)")


def ids_and_valid(src: InputFile, chunk: Chunk, errors: ErrorLog, o: ReadOptions) -> tuple[pa.Array, np.ndarray]:
    """The record ids of a chunk and a mask of records with a usable text (reporting the others)."""
    table = chunk.table
    n = table.num_rows
    has_ids = o.id_field in table.column_names and table[o.id_field].null_count < n
    if has_ids:
        ids = pc.cast(table[o.id_field].combine_chunks(), pa.large_string())
    elif o.id_field != "id":
        raise ConfigError(f"{src.path}: no id field {o.id_field!r} in these records")
    else:
        ids = derived_ids(src, chunk)
    if o.text_field not in table.column_names:
        _report_rows(errors, src, chunk, np.ones(n, bool), "missing_text",
                     f"no field {o.text_field!r} (fields: {', '.join(table.column_names) or 'none'})")
        return ids, np.zeros(n, bool)
    text = table[o.text_field]
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        _report_rows(errors, src, chunk, np.ones(n, bool), "bad_text_type",
                     f"field {o.text_field!r} has type {text.type}, not string")
        return ids, np.zeros(n, bool)
    missing = text.is_null().to_numpy(zero_copy_only=False)
    filled = text.fill_null("")  # empty: no characters, or only (Unicode) whitespace; no trimmed copy is made
    empty = ~missing & pc.or_(pc.equal(pc.binary_length(filled), 0), pc.utf8_is_space(filled)).to_numpy(
        zero_copy_only=False)
    null_id = ids.is_null().to_numpy(zero_copy_only=False)
    # JSONL readers report null texts themselves, so a null left in a line format is an absent field
    _report_rows(errors, src, chunk, missing, "missing_text", f"record has no field {o.text_field!r}"
                 if chunk.loc_kind == "line" else f"field {o.text_field!r} is null")
    _report_rows(errors, src, chunk, empty, "empty_text", "record has an empty text")
    _report_rows(errors, src, chunk, null_id & ~missing & ~empty, "missing_id",
                 f"record has no value in id field {o.id_field!r}")
    return ids, ~(missing | empty | null_id)


def place(src: InputFile, loc_kind: str, loc: int) -> str:
    """Where a record is, for messages: ``file:line``, ``file row N``, or a .txt file's path."""
    if src.format == "txt":
        return src.path
    return f"{src.path}:{loc}" if loc_kind == "line" else f"{src.path} row {loc}"


def derived_ids(src: InputFile, chunk: Chunk) -> pa.Array:
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


def checked_ids(check: IdCheck | None, part: Part) -> pa.Array:
    """A part's ids through the read's duplicate-id check (which may raise, or rename repeats)."""
    ids = part.table.column("id").combine_chunks()
    return ids if check is None else check.apply(ids, part.place)


def rebatch(pending: list[pa.Table], size: int, final: bool) -> Iterator[pa.RecordBatch]:
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


class Batcher:
    """Tables in, batches of ``size`` rows out, in order (the last one may be short)."""

    def __init__(self, size: int):
        self.size = size
        self._pending: list[pa.Table] = []
        self._rows = 0

    def add(self, table: pa.Table) -> Iterator[pa.RecordBatch]:
        self._pending.append(table)
        self._rows += table.num_rows
        if self._rows >= self.size:
            yield from rebatch(self._pending, self.size, final=False)
            self._rows = sum(t.num_rows for t in self._pending)

    def flush(self) -> Iterator[pa.RecordBatch]:
        self._rows = 0
        yield from rebatch(self._pending, self.size, final=True)


@dataclass
class CarriedError:
    """An error a worker hit, sent back to be raised in the main process (thresher's errors, such as InputError,
    do not survive pickling as themselves)."""

    kind: type
    message: str
    attrs: dict

    @classmethod
    def of(cls, e: ThresherError) -> CarriedError:
        return cls(type(e), str(e), dict(vars(e)))

    def restore(self) -> ThresherError:
        e = self.kind.__new__(self.kind)
        Exception.__init__(e, self.message)
        vars(e).update(self.attrs)
        return e


@dataclass
class PieceResult:
    """What reading one piece gives back to the merging process: each part's ids and places, the piece's error
    log, and the error that stopped it (None if it was read to its end)."""

    index: int
    ids: list[pa.Array] = field(default_factory=list)
    locs: list[np.ndarray] = field(default_factory=list)
    loc_kinds: list[str] = field(default_factory=list)
    errors: ErrorLog = field(default_factory=ErrorLog)
    error: CarriedError | None = None

    @property
    def n_records(self) -> int:
        return sum(len(a) for a in self.ids)


class PieceReader:
    """Worker side: iterate :meth:`batches` (a piece's usable records in batches of the batch size), then send
    :meth:`result` to the main process for :class:`PieceMerge`."""

    def __init__(self, piece: Piece):
        self.piece = piece
        self._result = PieceResult(piece.index, errors=ErrorLog(piece.options.on_error))

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Validated batches (``id`` unchecked for repeats); an error stops the piece and is kept, not raised."""
        out, r = Batcher(self.piece.options.batch_size), self._result
        try:
            for part in validated(self.piece, r.errors):
                r.ids.append(part.table.column("id").combine_chunks())
                r.locs.append(part.locs)
                r.loc_kinds.append(part.loc_kind)
                yield from out.add(part.table)
        except ThresherError as e:
            r.error = CarriedError.of(e)
        yield from out.flush()

    def result(self) -> PieceResult:
        return self._result


class PieceMerge:
    """Main-process side: take the pieces' results in piece order, as one sequential read would have met them."""

    def __init__(self, errors: ErrorLog, check: IdCheck | None):
        self.errors = errors
        self.check = check
        self._next = 0

    def add(self, piece: Piece, result: PieceResult) -> pa.Array:
        """The piece's ids after the duplicate-id check (renamed under ``rename``); raises the piece's error, or
        a duplicate id, exactly where a sequential read would have."""
        if result.index != piece.index or piece.index != self._next:
            raise AssertionError(f"piece {result.index} merged out of order (expected {self._next})")
        self._next += 1
        self.errors.merge(result.errors)
        out = [checked_ids(self.check, Part(piece.file, pa.table({"id": ids}), locs, kind))
               for ids, locs, kind in zip(result.ids, result.locs, result.loc_kinds)]
        if result.error is not None:
            raise result.error.restore()
        return pa.concat_arrays(out) if out else pa.array([], pa.large_string())


__all__ = ["Batcher", "Piece", "PieceMerge", "PieceReader", "PieceResult", "ReadOptions", "count_records", "cut",
           "file_spans", "full_records", "validated"]
