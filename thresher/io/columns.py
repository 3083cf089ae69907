"""Arrow columns as numpy arrays, the one way every job reads a score column."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def as_float(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A score column as float64 with NaN for nulls (booleans become 0/1)."""
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int8())
    return np.asarray(column.cast(pa.float64()).fill_null(np.nan).to_numpy(), dtype=np.float64)
