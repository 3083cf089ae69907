"""One streaming reader per input format. Each yields :class:`Chunk` objects: Arrow tables with a location per row.

Readers only parse; checking that records have a usable id and text happens once, for every format, in
:mod:`thresher.io.dataset`. Problems a reader finds (bad JSON, bad UTF-8, a truncated archive, an empty file) go to
the :class:`~thresher.io.errors.ErrorLog`, which raises or counts them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from thresher.io.compression import CorruptStream, codec_of, open_binary
from thresher.io.errors import ErrorLog
from thresher.io.sources import InputFile


@dataclass
class Chunk:
    """Rows read from one file: ``locs`` are line numbers (line formats, 1-based) or row numbers (0-based)."""

    table: pa.Table
    locs: np.ndarray
    loc_kind: str  # "line" or "row"


Reader = Callable[[InputFile, "list[str] | None", int, ErrorLog, str], Iterator[Chunk]]


def _column(values: list) -> pa.Array:
    """An Arrow array from Python values; mixed types fall back to their string form (ids 1 and "a", say)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in values])


def _records_to_chunk(records: list[dict], locs: list[int], columns: list[str] | None) -> Chunk:
    if columns is None:
        try:
            table = pa.Table.from_pylist(records)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            names = list(dict.fromkeys(k for r in records for k in r))
            table = pa.table({k: _column([r.get(k) for r in records]) for k in names})
    else:
        table = pa.table({c: _column([r.get(c) for r in records]) for c in columns})
    return Chunk(table, np.asarray(locs, dtype=np.int64), "line")


def read_jsonl(src: InputFile, columns: list[str] | None, batch_size: int, errors: ErrorLog,
              text_field: str = "text", byte_range: tuple[int, int] | None = None,
              first_line: int = 1) -> Iterator[Chunk]:
    """JSON Lines, plain or compressed; blank lines are ignored; every other line must be a JSON object.

    A chunk holds the records of ``batch_size`` lines, counted from the file's first line, so a piece of the file
    (``byte_range``: bytes [start, stop) of a plain file, starting at line ``first_line``, a multiple of
    ``batch_size`` plus one; see :mod:`thresher.io.pieces`) gives the same chunks as the whole file."""
    records: list[dict] = []
    locs: list[int] = []
    lineno = first_line - 1
    n_seen = 0
    with open_binary(src.path) as f:
        try:
            for lineno, raw in enumerate(f if byte_range is None else _lines_between(f, *byte_range), first_line):
                if raw.strip():
                    n_seen += 1
                    rec = _json_record(src, raw, lineno, errors, text_field)
                    if rec is not None:
                        records.append(rec)
                        locs.append(lineno)
                if records and lineno % batch_size == 0:
                    yield _records_to_chunk(records, locs, columns)
                    records, locs = [], []
        except (CorruptStream, OSError) as e:
            # A truncated or corrupt archive: what was read so far is kept; the rest of the file is unknown.
            _report_unreadable(src, errors, e, f"line {lineno}", lineno + 1)
    if records:
        yield _records_to_chunk(records, locs, columns)
    if n_seen == 0 and byte_range is None:  # a piece is cut only from a file with a non-blank line
        errors.report(src.path, "empty_file", "file has no records", records=0)


def _lines_between(f, start: int, stop: int) -> Iterator[bytes]:
    """The lines of bytes [start, stop) of a plain file; ``start`` and ``stop`` are line starts (or the end)."""
    f.seek(start)
    for raw in f:
        yield raw
        start += len(raw)
        if start >= stop:
            return


def _json_record(src: InputFile, raw: bytes, lineno: int, errors: ErrorLog, text_field: str) -> dict | None:
    """The JSON object on one non-blank line, or None once its problem is reported."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        errors.report(src.path, "bad_utf8", f"invalid UTF-8 at byte {e.start} of the line", lineno)
        return None
    try:
        rec = json.loads(line.rstrip("\r\n"))  # so an error at the end of a line names its real column
    except json.JSONDecodeError as e:
        errors.report(src.path, "bad_json", f"malformed JSON ({e.msg} at column {e.colno})", lineno)
        return None
    if not isinstance(rec, dict):
        errors.report(src.path, "not_an_object", f"expected a JSON object, got {type(rec).__name__}", lineno)
        return None
    text = rec.get(text_field)
    if text is None and text_field in rec:
        errors.report(src.path, "missing_text", f"field {text_field!r} is null", lineno)
        return None
    if text is not None and not isinstance(text, str):
        errors.report(src.path, "bad_text_type", f"field {text_field!r} is a {type(text).__name__}, not a string",
                      lineno)
        return None
    return rec


def _report_unreadable(src: InputFile, errors: ErrorLog, e: Exception, last_good: str, line: int | None) -> None:
    """A file that cannot be read to its end: one lost record (at least) counted, the last good place named."""
    detail = str(e) if isinstance(e, CorruptStream) else f"{type(e).__name__}: {e}"
    errors.report(src.path, "truncated_or_corrupt_file", f"cannot read past {last_good} ({detail})", line, records=1)


def read_parquet(src: InputFile, columns: list[str] | None, batch_size: int, errors: ErrorLog,
                 text_field: str = "text", row_groups: tuple[int, int] | None = None,
                 first_row: int = 0, rows: tuple[int, int] | None = None) -> Iterator[Chunk]:
    """Parquet, streamed by row group and batch; a piece of a big file (see :mod:`thresher.io.pieces`) reads only
    row groups ``row_groups`` (first, stop), whose first row is row ``first_row`` of the file, and of a single row
    group only its rows ``rows`` (first, stop), ``first_row`` being the file's number of the first of them.

    Chunks start at each row group's first row and every ``batch_size`` rows after it, so that every piece gives
    the chunks of the whole file. Parquet cannot seek to a row: a piece inside a row group decodes the rows before
    its own (and stops after its last), unless this process stopped at or before its first row last time
    (:class:`_GroupCursor`)."""
    try:
        st = os.stat(src.path)  # before opening: the cursor's key must describe the file this read opens
        # Buffered page reads instead of pre-buffering whole column chunks: less memory, and faster here.
        pf = pq.ParquetFile(src.path, pre_buffer=False, buffer_size=1 << 20)
    except (pa.ArrowInvalid, OSError) as e:
        errors.report(src.path, "corrupt_file", f"not a readable Parquet file ({e})", records=0)
        return
    if pf.metadata.num_rows == 0:
        errors.report(src.path, "empty_file", "file has no records", records=0)
        return
    cols = _present(pf.schema_arrow.names, columns)
    if rows is not None:  # one piece of one row group
        stamp = (src.path, st.st_size, st.st_mtime_ns, st.st_ino)
        batches = _GroupCursor.rows(stamp, pf, row_groups[0], cols, batch_size, *rows)
    else:
        groups = range(pf.num_row_groups) if row_groups is None else range(*row_groups)
        batches = (b for g in groups for b in pf.iter_batches(batch_size=batch_size, row_groups=[g], columns=cols))
    yield from _guarded_row_chunks(src, errors, batches, None, batch_size, first_row)


class _GroupCursor:
    """Where this process stopped in a big row group: a worker that reads several pieces of one group (in order, as
    engines hand them out) continues from the end of its last piece instead of decoding the group from its start
    again, so each process decodes a group at most once per pass instead of once per piece.

    Kept per thread; only for the same file unchanged (path, size, mtime), group, columns and batch size."""

    _local = threading.local()

    def __init__(self, key: tuple, batches: Iterator[pa.RecordBatch]) -> None:
        self.key, self.batches, self.at, self.rest = key, batches, 0, None

    @classmethod
    def rows(cls, stamp: tuple, pf: pq.ParquetFile, group: int, cols: list[str] | None, batch_size: int, start: int,
             stop: int) -> Iterator[pa.RecordBatch]:
        """Rows [start, stop) of row group ``group`` of the file ``stamp`` (path, size, mtime, inode) names (the ones
        before are decoded and dropped, unless this process stopped at or before ``start`` last time)."""
        key = (*stamp, group, tuple(cols or ()), batch_size)
        cursor = getattr(cls._local, "cursor", None)
        if cursor is None or cursor.key != key or cursor.at > start:
            cursor = cls(key, pf.iter_batches(batch_size=batch_size, row_groups=[group], columns=cols))
        cls._local.cursor = None  # taken: an error or an abandoned read must not leave it half-used
        while cursor.at < stop:
            batch = cursor.rest if cursor.rest is not None else next(cursor.batches, None)
            cursor.rest = None
            if batch is None:
                return
            lo, hi = max(start - cursor.at, 0), min(stop - cursor.at, batch.num_rows)
            if hi < batch.num_rows:  # the next piece's rows start inside this batch
                cursor.rest = batch.slice(hi)
            cursor.at += hi
            if hi > lo:
                yield batch.slice(lo, hi - lo) if (lo, hi) != (0, batch.num_rows) else batch
        if cursor.at < pf.metadata.row_group(group).num_rows:  # a later piece may continue; the last lets go
            cls._local.cursor = cursor


def read_arrow(src: InputFile, columns: list[str] | None, batch_size: int, errors: ErrorLog,
              text_field: str = "text") -> Iterator[Chunk]:
    """Arrow IPC files or streams (what Hugging Face ``save_to_disk`` writes), without the ``datasets`` package."""
    source = pa.memory_map(src.path)
    try:
        reader = pa.ipc.open_stream(source)
        batches: Iterator[pa.RecordBatch] = iter(reader)
        schema = reader.schema
    except pa.ArrowInvalid:
        try:
            source.seek(0)
            fr = pa.ipc.open_file(source)
        except pa.ArrowInvalid as e:
            errors.report(src.path, "corrupt_file", f"not a readable Arrow file ({e})", records=0)
            return
        batches = (fr.get_batch(i) for i in range(fr.num_record_batches))
        schema = fr.schema
    rows = yield from _guarded_row_chunks(src, errors, batches, _present(schema.names, columns), batch_size)
    if rows == 0:
        errors.report(src.path, "empty_file", "file has no records", records=0)


def read_csv(src: InputFile, columns: list[str] | None, batch_size: int, errors: ErrorLog,
              text_field: str = "text") -> Iterator[Chunk]:
    """CSV or TSV (by suffix) with a header row; quoted fields may span lines; compressed ones via open_binary."""
    problems: list[pacsv.InvalidRow] = []
    rows_read = [0]
    failed_before = errors.n_failed  # "empty" means no rows and no bad ones in this file

    def on_invalid(row: pacsv.InvalidRow) -> str:
        problems.append(row)
        return "skip" if errors.on_error == "skip" else "error"

    def checked(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            _flush_csv_problems(src, problems, errors)
            rows_read[0] += batch.num_rows
            yield batch

    delimiter = "\t" if src.format == "tsv" else ","
    stream = open_binary(src.path) if codec_of(src.path) else pa.input_stream(src.path)
    try:
        with stream:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=1 << 22),
                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                                 invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(strings_can_be_null=False,
                                                     column_types={c: pa.string() for c in (columns or [])}),
            )
            start = yield from _row_chunks(checked(reader), _present(reader.schema.names, columns), batch_size)
    except (CorruptStream, OSError) as e:
        _flush_csv_problems(src, problems, errors)
        _report_unreadable(src, errors, e, f"row {rows_read[0]}", None)
        return
    except pa.ArrowInvalid as e:
        _flush_csv_problems(src, problems, errors)
        if "Empty CSV file" in str(e):
            errors.report(src.path, "empty_file", "file has no records", records=0)
            return
        # Arrow stops at the first block it cannot parse or convert: the rest of the file is lost (counted as one).
        errors.report(src.path, "bad_csv", f"cannot read past row {rows_read[0]} ({e})", records=1)
        return
    _flush_csv_problems(src, problems, errors)
    if start == 0 and errors.n_failed == failed_before:
        errors.report(src.path, "empty_file", "file has no records", records=0)


def _flush_csv_problems(src: InputFile, problems: list, errors: ErrorLog) -> None:
    for row in problems:
        errors.report(src.path, "bad_csv_row",
                      f"expected {row.expected_columns} fields, found {row.actual_columns}", row.number)
    problems.clear()


def read_txt(src: InputFile, columns: list[str] | None, batch_size: int, errors: ErrorLog,
              text_field: str = "text") -> Iterator[Chunk]:
    """A plain-text file is one record: its whole content; its id is derived from the file name."""
    try:
        with open_binary(src.path) as f:
            data = f.read()
    except (CorruptStream, OSError) as e:
        _report_unreadable(src, errors, e, "its start", None)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        errors.report(src.path, "bad_utf8", f"invalid UTF-8 at byte {e.start}", line)
        return
    yield Chunk(pa.table({text_field: pa.array([text], pa.large_string())}), np.array([0], dtype=np.int64), "row")


def _row_chunks(batches: Iterable[pa.RecordBatch], columns: list[str] | None,
                batch_size: int, start: int = 0) -> Generator[Chunk, None, int]:
    """Record batches cut to ``batch_size`` rows, with 0-based row numbers from ``start``; returns the row number
    after the last row."""
    for big in batches:
        if columns is not None:
            big = big.select(columns)
        for off in range(0, big.num_rows, batch_size):
            part = big.slice(off, batch_size)
            yield Chunk(pa.Table.from_batches([part]), np.arange(start, start + part.num_rows, dtype=np.int64), "row")
            start += part.num_rows
    return start


def _guarded_row_chunks(src: InputFile, errors: ErrorLog, batches: Iterable[pa.RecordBatch],
                        columns: list[str] | None, batch_size: int, start: int = 0) -> Generator[Chunk, None, int]:
    """:func:`_row_chunks` of a binary table file whose data may be damaged: a bad page ends the file (or the
    piece of it being read), reported."""
    rows = [start]

    def counted() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows[0] += batch.num_rows
            yield batch

    try:
        return (yield from _row_chunks(counted(), columns, batch_size, start))
    except (pa.ArrowException, OSError) as e:  # ArrowInvalid, ArrowIOError, a bad decompression of a page, ...
        _report_unreadable(src, errors, e, f"row {rows[0]}", None)
        return rows[0]


def _present(names: list[str], columns: list[str] | None) -> list[str] | None:
    """The requested columns that exist in a tabular file (missing text is checked by the dataset layer)."""
    return None if columns is None else [c for c in columns if c in names]


READERS: dict[str, Reader] = {
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "arrow": read_arrow,
    "csv": read_csv,
    "tsv": read_csv,
    "txt": read_txt,
}
