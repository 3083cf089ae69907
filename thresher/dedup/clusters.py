"""Duplicate clusters: connected components of the duplicate-pair graph, one kept record per cluster, and the result
type that exact and near-duplicate detection share.

Records are numbered in reading order (0..n-1). A cluster is named by the index of the record it keeps, so the
output does not depend on how the input was batched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.errors import ConfigError

KEEP_POLICIES = ("first", "longest", "highest")


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label of each of ``n`` records given duplicate pairs ``(a[k], b[k])``: the smallest member's index.

    scipy's connected-components traversal in C, so a million pairs cost milliseconds; labels are then canonicalised
    to the smallest index in each component, which makes them independent of pair order.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if len(a) == 0:
        return np.arange(n, dtype=np.int64)
    from scipy.sparse import coo_matrix  # scipy.sparse costs ~0.2 s to import: only when there are pairs
    from scipy.sparse.csgraph import connected_components as scipy_components

    graph = coo_matrix((np.ones(len(a), dtype=np.int32), (a, b)), shape=(n, n)).tocsr()
    _, labels = scipy_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n, dtype=np.int64))
    return smallest[labels]


def choose_kept(labels: np.ndarray, keep: str, lengths: np.ndarray | None = None,
                scores: np.ndarray | None = None) -> np.ndarray:
    """For every record, the index of the record its cluster keeps.

    ``first`` keeps the earliest record in reading order, ``longest`` the longest text (``lengths``), ``highest``
    the highest ``scores`` (NaN counts as lowest); ties always go to the earliest record.
    """
    n = len(labels)
    index = np.arange(n, dtype=np.int64)
    if keep == "first":
        order = np.lexsort((index, labels))
    elif keep == "longest":
        if lengths is None or len(lengths) != n:
            raise ConfigError("keep='longest' needs one length per record")
        order = np.lexsort((index, -np.asarray(lengths, dtype=np.int64), labels))
    elif keep == "highest":
        if scores is None or len(scores) != n:
            raise ConfigError(f"keep='highest' needs one score per record ({n}), got "
                              f"{'none' if scores is None else len(scores)}")
        s = np.asarray(scores, dtype=np.float64)
        order = np.lexsort((index, -np.where(np.isnan(s), -np.inf, s), labels))
    else:
        raise ConfigError(f"keep must be one of {KEEP_POLICIES}, got {keep!r}")
    sorted_labels = labels[order]
    is_head = np.ones(n, dtype=bool)
    is_head[1:] = sorted_labels[1:] != sorted_labels[:-1]
    head_of = order[is_head][np.cumsum(is_head) - 1]  # for each sorted position, the head of its label group
    kept = np.empty(n, dtype=np.int64)
    kept[order] = head_of
    return kept


@dataclass
class DedupResult:
    """Duplicate decisions over ``n`` records numbered in reading order, held only for the records that have a
    duplicate (so a pool of mostly unique records costs next to nothing here), plus counts.

    members: the records in clusters of two or more, increasing.
    kept_of: for each member, the index of the record its cluster keeps.
    kind: ``exact``, ``near`` or ``semantic``; names the reason.
    ids: record ids (reasons name the kept record by id when known, else by index).
    stats: counts (records, candidate and verified pairs, clusters, dropped, ...).
    shuffle: how the work was spread (partitions, bytes spilled, ...); unlike ``stats`` it depends on the
        slicing and partitioning, never on the decisions.

    ``cluster``, ``keep`` and ``duplicate_of`` give the dense per-record arrays (for small inputs and tests).
    """

    n: int
    members: np.ndarray
    kept_of: np.ndarray
    kind: str
    ids: pa.Array | None = None
    stats: dict = field(default_factory=dict)
    shuffle: dict = field(default_factory=dict)
    piece_starts: dict[int, int] | None = None  # a Dataset's piece index -> its first record (reading order)

    @property
    def n_records(self) -> int:
        return self.n

    @property
    def n_dropped(self) -> int:
        return int((self.kept_of != self.members).sum())

    @property
    def cluster(self) -> np.ndarray:
        """Per record: the index of the record kept for its cluster (itself when it has no duplicate)."""
        out = np.arange(self.n, dtype=np.int64)
        out[self.members] = self.kept_of
        return out

    @property
    def keep(self) -> np.ndarray:
        return self.cluster == np.arange(self.n)

    @property
    def duplicate_of(self) -> np.ndarray:
        """Per record: the index of the kept record for a dropped one, -1 for a kept one."""
        cluster = self.cluster
        return np.where(cluster == np.arange(self.n), -1, cluster)

    def reasons(self) -> pa.Array:
        """``None`` for kept records, ``<kind>_duplicate_of:<id of the kept record>`` for dropped ones."""
        return reason_strings(self.ids, self.keep, self.duplicate_of, np.zeros(self.n, np.int8), [self.kind])

    def to_table(self) -> pa.Table:
        """``[id,] dup_cluster, dup_keep, dup_reason``: one row per record, in reading order."""
        cols = {} if self.ids is None else {"id": self.ids}
        cols |= {"dup_cluster": pa.array(self.cluster), "dup_keep": pa.array(self.keep),
                 "dup_reason": self.reasons()}
        return pa.table(cols)


def reason_strings(ids: pa.Array | None, keep: np.ndarray, duplicate_of: np.ndarray, kind: np.ndarray,
                   kinds: list[str], start: int = 0) -> pa.Array:
    """``None`` for kept records, ``<kinds[kind]>_duplicate_of:<id of the kept record>`` for dropped ones (by
    index when there are no ``ids``), built in Arrow: no Python string per record. The rows are records
    ``start, start + 1, ...``; ``duplicate_of`` holds indices into the whole of ``ids``."""
    text = pa.large_string()
    rows = np.arange(start, start + len(keep))
    target = pa.array(np.where(keep, rows, duplicate_of)) if len(keep) else pa.array([], pa.int64())
    names = ids.take(target) if ids is not None else target.cast(text)
    prefixes = pa.array([f"{k}_duplicate_of:" for k in kinds], text).take(pa.array(kind))
    named = pc.binary_join_element_wise(prefixes, names.cast(text), pa.scalar("", text))
    return pc.if_else(pa.array(keep, pa.bool_()), pa.scalar(None, text), named)


def find_sorted(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``values`` is in the sorted array ``keys``, and whether it is there at all (the position is a
    valid index either way, 0 when ``keys`` is empty)."""
    at = np.minimum(np.searchsorted(keys, values), max(len(keys) - 1, 0))
    return at, (keys[at] == values) if len(keys) else np.zeros(len(values), bool)


def sparse_labels(nodes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Members (increasing) and their cluster labels from pairs ``nodes[k]`` belongs to the cluster named
    ``labels[k]`` (a member of it); a label that is no node's is its own."""
    members = np.unique(np.concatenate([nodes, labels]).astype(np.int64))
    out = members.copy()
    out[np.searchsorted(members, nodes)] = labels
    names, inverse, sizes = np.unique(out, return_inverse=True, return_counts=True)
    paired = sizes[inverse] > 1  # a record alone in its cluster has no duplicate
    return members[paired], out[paired]


def named_by_smallest(members: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each member's cluster named by its smallest member (any member names it on input)."""
    names, inverse = np.unique(labels, return_inverse=True)
    smallest = np.full(len(names), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, inverse, members)
    return smallest[inverse]


def build_result(labels: np.ndarray, kind: str, keep: str, lengths: np.ndarray | None, scores: np.ndarray | None,
                 ids: pa.Array | None, stats: dict) -> DedupResult:
    """One kept record per cluster (``labels``: a cluster label per record) by ``keep``, as a :class:`DedupResult`."""
    labels = np.asarray(labels, dtype=np.int64)
    sizes = np.bincount(labels, minlength=len(labels))
    members = np.flatnonzero(sizes[labels] > 1)
    return result_of(len(labels), members, labels[members], kind, keep, lengths, scores, ids, stats)


def result_of(n: int, members: np.ndarray, labels: np.ndarray, kind: str, keep: str, lengths: np.ndarray | None,
              scores: np.ndarray | None, ids: pa.Array | None, stats: dict) -> DedupResult:
    """One kept record per cluster by ``keep``, from the ``members`` of clusters of two or more (increasing) and
    their cluster ``labels``; ``lengths`` and ``scores`` are per record (all ``n``), read at the members only."""
    if keep == "highest" and (scores is None or len(scores) != n):
        raise ConfigError(f"keep='highest' needs one score per record ({n}), got "
                          f"{'none' if scores is None else len(scores)}")
    if keep == "longest" and (lengths is None or len(lengths) != n):
        raise ConfigError("keep='longest' needs one length per record")
    kept = members[choose_kept(labels, keep, None if lengths is None else lengths[members],
                               None if scores is None else scores[members])] if len(members) else members
    clusters = len(np.unique(labels))
    dropped = int((kept != members).sum())
    stats = {**stats, "records": n, "clusters": clusters, "records_in_clusters": int(len(members)),
             "dropped": dropped, "kept": n - dropped}
    return DedupResult(n, members, kept, kind, ids, stats)


#: What the deduplicators accept as one batch: texts (Arrow string array, or a list of str) or a table with a text
#: column (and optionally an id column).
Batch = pa.Array | pa.ChunkedArray | pa.RecordBatch | pa.Table | list


def as_batches(batches: object) -> object:
    """A single batch (table, array, list of str) becomes a one-batch list; anything else is left as is."""
    if isinstance(batches, (pa.Array, pa.ChunkedArray, pa.RecordBatch, pa.Table)):
        return [batches]
    if isinstance(batches, (list, tuple)) and batches and all(isinstance(x, str) or x is None for x in batches):
        return [list(batches)]
    return batches


def split_batch(batch: Batch, text_field: str, id_field: str) -> tuple[pa.Array, pa.Array | None]:
    """(texts as a large-string array with nulls as "", ids as large strings or None) of one batch."""
    ids = None
    if isinstance(batch, (pa.RecordBatch, pa.Table)):
        if text_field not in batch.schema.names:
            raise ConfigError(f"no text field {text_field!r} in batch (fields: {', '.join(batch.schema.names)})")
        if id_field in batch.schema.names:
            ids = _combine(batch.column(id_field)).cast(pa.large_string())
        text = batch.column(text_field)
    elif isinstance(batch, (list, tuple)):
        text = pa.array(batch, type=pa.large_string())
    else:
        text = batch
    text = _combine(text)
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise ConfigError(f"texts must be strings, got {text.type}")
    return text.cast(pa.large_string()).fill_null(""), ids


def compact(a: pa.Array) -> pa.Array:
    """A copy of ``a`` that owns just its own bytes: pickling a slice of an Arrow array (to send it to a worker)
    would otherwise carry the whole parent buffer, a batch's worth for every slice."""
    return pa.concat_arrays([a])


def _combine(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
