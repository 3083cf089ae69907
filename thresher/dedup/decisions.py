"""One dedup job's per-record decisions, combined over its methods and written as a table a slice at a time.

A record is dropped if any method drops it; when exact and near-duplicate detection both ran, an exact reason wins
over a near one. The decisions are held as numpy arrays (about 20 bytes a record plus ids); the reason strings are
built only for the slice being written, so the whole table of strings never sits in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from thresher.dedup.clusters import DedupResult, reason_strings

#: Kinds of reason, in the order their codes number them.
KINDS = ("exact", "near", "semantic")
#: Rows per written slice of the decision table.
SLICE_ROWS = 1 << 16


@dataclass
class Decisions:
    """Per-record decisions in reading order: kept or not, the kept record of its cluster, which method dropped it
    (``kind``: an index into :data:`KINDS`), and when two methods ran, each one's cluster."""

    ids: pa.Array | None
    keep: np.ndarray
    cluster: np.ndarray
    duplicate_of: np.ndarray
    kind: np.ndarray
    method_clusters: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, results: dict[str, DedupResult]) -> Decisions:
        """The decisions of one method, or of exact and near together (exact first)."""
        if len(results) == 1:
            (r,) = results.values()
            return cls(r.ids, r.keep, r.cluster, r.duplicate_of, np.full(r.n_records, KINDS.index(r.kind), np.int8))
        ex, near = results["exact"], results["minhash"]
        by_near = ex.keep  # records exact dedup kept: near-duplicate detection decides
        kind = np.where(by_near, KINDS.index("near"), KINDS.index("exact")).astype(np.int8)
        return cls(ex.ids, ex.keep & near.keep, np.where(by_near, near.cluster, ex.cluster),
                   np.where(by_near, near.duplicate_of, ex.duplicate_of), kind,
                   {"dup_exact_cluster": ex.cluster, "dup_near_cluster": near.cluster})

    def __len__(self) -> int:
        return len(self.keep)

    def dropped(self) -> dict[str, int]:
        """Records dropped, by kind of reason."""
        counts = np.bincount(self.kind[~self.keep], minlength=len(KINDS))
        return {kind: int(c) for kind, c in zip(KINDS, counts)}

    def reasons(self, start: int = 0, stop: int | None = None) -> pa.Array:
        """``<kind>_duplicate_of:<id>`` for dropped records of rows ``start:stop``, null for kept ones."""
        rows = slice(start, stop)
        return reason_strings(self.ids, self.keep[rows], self.duplicate_of[rows], self.kind[rows], list(KINDS))

    def table(self, start: int = 0, stop: int | None = None) -> pa.Table:
        """``id, dup_cluster, dup_keep, dup_reason`` (and each method's cluster) of rows ``start:stop``."""
        rows = slice(start, stop)
        n = len(self.keep[rows])
        cols = {} if self.ids is None else {"id": self.ids.slice(start, n)}
        cols |= {"dup_cluster": pa.array(self.cluster[rows]), "dup_keep": pa.array(self.keep[rows]),
                 "dup_reason": self.reasons(start, stop)}
        cols |= {name: pa.array(c[rows]) for name, c in self.method_clusters.items()}
        return pa.table(cols)

    def slices(self, rows: int = SLICE_ROWS) -> Iterator[pa.Table]:
        """The table in consecutive slices of ``rows`` rows (at least one slice)."""
        for start in range(0, max(len(self), 1), rows):
            yield self.table(start, start + rows)
