"""MinHash LSH as a shuffle on the engine: no process ever holds every record's band keys or shingle sets.

Three engine stages and a small merge here; records are numbered in reading order (0..n-1) throughout:

1. **Sketch** (one task per slice of at most 4,096 records): band keys of the slice's records, written as one
   spill file sorted by the *virtual partition* of each ``(band, key)`` (a hash of both, ``VIRTUAL_PARTITIONS``
   of them), with an index of where each virtual partition starts; and, when pairs are verified, the slice's
   shingle sets (CSR). The driver gets back only the slice's record count, how many records have no words, and
   their lengths when ``keep="longest"`` needs them. Virtual partitions let the number of reduce partitions ``P``
   be chosen after this stage, when the record count is known: reduce partition ``p`` reads one contiguous range
   of virtual partitions from every slice file (two index entries and one range: a few reads per file).
2. **Pairs** (one task per partition): every bucket (``band``, ``key``) lies wholly in one partition, so
   :func:`~thresher.dedup.minhash.bucket_pairs` over the partition's buckets gives exactly the pairs it gives
   over all records (same order within a bucket, same ``max_bucket_size`` rule). A pair that shares buckets in
   several bands can be formed in several partitions, while the statistics count each pair once (as the
   in-memory grouping did with ``np.unique`` over all bands): so pairs take a second, small shuffle, written
   by the hash of ``(i, j)`` to ``P`` owners.
3. **Verify** (one task per owner): the owner's pairs de-duplicated (every copy of a pair has the same owner),
   counted, verified with :func:`~thresher.dedup.minhash.set_jaccard` on shingle sets read from the slices'
   spill files (only the rows needed), and reduced to a spanning forest: one edge from every record in a
   verified pair to the smallest record of its component *within this owner's pairs*.

The driver then merges the forests (at most one edge per record per owner it appears in, so bounded by the
number of records with a verified duplicate times the owners they touch) with one connected-components pass:
labels are the smallest index of each component, the same as over all pairs at once. Nothing depends on the
slicing, on ``P`` or on which engine ran the tasks.

Files: one key file (and one set file) per slice, not one per (slice, partition), so their number does not grow
with ``P``; each reduce task makes three small reads per slice file, ``3 * slices * P`` in all (at 10^9 records,
244k slices: merging slice files per worker, or larger map tasks, would be the next step). On disk: 16 bytes per
band key plus ~4 bytes per shingle (about 0.85x the text with 14 bands here), all of it until the end of the call.

Spill files are written atomically (a temporary name, then a rename), so a task that is retried after its worker
died rewrites the same bytes; they live in a fresh directory per call (a re-run never reads a crashed run's files)
that is removed at the end. With Ray on several machines the spill directory must be on a shared file system.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.dedup.clusters import connected_components
from thresher.dedup.lsh import _unique_sets, band_keys, bucket_pairs, set_jaccard, shingle_hashes
from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import _finalise, _ranges
from thresher.io.atomic import atomic_path

#: Virtual partitions of the band-key space (a power of two): an upper bound on ``P``; each slice file's index
#: holds one offset per virtual partition (32 KB).
VIRTUAL_PARTITIONS = 4096
_VBITS = np.uint64(64 - 12)
#: Band keys a reduce partition should hold by default: 16 bytes each on disk, ~200 bytes while sorted and paired,
#: so a pairing task peaks near 200 MB, as a sketching one does. Beyond ``VIRTUAL_PARTITIONS`` partitions
#: (~300 million records at 14 bands) partitions grow instead.
KEYS_PER_PARTITION = 1 << 20
#: Record indices take the low 48 bits of a spilled entry, the band the high 16.
_REC_BITS = 48
_REC_MASK = np.uint64((1 << _REC_BITS) - 1)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_BAND_MIX = np.uint64(0xC2B2AE3D27D4EB4F)
#: Name prefix of a shuffle's spill directory.
SPILL_PREFIX = ".thresher-spill-"


@contextmanager
def spill_area(parent: str | os.PathLike | None = None) -> Iterator[Path]:
    """A fresh directory for one shuffle under ``parent`` (default: the system's temporary directory), removed on
    exit however the block ends. Unique per call, so files a crashed run left behind are never read."""
    base = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"{SPILL_PREFIX}{uuid.uuid4().hex}"
    path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale_spills(parent: str | os.PathLike) -> None:
    """Remove spill directories that crashed runs left in ``parent``; only for a caller that holds ``parent``
    alone (a locked run folder), since another run's live spill looks the same."""
    for stale in Path(parent).glob(f"{SPILL_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def choose_partitions(n_keys: int, workers: int, partitions: int | None = None) -> int:
    """Reduce partitions: ``partitions`` if given, else enough for ``KEYS_PER_PARTITION`` keys each and at least
    one per worker; at most ``VIRTUAL_PARTITIONS``."""
    if partitions is not None:
        if not 1 <= partitions <= VIRTUAL_PARTITIONS:
            raise ConfigError(f"partitions must be in [1, {VIRTUAL_PARTITIONS}], got {partitions}")
        return int(partitions)
    return int(min(VIRTUAL_PARTITIONS, max(1, workers, -(-n_keys // KEYS_PER_PARTITION))))


def _write(path: Path, *arrays: np.ndarray) -> int:
    """Write ``arrays``' raw bytes one after another, atomically; return the bytes written."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for a in arrays:
            f.write(np.ascontiguousarray(a).data)
    return sum(a.nbytes for a in arrays)


def _read(path: Path, dtype: type, count: int, offset: int) -> np.ndarray:
    """``count`` items of ``dtype`` from byte ``offset`` of ``path``."""
    if count <= 0:
        return np.zeros(0, dtype)
    out = np.fromfile(path, dtype=dtype, count=count, offset=offset)
    if len(out) != count:
        raise OSError(f"{path}: truncated spill file ({len(out)} of {count} items at byte {offset})")
    return out


def _virtual_partition(keys: np.ndarray, bands: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (_finalise(keys ^ (bands.astype(np.uint64) + np.uint64(1)) * _BAND_MIX) >> _VBITS).astype(np.int64)


def _keys_path(spill: Path, slice_no: int) -> Path:
    return spill / f"keys-{slice_no:08d}.bin"


def _sets_path(spill: Path, slice_no: int) -> Path:
    return spill / f"sets-{slice_no:08d}.bin"


def _pairs_path(spill: Path, part: int) -> Path:
    return spill / f"pairs-{part:05d}.bin"


def spill_sketch(config, a: np.ndarray, b: np.ndarray, texts: list[pa.Array], group: int, start: int, spill: str,
                 want_lengths: bool) -> tuple[int, int, np.ndarray | None, int]:
    """Engine task (stage 1): write one group of consecutive slices' band keys (by virtual partition) and, to verify,
    their shingle sets, into one file each (one file per group keeps the reduce tasks' reads at groups x partitions,
    not slices x partitions); return (records, records without words, lengths if wanted, bytes written)."""
    bands, rows = config.bands_rows
    keys, packed, set_values, set_sizes, lengths = [], [], [], [], []
    n = 0
    for text in texts:  # slice by slice: the work arrays stay cache-sized
        sh, off = shingle_hashes(text, config.ngram)
        recs = np.flatnonzero(np.diff(off) > 0)
        keys.append(band_keys(sh, off, a, b, bands, rows)[recs].ravel())  # record-major: each record's bands
        band = np.tile(np.arange(bands, dtype=np.uint64), len(recs))
        packed.append(np.repeat((recs + start + n).astype(np.uint64), bands) | (band << np.uint64(_REC_BITS)))
        if config.verify:
            values, ptr = _unique_sets(sh, off)
            set_values.append(values)
            set_sizes.append(np.diff(ptr))
        if want_lengths:
            lengths.append(pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.int64))
        n += len(text)
    key, pack = np.concatenate(keys), np.concatenate(packed)
    vp = _virtual_partition(key, pack >> np.uint64(_REC_BITS))
    order = np.argsort(vp, kind="stable")
    index = np.searchsorted(vp[order], np.arange(VIRTUAL_PARTITIONS + 1)).astype(np.int64)
    spill_dir = Path(spill)
    written = _write(_keys_path(spill_dir, group), index, np.column_stack([key[order], pack[order]]))
    if config.verify:
        ptr = np.concatenate([[0], np.cumsum(np.concatenate(set_sizes))]).astype(np.int64)
        written += _write(_sets_path(spill_dir, group), np.array([n], np.int64), ptr, np.concatenate(set_values))
    return n, int(n - len(key) // max(bands, 1)), np.concatenate(lengths) if want_lengths else None, written


def partition_pairs(spill: str, n_slices: int, part: int, n_parts: int, max_bucket_size: int) -> tuple[int, int]:
    """Engine task (stage 2): the candidate pairs of the buckets in partition ``part``, written by owner (the hash
    of the pair); return (pairs written, bytes written)."""
    spill_dir = Path(spill)
    lo, hi = part * VIRTUAL_PARTITIONS // n_parts, (part + 1) * VIRTUAL_PARTITIONS // n_parts
    chunks = []
    for s in range(n_slices):
        path = _keys_path(spill_dir, s)
        start, end = _read(path, np.int64, 1, 8 * lo)[0], _read(path, np.int64, 1, 8 * hi)[0]
        chunks.append(_read(path, np.uint64, 2 * int(end - start), 8 * (VIRTUAL_PARTITIONS + 1) + 16 * int(start)))
    entries = np.concatenate(chunks).reshape(-1, 2) if chunks else np.zeros((0, 2), np.uint64)
    key, band, rec = entries[:, 0], entries[:, 1] >> np.uint64(_REC_BITS), (entries[:, 1] & _REC_MASK).astype(np.int64)
    # By bucket, reading order within it: entries arrive in reading order within each bucket (slices in order,
    # each sorted stably by virtual partition from record order), so two stable sorts suffice (band: radix).
    order = np.argsort(key, kind="stable")
    order = order[np.argsort(band[order].astype(np.uint16), kind="stable")]
    key, band, rec = key[order], band[order], rec[order]
    new = np.ones(len(key), dtype=bool)
    new[1:] = (key[1:] != key[:-1]) | (band[1:] != band[:-1])
    i, j = bucket_pairs(np.cumsum(new), rec, max_bucket_size)  # a bucket number per (band, key): same pairs
    i, j = _unique_pairs(i, j)
    with np.errstate(over="ignore"):
        owner = (_finalise(i.astype(np.uint64) * _MIX ^ j.astype(np.uint64)) % np.uint64(n_parts)).astype(np.int64)
    order = np.argsort(owner, kind="stable")
    index = np.searchsorted(owner[order], np.arange(n_parts + 1)).astype(np.int64)
    written = _write(_pairs_path(spill_dir, part), index, np.column_stack([i[order], j[order]]))
    return len(i), written


def verify_pairs(spill: str, owner: int, n_parts: int, verify: bool, cutoff: float
                 ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Engine task (stage 3): this owner's distinct candidate pairs, verified, as a spanning forest (record ->
    smallest record of its component among these pairs); return (children, roots, candidates, rejected)."""
    spill_dir = Path(spill)
    chunks = []
    for p in range(n_parts):
        path = _pairs_path(spill_dir, p)
        start, end = _read(path, np.int64, 2, 8 * owner)
        chunks.append(_read(path, np.int64, 2 * int(end - start), 8 * (n_parts + 1) + 16 * int(start)))
    pairs = np.concatenate(chunks).reshape(-1, 2) if chunks else np.zeros((0, 2), np.int64)
    i, j = _unique_pairs(pairs[:, 0], pairs[:, 1])
    candidates, rejected = len(i), 0
    if verify and len(i):
        needed = np.unique(np.concatenate([i, j]))
        values, ptr = _gather_sets(spill_dir, needed)
        ok = set_jaccard(np.searchsorted(needed, i), np.searchsorted(needed, j), values, ptr) >= cutoff
        rejected = int((~ok).sum())
        i, j = i[ok], j[ok]
    children, roots = spanning_forest(i, j)
    return children, roots, candidates, rejected


def _unique_pairs(i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (i, j) pairs, sorted."""
    if len(i) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.lexsort((j, i))
    i, j = i[order], j[order]
    new = np.ones(len(i), dtype=bool)
    new[1:] = (i[1:] != i[:-1]) | (j[1:] != j[:-1])
    return i[new].astype(np.int64), j[new].astype(np.int64)


def _gather_sets(spill: Path, needed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shingle sets of the ``needed`` records (sorted indices) from the slices' spill files, as CSR."""
    starts = np.load(spill / "slices.npy")
    slice_of = np.searchsorted(starts, needed, side="right") - 1
    values, counts = [], []
    for s in np.unique(slice_of):
        path = _sets_path(spill, int(s))
        m = int(_read(path, np.int64, 1, 0)[0])
        ptr = np.memmap(path, dtype=np.int64, mode="r", offset=8, shape=(m + 1,))
        local = needed[slice_of == s] - starts[s]
        size = np.asarray(ptr[local + 1] - ptr[local])
        if ptr[m]:
            data = np.memmap(path, dtype=np.uint32, mode="r", offset=8 * (m + 2), shape=(int(ptr[m]),))
            values.append(np.asarray(data[_ranges(np.asarray(ptr[local]), size)]))
        counts.append(size)
    v = np.concatenate(values) if values else np.zeros(0, np.uint32)
    c = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    return v, np.concatenate([[0], np.cumsum(c)]).astype(np.int64)


def spanning_forest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges (child, root) linking every node of the graph ``a[k] - b[k]`` to its component's smallest node,
    roots themselves left out: the same components in at most one edge per node."""
    nodes = np.unique(np.concatenate([a, b])) if len(a) else np.zeros(0, np.int64)
    if len(nodes) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    roots = nodes[connected_components(len(nodes), np.searchsorted(nodes, a), np.searchsorted(nodes, b))]
    linked = roots != nodes
    return nodes[linked], roots[linked]


def forest_labels(n: int, children: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """Component label (smallest member) of each of ``n`` records given forest edges; the graph is built over the
    records that appear in an edge only, so the work is proportional to the edges, not to ``n``."""
    labels = np.arange(n, dtype=np.int64)
    nodes, merged = spanning_forest(children, roots)
    labels[nodes] = merged
    return labels
