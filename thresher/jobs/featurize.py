"""Featurize stage: stream a dataset through the engine into a feature store, keeping the small per-record index
(ids, group labels, lengths) that scoring and selection need."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.engine import Engine, make_engine
from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer
from thresher.features.shards import discard, file_checksum, warn_recomputed
from thresher.features.store import FeatureStore, featurize_or_load
from thresher.io.atomic import write_parquet
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_fingerprint
from thresher.progress import Progress, known_rows


@dataclass
class PoolIndex:
    """Per-record columns of a featurized pool, in reading order, plus its summed n-gram counts."""

    ids: pa.Array
    groups: pa.Array | None
    n_tokens: np.ndarray
    n_words: np.ndarray
    counts: np.ndarray
    shard_sizes: np.ndarray
    errors: dict

    @property
    def n_records(self) -> int:
        return len(self.ids)


def store_for(dataset: Dataset, config: HashedNgramConfig, cache_dir: Path, group_field: str | None) -> FeatureStore:
    """The feature store keyed by everything that changes the features or which records are read."""
    digest = dataset_fingerprint(dataset, features=config.fingerprint(), group_field=group_field)
    return FeatureStore(Path(cache_dir) / f"ngrams-{digest}", config)


def score_shard(scorer, store: FeatureStore, index: int) -> dict[str, np.ndarray]:
    """Worker task: score columns of one stored shard with a fitted scorer."""
    return scorer.score(store.read(index))


def featurize_pool(dataset: Dataset, store: FeatureStore, engine: Engine, group_field: str | None,
                   progress: bool = True) -> PoolIndex:
    """Featurize every record of ``dataset`` into ``store`` (or load a complete store) and return its index."""
    damaged = []
    if store.is_complete():
        meta = store.meta()
        bad_index = [name for name, digest in meta.get("checksums", {}).items()
                     if not (store.root / name).is_file() or file_checksum(store.root / name) != digest]
        damaged = store.damaged_shards(meta["n_shards"])
        if not damaged and not bad_index:
            return _load_index(store)
        # the per-record index is rebuilt from the shards (each checked as it is read); damaged shards are redone
        warn_recomputed([store.root / name for name in bad_index])
        for path in [*(store.root / name for name in bad_index), *map(store.shard_path, damaged)]:
            discard(path)
    errors = ErrorLog(dataset.on_error)
    ids: list[pa.Array] = []
    groups: list[pa.Array] = []
    extra = [group_field] if group_field else []

    def items():
        for i, batch in enumerate(dataset.iter_batches(errors, extra)):
            ids.append(batch.column("id"))
            if group_field:
                groups.append(batch.column(group_field))
            yield store.config, str(store.root), i, batch.column("text")

    counts = np.zeros(store.config.num_buckets, dtype=np.int64)
    n_tokens, n_words, sizes = [], [], []
    bar = Progress("featurize", total=known_rows(dataset), enabled=progress)
    recomputed = [store.shard_path(i) for i in damaged]
    for i, summary in enumerate(engine.map(featurize_or_load, items())):
        if summary.recomputed:  # damaged after the store was last completed (discarded ones come back as new)
            recomputed.append(store.shard_path(i))
        counts += summary.counts
        n_tokens.append(summary.n_tokens)
        n_words.append(summary.n_words)
        sizes.append(len(summary.n_tokens))
        bar.update(len(summary.n_tokens))
    bar.close()
    warn_recomputed(recomputed)
    if not ids:
        raise ConfigError(f"the pool has no usable records ({', '.join(dataset.paths)})")
    index = PoolIndex(
        ids=pa.concat_arrays(ids),
        groups=_groups(groups) if group_field else None,
        n_tokens=np.concatenate(n_tokens), n_words=np.concatenate(n_words), counts=counts,
        shard_sizes=np.asarray(sizes, dtype=np.int64), errors=errors.to_dict())
    _save_index(store, index)
    return index


def featurize_in_memory(dataset: Dataset, config: HashedNgramConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """Summed bucket counts and per-record token counts of a small dataset (a target), without caching."""
    errors = ErrorLog(dataset.on_error)
    featurizer = HashedNgramFeaturizer(config)
    counts = np.zeros(config.num_buckets, dtype=np.int64)
    lengths = []
    for batch in dataset.iter_batches(errors):
        features = featurizer.transform(batch.column("text"))
        counts += features.counts(config.num_buckets)
        lengths.append(features.n_tokens)
    if not lengths:
        raise ConfigError(f"the target has no usable records ({', '.join(dataset.paths)})")
    return counts, np.concatenate(lengths), errors.to_dict()


def _groups(chunks: list[pa.Array]) -> pa.Array | None:
    arr = pa.concat_arrays(chunks)
    return None if arr.null_count == len(arr) else arr


#: Files of a complete store besides its shards; their checksums are kept in ``_COMPLETE``.
INDEX_FILES = ("index.parquet", "counts.npy")


def _save_index(store: FeatureStore, index: PoolIndex) -> None:
    cols = {"id": index.ids, "n_tokens": index.n_tokens, "n_words": index.n_words}
    if index.groups is not None:
        cols["group"] = index.groups
    store.root.mkdir(parents=True, exist_ok=True)
    write_parquet(pa.table(cols), store.root / "index.parquet")
    np.save(store.root / "counts.npy", index.counts)
    store.mark_complete({"n_shards": len(index.shard_sizes), "shard_sizes": index.shard_sizes.tolist(),
                         "errors": index.errors, "n_records": index.n_records,
                         "checksums": {name: file_checksum(store.root / name) for name in INDEX_FILES}})


def _load_index(store: FeatureStore) -> PoolIndex:
    meta = store.meta()
    t = pq.read_table(store.root / "index.parquet")
    return PoolIndex(
        ids=t["id"].combine_chunks(), groups=t["group"].combine_chunks() if "group" in t.column_names else None,
        n_tokens=t["n_tokens"].to_numpy(), n_words=t["n_words"].to_numpy(),
        counts=np.load(store.root / "counts.npy"), shard_sizes=np.asarray(meta["shard_sizes"], dtype=np.int64),
        errors=meta["errors"])


def shard_counts(store: FeatureStore, index: int, masks: list[np.ndarray]) -> list[np.ndarray]:
    """Worker task: one shard's bucket counts summed over the records of each mask."""
    n = store.config.num_buckets
    if not any(m.any() for m in masks):
        return [np.zeros(n, dtype=np.int64) for _ in masks]
    features = store.read(index)
    return [features.counts(n, m) if m.any() else np.zeros(n, dtype=np.int64) for m in masks]


def masked_counts(store: FeatureStore, shard_sizes: np.ndarray, masks: list[np.ndarray],
                  engine: Engine | None = None) -> list[np.ndarray]:
    """Summed bucket counts over the records selected by each boolean mask, in one pass over the store."""
    bounds = np.concatenate([[0], np.cumsum(shard_sizes)])
    items = ((store, i, [m[bounds[i]: bounds[i + 1]] for m in masks]) for i in range(len(shard_sizes)))
    totals = [np.zeros(store.config.num_buckets, dtype=np.int64) for _ in masks]
    for parts in (engine or make_engine(1)).map(shard_counts, items):
        for total, part in zip(totals, parts):
            total += part
    return totals


__all__ = ["PoolIndex", "featurize_pool", "featurize_in_memory", "masked_counts", "score_shard", "shard_counts",
           "store_for"]
