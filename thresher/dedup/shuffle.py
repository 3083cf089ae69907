"""MinHash LSH as a shuffle on the engine: no process ever holds every record's band keys or shingle sets.

Three engine stages, then connected components on the engine too; records are numbered in reading order (0..n-1):

1. **Sketch** (one task per piece of a dataset, which the task reads itself, or per group of texts a caller sends):
   band keys of its records, written as one spill file sorted by the *virtual partition* of each ``(band, key)``
   (a hash of both, ``VIRTUAL_PARTITIONS`` of them), with an index of where each virtual partition starts; and,
   when pairs are verified, the shingles as computed (CSR; only candidates' are ever sorted into sets). Records
   are numbered from 0 within a file; the main process learns each file's record count and so where its records
   start in reading order (``files.npy``), which readers add. It gets back only counts, how many records have no
   words, and lengths when ``keep="longest"`` needs them.
   Virtual partitions let the number of reduce partitions ``P`` be chosen after this stage, when the record count
   is known: reduce partition ``p`` reads one contiguous range of virtual partitions from every file.
2. **Pairs** (one task per partition): every bucket (``band``, ``key``) lies wholly in one partition, so
   :func:`~thresher.dedup.minhash.bucket_pairs` over the partition's buckets gives exactly the pairs it gives
   over all records (same order within a bucket, same ``max_bucket_size`` rule). A pair that shares buckets in
   several bands can be formed in several partitions, while the statistics count each pair once (as the
   in-memory grouping did with ``np.unique`` over all bands): so pairs take a second, small shuffle, written
   by the hash of ``(i, j)`` to ``P`` owners.
3. **Verify** (one task per owner): the owner's pairs de-duplicated (every copy of a pair has the same owner),
   counted, verified with :func:`~thresher.dedup.minhash.set_jaccard` on the shingle sets of the records in its
   pairs (only those rows read from the sketch files, and de-duplicated here), and reduced to a spanning forest:
   one edge from every record in a verified pair to the smallest record of its component *within this owner's
   pairs*, written for the components pass.
4. **Components** (:mod:`thresher.dedup.components`): large-star and small-star rounds over the forests' edges, a
   shuffle per round, until every component is a star around its smallest record: the labels are the smallest
   index of each component, the same as over all pairs at once. Nothing depends on the slicing, on ``P`` or on
   which engine ran the tasks. The main process receives one label per record that has a duplicate.

Files: one key file (and one set file) per sketch task, not one per (task, partition), so their number does not
grow with ``P``; each reduce task makes three small reads per file. On disk: 16 bytes per band key plus ~4 bytes
per shingle (about 0.85x the text with 14 bands here), all of it until the end of the call.

Spill files are written atomically (a temporary name, then a rename), so a task that is retried after its worker
died rewrites the same bytes; they live in a fresh directory per call (a re-run never reads a crashed run's files)
that is removed at the end. With Ray on several machines the spill directory must be on a shared file system.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.dedup.clusters import connected_components
from thresher.dedup.components import write_undirected
from thresher.dedup.inputs import text_slices
from thresher.dedup.lsh import _unique_sets, band_keys, bucket_pairs, set_jaccard, shingle_hashes
from thresher.dedup.spill import file_starts, read_array, read_partitions, write_arrays, write_partitioned
from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import _finalise, _ranges

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
def choose_partitions(n_keys: int, workers: int, partitions: int | None = None) -> int:
    """Reduce partitions: ``partitions`` if given, else enough for ``KEYS_PER_PARTITION`` keys each and at least
    one per worker; at most ``VIRTUAL_PARTITIONS``."""
    if partitions is not None:
        if not 1 <= partitions <= VIRTUAL_PARTITIONS:
            raise ConfigError(f"partitions must be in [1, {VIRTUAL_PARTITIONS}], got {partitions}")
        return int(partitions)
    return int(min(VIRTUAL_PARTITIONS, max(1, workers, -(-n_keys // KEYS_PER_PARTITION))))


def _virtual_partition(keys: np.ndarray, bands: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (_finalise(keys ^ (bands.astype(np.uint64) + np.uint64(1)) * _BAND_MIX) >> _VBITS).astype(np.int64)


def _keys_path(spill: Path, slice_no: int) -> Path:
    return spill / f"keys-{slice_no:08d}.bin"


def _sets_path(spill: Path, slice_no: int) -> Path:
    return spill / f"sets-{slice_no:08d}.bin"


def _pairs_path(spill: Path, part: int) -> Path:
    return spill / f"pairs-{part:05d}.bin"


@dataclass
class Sketch:
    """Band keys and shingles of consecutive records, numbered from 0 (the first record of their spill file):
    a file's records get their reading-order numbers only when it is read, so a task that reads its own piece of
    the input needs no count of the records before it."""

    n: int  # records, with or without words
    keys: np.ndarray  # uint64 band keys, record-major: each record with words, its bands in order
    packed: np.ndarray  # uint64: band << 48 | record number within the file
    set_values: np.ndarray | None  # shingles (CSR values, unsorted, repeats kept), when pairs are verified
    set_sizes: np.ndarray | None
    lengths: np.ndarray | None  # characters per record, when keep="longest" needs them


def sketch_texts(config, a: np.ndarray, b: np.ndarray, texts: list[pa.Array], want_lengths: bool) -> Sketch:
    """The sketch of consecutive texts, slice by slice (the work arrays stay cache-sized)."""
    bands, rows = config.bands_rows
    keys, packed, set_values, set_sizes, lengths = [], [], [], [], []
    n = 0
    for text in text_slices(texts):
        sh, off = shingle_hashes(text, config.ngram)
        recs = np.flatnonzero(np.diff(off) > 0)
        keys.append(band_keys(sh, off, a, b, bands, rows)[recs].ravel())  # record-major: each record's bands
        band = np.tile(np.arange(bands, dtype=np.uint64), len(recs))
        packed.append(np.repeat((recs + n).astype(np.uint64), bands) | (band << np.uint64(_REC_BITS)))
        if config.verify:  # as they come: only candidates' sets are sorted and de-duplicated, when verified
            set_values.append(sh)
            set_sizes.append(np.diff(off))
        if want_lengths:
            lengths.append(pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.int64))
        n += len(text)

    def cat(chunks, dtype):
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype)

    return Sketch(n, cat(keys, np.uint64), cat(packed, np.uint64),
                  cat(set_values, np.uint32) if config.verify else None,
                  cat(set_sizes, np.int64) if config.verify else None, cat(lengths, np.int64) if want_lengths else None)


def spill_sketch(texts: list[pa.Array], file_no: int, spill: str, config, a: np.ndarray, b: np.ndarray,
                 want_lengths: bool) -> tuple[int, int, np.ndarray | None, int]:
    """Engine task (stage 1, a map task of :mod:`thresher.dedup.inputs`): write consecutive texts' band keys (by
    virtual partition) into spill file ``file_no`` and, to verify, their shingles into another; return
    (records, records without words, lengths if wanted, bytes written)."""
    sketch = sketch_texts(config, a, b, texts, want_lengths)
    key, pack = sketch.keys, sketch.packed
    spill_dir = Path(spill)
    written = write_partitioned(_keys_path(spill_dir, file_no), _virtual_partition(key, pack >> np.uint64(_REC_BITS)),
                                VIRTUAL_PARTITIONS, np.column_stack([key, pack]))
    if sketch.set_values is not None:
        ptr = np.concatenate([[0], np.cumsum(sketch.set_sizes)]).astype(np.int64)
        written += write_arrays(_sets_path(spill_dir, file_no), np.array([sketch.n], np.int64), ptr,
                                sketch.set_values)
    return sketch.n, int(sketch.n - len(key) // max(config.bands_rows[0], 1)), sketch.lengths, written


def partition_pairs(spill: str, part: int, n_parts: int, max_bucket_size: int) -> tuple[int, int]:
    """Engine task (stage 2): the candidate pairs of the buckets in partition ``part``, written by owner (the hash
    of the pair); return (pairs written, bytes written)."""
    spill_dir = Path(spill)
    lo, hi = part * VIRTUAL_PARTITIONS // n_parts, (part + 1) * VIRTUAL_PARTITIONS // n_parts
    chunks = []
    for file_no, first in file_starts(spill_dir):
        path = _keys_path(spill_dir, int(file_no))
        entries = read_partitions(path, np.uint64, lo, hi, VIRTUAL_PARTITIONS)
        entries[:, 1] += np.uint64(first)  # file-local record numbers become reading-order ones
        chunks.append(entries)
    entries = np.concatenate(chunks) if chunks else np.zeros((0, 2), np.uint64)
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
    return len(i), write_partitioned(_pairs_path(spill_dir, part), owner, n_parts, np.column_stack([i, j]))


def verify_pairs(spill: str, owner: int, n_parts: int, verify: bool, cutoff: float) -> tuple[int, int]:
    """Engine task (stage 3): this owner's distinct candidate pairs, verified, reduced to a spanning forest (record ->
    smallest record of its component among these pairs) written as the components pass's first edges; return
    (candidates, rejected)."""
    spill_dir = Path(spill)
    chunks = [read_partitions(_pairs_path(spill_dir, p), np.int64, owner, owner + 1, n_parts) for p in range(n_parts)]
    pairs = np.concatenate(chunks) if chunks else np.zeros((0, 2), np.int64)
    i, j = _unique_pairs(pairs[:, 0], pairs[:, 1])
    candidates, rejected = len(i), 0
    if verify and len(i):
        needed = np.unique(np.concatenate([i, j]))
        values, ptr = _unique_sets(*_gather_sets(spill_dir, needed))
        ok = set_jaccard(np.searchsorted(needed, i), np.searchsorted(needed, j), values, ptr) >= cutoff
        rejected = int((~ok).sum())
        i, j = i[ok], j[ok]
    write_undirected(spill_dir, 0, owner, *spanning_forest(i, j), n_parts)
    return candidates, rejected


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
    """The shingles of the ``needed`` records (sorted indices) from the slices' spill files, as CSR (as computed:
    :func:`~thresher.dedup.lsh._unique_sets` makes them sets)."""
    files = file_starts(spill)
    file_of = np.searchsorted(files[:, 1], needed, side="right") - 1
    values, counts = [], []
    for s in np.unique(file_of):
        path = _sets_path(spill, int(files[s, 0]))
        m = int(read_array(path, np.int64, 1, 0)[0])
        ptr = np.memmap(path, dtype=np.int64, mode="r", offset=8, shape=(m + 1,))
        local = needed[file_of == s] - files[s, 1]
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
