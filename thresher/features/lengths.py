"""Length columns that selectors budget on: whitespace-separated tokens per record, computed on raw UTF-8 bytes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 32]] = True


def whitespace_token_counts(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Number of runs of non-whitespace bytes per record (ASCII whitespace), i.e. ``len(text.split())`` for
    ASCII-spaced text; vectorised over the batch's byte buffer."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if not pa.types.is_large_string(text.type):
        text = text.cast(pa.large_string())
    n = len(text)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[text.offset: text.offset + n + 1]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]]
    offsets = offsets - offsets[0]
    is_space = _ASCII_SPACE[data]
    # A token starts at a non-space byte that is first in its record or follows a space.
    starts = ~is_space
    starts[1:] &= is_space[:-1]
    record_first = offsets[:-1][offsets[:-1] < len(data)]
    starts[record_first] = ~is_space[record_first]
    before = np.searchsorted(np.flatnonzero(starts), offsets)  # token starts before each record boundary
    return np.diff(before).astype(np.int64)
