"""Apply an LF set to a dataset: streaming, in parallel, into a sparse :class:`LabelMatrix`.

Each engine task reads its own piece of the dataset (the main process sends only where it is, and merges ids and
errors in reading order); the votes come back in reading order, and each record's vote depends only on that record,
so the matrix is identical at any worker count or batch size. An LF that raises stops the run with an error naming
the LF and the record id; with ``on_error="skip"`` the failure counts as an abstain and is reported per LF. An LF
that takes longer than ``lf_timeout`` seconds on a batch, calls ``sys.exit`` or returns the wrong number of votes
fails the same way.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field

import cloudpickle
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from thresher.engine import Engine, LocalEngine, make_engine
from thresher.engine.pieces import map_pieces, run_piece
from thresher.errors import ConfigError
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.label.lf_files import LFSet
from thresher.label.lfs import (
    ABSTAIN,
    CallableLF,
    LFError,
    LFTimeout,
    RegexLF,
    Votes,
    ascii_view,
    match_re2_lfs,
    time_limit,
)
from thresher.label.matrix import LabelMatrix
from thresher.progress import Progress, known_rows

#: Seconds each LF may take on one batch before it fails (``--lf-timeout``): generous for a model-based LF on a
#: batch of 1,000 records, short enough that an LF stuck in a loop or a sleep stops the run with its name.
DEFAULT_LF_TIMEOUT = 60.0
#: Failed (LF, record) examples kept verbatim per LF; the rest are only counted.
MAX_FAILURE_EXAMPLES = 5


@dataclass
class Applied:
    """The votes of every record read (reading order), the ids, any extra columns asked for, and LF failures."""

    ids: pa.Array
    matrix: LabelMatrix
    extra: dict[str, pa.Array] = field(default_factory=dict)
    lf_failures: dict[str, int] = field(default_factory=dict)
    failure_examples: dict[str, list[str]] = field(default_factory=dict)
    engine: dict = field(default_factory=dict)


def apply_batch(lf_set: LFSet, batch: pa.Table, on_error: str,
                lf_timeout: float | None = None) -> tuple[sp.csr_matrix, dict[str, list[str]]]:
    """Votes of one batch as CSR (stored value = class + 1) and each LF's failures (``id: why``).

    Each LF (but the built-in model LFs, see ``LabelingFunction.time_limited``) gets ``lf_timeout`` seconds for the
    batch; one that takes longer fails on the records it had not
    finished (an error naming it, or with ``on_error="skip"`` abstains that are counted)."""
    columns, failures = [], {}
    ids = batch["id"]
    text = batch["text"]
    regex = [f for f in lf_set.lfs if isinstance(f, RegexLF)]
    # made once per batch for every LF that matches on it (each pattern's ASCII-class spelling needs it)
    view = ascii_view(text) if any(f.view_pattern is not None for f in regex) else None
    on_re2 = [f for f in regex if f.engine == "re2"]  # linear time: no limit needed
    hits = dict(zip((f.name for f in on_re2), match_re2_lfs(on_re2, text, view=view)))
    texts = None  # the texts as Python strings, made once for all Python LFs
    for f in lf_set.lfs:
        try:
            if f.name in hits:
                result = f.votes(hits[f.name], lf_set.classes)
            elif isinstance(f, RegexLF):
                with time_limit(lf_timeout):
                    result = f.votes(f.matches(text, view=view), lf_set.classes)
            elif isinstance(f, CallableLF):
                texts = batch["text"].to_pylist() if texts is None else texts
                with time_limit(lf_timeout):
                    result = f.apply(batch, lf_set.classes, on_error, texts=texts)
            else:
                with time_limit(lf_timeout if f.time_limited else None):
                    result = f.apply(batch, lf_set.classes, on_error)
        except LFTimeout as e:  # a vectorised LF (Python re on some records) ran out of time on the whole batch
            detail = e.detail(batch.num_rows, ids[0].as_py())
            if on_error == "raise":
                raise LFError(f.name, ids[0].as_py(), detail) from None
            result = Votes(np.full(batch.num_rows, ABSTAIN, dtype=np.int32), list(range(batch.num_rows)),
                           [f"{i}: {detail}" for i in ids.to_pylist()])
        if len(result.votes) != batch.num_rows:
            raise LFError(f.name, ids[0].as_py(), f"gave {len(result.votes)} votes for a batch of {batch.num_rows} "
                                                  "records")
        columns.append(result.votes)
        if result.failures:
            failures[f.name] = result.failures
    return sp.csr_matrix(np.stack(columns, axis=1) + 1, dtype=np.int32), failures


def apply_lfs(dataset: Dataset, lf_set: LFSet, errors: ErrorLog | None = None, *, workers: int | None = None,
              extra_columns: tuple[str, ...] = (), scores: pa.Table | None = None, on_error: str | None = None,
              progress: bool = False, check_columns: bool = True,
              lf_timeout: float | None = DEFAULT_LF_TIMEOUT, engine: Engine | None = None) -> Applied:
    """Run every LF over ``dataset``. ``scores`` (a table with ``id``) supplies columns score LFs read that the
    records lack; ``extra_columns`` are collected from the records and returned (e.g. dev labels).

    ``check_columns``: a column a score LF reads that no record has a value in (in the records or in ``scores``)
    is an error naming the LF, not an LF that silently abstains everywhere. (Record ids are unique: the dataset
    layer checks them as it reads.) ``lf_timeout``: seconds each LF may take per batch (``None``
    or 0: no limit); a slower LF fails like an LF that raised. ``engine``: run on this engine (else one of
    ``workers`` is made and closed)."""
    if lf_timeout is not None and not (isinstance(lf_timeout, (int, float)) and lf_timeout >= 0):
        raise ConfigError(f"lf_timeout must be a number of seconds >= 0 (0 = no limit), got {lf_timeout!r}")
    errors = errors or ErrorLog(dataset.on_error)
    on_error = on_error or dataset.on_error
    from_scores = [c for c in lf_set.columns if scores is not None and c in scores.column_names]
    wanted = tuple(dict.fromkeys([*extra_columns, *(c for c in lf_set.columns if c not in from_scores)]))
    engine_note = None
    if (workers or 0) != 1:
        try:  # as the engine sends them: what a script defines in __main__ goes by value
            cloudpickle.dumps(lf_set)
        except Exception as e:  # noqa: BLE001 -- unpicklable state (open files, locks): run in this process instead
            workers, engine_note = 1, f"LFs cannot be sent to worker processes ({type(e).__name__}); ran in-process"

    ids, parts, extra = [], [], {c: [] for c in extra_columns}
    seen: set[str] = set()  # LF columns with a value in at least one record
    failures: Counter = Counter()
    examples: dict[str, list[str]] = {}
    bar = Progress("label", total=known_rows(dataset), enabled=progress)
    side = scores.select(["id", *from_scores]) if from_scores else None  # only the columns LFs read
    args = (lf_set, on_error, lf_timeout, tuple(extra_columns), side, dataset.batch_size, None)
    own = LocalEngine(1) if engine_note else make_engine(workers) if engine is None else None  # unpicklable: here
    with own or contextlib.nullcontext(engine) as engine:
        for piece_ids, done in map_pieces(dataset, engine, label_part, args, errors, wanted, bar):
            if side is not None and not _same_ids(piece_ids, done):
                # renamed repeats (duplicate_ids="rename") look their scores up by their new ids: the piece again,
                # in this process, with its ids as checked (rare: only pieces holding a repeated id)
                piece = dataset.pieces(wanted)[len(ids)]
                done, _, failed = run_piece(label_part, (*args[:-1], piece_ids), piece, None)
                if failed is not None:
                    raise failed.restore()
            ids.append(piece_ids)
            for votes, failed, columns, has_value, _ in done:
                parts.append(votes)
                seen.update(has_value)
                for c in extra:
                    extra[c].append(columns[c])
                for name, rows in failed.items():
                    failures[name] += len(rows)
                    kept = examples.setdefault(name, [])
                    kept.extend(rows[:MAX_FAILURE_EXAMPLES - len(kept)])
        info = engine.describe()
    bar.close()
    if not parts:
        raise ConfigError(f"no usable records in {', '.join(dataset.paths)}")
    if engine_note:
        info["note"] = engine_note
    if check_columns:
        _check_columns(lf_set, seen, from_scores, scores is not None)
    all_ids = pa.concat_arrays(ids)
    votes = sp.vstack(parts, format="csr")
    return Applied(ids=all_ids, matrix=LabelMatrix(votes, len(lf_set.classes), lf_set.names),
                   extra={c: pa.concat_arrays(v) for c, v in extra.items()},
                   lf_failures={n: failures.get(n, 0) for n in lf_set.names},
                   failure_examples=examples, engine=info)


def label_part(batch: pa.RecordBatch, where: tuple[int, int], lf_set: LFSet, on_error: str,
               lf_timeout: float | None, extra_columns: tuple[str, ...], scores: pa.Table | None, batch_size: int,
               piece_ids: pa.Array | None) -> tuple:
    """Worker task: one batch's votes and LF failures (:func:`apply_batch`), its ``extra_columns``, the LF columns
    that have a value in it, and its ids. ``scores``: side-car columns joined by id; ``piece_ids``: the piece's ids
    as checked for repeats, when they differ from the ids read."""
    table = pa.Table.from_batches([batch])
    if piece_ids is not None:
        table = table.set_column(0, "id", piece_ids.slice(where[1] * batch_size, batch.num_rows))
    if scores is not None:
        table = _join_scores(table, scores, [c for c in scores.column_names if c != "id"])
    votes, failed = apply_batch(lf_set, table, on_error, lf_timeout)
    has_value = {c for c in lf_set.columns if table[c].null_count < table.num_rows}
    return (votes, failed, {c: table[c].combine_chunks() for c in extra_columns}, has_value,
            table["id"].combine_chunks() if scores is not None else None)


def _same_ids(checked: pa.Array, done: list[tuple]) -> bool:
    """The piece's ids as checked equal those its batches were read (and their scores looked up) with."""
    read = [part[-1] for part in done]
    return not read or pa.concat_arrays(read).equals(checked)


def _check_columns(lf_set: LFSet, seen: set[str], from_scores: list[str], has_scores: bool) -> None:
    """A score LF whose column has no value in any record would abstain on everything: say so instead."""
    for f in lf_set.lfs:
        for c in f.columns:
            if c in seen:
                continue
            if c in from_scores:
                raise ConfigError(f"LF {f.name!r}: column {c!r} of the --scores-from run has no value for any "
                                  "record (were its ids scored from another pool?)")
            where = "the pool or the --scores-from run" if has_scores else \
                "the pool (a side-car score needs --scores-from RUN)"
            raise ConfigError(f"LF {f.name!r}: column {c!r} is not in {where}")


def _join_scores(table: pa.Table, scores: pa.Table, columns: list[str]) -> pa.Table:
    """Add side-car score ``columns`` to a batch by id (null where a record has no score)."""
    idx = pc.index_in(table["id"], value_set=scores["id"].combine_chunks())
    for c in columns:
        table = table.append_column(c, pc.take(scores[c], idx))
    return table
