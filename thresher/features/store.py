"""On-disk cache of hashed n-gram features, one file per shard, keyed by a fingerprint of config and inputs.

Each shard is written to a temporary file and renamed, so a crashed run leaves only whole shards behind and the next
run with the same fingerprint resumes from them. A ``_COMPLETE`` marker says every shard is there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer, NgramFeatures
from thresher.features.lengths import whitespace_token_counts
from thresher.io.atomic import atomic_path


@dataclass
class ShardSummary:
    """What the scoring stage needs from a shard without reading its features: sizes and summed counts."""

    n_tokens: np.ndarray
    n_words: np.ndarray
    counts: np.ndarray


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

    def _load(self, index: int) -> np.lib.npyio.NpzFile:
        return np.load(self.shard_path(index))

    def summary(self, index: int) -> ShardSummary:
        with self._load(index) as z:
            return ShardSummary(z["n_tokens"], z["n_words"], z["counts"])

    def read(self, index: int) -> NgramFeatures:
        with self._load(index) as z:
            return NgramFeatures(z["n_tokens"], [z[f"b{j}"] for j in range(self.config.ngrams)])

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
