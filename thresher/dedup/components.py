"""Connected components of a graph whose edges lie in spill files, on the engine: no process holds every edge.

Alternating *large-star* and *small-star* rounds (Kiveris, Lattanzi, Mirrokni, Rastogi and Vassilvitskii,
"Connected Components in MapReduce and Beyond", SoCC 2014), each a shuffle through spill files keyed by a hash of
a node (``P`` partitions):

* **large-star**, at each node ``u`` with neighbours ``N(u)``: ``m = min(N(u) + {u})``; every neighbour
  ``v > u`` is linked to ``m`` instead of ``u``;
* **small-star**, at each node ``u`` with its smaller neighbours ``S(u)``: ``m = min(S(u))``; ``u`` and every
  other member of ``S(u)`` are linked to ``m``.

Both keep the components and move edges toward each component's smallest node; the rounds converge (in
``O(log^2 n)`` rounds, a handful in practice) to one star per component centred on its smallest node. They stop
when a small-star round changed no edge (every node has at most one smaller neighbour) and the large-star round after
it changed none (a node with a larger neighbour has no smaller one): then every component is a star, and its leaves
are exactly the pairs ``(node, smallest node of its component)``, which the last round wrote.

The labels (smallest member of each component) do not depend on ``P``, the engine, or the order of the edges.
Memory per task is its partition's edges; the caller gets only the labels of the nodes that have an edge.
Files are written atomically under names fixed by (round, task), so a retried task rewrites the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from thresher.dedup.clusters import sparse_labels
from thresher.dedup.spill import read_partitions, write_arrays, write_partitioned
from thresher.errors import ThresherError
from thresher.features.hashed_ngrams import _finalise

#: Pairs of rounds before giving up (the rounds needed grow as log^2 of the longest path: 64 is never reached).
MAX_ROUNDS = 64
_NODE_MIX = np.uint64(0x94D049BB133111EB)


def partition_of(nodes: np.ndarray, n_parts: int) -> np.ndarray:
    """The partition that groups the edges keyed by each node."""
    with np.errstate(over="ignore"):
        return (_finalise(nodes.astype(np.uint64) * _NODE_MIX) % np.uint64(n_parts)).astype(np.int64)


def _edges_path(spill: Path, round_no: int, task: int) -> Path:
    return spill / f"edges-{round_no:03d}-{task:05d}.bin"


def _labels_path(spill: Path, round_no: int, task: int) -> Path:
    return spill / f"labels-{round_no:03d}-{task:05d}.bin"


def write_edges(spill: Path, round_no: int, task: int, keys: np.ndarray, others: np.ndarray, n_parts: int) -> int:
    """Write entries ``(key, other)`` for round ``round_no``, by the partition of their key; return bytes written."""
    return write_partitioned(_edges_path(spill, round_no, task), partition_of(keys, n_parts), n_parts,
                             np.column_stack([keys, others]).astype(np.int64))


def write_undirected(spill: Path, round_no: int, task: int, a: np.ndarray, b: np.ndarray, n_parts: int) -> int:
    """Write edges ``a - b`` keyed by both ends, as a large-star round reads them."""
    return write_edges(spill, round_no, task, np.concatenate([a, b]), np.concatenate([b, a]), n_parts)


def _read_partition(spill: Path, round_no: int, n_writers: int, part: int, n_parts: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The distinct entries ``(key, other)`` of partition ``part`` written in round ``round_no``, sorted."""
    chunks = [read_partitions(_edges_path(spill, round_no, t), np.int64, part, part + 1, n_parts)
              for t in range(n_writers)]
    entries = np.concatenate(chunks) if chunks else np.zeros((0, 2), np.int64)
    key, other = entries[:, 0], entries[:, 1]
    order = np.lexsort((other, key))
    key, other = key[order], other[order]
    new = np.ones(len(key), dtype=bool)
    new[1:] = (key[1:] != key[:-1]) | (other[1:] != other[:-1])
    return key[new], other[new]


def _groups(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start of each run of equal keys in sorted ``key``, and each entry's run number."""
    new = np.ones(len(key), dtype=bool)
    new[1:] = key[1:] != key[:-1]
    return np.flatnonzero(new), np.cumsum(new) - 1


def large_star(spill: str, round_no: int, n_writers: int, part: int, n_parts: int) -> tuple[int, int, int]:
    """Engine task: a large-star round over partition ``part``; writes the resulting edges (keyed by their larger
    end, for small-star) and this partition's labels (node, smaller minimum of its neighbourhood); returns
    (edges changed, edges written, bytes written)."""
    spill_dir = Path(spill)
    key, other = _read_partition(spill_dir, round_no, n_writers, part, n_parts)
    labels_key, labels_min = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(key):
        starts, run = _groups(key)
        nodes = key[starts]
        m = np.minimum(nodes, np.minimum.reduceat(other, starts))
        larger = other > key
        out_a, out_b = other[larger], m[run][larger]  # v > u >= m: the edge v - m, larger end first
        changed = int((m[run][larger] != key[larger]).sum())
        below = m < nodes
        labels_key, labels_min = nodes[below], m[below]
    else:
        out_a = out_b = np.zeros(0, np.int64)
        changed = 0
    written = write_edges(spill_dir, round_no + 1, part, out_a, out_b, n_parts)
    written += write_arrays(_labels_path(spill_dir, round_no, part), np.column_stack([labels_key, labels_min]))
    return changed, len(out_a), written


def small_star(spill: str, round_no: int, n_writers: int, part: int, n_parts: int) -> tuple[int, int, int]:
    """Engine task: a small-star round over partition ``part``, whose entries are (node, smaller neighbour); writes
    the resulting edges keyed by both ends (for large-star); returns (edges changed, edges written, bytes written)."""
    spill_dir = Path(spill)
    key, other = _read_partition(spill_dir, round_no, n_writers, part, n_parts)
    if len(key):
        starts, run = _groups(key)
        m = np.minimum.reduceat(other, starts)  # the smallest of the smaller neighbours (sorted: the first)
        to_min = other != m[run]
        a = np.concatenate([key[starts], other[to_min]])  # u - m, and every other smaller neighbour - m
        b = np.concatenate([m, m[run][to_min]])
        changed = int(to_min.sum())
    else:
        a = b = np.zeros(0, np.int64)
        changed = 0
    return changed, len(a), write_undirected(spill_dir, round_no + 1, part, a, b, n_parts)


def component_labels(spill: Path, n_writers: int, n_parts: int, runner
                     ) -> tuple[tuple[np.ndarray, np.ndarray], dict]:
    """The nodes that have an edge (increasing) and their component labels (smallest member), from the undirected
    edges that ``n_writers`` tasks wrote for round 0 with :func:`write_undirected`; and how the rounds went (for
    the manifest). Nodes without an edge are their own components and are not listed."""
    rounds, edges, written = 0, [], 0
    small_changed = None
    for _ in range(MAX_ROUNDS):
        for kind in (large_star, small_star):
            results = list(runner.map(kind, ((str(spill), rounds, n_writers, p, n_parts) for p in range(n_parts))))
            changed = sum(r[0] for r in results)
            edges.append(sum(r[1] for r in results))
            written += sum(r[2] for r in results)
            n_writers = n_parts
            if kind is large_star and small_changed == 0 and changed == 0:
                return _labels(spill, rounds, n_parts), {"component_rounds": rounds + 1,
                                                            "component_edges": edges, "component_bytes": written}
            _remove_round(spill, rounds)
            rounds += 1
            if kind is small_star:
                small_changed = changed
    raise ThresherError(f"connected components did not converge in {MAX_ROUNDS} pairs of rounds")


def _labels(spill: Path, round_no: int, n_parts: int) -> tuple[np.ndarray, np.ndarray]:
    """Members and labels from the leaves of the final stars (each leaf's centre is its component's smallest
    node), read one partition's file at a time."""
    pairs = [np.fromfile(_labels_path(spill, round_no, p), dtype=np.int64).reshape(-1, 2) for p in range(n_parts)]
    leaves = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    return sparse_labels(leaves[:, 0], leaves[:, 1])


def _remove_round(spill: Path, round_no: int) -> None:
    """A finished round's input and label files are not read again."""
    for path in [*spill.glob(f"edges-{round_no:03d}-*.bin"), *spill.glob(f"labels-{round_no:03d}-*.bin")]:
        path.unlink(missing_ok=True)
