"""Map stages over a dataset's pieces: each engine task reads its own piece and runs the stage on its batches.

The main process sends only where each piece is (:class:`~thresher.io.pieces.Piece`, a few hundred bytes) and the
stage's arguments; the text never passes through it. It merges the pieces' reads in reading order
(:class:`~thresher.io.pieces.PieceMerge`): ids checked for repeats, error logs merged, and a bad record, a repeated
id or an error of the stage itself raised exactly where a sequential read would have met it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from thresher.errors import ThresherError
from thresher.io.errors import ErrorLog
from thresher.io.pieces import CarriedError, Piece, PieceReader, PieceResult


def run_piece(task: Callable[..., Any], args: tuple, piece: Piece, combine: Callable[[list], Any] | None
              ) -> tuple[Any, PieceResult, CarriedError | None]:
    """Worker task: read ``piece`` and call ``task(batch, (piece index, part), *args)`` on each of its batches.

    Returns the batches' results (or ``combine`` of them, made here so that only a summary travels), the piece's
    read for :class:`~thresher.io.pieces.PieceMerge`, and the error that stopped the stage (a thresher error is
    carried back, to be raised after the piece's read has been merged)."""
    reader = PieceReader(piece)
    out: list = []
    failed = None
    try:
        for part, batch in enumerate(reader.batches()):
            out.append(task(batch, (piece.index, part), *args))
    except ThresherError as e:  # the records up to here were read: merge them first (an earlier error wins)
        failed = CarriedError.of(e)
    return (combine(out) if combine is not None else out), reader.result(), failed


def map_pieces(dataset, engine, task: Callable[..., Any], args: tuple | Callable[[Piece], tuple] = (),
               errors: ErrorLog | None = None,
               extra_columns: Iterable[str] = (), progress_bar=None,
               combine: Callable[[list], Any] | None = None) -> Iterator[tuple[pa.Array, Any]]:
    """Yield ``(ids, results)`` per piece of ``dataset``, in reading order: the piece's checked ids and the list of
    ``task(batch, (piece, part), *args)`` over its batches (or ``combine`` of that list, made by the worker).

    ``task`` runs where the engine runs it and reads nothing but its batch; batches have ``id``, ``text`` and
    ``extra_columns``; every batch of a piece but its last has the dataset's batch size. ``args`` may be a function
    of the piece, for what differs from piece to piece. ``errors`` collects the bad records (the dataset's
    policy); ``progress_bar`` is advanced by each piece's records. Once the last piece is merged, the dataset
    remembers the duplicate-id outcome."""
    errors = errors if errors is not None else ErrorLog(dataset.on_error)
    merge = dataset.merge(errors)
    pieces = dataset.pieces(extra_columns)
    items = ((task, tuple(args(piece) if callable(args) else args), piece, combine) for piece in pieces)
    for piece, (out, read, failed) in zip(pieces, engine.map(run_piece, items)):
        ids = merge.add(piece, read)  # raises a bad record or repeated id where a sequential read would
        if failed is not None:
            raise failed.restore()
        if progress_bar is not None:
            progress_bar.update(read.n_records)
        yield ids, out
    dataset.merged(merge)


__all__ = ["map_pieces", "run_piece"]
