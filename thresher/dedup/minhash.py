"""Near-duplicate detection with MinHash LSH, vectorised per batch, with exact Jaccard verification of candidates.

Pipeline (every step is numpy/Arrow over a whole batch; no Python code runs per record, shingle or permutation
value):

1. **Shingles.** Words are Python's ``re.findall(r"\\w+", text.lower())`` (letters, numbers and underscore), found
   and hashed on the batch's UTF-8 bytes in numpy (see :func:`word_hashes`). Word ``n``-gram hashes are combined
   with integer arithmetic and mixed with murmur3's finaliser; a shingle is the top 32 bits. A record with fewer
   than ``n`` words (but at least one) has one shingle, all its words; a record without words has none and is
   never a near-duplicate.
2. **Signatures.** Permutation ``k`` maps a shingle hash ``h`` to ``(a_k * h + b_k) mod 2**32`` with ``a_k`` odd,
   a bijection on uint32 (datasketch >= 2.0's default ``affine32`` scheme: the modulus is free in uint32
   arithmetic, where a Mersenne-prime modulus needs uint64 and several times the work). For each permutation, one
   multiply-add over a cache-sized chunk of shingles and one ``np.minimum.reduceat`` over record boundaries.
   Only the ``bands * rows`` permutations LSH uses are computed, and signatures are never stored: each band's
   ``rows`` minima are folded into a 64-bit bucket key straight away, so a slice's keys take ``8 * bands`` bytes per
   record.
3. **Candidates.** Per band, records are sorted by bucket key (stable, so reading order within a bucket); records
   sharing a key are candidate pairs. A bucket of more than ``max_bucket_size`` records links each member to the
   bucket's first and previous member only (linear, not quadratic, in its size).
4. **Verification** (default on): the exact Jaccard similarity of the two records' shingle sets, for every
   distinct candidate pair; pairs below ``verify_threshold`` are dropped.
5. **Clusters.** Connected components of the verified pairs; one record kept per cluster by ``keep``.

Steps 1-2 run per slice on the engine, which spills band keys and shingle sets to disk; steps 3-4 run per
partition of the band keys on the engine; step 5 merges per-partition spanning forests in this process (see
:mod:`thresher.dedup.shuffle`). The input is read once.

Identical inputs, configuration and seed give identical output whatever the batch size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.dedup.clusters import KEEP_POLICIES, DedupResult, as_batches, build_result, compact, split_batch
from thresher.dedup.shuffle import (
    choose_partitions,
    forest_labels,
    partition_pairs,
    spill_area,
    spill_sketch,
    verify_pairs,
)
from thresher.engine import Engine, LocalEngine
from thresher.errors import ConfigError, ThresherError
from thresher.features.hashed_ngrams import _finalise, _ranges

#: Non-ASCII characters that are not word characters (Python's ``\w``: letters, numbers, underscore), for Arrow.
_NON_ASCII_NON_WORD = r"[^\x00-\x7f\pL\pN]+"
#: Byte tables: ASCII lower-casing, and word bytes (ASCII letters, digits, underscore, any non-ASCII byte).
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32
_WORD = np.zeros(256, dtype=np.int8)
_WORD[[*range(48, 58), *range(65, 91), 95, *range(97, 123), *range(128, 256)]] = 1
_BYTE_MASK = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)  # the low k bytes of a uint64
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT32 = np.uint64(32)
#: Records per unit of work (a larger caller batch is processed in slices of this size).
_SLICE_RECORDS = 4096
#: Shingles per signature chunk: 1 MB of uint32, so each permutation's multiply-add-min stays in cache.
_CHUNK_SHINGLES = 1 << 18
#: Shingles per verification chunk (two sets of every pair, as uint64 sort keys: 64 MB).
_VERIFY_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class MinHashConfig:
    """What counts as a near-duplicate and which copy is kept.

    threshold: Jaccard similarity of word n-gram sets above which two records are near-duplicates; sets the LSH
        bands and rows (unless given) and, with ``verify``, the verification cut-off.
    num_perm: permutations available to LSH; ``bands * rows <= num_perm`` of them are computed.
    ngram: words per shingle (5: datatrove's and FineWeb's default).
    bands, rows: LSH bands and rows per band; by default :func:`optimal_bands` for ``threshold`` and ``weights``.
    weights: (false-positive, false-negative) weights of the band optimisation, as in datasketch.
    verify: check every candidate pair's exact Jaccard similarity (removes LSH false positives).
    verify_threshold: verification cut-off (default: ``threshold``).
    keep: ``first`` (reading order), ``longest`` (most characters) or ``highest`` (largest score; pass ``scores``).
    max_bucket_size: buckets with more records than this link members to the bucket's first and previous
        member instead of to all others.
    seed: permutation parameters; the same seed gives the same output.
    """

    threshold: float = 0.7
    num_perm: int = 128
    ngram: int = 5
    bands: int | None = None
    rows: int | None = None
    weights: tuple[float, float] = (0.5, 0.5)
    verify: bool = True
    verify_threshold: float | None = None
    keep: str = "first"
    max_bucket_size: int = 64
    seed: int = 0
    text_field: str = "text"
    id_field: str = "id"

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"threshold must be in (0, 1), got {self.threshold}")
        if not 2 <= self.num_perm <= 1024:
            raise ConfigError(f"num_perm must be in [2, 1024], got {self.num_perm}")
        if not 1 <= self.ngram <= 32:
            raise ConfigError(f"ngram must be in [1, 32], got {self.ngram}")
        if self.keep not in KEEP_POLICIES:
            raise ConfigError(f"keep must be one of {KEEP_POLICIES}, got {self.keep!r}")
        if self.verify_threshold is not None and not 0.0 <= self.verify_threshold <= 1.0:
            raise ConfigError(f"verify_threshold must be in [0, 1], got {self.verify_threshold}")
        if len(self.weights) != 2 or min(self.weights) < 0 or abs(sum(self.weights) - 1.0) > 1e-9:
            raise ConfigError(f"weights must be two non-negative numbers summing to 1, got {self.weights}")
        if self.max_bucket_size < 2:
            raise ConfigError(f"max_bucket_size must be >= 2, got {self.max_bucket_size}")
        if (self.bands is None) != (self.rows is None):
            raise ConfigError("give both bands and rows, or neither (then they are optimised for the threshold)")
        if self.bands is not None and (min(self.bands, self.rows) < 1 or self.bands * self.rows > self.num_perm):
            raise ConfigError(f"need bands, rows >= 1 and bands * rows <= num_perm ({self.num_perm}), "
                              f"got {self.bands} x {self.rows}")

    @property
    def bands_rows(self) -> tuple[int, int]:
        """(bands, rows) used by LSH: as given, or :func:`optimal_bands` for the threshold (cached)."""
        if self.bands is not None:
            return int(self.bands), int(self.rows)
        return optimal_bands(self.threshold, self.num_perm, tuple(self.weights))

    @property
    def cutoff(self) -> float:
        """The Jaccard similarity a verified pair must reach."""
        return self.threshold if self.verify_threshold is None else self.verify_threshold


@lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, weights: tuple[float, float] = (0.5, 0.5)) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false-positive and false-negative areas, as datasketch's _optimal_param.

    For every (b, r) with ``b * r <= num_perm``: FP = integral over [0, threshold] of ``1 - (1 - s^r)^b``,
    FN = integral over [threshold, 1] of ``(1 - s^r)^b``; the first minimum in (b, then r) order wins, as in
    datasketch. The integrands are polynomials of degree ``b * r <= num_perm``, so Gauss-Legendre quadrature with
    ``num_perm // 2 + 1`` nodes is exact (datasketch uses adaptive quadrature, one scipy call per integral).
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
    if num_perm < 2:
        raise ConfigError(f"num_perm must be >= 2, got {num_perm}")
    b = np.concatenate([np.full(num_perm // bb, bb) for bb in range(1, num_perm + 1)]).astype(np.float64)
    r = np.concatenate([np.arange(1, num_perm // bb + 1) for bb in range(1, num_perm + 1)]).astype(np.float64)
    x, w = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def area(lo: float, hi: float, false_positive: bool) -> np.ndarray:
        s = (hi - lo) / 2 * x + (hi + lo) / 2
        miss = (1 - s[None, :] ** r[:, None]) ** b[:, None]  # P(a pair of similarity s is not a candidate)
        return ((1 - miss) if false_positive else miss) @ w * (hi - lo) / 2

    error = weights[0] * area(0.0, threshold, True) + weights[1] * area(threshold, 1.0, False)
    best = int(np.argmin(error))
    return int(b[best]), int(r[best])


def word_hashes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of every word of the batch, record offsets into that array); words as Python's
    ``re.findall(r"\\w+", text.lower())`` (lower-casing is Arrow's, which differs from Python's on a few letters
    such as the Turkish dotted I).

    ASCII records are tokenised on their bytes in numpy; only records with non-ASCII characters go through Arrow
    first (Unicode lower-casing, and non-ASCII characters that are not letters or numbers become spaces), then
    through the same byte tokeniser, and their words are spliced back in record order.
    """
    hashes, offsets = _byte_words(text)
    ascii_only = pc.string_is_ascii(text).to_numpy(zero_copy_only=False)
    if ascii_only.all():
        return hashes, offsets
    other = np.flatnonzero(~ascii_only)
    sub = pc.replace_substring_regex(pc.utf8_lower(text.take(pa.array(other))), _NON_ASCII_NON_WORD, " ")
    sub_hashes, sub_offsets = _byte_words(sub)
    counts = np.diff(offsets)
    counts[other] = np.diff(sub_offsets)
    out_offsets = np.concatenate([[0], np.cumsum(counts)])
    out = np.empty(int(out_offsets[-1]), dtype=np.uint64)
    same = np.flatnonzero(ascii_only)
    out[_ranges(out_offsets[same], counts[same])] = hashes[_ranges(offsets[same], counts[same])]
    out[_ranges(out_offsets[other], counts[other])] = sub_hashes
    return out, out_offsets


def _byte_words(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Word hashes of a large-string array on its UTF-8 bytes: a word is a maximal run of ASCII letters, digits,
    ``_`` and non-ASCII bytes inside one record (ASCII letters lower-cased).

    A word's first 8 bytes are read at once through an unaligned uint64 view (so a word of up to 8 bytes is
    hashed from its exact bytes, without collisions), longer words fold in 8 more bytes per step, and murmur3's
    finaliser mixes the result. No dictionary, no Python per word.
    """
    n = len(text)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[text.offset:text.offset + n + 1]
    size = int(offsets[-1] - offsets[0]) if n else 0
    low = np.zeros(size + 8, dtype=np.uint8)  # 8 bytes of padding for the last word's read
    if size:
        low[:size] = _LOWER[np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]]
    offsets = offsets - offsets[0]
    word = np.zeros(size + 2, dtype=np.int8)  # padded with a non-word byte at both ends
    word[1:size + 1] = _WORD[low[:size]]
    edges = np.flatnonzero(np.diff(word))  # alternately a word's first byte and the byte after its last
    starts, ends = edges[0::2], edges[1::2]
    inner = offsets[1:-1]
    inner = inner[(inner > 0) & (inner < size)]
    cross = np.unique(inner[(word[inner] == 1) & (word[inner + 1] == 1)])  # a record boundary inside a run
    if len(cross):
        starts = np.insert(starts, np.searchsorted(starts, cross), cross)  # split the run: one more start ...
        ends = np.insert(ends, np.searchsorted(ends, cross), cross)  # ... and one more end, at the boundary
    length = ends - starts
    view = np.ndarray((size + 1,), dtype="<u8", buffer=low, strides=(1,))  # view[i] = bytes i..i+7
    with np.errstate(over="ignore"):
        h = view[starts] & _BYTE_MASK[np.minimum(length, 8)]
        longer, done = np.flatnonzero(length > 8), 8
        while len(longer):
            part = view[starts[longer] + done] & _BYTE_MASK[np.minimum(length[longer] - done, 8)]
            h[longer] = _finalise(h[longer]) * _MIX ^ part
            done += 8
            longer = longer[length[longer] > done]
    return _finalise(h), np.searchsorted(starts, offsets)


def shingle_hashes(text: pa.Array, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint32 hash of every word ``ngram``-gram of the batch, record offsets); see the module docstring."""
    h, off = word_hashes(text)
    n_words = np.diff(off)
    counts = np.where(n_words >= ngram, n_words - ngram + 1, (n_words > 0).astype(np.int64))
    out_off = np.concatenate([[0], np.cumsum(counts)])
    out = np.empty(int(out_off[-1]), dtype=np.uint64)
    gram = h
    for order in range(ngram):
        if order:
            with np.errstate(over="ignore"):
                gram = gram[:-1] * _MIX ^ h[order:]
        short = np.flatnonzero(n_words == order + 1) if order + 1 < ngram else np.zeros(0, np.int64)
        out[out_off[short]] = gram[off[short]]  # a record shorter than ngram words: one shingle of all its words
    long = n_words >= ngram
    out[_ranges(out_off[:-1][long], counts[long])] = gram[_ranges(off[:-1][long], counts[long])]
    return (_finalise(out) >> _SHIFT32).astype(np.uint32), out_off


def permutations(config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the ``num_perm`` permutations ``h -> a*h + b mod 2**32`` (``a`` odd), from ``config.seed``."""
    rng = np.random.default_rng(config.seed)
    a = (rng.integers(0, 1 << 31, config.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)).astype(np.uint32)
    b = rng.integers(0, 1 << 32, config.num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def band_keys(shingles: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, bands: int,
              rows: int) -> np.ndarray:
    """(records, bands) uint64 LSH bucket keys: each band's ``rows`` MinHash values folded and mixed.

    Records without shingles get key 0 (callers exclude them). Work is chunked by records so that one chunk's
    shingles fit in cache; per permutation it is one multiply, one add and one ``minimum.reduceat``.
    """
    n = len(offsets) - 1
    keys = np.zeros((n, bands), dtype=np.uint64)
    recs = np.flatnonzero(np.diff(offsets) > 0)
    starts, ends = offsets[recs], offsets[recs + 1]
    buf = np.empty(0, dtype=np.uint32)
    i = 0
    while i < len(recs):
        j = max(int(np.searchsorted(ends, starts[i] + _CHUNK_SHINGLES, side="right")), i + 1)
        x = shingles[starts[i]:ends[j - 1]]
        loc = starts[i:j] - starts[i]
        if len(buf) < len(x):
            buf = np.empty(max(len(x), _CHUNK_SHINGLES), dtype=np.uint32)
        tmp = buf[:len(x)]
        for band in range(bands):
            key = np.zeros(j - i, dtype=np.uint64)
            for k in range(band * rows, (band + 1) * rows):
                np.multiply(x, a[k], out=tmp)
                tmp += b[k]
                with np.errstate(over="ignore"):
                    key = key * _MIX ^ np.minimum.reduceat(tmp, loc).astype(np.uint64)
            keys[recs[i:j], band] = _finalise(key)
        i = j
    return keys


def bucket_pairs(keys: np.ndarray, records: np.ndarray, max_bucket_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (i < j, record indices) of records sharing a bucket key; ``records`` ascending."""
    m = len(keys)
    if m < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(keys, kind="stable")
    sk, rec = keys[order], records[order]
    new = np.ones(m, dtype=bool)
    new[1:] = sk[1:] != sk[:-1]
    group_start = np.flatnonzero(new)
    group_size = np.diff(np.append(group_start, m))
    gid = np.cumsum(new) - 1
    start, size = group_start[gid], group_size[gid]
    pos = np.arange(m)
    within = pos - start
    small = size <= max_bucket_size
    n_partners = np.where(small, within, np.minimum(within, 1))  # small bucket: all earlier; big: the first only
    owner = np.repeat(pos, n_partners)
    partner = _ranges(start, n_partners)
    chain = np.flatnonzero(~small & (within >= 2))  # big bucket: also the previous member
    owner = np.concatenate([owner, chain])
    partner = np.concatenate([partner, chain - 1])
    return rec[partner], rec[owner]


def set_jaccard(pair_a: np.ndarray, pair_b: np.ndarray, values: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Jaccard similarity of sorted, duplicate-free uint32 sets ``values[ptr[s]:ptr[s+1]]`` for slot pairs.

    Vectorised: both sets of every pair go into one array of ``(pair << 32) | value`` keys; after a sort, equal
    neighbours are the intersection. Chunked by pairs to bound memory.
    """
    sizes = np.diff(ptr)
    out = np.zeros(len(pair_a), dtype=np.float64)
    work = np.cumsum(sizes[pair_a] + sizes[pair_b])
    lo = 0
    while lo < len(pair_a):
        hi = max(int(np.searchsorted(work, (work[lo - 1] if lo else 0) + _VERIFY_ELEMENTS, side="right")), lo + 1)
        sa, sb = pair_a[lo:hi], pair_b[lo:hi]
        la, lb = sizes[sa], sizes[sb]
        pid = np.arange(hi - lo, dtype=np.uint64)
        keys = np.concatenate([
            (np.repeat(pid, la) << _SHIFT32) | values[_ranges(ptr[sa], la)].astype(np.uint64),
            (np.repeat(pid, lb) << _SHIFT32) | values[_ranges(ptr[sb], lb)].astype(np.uint64),
        ])
        keys.sort()
        same = keys[1:] == keys[:-1]
        inter = np.bincount((keys[1:][same] >> _SHIFT32).astype(np.int64), minlength=hi - lo)
        union = la + lb - inter
        out[lo:hi] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        lo = hi
    return out


def _unique_sets(shingles: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each record's shingles sorted and de-duplicated: (values, record offsets)."""
    n = len(offsets) - 1
    rec = np.repeat(np.arange(n, dtype=np.uint64), np.diff(offsets))
    keys = np.sort((rec << _SHIFT32) | shingles.astype(np.uint64))
    if len(keys):
        keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
    counts = np.bincount((keys >> _SHIFT32).astype(np.int64), minlength=n)
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32), np.concatenate([[0], np.cumsum(counts)])


class MinHashDeduplicator:
    """Finds near-duplicate clusters in a stream of text batches; deterministic, stateless between calls."""

    def __init__(self, config: MinHashConfig | None = None):
        self.config = config or MinHashConfig()
        self._a, self._b = permutations(self.config)

    def fit(self, batches: Iterable | Callable[[], Iterable], scores: np.ndarray | None = None,
            engine: Engine | None = None, partitions: int | None = None,
            spill_dir: str | os.PathLike | None = None) -> DedupResult:
        """Near-duplicate decisions for every record of ``batches``, in reading order.

        ``batches``: Arrow string arrays, lists of str, or record batches / tables with ``text_field`` (and
        ``id_field``, which reasons then name); or a callable returning such an iterable (read once). ``scores``
        (one per record) are needed for ``keep="highest"``. ``engine``: where sketches, candidate pairs and their
        verification run, as a shuffle through spill files (see :mod:`thresher.dedup.shuffle`; default: this
        process); here only ids, lengths and the verified pairs' spanning forests are held. ``partitions``: reduce
        partitions (default: from the record count); ``spill_dir``: where the shuffle's files go (default: the
        system's temporary directory; with Ray on several machines, a directory every node shares). The result is
        the same for any engine, worker count, batch size and ``partitions``.
        """
        cfg = self.config
        bands, rows = cfg.bands_rows
        stream = iter(batches() if callable(batches) else as_batches(batches))
        id_chunks, have_ids, slice_starts = [], True, []
        want_lengths = cfg.keep == "longest"
        runner = engine or LocalEngine(1)  # the caller's engine stays open for its next stage
        with spill_area(spill_dir) as spill:
            def items():  # the texts go to the engine; ids stay here, in reading order
                nonlocal have_ids
                seen = 0
                for text, ids in self._slices(stream):
                    have_ids = have_ids and ids is not None
                    if have_ids:
                        id_chunks.append(ids)
                    slice_starts.append(seen)
                    yield cfg, self._a, self._b, text, len(slice_starts) - 1, seen, str(spill), want_lengths
                    seen += len(text)

            n, without_words, lengths, spilled = 0, 0, [], 0
            for count, empty, length, written in runner.map(spill_sketch, items()):
                n, without_words, spilled = n + count, without_words + empty, spilled + written
                if length is not None:
                    lengths.append(length)
            if n >= 1 << 48:
                raise ThresherError(f"{n:,} records: near-duplicate detection handles up to 2**48")
            np.save(spill / "slices.npy", np.array(slice_starts, dtype=np.int64))
            parts = choose_partitions((n - without_words) * bands, runner.workers, partitions)
            n_slices = len(slice_starts)
            pairs_written = 0
            for _, written in runner.map(partition_pairs, ((str(spill), n_slices, p, parts, cfg.max_bucket_size)
                                                             for p in range(parts))):
                pairs_written += written
            children, roots, candidates, rejected = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], 0, 0
            for child, root, cand, rej in runner.map(verify_pairs, ((str(spill), q, parts, cfg.verify, cfg.cutoff)
                                                                    for q in range(parts))):
                children.append(child)
                roots.append(root)
                candidates += cand
                rejected += rej
        children, roots = np.concatenate(children), np.concatenate(roots)
        stats = {"bands": bands, "rows": rows, "records_without_words": without_words,
                 "candidate_pairs": candidates, "verified": cfg.verify, "rejected_pairs": rejected,
                 "duplicate_pairs": candidates - rejected}
        labels = forest_labels(n, children, roots)
        ids_all = pa.concat_arrays(id_chunks) if have_ids and id_chunks else None
        result = build_result(labels, "near", cfg.keep, np.concatenate(lengths) if lengths else None, scores,
                              ids_all, stats)
        result.shuffle = {"partitions": parts, "slices": n_slices, "bytes_spilled": spilled + pairs_written,
                          "key_and_set_bytes": spilled, "pair_bytes": pairs_written,
                          "forest_edges": len(children)}
        return result

    def _slices(self, batches: Iterable) -> Iterator[tuple[pa.Array, pa.Array | None]]:
        """(texts, ids) of every batch, cut into slices of at most ``_SLICE_RECORDS`` records: the work arrays are
        several bytes per text byte, so a caller's huge batch would otherwise fall out of cache (and memory)."""
        for batch in batches:
            text, ids = split_batch(batch, self.config.text_field, self.config.id_field)
            for start in range(0, len(text), _SLICE_RECORDS):
                yield (compact(text.slice(start, _SLICE_RECORDS)),
                       None if ids is None else ids.slice(start, _SLICE_RECORDS))


def near_duplicates(batches: Iterable | Callable[[], Iterable], config: MinHashConfig | None = None,
                    scores: np.ndarray | None = None, engine: Engine | None = None, partitions: int | None = None,
                    spill_dir: str | os.PathLike | None = None) -> DedupResult:
    """Near-duplicate decisions for every record of ``batches`` (see :meth:`MinHashDeduplicator.fit`)."""
    return MinHashDeduplicator(config).fit(batches, scores, engine, partitions, spill_dir)
