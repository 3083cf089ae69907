"""On-disk cache of hashed n-gram features, one file per shard, keyed by a fingerprint of config and inputs.

Each shard is written to a temporary file and renamed, so a crashed run leaves only whole shards behind and the next
run with the same fingerprint resumes from them. A ``_COMPLETE`` marker says every shard is there.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer, NgramFeatures
from thresher.features.lengths import whitespace_token_counts
from thresher.features.shards import CorruptShardError, load_shard
from thresher.io.atomic import atomic_path


@dataclass
class ShardSummary:
    """What the scoring stage needs from a shard without reading its features: sizes and summed counts."""

    n_tokens: np.ndarray
    n_words: np.ndarray
    counts: np.ndarray
    recomputed: bool = False  # the stored shard was damaged and has been written again


def shard_name(piece: int, part: int) -> str:
    """File name of batch ``part`` of input piece ``piece``: fixed by the input and batch size, whatever ran it."""
    return f"shard-{piece:06d}-{part:04d}.npz"


class FeatureStore:
    """A folder of feature shards ``shard-<piece>-<part>.npz`` for one (config, inputs) fingerprint.

    Shards are numbered in reading order; which file holds shard ``i`` follows from how many batches each input
    piece had (``piece_parts``, recorded in the completion marker). A store without that record is of the older
    layout, one ``shard-<i>.npz`` per batch.
    """

    def __init__(self, root: str | os.PathLike, config: HashedNgramConfig, piece_parts: list[int] | None = None):
        self.root = Path(root)
        self.config = config
        self.piece_parts = piece_parts
        self._ends: np.ndarray | None = None

    def set_piece_parts(self, piece_parts: list[int]) -> None:
        """Shards in reading order are the parts of each piece in turn (``piece_parts[p]`` of piece ``p``)."""
        self.piece_parts, self._ends = list(piece_parts), None

    def shard_path(self, index: int | str) -> Path:
        """The file of shard ``index`` (its number in reading order), or of the shard named ``index``."""
        if isinstance(index, str):
            return self.root / index
        if self.piece_parts is None and self.is_complete():
            self.piece_parts = self.meta().get("piece_parts")
        if self.piece_parts is None:
            return self.root / f"shard-{index:06d}.npz"
        if self._ends is None:
            self._ends = np.cumsum(self.piece_parts)
        piece = int(np.searchsorted(self._ends, index, side="right"))
        if piece >= len(self._ends):
            raise IndexError(f"shard {index} of a store of {int(self._ends[-1]) if len(self._ends) else 0}")
        return self.root / shard_name(piece, index - int(self._ends[piece] - self.piece_parts[piece]))

    def has(self, index: int | str) -> bool:
        return self.shard_path(index).is_file()

    def write(self, index: int | str, features: NgramFeatures, n_words: np.ndarray) -> ShardSummary:
        """Write one shard atomically and return its summary."""
        self.root.mkdir(parents=True, exist_ok=True)
        counts = features.counts(self.config.num_buckets)
        arrays = {"n_tokens": features.n_tokens, "n_words": n_words, "counts": counts}
        arrays.update({f"b{j}": b for j, b in enumerate(features.buckets)})
        with atomic_path(self.shard_path(index)) as tmp:
            np.savez(tmp, **arrays)
        return ShardSummary(features.n_tokens, n_words, counts)

    def summary(self, index: int | str) -> ShardSummary:
        """Sizes and counts of a stored shard (:class:`CorruptShardError` if it cannot be read back)."""

        def load(path: Path) -> ShardSummary:
            with np.load(path) as z:
                return ShardSummary(z["n_tokens"], z["n_words"], z["counts"])

        return load_shard(self.shard_path(index), load)

    def read(self, index: int | str) -> NgramFeatures:
        """The features of a stored shard (:class:`CorruptShardError` if it cannot be read back)."""

        def load(path: Path) -> NgramFeatures:
            with np.load(path) as z:
                return NgramFeatures(z["n_tokens"], [z[f"b{j}"] for j in range(self.config.ngrams)])

        return load_shard(self.shard_path(index), load)

    def damaged_shards(self, n_shards: int) -> list[int]:
        """Shards of a complete store that are missing or whose archive cannot be opened (a cheap check of the
        zip directory, which a truncated file loses; altered bytes are caught by CRC when read)."""
        bad = []
        for index in range(n_shards):
            try:
                with zipfile.ZipFile(self.shard_path(index)) as z:
                    if "counts.npy" not in z.namelist():
                        bad.append(index)
            except (OSError, zipfile.BadZipFile):
                bad.append(index)
        return bad

    def mark_complete(self, meta: dict) -> None:
        (self.root / "_COMPLETE").write_text(json.dumps(meta, indent=1, sort_keys=True))

    def is_complete(self) -> bool:
        return (self.root / "_COMPLETE").is_file()

    def meta(self) -> dict:
        """What :meth:`mark_complete` recorded (shard count and sizes, ...)."""
        return json.loads((self.root / "_COMPLETE").read_text())


def featurize_shard(config: HashedNgramConfig, root: str, name: str, text: pa.Array) -> ShardSummary:
    """Featurize one batch of texts and store it as the shard file ``name``."""
    features = HashedNgramFeaturizer(config).transform(text)
    n_words = features.n_tokens if config.tokenizer == "whitespace" else whitespace_token_counts(text)
    return FeatureStore(root, config).write(name, features, n_words)


def featurize_or_load(config: HashedNgramConfig, root: str, name: str, text: pa.Array) -> ShardSummary:
    """Reuse the shard file ``name`` a crashed run already wrote, or featurize it (again, if it was damaged or is
    of another size)."""
    store = FeatureStore(root, config)
    if not store.has(name):
        return featurize_shard(config, root, name, text)
    try:
        summary = store.summary(name)
        if len(summary.n_tokens) == len(text):
            return summary
    except CorruptShardError:
        pass
    summary = featurize_shard(config, root, name, text)
    summary.recomputed = True
    return summary
