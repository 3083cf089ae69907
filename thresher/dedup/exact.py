"""Exact deduplication: records whose normalised texts are identical form one cluster; one record per cluster is kept.

Normalisation runs in Arrow on the whole batch; each normalised text is hashed once with xxh3-128 (two records
collide by chance with probability ~n^2 / 2^129, i.e. never), so only 16 bytes per record are kept in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from thresher.dedup.clusters import KEEP_POLICIES, DedupResult, as_batches, build_result, compact, split_batch
from thresher.engine import Engine, LocalEngine
from thresher.errors import ConfigError
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog

#: Punctuation and symbols: anything that is not a letter, number, underscore or whitespace (RE2 syntax).
_PUNCT = r"[^\pL\pN_\s]+"


@dataclass(frozen=True)
class ExactConfig:
    """How texts are compared and which copy is kept.

    nfkc: Unicode NFKC normalisation first (full-width letters, ligatures, compatibility digits fold together).
    lowercase: fold case.
    strip_punctuation: remove punctuation and symbols (replaced by a space when whitespace is collapsed).
    collapse_whitespace: runs of whitespace become one space; leading and trailing whitespace is dropped.
    keep: ``first`` (reading order), ``longest`` (most characters) or ``highest`` (largest score; pass ``scores``).
    The default (lowercase + collapse whitespace) treats texts that differ only in case and spacing as duplicates;
    set all four flags to False to compare raw texts.
    """

    nfkc: bool = False
    lowercase: bool = True
    strip_punctuation: bool = False
    collapse_whitespace: bool = True
    keep: str = "first"
    text_field: str = "text"
    id_field: str = "id"

    def __post_init__(self) -> None:
        if self.keep not in KEEP_POLICIES:
            raise ConfigError(f"keep must be one of {KEEP_POLICIES}, got {self.keep!r}")


def normalize(text: pa.Array, config: ExactConfig) -> pa.Array:
    """The texts as exact dedup compares them (vectorised over the batch)."""
    if config.nfkc:
        text = pc.utf8_normalize(text, form="NFKC")
    if config.lowercase:
        text = pc.utf8_lower(text)
    if config.strip_punctuation:
        text = pc.replace_substring_regex(text, _PUNCT, " " if config.collapse_whitespace else "")
    if config.collapse_whitespace:
        text = pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"\s+", " "))
    return text


def text_hashes(text: pa.Array, config: ExactConfig) -> np.ndarray:
    """xxh3-128 of each normalised text, as an (n, 2) uint64 array."""
    values = normalize(text, config).cast(pa.large_binary()).to_pylist()
    digest = b"".join(map(xxhash.xxh3_128_digest, values))
    return np.frombuffer(digest, dtype=np.uint64).reshape(-1, 2)


def hash_batch(config: ExactConfig, text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Engine task: the normalised-text hashes and the lengths of one batch."""
    return text_hashes(text, config), pc.utf8_length(text).to_numpy(zero_copy_only=False).astype(np.int64)


def hash_piece_batch(batch: pa.RecordBatch, where: tuple[int, int], config: ExactConfig
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Engine task over a dataset's pieces: :func:`hash_batch` of one batch the worker read itself."""
    return hash_batch(config, batch.column("text").cast(pa.large_string()).fill_null(""))


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """A piece's batches' hashes and lengths as one pair of arrays (made on the worker)."""
    if not parts:
        return np.zeros((0, 2), np.uint64), np.zeros(0, np.int64)
    return np.concatenate([h for h, _ in parts]), np.concatenate([n for _, n in parts])


def exact_duplicates(batches: Dataset | Iterable | Callable[[], Iterable], config: ExactConfig | None = None,
                     scores: np.ndarray | None = None, engine: Engine | None = None,
                     errors: ErrorLog | None = None) -> DedupResult:
    """Exact duplicates among all records of ``batches``: a :class:`~thresher.io.dataset.Dataset`, whose pieces the
    engine's tasks read themselves (bad records go to ``errors``, default the dataset's policy), or text arrays,
    lists of str, or tables with a text column, sent to the engine batch by batch.

    One pass; memory here is 16 bytes per record plus ids. ``scores`` (one per record, reading order) are needed
    for ``keep="highest"``. ``engine``: where the per-batch hashes are computed (default: this process).
    """
    config = config or ExactConfig()
    runner = engine or LocalEngine(1)  # the caller's engine stays open for its next stage
    hashes, lengths, id_chunks, have_ids = [], [], [], True
    if isinstance(batches, Dataset):
        from thresher.engine.pieces import map_pieces

        done = map_pieces(batches, runner, hash_piece_batch, (config,), errors, combine=_joined)
    else:
        if callable(batches):  # the same inputs as near_duplicates accepts; one pass is enough here
            batches = batches()

        def items():  # the texts go to the engine; ids stay here, in reading order
            nonlocal have_ids
            for batch in as_batches(batches):
                text, ids = split_batch(batch, config.text_field, config.id_field)
                have_ids = have_ids and ids is not None
                if have_ids:
                    id_chunks.append(ids)
                yield config, compact(text)

        done = ((None, out) for out in runner.map(hash_batch, items()))
    for ids, (h, length) in done:
        if ids is not None:
            id_chunks.append(ids)
        hashes.append(h)
        lengths.append(length)
    n = sum(len(h) for h in hashes)
    labels = np.zeros(0, np.int64)
    if n:
        h = np.ascontiguousarray(np.concatenate(hashes)).view(np.dtype((np.void, 16))).ravel()
        _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
        labels = first[inverse.ravel()].astype(np.int64)  # the first record with this text: same for any batching
    ids_all = pa.concat_arrays(id_chunks) if have_ids and id_chunks else None
    lengths_all = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    return build_result(labels, "exact", config.keep, lengths_all, scores, ids_all, {})
