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

Steps 1-2 run per piece of the input (or group of texts) on the engine, which spills band keys and shingle sets to
disk; steps 3-4 run per partition of the band keys on the engine; step 5 is a shuffle of spanning-forest edges on
the engine too (see :mod:`thresher.dedup.shuffle` and :mod:`thresher.dedup.components`). The input is read once.

Identical inputs, configuration and seed give identical output whatever the batch size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from thresher.dedup.clusters import KEEP_POLICIES, DedupResult, result_of
from thresher.dedup.components import component_labels
from thresher.dedup.inputs import GROUP_RECORDS, spill_input
from thresher.dedup.shuffle import (
    choose_partitions,
    partition_pairs,
    spill_sketch,
    verify_pairs,
)
from thresher.dedup.spill import spill_area
from thresher.engine import Engine, LocalEngine
from thresher.errors import ConfigError, ThresherError
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog


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


def permutations(config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the ``num_perm`` permutations ``h -> a*h + b mod 2**32`` (``a`` odd), from ``config.seed``."""
    rng = np.random.default_rng(config.seed)
    a = (rng.integers(0, 1 << 31, config.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)).astype(np.uint32)
    b = rng.integers(0, 1 << 32, config.num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


class MinHashDeduplicator:
    """Finds near-duplicate clusters in a stream of text batches; deterministic, stateless between calls."""

    def __init__(self, config: MinHashConfig | None = None):
        self.config = config or MinHashConfig()
        self._a, self._b = permutations(self.config)

    def fit(self, batches: Dataset | Iterable | Callable[[], Iterable], scores: np.ndarray | None = None,
            engine: Engine | None = None, partitions: int | None = None,
            spill_dir: str | os.PathLike | None = None, group_records: int = GROUP_RECORDS,
            errors: ErrorLog | None = None, skip: tuple[np.ndarray, dict[int, int]] | None = None) -> DedupResult:
        """Near-duplicate decisions for every record of ``batches``, in reading order.

        ``batches``: a :class:`~thresher.io.dataset.Dataset`, whose pieces the engine's tasks read themselves (bad
        records go to ``errors``, default the dataset's policy); or Arrow string arrays, lists of str, or record
        batches / tables with ``text_field`` (and ``id_field``, which reasons then name), or a callable returning
        such an iterable (read once), sent to the tasks in groups of ``group_records`` records (this process holds
        one group's texts while it is sent). ``scores`` (one per record) are needed for ``keep="highest"``.
        ``engine``: where sketches, candidate pairs, their verification and the connected components run, as
        shuffles through spill files (see :mod:`thresher.dedup.shuffle`; default: this process); here only ids,
        lengths and the records that have a duplicate are held. ``partitions``: reduce partitions (default: from
        the record count); ``spill_dir``: where the shuffle's files go (default: the system's temporary
        directory; with Ray on several machines, a directory every node shares). The result is the same for any
        engine, worker count, batch size, ``partitions`` and ``group_records``. ``skip`` (a Dataset only): records
        (reading order) not sketched, such as exact duplicates already dropped, and where each piece starts; they
        are in no near-duplicate cluster.
        """
        cfg = self.config
        bands, rows = cfg.bands_rows
        runner = engine or LocalEngine(1)  # the caller's engine stays open for its next stage
        skip = skip if isinstance(batches, Dataset) else None  # positions by piece: only a Dataset has pieces
        with spill_area(spill_dir) as spill:
            sketched = spill_input(batches, runner, spill, spill_sketch,
                                   (cfg, self._a, self._b, cfg.keep == "longest"), cfg.text_field, cfg.id_field,
                                   group_records, errors, skip)
            n = sketched.n
            skipped = len(skip[0]) if skip is not None else 0
            if n >= 1 << 48:
                raise ThresherError(f"{n:,} records: near-duplicate detection handles up to 2**48")
            parts = choose_partitions((n - sketched.without_words) * bands, runner.workers, partitions)
            pairs_written = sum(written for _, written in runner.map(
                partition_pairs, ((str(spill), p, parts, cfg.max_bucket_size) for p in range(parts))))
            candidates = rejected = 0
            for cand, rej in runner.map(verify_pairs, ((str(spill), q, parts, cfg.verify, cfg.cutoff)
                                                       for q in range(parts))):
                candidates += cand
                rejected += rej
            (members, labels), rounds = component_labels(spill, parts, parts, runner)
        stats = {"bands": bands, "rows": rows, "records_without_words": sketched.without_words - skipped,
                 **({"skipped_exact_duplicates": skipped} if skipped else {}),
                 "candidate_pairs": candidates, "verified": cfg.verify, "rejected_pairs": rejected,
                 "duplicate_pairs": candidates - rejected}
        result = result_of(n, members, labels, "near", cfg.keep, sketched.lengths(), scores, sketched.ids(), stats)
        result.shuffle = {"partitions": parts, "sketch_files": len(sketched.files),
                          "bytes_spilled": sketched.written + pairs_written + rounds["component_bytes"],
                          "key_and_set_bytes": sketched.written, "pair_bytes": pairs_written, **rounds}
        return result


def near_duplicates(batches: Dataset | Iterable | Callable[[], Iterable], config: MinHashConfig | None = None,
                    scores: np.ndarray | None = None, engine: Engine | None = None, partitions: int | None = None,
                    spill_dir: str | os.PathLike | None = None, group_records: int = GROUP_RECORDS,
                    errors: ErrorLog | None = None, skip: tuple[np.ndarray, dict[int, int]] | None = None
                    ) -> DedupResult:
    """Near-duplicate decisions for every record of ``batches`` (see :meth:`MinHashDeduplicator.fit`)."""
    return MinHashDeduplicator(config).fit(batches, scores, engine, partitions, spill_dir, group_records, errors,
                                           skip)
