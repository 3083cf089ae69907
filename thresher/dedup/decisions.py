"""One dedup job's per-record decisions, combined over its methods and written as a table a slice at a time.

A record is dropped if any method drops it; when exact and near-duplicate detection both ran, an exact reason wins
over a near one, and a record's cluster is always a kept record: an exact copy of a record that near-duplicate
detection then dropped belongs to the cluster of the record kept for that one (its reason still names the copy it
repeats). Only the records that have a duplicate are held (about 26 bytes each, plus the ids); every other
record is kept and is its own cluster, and the table's slices are filled in from that as they are written, so no
per-record array of the whole pool is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from thresher.dedup.clusters import DedupResult, find_sorted, reason_strings

#: Kinds of reason, in the order their codes number them.
KINDS = ("exact", "near", "semantic")
#: Rows per written slice of the decision table.
SLICE_ROWS = 1 << 16


def _kept_of(result: DedupResult, records: np.ndarray) -> np.ndarray:
    """The record ``result`` keeps for each of ``records`` (increasing): itself unless it is a member."""
    out = records.copy()
    at, found = find_sorted(result.members, records)
    out[found] = result.kept_of[at[found]]
    return out


def _kept_at_end(members: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Follow each member's target while it is itself a dropped member (an exact copy of a near-duplicate), by
    pointer jumping, to the record finally kept; methods keep by the same rule, so chains end."""
    for _ in range(64):
        at, inside = find_sorted(members, target)
        step = np.where(inside, target[at], target)
        if np.array_equal(step, target):
            return target
        target = step
    raise AssertionError("dedup decisions form a cycle")  # pragma: no cover - keep rules are one total order


@dataclass
class Decisions:
    """The decisions of ``n`` records in reading order, held for the ``members`` (records with a duplicate,
    increasing): the kept record of each one's cluster, whether it is kept, which method decided (``kind``: an
    index into :data:`KINDS`), the record its reason names (``named``; default the kept one), and when two methods
    ran, each one's cluster."""

    n: int
    ids: pa.Array | None
    members: np.ndarray
    cluster: np.ndarray
    kind: np.ndarray
    method_clusters: dict[str, np.ndarray] = field(default_factory=dict)
    named: np.ndarray | None = None

    @classmethod
    def of(cls, results: dict[str, DedupResult]) -> Decisions:
        """The decisions of one method, or of exact and near together (exact first)."""
        if len(results) == 1:
            (r,) = results.values()
            return cls(r.n, r.ids, r.members, r.kept_of, np.full(len(r.members), KINDS.index(r.kind), np.int8))
        ex, near = results["exact"], results["minhash"]
        members = np.union1d(ex.members, near.members)
        by_exact, by_near = _kept_of(ex, members), _kept_of(near, members)
        decided_by_near = by_exact == members  # records exact dedup kept: near-duplicate detection decides
        kind = np.where(decided_by_near, KINDS.index("near"), KINDS.index("exact")).astype(np.int8)
        named = np.where(decided_by_near, by_near, by_exact)
        return cls(ex.n, ex.ids, members, _kept_at_end(members, named), kind,
                   {"dup_exact_cluster": by_exact, "dup_near_cluster": by_near}, named)

    def __len__(self) -> int:
        return self.n

    @property
    def member_kept(self) -> np.ndarray:
        return self.cluster == self.members

    def dropped_positions(self) -> np.ndarray:
        """The dropped records, increasing."""
        return self.members[~self.member_kept]

    @property
    def n_kept(self) -> int:
        return self.n - int((~self.member_kept).sum())

    def dropped(self) -> dict[str, int]:
        """Records dropped, by kind of reason."""
        counts = np.bincount(self.kind[~self.member_kept], minlength=len(KINDS))
        return {kind: int(c) for kind, c in zip(KINDS, counts)}

    def _rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rows ``start:stop``: each one's cluster, reason kind and named record, and which members fall there."""
        lo, hi = np.searchsorted(self.members, [start, stop])
        cluster = np.arange(start, stop, dtype=np.int64)
        kind = np.zeros(stop - start, np.int8)
        local = self.members[lo:hi] - start
        cluster[local] = self.cluster[lo:hi]
        kind[local] = self.kind[lo:hi]
        named = cluster.copy()
        if self.named is not None:
            named[local] = self.named[lo:hi]
        return cluster, kind, named, np.arange(lo, hi)

    def keep_and_reasons(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, pa.Array]:
        """Whether each record of rows ``start:stop`` is kept, and ``<kind>_duplicate_of:<id>`` (null if kept)."""
        stop = self.n if stop is None else stop
        cluster, kind, named, _ = self._rows(start, stop)
        keep = cluster == np.arange(start, stop)
        return keep, reason_strings(self.ids, keep, named, kind, list(KINDS), start)

    def table(self, start: int = 0, stop: int | None = None) -> pa.Table:
        """``id, dup_cluster, dup_keep, dup_reason`` (and each method's cluster) of rows ``start:stop``."""
        stop = self.n if stop is None else min(stop, self.n)
        cluster, kind, named, at = self._rows(start, stop)
        keep = cluster == np.arange(start, stop)
        cols = {} if self.ids is None else {"id": self.ids.slice(start, stop - start)}
        cols |= {"dup_cluster": pa.array(cluster), "dup_keep": pa.array(keep),
                 "dup_reason": reason_strings(self.ids, keep, named, kind, list(KINDS), start)}
        for name, per_member in self.method_clusters.items():
            column = np.arange(start, stop, dtype=np.int64)
            column[self.members[at] - start] = per_member[at]
            cols[name] = pa.array(column)
        return pa.table(cols)

    def slices(self, rows: int = SLICE_ROWS) -> Iterator[pa.Table]:
        """The table in consecutive slices of ``rows`` rows (at least one slice)."""
        for start in range(0, max(self.n, 1), rows):
            yield self.table(start, start + rows)
