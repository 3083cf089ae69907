"""Exact deduplication: records whose normalised texts are identical form one cluster; one record per cluster is kept.

Normalisation runs in Arrow on the whole batch; each normalised text is hashed once with xxh3-128 (two records
collide by chance with probability ~n^2 / 2^129, i.e. never). Hashes are grouped by a shuffle through spill files on
the engine (16 bytes a record plus its number, on disk), so no process holds every record's hash.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from thresher.dedup.clusters import KEEP_POLICIES, DedupResult, result_of, sparse_labels
from thresher.dedup.inputs import spill_input, text_slices
from thresher.dedup.shuffle import _VBITS, VIRTUAL_PARTITIONS, choose_partitions
from thresher.dedup.spill import file_starts, read_partitions, spill_area, write_partitioned
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
        text = pc.utf8_trim_whitespace(collapse_whitespace(text))
    return text


#: Bytes to spaces: RE2's ``\s`` (tab, newline, form feed, carriage return; ASCII only, not \v) become a space.
_TO_SPACE = np.arange(256, dtype=np.uint8)
_TO_SPACE[[9, 10, 12, 13]] = 32


def collapse_whitespace(text: pa.Array) -> pa.Array:
    r"""Every run of RE2 ``\s`` characters as one space, in numpy on the UTF-8 bytes: the same strings as
    ``pc.replace_substring_regex(text, r"\s+", " ")``, about four times faster (those bytes never occur inside a
    multi-byte UTF-8 character, and a run never crosses from one record to the next)."""
    text = text.cast(pa.large_string())
    if text.null_count:
        text = text.fill_null("")
    n = len(text)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[text.offset:text.offset + n + 1]
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]] if n else np.zeros(0, np.uint8)
    offsets = offsets - offsets[0]
    spaced = _TO_SPACE[data]
    space = spaced == 32
    drop = np.zeros(len(data), dtype=bool)
    np.logical_and(space[1:], space[:-1], out=drop[1:])  # a space after a space goes ...
    drop[offsets[:-1][offsets[:-1] < len(data)]] = False  # ... unless it opens a record (runs end with records)
    new_offsets = offsets - np.searchsorted(np.flatnonzero(drop), offsets)  # minus the bytes dropped before
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(new_offsets.astype(np.int64)), pa.py_buffer(spaced[~drop]))


def text_hashes(text: pa.Array, config: ExactConfig) -> np.ndarray:
    """xxh3-128 of each normalised text, as an (n, 2) uint64 array."""
    values = normalize(text, config).cast(pa.large_binary()).to_pylist()
    digest = b"".join(map(xxhash.xxh3_128_digest, values))
    return np.frombuffer(digest, dtype=np.uint64).reshape(-1, 2)


def spill_hashes(texts: list[pa.Array], file_no: int, spill: str, config: ExactConfig, want_lengths: bool
                 ) -> tuple[int, int, np.ndarray | None, int]:
    """Engine task (a map task of :mod:`thresher.dedup.inputs`): the normalised-text hashes of consecutive texts,
    written to spill file ``file_no`` by virtual partition (the hash's top bits) with each record's number in the
    file; return (records, 0, lengths if wanted, bytes written)."""
    slices = list(text_slices(texts))
    h = np.concatenate([text_hashes(t, config) for t in slices]) if slices else np.zeros((0, 2), np.uint64)
    rows = np.column_stack([h, np.arange(len(h), dtype=np.uint64)])
    written = write_partitioned(_hashes_path(Path(spill), file_no), (h[:, 0] >> _VBITS).astype(np.int64),
                                VIRTUAL_PARTITIONS, rows)
    lengths = None
    if want_lengths:
        lengths = np.concatenate([pc.utf8_length(t).to_numpy(zero_copy_only=False) for t in slices]).astype(np.int64)
    return len(h), 0, lengths, written


def first_copies(spill: str, part: int, n_parts: int) -> tuple[np.ndarray, np.ndarray]:
    """Engine task (reduce): for every record in partition ``part`` whose text appeared earlier in reading order,
    (its number, the number of the first record with that text)."""
    lo, hi = part * VIRTUAL_PARTITIONS // n_parts, (part + 1) * VIRTUAL_PARTITIONS // n_parts
    chunks = []
    for file_no, first in file_starts(Path(spill)):
        rows = read_partitions(_hashes_path(Path(spill), int(file_no)), np.uint64, lo, hi, VIRTUAL_PARTITIONS, 3)
        rows[:, 2] += np.uint64(first)  # file-local record numbers become reading-order ones
        chunks.append(rows)
    rows = np.concatenate(chunks) if chunks else np.zeros((0, 3), np.uint64)
    rows = rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]  # by text, then reading order
    new = np.ones(len(rows), dtype=bool)
    new[1:] = (rows[1:, 0] != rows[:-1, 0]) | (rows[1:, 1] != rows[:-1, 1])
    record = rows[:, 2].astype(np.int64)
    first = record[new][np.cumsum(new) - 1]
    later = record != first
    return record[later], first[later]


def _hashes_path(spill: Path, file_no: int) -> Path:
    return spill / f"hashes-{file_no:08d}.bin"


def exact_duplicates(batches: Dataset | Iterable | Callable[[], Iterable], config: ExactConfig | None = None,
                     scores: np.ndarray | None = None, engine: Engine | None = None,
                     errors: ErrorLog | None = None, spill_dir: str | os.PathLike | None = None,
                     partitions: int | None = None) -> DedupResult:
    """Exact duplicates among all records of ``batches``: a :class:`~thresher.io.dataset.Dataset`, whose pieces the
    engine's tasks read themselves (bad records go to ``errors``, default the dataset's policy), or text arrays,
    lists of str, or tables with a text column, sent to the engine in groups.

    A shuffle on ``engine`` (default: this process): each map task hashes its texts into a spill file under
    ``spill_dir`` (16 bytes a record plus its number), each reduce task groups one range of hashes and returns the
    records that repeat an earlier text. Here: ids, the repeats and their first copies, lengths for
    ``keep="longest"``.
    ``scores`` (one per record, reading order) are needed for ``keep="highest"``. The result is the same for any
    engine, worker count, batching and ``partitions``.
    """
    config = config or ExactConfig()
    runner = engine or LocalEngine(1)  # the caller's engine stays open for its next stage
    with spill_area(spill_dir) as spill:
        spilled = spill_input(batches, runner, spill, spill_hashes, (config, config.keep == "longest"),
                              config.text_field, config.id_field, errors=errors)
        n = spilled.n
        parts = choose_partitions(n, runner.workers, partitions)
        later, first = [], []  # each repeat and the first record with its text: the same for any batching
        for record, first_copy in runner.map(first_copies, ((str(spill), p, parts) for p in range(parts))):
            later.append(record)
            first.append(first_copy)
    members, labels = sparse_labels(np.concatenate(later) if later else np.zeros(0, np.int64),
                                    np.concatenate(first) if first else np.zeros(0, np.int64))
    result = result_of(n, members, labels, "exact", config.keep, spilled.lengths(), scores, spilled.ids(), {})
    result.shuffle = {"partitions": parts, "hash_files": len(spilled.files), "bytes_spilled": spilled.written}
    if isinstance(batches, Dataset):
        result.piece_starts = dict(spilled.files)
    return result
