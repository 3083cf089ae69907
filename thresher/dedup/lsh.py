"""MinHash LSH primitives on Arrow string batches: word and shingle hashes, band keys, bucket pairs, set Jaccard.

Pure numpy functions of their arguments, shared by the deduplicator (:mod:`thresher.dedup.minhash`) and the shuffle
tasks that run them on the engine (:mod:`thresher.dedup.shuffle`); see :mod:`thresher.dedup.minhash` for the method.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
#: Shingles per signature chunk: 1 MB of uint32, so each permutation's multiply-add-min stays in cache.
_CHUNK_SHINGLES = 1 << 18
#: Shingles per verification chunk (two sets of every pair, as uint64 sort keys: 64 MB).
_VERIFY_ELEMENTS = 1 << 23


def word_hashes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of every word of the batch, record offsets into that array); words as Python's
    ``re.findall(r"\\w+", text.lower())`` (lower-casing is Arrow's, which differs from Python's on a few letters
    such as the Turkish dotted I).

    Records are tokenised on their UTF-8 bytes in numpy; records with non-ASCII characters are first rewritten by
    Arrow (Unicode lower-casing, and non-ASCII characters that are not letters or numbers become spaces) in place,
    so that the byte tokeniser runs once over the batch.
    """
    ascii_only = pc.string_is_ascii(text).to_numpy(zero_copy_only=False)
    if not ascii_only.all():
        other = pa.array(np.flatnonzero(~ascii_only))
        sub = pc.replace_substring_regex(pc.utf8_lower(text.take(other)), _NON_ASCII_NON_WORD, " ")
        text = pc.replace_with_mask(text, pa.array(~ascii_only), sub.cast(text.type))
    return _byte_words(text)


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
    grams, off = ngram_hashes(text, ngram)
    return (grams >> _SHIFT32).astype(np.uint32), off


def ngram_hashes(text: pa.Array, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of every word ``ngram``-gram of the batch, record offsets): a record with fewer than ``ngram``
    words (but at least one) has one, of all its words; a record without words has none."""
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
    return _finalise(out), out_off


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
