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


class FeatureStore:
    """A folder of feature shards ``shard-000000.npz`` for one (config, inputs) fingerprint."""

    def __init__(self, root: str | os.PathLike, config: HashedNgramConfig):
        self.root = Path(root)
        self.config = config

    def shard_path(self, index: int) -> Path:
        return self.root / f"shard-{index:06d}.npz"

    def has(self, index: int) -> bool:
        return self.shard_path(index).is_file()

    def write(self, index: int, features: NgramFeatures, n_words: np.ndarray) -> ShardSummary:
        """Write one shard atomically and return its summary."""
        self.root.mkdir(parents=True, exist_ok=True)
        counts = features.counts(self.config.num_buckets)
        arrays = {"n_tokens": features.n_tokens, "n_words": n_words, "counts": counts}
        arrays.update({f"b{j}": b for j, b in enumerate(features.buckets)})
        with atomic_path(self.shard_path(index)) as tmp:
            np.savez(tmp, **arrays)
        return ShardSummary(features.n_tokens, n_words, counts)

    def summary(self, index: int) -> ShardSummary:
        """Sizes and counts of a stored shard (:class:`CorruptShardError` if it cannot be read back)."""

        def load(path: Path) -> ShardSummary:
            with np.load(path) as z:
                return ShardSummary(z["n_tokens"], z["n_words"], z["counts"])

        return load_shard(self.shard_path(index), load)

    def read(self, index: int) -> NgramFeatures:
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



def featurize_shard(config: HashedNgramConfig, root: str, index: int, text: pa.Array) -> ShardSummary:
    """Worker task: featurize one batch of texts and store it as shard ``index``."""
    features = HashedNgramFeaturizer(config).transform(text)
    n_words = features.n_tokens if config.tokenizer == "whitespace" else whitespace_token_counts(text)
    return FeatureStore(root, config).write(index, features, n_words)


def featurize_or_load(config: HashedNgramConfig, root: str, index: int, text: pa.Array) -> ShardSummary:
    """Worker task: reuse a shard a crashed run already wrote, or featurize it (again, if it was damaged or is
    of another size)."""
    store = FeatureStore(root, config)
    if not store.has(index):
        return featurize_shard(config, root, index, text)
    try:
        summary = store.summary(index)
        if len(summary.n_tokens) == len(text):
            return summary
    except CorruptShardError:
        pass
    summary = featurize_shard(config, root, index, text)
    summary.recomputed = True
    return summary
