"""Decontamination: find pool records that repeat text of reference sets (test sets, benchmarks), never touching the
reference.

Three ways to match, each on hashes of the whole reference held in sorted arrays:

* ``ngram`` (GPT-3's 13-gram overlap, as datatrove's decontamination does it): word n-grams (words as the MinHash
  shingles read them: ``\\w+`` runs, lower-cased) hashed to 64 bits; a pool record matches when at least
  ``min_overlap`` of its n-grams (and at least one) are n-grams of some reference record. A text with fewer than
  ``ngram`` words has one n-gram of all its words, so a short reference item is found only as a whole short record.
* ``exact``: the normalised whole text (exact dedup's normalisation), 64 bits of its xxh3-128.
* ``minhash``: near-duplicates, as MinHash dedup finds them within a pool (:mod:`thresher.dedup.minhash`: word
  5-gram shingles, the same permutations, bands and rows): a pool record is a candidate for every reference record
  it shares an LSH bucket with, and matches when the exact Jaccard similarity of their shingle sets reaches the
  threshold. The index holds each reference record's band keys and shingle set.

Per pool record: how many n-grams (distinct shingles, for ``minhash``) it has, how many are in the reference (in
the best candidate's set), the share (the Jaccard similarity), and the reference record it shares most with (ties:
the first in reading order). The reference is read once, a batch at a time; the
pool's pieces are matched on the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.dedup.clusters import find_sorted
from thresher.dedup.exact import ExactConfig, text_hashes
from thresher.dedup.lsh import _unique_sets, band_keys, ngram_hashes, set_jaccard, shingle_hashes
from thresher.dedup.minhash import MinHashConfig, permutations
from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import _finalise, _ranges
from thresher.io.errors import ErrorLog

METHODS = ("ngram", "exact", "minhash")


@dataclass(frozen=True)
class ReferenceConfig:
    """method: ``ngram``, ``exact`` or ``minhash``. ngram: words per n-gram (13, as GPT-3). min_overlap: the share
    of a record's n-grams that must be in the reference to drop it (0: any one). exact: the normalisation of
    ``exact``. minhash: shingles, LSH, the Jaccard threshold and the bucket cap of ``minhash`` (always verified; a
    bucket keeps its first ``max_bucket_size`` reference records)."""

    method: str = "ngram"
    ngram: int = 13
    min_overlap: float = 0.0
    exact: ExactConfig = field(default_factory=ExactConfig)
    minhash: MinHashConfig = field(default_factory=MinHashConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"matching against a reference is by {' or '.join(METHODS)}, got {self.method!r}")
        if not 1 <= self.ngram <= 64:
            raise ConfigError(f"ngram must be in [1, 64], got {self.ngram}")
        if not 0.0 <= self.min_overlap <= 1.0:
            raise ConfigError(f"min_overlap must be in [0, 1], got {self.min_overlap}")


def reference_config(method: str | None = None, ngram: int | None = None, min_overlap: float = 0.0,
                     exact: ExactConfig | None = None, minhash: MinHashConfig | None = None) -> ReferenceConfig:
    """A :class:`ReferenceConfig` from the options a user gives (CLI, Python, recipes): ``method`` default
    ``ngram``; ``ngram`` words per n-gram (default 13) or, for ``minhash``, per shingle (default 5)."""
    from dataclasses import replace

    method = method or "ngram"
    if method not in METHODS:
        raise ConfigError(f"matching against reference sets is by ngram (the default), exact or minhash, not "
                          f"{method!r}")
    if min_overlap and method != "ngram":
        raise ConfigError(f"min_overlap applies to matching by ngram, not {method} (minhash: the threshold)")
    if method == "minhash":
        minhash = replace(minhash or MinHashConfig(), ngram=ngram or 5)
        if not minhash.verify:
            raise ConfigError("matching against reference sets by minhash always verifies the Jaccard similarity")
        return ReferenceConfig(method, ngram=minhash.ngram, exact=exact or ExactConfig(), minhash=minhash)
    return ReferenceConfig(method, ngram=ngram or 13, min_overlap=min_overlap, exact=exact or ExactConfig())


@dataclass
class ReferenceIndex:
    """The reference's hashes, sorted (``ngram``, ``exact``: unique; ``minhash``: band keys, one per record and band
    with words); for each, the reference record (row in reading order over all reference sets) it (first) came
    from; for ``minhash``, every record's shingle set (CSR: ``set_values``, ``set_ptr``); the records' ids and which
    set each came from; what failed to read in each set (``ErrorLog.to_dict()``); whether it came from the cache."""

    hashes: np.ndarray
    owner: np.ndarray
    ids: pa.Array
    source: np.ndarray
    sources: list[str]
    failed: list[dict] = field(default_factory=list)
    cached: bool = False
    set_values: np.ndarray | None = None
    set_ptr: np.ndarray | None = None

    @property
    def records(self) -> int:
        return len(self.ids)

    def lookup(self) -> tuple:
        """What a matching task needs (not the ids): hashes, owners and, for ``minhash``, the shingle sets."""
        return self.hashes, self.owner, self.set_values, self.set_ptr


def record_hashes(text: pa.Array, config: ReferenceConfig) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 hashes, record offsets into them) of a batch of texts: n-grams, or one whole-text hash each."""
    if config.method == "exact":
        return text_hashes(text, config.exact)[:, 0].copy(), np.arange(len(text) + 1, dtype=np.int64)
    return ngram_hashes(text.cast(pa.large_string()).fill_null(""), config.ngram)


def build_index(references: list, config: ReferenceConfig, cache: bool = True) -> ReferenceIndex:
    """Read every reference :class:`~thresher.io.dataset.Dataset` once (bad records: its ``on_error`` policy),
    or load the index a run with the same reference contents and matching built before (``cache``: under
    ``cache_dir()/reference/``; the key covers each file's size and content fingerprint and ``config``)."""
    folder = _cache_folder(references, config) if cache else None
    if folder is not None and (folder / "index.npz").is_file():
        return _load(folder)
    index = _build(references, config)
    if folder is not None:
        _save(index, folder)
    return index


def _build(references: list, config: ReferenceConfig) -> ReferenceIndex:
    hashes, owners, ids, source, failed, sets, sizes = [], [], [], [], [], [], []
    row = 0
    for k, ds in enumerate(references):
        log = ErrorLog(ds.on_error)
        for batch in ds.iter_batches(log):
            if config.method == "minhash":
                sketch = _sketch(batch.column("text"), config.minhash)
                h, off = sketch[2], sketch[3]
                sets.append(sketch[0])
                sizes.append(np.diff(sketch[1]))
            else:
                h, off = record_hashes(batch.column("text"), config)
            hashes.append(h)
            owners.append(row + np.repeat(np.arange(batch.num_rows, dtype=np.int64), np.diff(off)))
            ids.append(batch.column("id"))
            source.append(np.full(batch.num_rows, k, np.int32))
            row += batch.num_rows
        failed.append(log.to_dict())
    if not row:
        raise ConfigError("the reference sets have no usable records (" + ", ".join(p for ds in references
                                                                                for p in ds.paths) + ")")
    all_hashes, all_owners = np.concatenate(hashes), np.concatenate(owners)
    names = [ds.paths[0] if len(ds.paths) == 1 else ",".join(ds.paths) for ds in references]
    if config.method == "minhash":  # every (band key, record): a bucket may hold several reference records ...
        order = np.argsort(all_hashes, kind="stable")
        keys, owners = all_hashes[order], all_owners[order]
        new = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, bool)
        rank = np.arange(len(keys)) - np.flatnonzero(new)[np.cumsum(new) - 1]
        keep = rank < config.minhash.max_bucket_size  # ... up to max_bucket_size, the first in reading order (a
        # repeated or very short reference item would otherwise make every pool copy a candidate of all of them)
        ptr = np.concatenate([[0], np.cumsum(np.concatenate(sizes))]).astype(np.int64)
        return ReferenceIndex(keys[keep], owners[keep], pa.concat_arrays(ids), np.concatenate(source),
                              names, failed, set_values=np.concatenate(sets), set_ptr=ptr)
    unique, first = np.unique(all_hashes, return_index=True)  # the first occurrence: the earliest record
    return ReferenceIndex(unique, all_owners[first], pa.concat_arrays(ids), np.concatenate(source), names, failed)


def _sketch(text: pa.Array, config: MinHashConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shingle sets (values, record offsets) and band keys (one per band of each record with words, each band's
    keys apart from the others', with record offsets) of a batch, as MinHash dedup computes them."""
    sh, off = shingle_hashes(text.cast(pa.large_string()).fill_null(""), config.ngram)
    values, ptr = _unique_sets(sh, off)
    bands, rows = config.bands_rows
    a, b = permutations(config)
    keys = band_keys(sh, off, a, b, bands, rows)
    with np.errstate(over="ignore"):
        keys = _finalise(keys ^ (np.arange(1, bands + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
    has = np.diff(ptr) > 0
    return values, ptr, keys[has].ravel(), np.concatenate([[0], np.cumsum(has * bands)]).astype(np.int64)


def _cache_folder(references: list, config: ReferenceConfig) -> Path:
    import json
    from dataclasses import asdict

    import xxhash

    from thresher.embeddings.backends import cache_dir
    from thresher.io.provenance import dataset_fingerprint

    key = {"format": 1, "references": [dataset_fingerprint(ds) for ds in references],
           "config": {**asdict(config), "min_overlap": None}}  # the threshold is applied when matching
    return cache_dir() / "reference" / xxhash.xxh3_64_hexdigest(json.dumps(key, sort_keys=True).encode())


def _save(index: ReferenceIndex, folder: Path) -> None:
    """Write the index whole into a fresh folder, then move it into place (a reader never sees half of one)."""
    import json
    import shutil
    import tempfile

    import pyarrow.parquet as pq

    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        sets = {} if index.set_values is None else {"set_values": index.set_values, "set_ptr": index.set_ptr}
        np.savez(tmp / "index.npz", hashes=index.hashes, owner=index.owner, source=index.source, **sets)
        pq.write_table(pa.table({"id": index.ids}), tmp / "ids.parquet")
        (tmp / "meta.json").write_text(json.dumps({"sources": index.sources, "failed": index.failed}))
        tmp.rename(folder)
    except OSError:  # another run saved the same index first, or the cache is not writable: no harm either way
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _load(folder: Path) -> ReferenceIndex:
    import json

    import pyarrow.parquet as pq

    with np.load(folder / "index.npz") as z:
        hashes, owner, source = z["hashes"], z["owner"], z["source"]
        values, ptr = (z["set_values"], z["set_ptr"]) if "set_ptr" in z.files else (None, None)
    meta = json.loads((folder / "meta.json").read_text())
    ids = pq.read_table(folder / "ids.parquet").column("id").combine_chunks()
    return ReferenceIndex(hashes, owner, ids, source, meta["sources"], meta["failed"], cached=True,
                          set_values=values, set_ptr=ptr)


def match_texts(text: pa.Array, hashes: np.ndarray, owner: np.ndarray, config: ReferenceConfig,
                set_values: np.ndarray | None = None, set_ptr: np.ndarray | None = None) -> np.ndarray:
    """Per record of a batch: (n-grams, n-grams in the reference, best reference row or -1) as an (n, 3) int64
    array; the best row is the reference record sharing the most of the record's n-grams (ties: the first).
    ``minhash`` (with the index's shingle sets): (distinct shingles, shingles shared with the best candidate, the
    candidate with the highest Jaccard similarity or -1)."""
    if config.method == "minhash":
        return _match_sketches(text, hashes, owner, set_values, set_ptr, config.minhash)
    h, off = record_hashes(text, config)
    n = len(off) - 1
    counts = np.diff(off)
    at, hit = find_sorted(hashes, h)
    rec = np.repeat(np.arange(n, dtype=np.int64), counts)[hit]
    matched = np.bincount(rec, minlength=n)
    best = np.full(n, -1, np.int64)
    if len(rec):
        ref = owner[at[hit]]
        order = np.lexsort((ref, rec))  # by record, then reference row
        rec, ref = rec[order], ref[order]
        new = np.ones(len(rec), bool)
        new[1:] = (rec[1:] != rec[:-1]) | (ref[1:] != ref[:-1])
        starts = np.flatnonzero(new)
        pair_rec, pair_ref = rec[starts], ref[starts]
        pair_count = np.diff(np.append(starts, len(rec)))
        # per record the pair with the most n-grams, the smallest reference row among ties
        pick = np.lexsort((pair_ref, -pair_count, pair_rec))
        firsts = pick[np.r_[True, pair_rec[pick][1:] != pair_rec[pick][:-1]]]
        best[pair_rec[firsts]] = pair_ref[firsts]
    return np.column_stack([counts, matched, best])


def _match_sketches(text: pa.Array, hashes: np.ndarray, owner: np.ndarray, ref_values: np.ndarray,
                    ref_ptr: np.ndarray, config: MinHashConfig) -> np.ndarray:
    """:func:`match_texts` for ``minhash``: candidates by shared band keys, then the exact Jaccard similarity."""
    values, ptr, keys, key_off = _sketch(text, config)
    n = len(ptr) - 1
    grams = np.diff(ptr)
    out = np.column_stack([grams, np.zeros(n, np.int64), np.full(n, -1, np.int64)])
    lo, hi = np.searchsorted(hashes, keys, "left"), np.searchsorted(hashes, keys, "right")
    rec = np.repeat(np.arange(n, dtype=np.int64), np.diff(key_off))  # the record of each band key
    rec, ref = np.repeat(rec, hi - lo), owner[_ranges(lo, hi - lo)]
    if not len(rec):
        return out
    pair = np.unique(rec.astype(np.uint64) << np.uint64(32) | ref.astype(np.uint64))
    rec, ref = (pair >> np.uint64(32)).astype(np.int64), (pair & np.uint64(0xFFFFFFFF)).astype(np.int64)
    needed, slot = np.unique(ref, return_inverse=True)  # the candidates' sets after the batch's own
    sizes = ref_ptr[needed + 1] - ref_ptr[needed]
    all_values = np.concatenate([values, ref_values[_ranges(ref_ptr[needed], sizes)]])
    all_ptr = np.concatenate([ptr, ptr[-1] + np.cumsum(sizes)])
    jaccard = set_jaccard(rec, n + slot, all_values, all_ptr)
    shared = np.rint(jaccard * (grams[rec] + sizes[slot]) / (1 + jaccard)).astype(np.int64)
    pick = np.lexsort((ref, -jaccard, rec))  # per record, the most similar candidate (ties: the first)
    first = pick[np.r_[True, rec[pick][1:] != rec[pick][:-1]]]
    out[rec[first], 1], out[rec[first], 2] = shared[first], ref[first]
    return out


def contaminated(result: np.ndarray, config: ReferenceConfig, set_ptr: np.ndarray | None = None) -> np.ndarray:
    """Which records of :func:`match_texts` rows the reference contaminates: at least ``config.min_overlap`` of their
    n-grams matched (and one); for ``minhash``, a Jaccard similarity with the best candidate (whose set sizes
    ``set_ptr`` gives) of at least the threshold, compared as verification within a pool compares it."""
    matched = result[:, 1]
    share = overlap(result, config, set_ptr)
    cutoff = config.minhash.cutoff if config.method == "minhash" else config.min_overlap
    return (matched > 0) & (share >= cutoff)


def overlap(result: np.ndarray, config: ReferenceConfig, set_ptr: np.ndarray | None = None) -> np.ndarray:
    """The share of each record's n-grams in the reference (``minhash``: the Jaccard similarity with the best
    candidate; 0 without one)."""
    grams, matched = result[:, 0], result[:, 1]
    if config.method == "minhash":
        best = np.maximum(result[:, 2], 0)
        union = grams + (set_ptr[best + 1] - set_ptr[best]) - matched
        return np.where(result[:, 2] >= 0, matched / np.maximum(union, 1), 0.0)
    return matched / np.maximum(grams, 1)


def match_batch(batch: pa.RecordBatch, where: tuple[int, int], lookup: tuple, config: ReferenceConfig) -> np.ndarray:
    """Engine task: :func:`match_texts` of one pool batch against an index's :meth:`~ReferenceIndex.lookup`."""
    hashes, owner, set_values, set_ptr = lookup
    return match_texts(batch.column("text"), hashes, owner, config, set_values, set_ptr)


def stacked(parts: list[np.ndarray]) -> np.ndarray:
    """A piece's batch results as one array (run on the worker)."""
    return np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)


@dataclass
class ReferenceDecisions:
    """Which pool records (reading order) the reference contaminates, and why: what a dedup job or a pipeline's
    dedup stage needs (``len``, :meth:`keep_and_reasons`), plus the per-record columns of :meth:`table`."""

    ids: pa.Array
    result: np.ndarray  # (n, 3): n-grams, matched n-grams, best reference row or -1
    dropped: np.ndarray
    index: ReferenceIndex
    config: ReferenceConfig

    def __len__(self) -> int:
        return len(self.ids)

    def _match(self, start: int, stop: int) -> tuple[np.ndarray, pa.Array]:
        best = self.result[start:stop, 2]
        has = best >= 0
        ids = self.index.ids
        return has, pc.if_else(pa.array(has), ids.take(pa.array(np.maximum(best, 0))), pa.scalar(None, ids.type))

    def keep_and_reasons(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, pa.Array]:
        """Whether each record of rows ``start:stop`` is kept, and ``<method>_match_in_reference:<reference id>``
        (null if kept)."""
        stop = len(self) if stop is None else stop
        _, match = self._match(start, stop)
        text = pa.large_string()
        reason = pc.binary_join_element_wise(pa.scalar(f"{self.config.method}_match_in_reference", text),
                                             match.cast(text), pa.scalar(":", text))
        dropped = self.dropped[start:stop]
        return ~dropped, pc.if_else(pa.array(dropped), reason, pa.scalar(None, text))

    def table(self) -> pa.Table:
        """``id, dup_keep, dup_reason, ref_ngrams, ref_matched, ref_overlap, ref_match, ref_source``."""
        keep, reason = self.keep_and_reasons()
        has, match = self._match(0, len(self))
        grams, matched = self.result[:, 0], self.result[:, 1]
        sources = np.asarray(self.index.sources, dtype=object)[self.index.source[np.maximum(self.result[:, 2], 0)]]
        return pa.table({"id": self.ids, "dup_keep": pa.array(keep), "dup_reason": reason,
                         "ref_ngrams": pa.array(grams, pa.int64()), "ref_matched": pa.array(matched, pa.int64()),
                         "ref_overlap": pa.array(overlap(self.result, self.config, self.index.set_ptr), pa.float64()),
                         "ref_match": match,
                         "ref_source": pa.array(sources, pa.large_string(), mask=~has)})

    def stats(self) -> dict:
        """What the manifest reports: the reference's size, how many pool records share anything, and drops."""
        c = self.config
        by_source = np.bincount(self.index.source[self.result[self.dropped, 2]], minlength=len(self.index.sources))
        how = ({"ngram": c.minhash.ngram, "threshold": c.minhash.cutoff, "bands_rows": c.minhash.bands_rows}
               if c.method == "minhash" else {"ngram": c.ngram, "min_overlap": c.min_overlap})
        return {"method": c.method, **how,
                "reference_records": self.index.records, "reference_hashes": int(len(self.index.hashes)),
                "records_with_any_match": int((self.result[:, 1] > 0).sum()), "dropped": int(self.dropped.sum()),
                "index_from_cache": self.index.cached,
                "dropped_by_reference": dict(zip(self.index.sources, map(int, by_source)))}


def find_contaminated(pool, references: list, config: ReferenceConfig, engine, errors: ErrorLog,
                      cache: bool = True) -> ReferenceDecisions:
    """Index the ``references`` (Datasets, read once here, or the index cached from an earlier run), then match
    every record of ``pool`` on ``engine`` (its tasks read their own pieces; bad pool records go to ``errors``)."""
    from thresher.engine.pieces import map_pieces

    index = build_index(references, config, cache)
    ids, parts = [], []
    for piece_ids, result in map_pieces(pool, engine, match_batch, (index.lookup(), config), errors,
                                        combine=stacked):
        ids.append(piece_ids)
        parts.append(result)
    if not ids or not sum(len(i) for i in ids):
        raise ConfigError(f"the pool has no usable records ({', '.join(pool.paths)})")
    result = np.concatenate(parts)
    return ReferenceDecisions(pa.concat_arrays(ids), result, contaminated(result, config, index.set_ptr), index,
                              config)
