"""Featurize stage: stream a dataset through the engine into a feature store, keeping the small per-record index
(ids, group labels, lengths) that scoring and selection need."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.engine import Engine, make_engine
from thresher.engine.pieces import map_pieces
from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer
from thresher.features.shards import discard, file_checksum, warn_recomputed
from thresher.features.store import FeatureStore, featurize_or_load, shard_name
from thresher.io.atomic import ParquetStream
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_fingerprint
from thresher.progress import Progress, known_rows


@dataclass
class PoolIndex:
    """A featurized pool's summary: its summed n-gram counts, records per shard, error counts, and where its
    per-record columns (id, n_tokens, n_words, group) are: ``index.parquet`` in the store, one row group per shard,
    which the score tasks read shard by shard (the main process never holds them)."""

    path: Path
    has_groups: bool
    counts: np.ndarray
    shard_sizes: np.ndarray
    errors: dict

    @property
    def n_records(self) -> int:
        return int(self.shard_sizes.sum())

    def shard(self, i: int) -> pa.Table:
        """The per-record columns of shard ``i`` (without ``group`` when no record has one)."""
        table = pq.ParquetFile(self.path).read_row_group(i)
        return table if self.has_groups or "group" not in table.column_names else table.drop_columns(["group"])


#: The feature store's file layout, part of its cache key: shards are the batches of each input piece.
STORE_LAYOUT = "pieces-4"  # 2: big files cut into pieces; 3: index by shard; 4: pieces also end by bytes


def store_for(dataset: Dataset, config: HashedNgramConfig, cache_dir: Path, group_field: str | None) -> FeatureStore:
    """The feature store keyed by everything that changes the features or which records are read."""
    digest = dataset_fingerprint(dataset, features=config.fingerprint(), group_field=group_field, layout=STORE_LAYOUT)
    return FeatureStore(Path(cache_dir) / f"ngrams-{digest}", config)


def score_shard(scorer, store: FeatureStore, index: PoolIndex, i: int) -> pa.Table:
    """Worker task: the side-car rows of shard ``i``: its ids, the fitted scorer's columns (none without one),
    lengths and group."""
    rows = index.shard(i)
    columns = scorer.score(store.read(i)) if scorer is not None else {}
    n_tokens = rows["n_tokens"].to_numpy()
    ngrams = sum(np.maximum(n_tokens - j, 0) for j in range(store.config.ngrams))
    table = pa.table({"id": rows["id"], **columns, "n_tokens": rows["n_tokens"], "n_words": rows["n_words"],
                      "n_ngrams": ngrams})
    return table.append_column("group", rows["group"]) if "group" in rows.column_names else table


@dataclass
class PieceFeatures:
    """What featurizing one input piece sends back besides its read: its shards' summaries (counts summed)."""

    groups: list[pa.Array]
    n_tokens: list[np.ndarray]
    n_words: list[np.ndarray]
    counts: np.ndarray | int
    recomputed: list[str]

    @classmethod
    def of(cls, parts: list[tuple]) -> PieceFeatures:
        """Worker side: the summaries of a piece's batches (from :func:`featurize_part`), counts summed."""
        out = cls([], [], [], 0, [])
        for name, group, summary in parts:
            if summary.recomputed:  # damaged after the store was last completed (discarded ones come back as new)
                out.recomputed.append(name)
            if group is not None:
                out.groups.append(group)
            out.counts = out.counts + summary.counts
            out.n_tokens.append(summary.n_tokens)
            out.n_words.append(summary.n_words)
        return out

    @property
    def n_parts(self) -> int:
        return len(self.n_tokens)


def featurize_part(batch: pa.RecordBatch, where: tuple[int, int], config: HashedNgramConfig, root: str,
                   group_field: str | None) -> tuple:
    """Worker task: store one batch of an input piece as a feature shard (reusing one a crashed run wrote)."""
    name = shard_name(*where)
    return name, batch.column(group_field) if group_field else None, \
        featurize_or_load(config, root, name, batch.column("text"))


def featurize_pool(dataset: Dataset, store: FeatureStore, engine: Engine, group_field: str | None,
                   progress: bool = True) -> PoolIndex:
    """Featurize every record of ``dataset`` into ``store`` (or load a complete store) and return its index.

    Each engine task reads its own piece of the input (the main process sends only where it is) and returns
    its ids; the main process checks them for repeats and merges the error logs in reading order.
    """
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
    recomputed = [store.shard_path(i) for i in damaged]
    errors = ErrorLog(dataset.on_error)
    counts = np.zeros(store.config.num_buckets, dtype=np.int64)
    sizes: list[int] = []
    parts: list[int] = []
    has_groups = False
    bar = Progress("featurize", total=known_rows(dataset), enabled=progress)
    args = (store.config, str(store.root), group_field)
    store.root.mkdir(parents=True, exist_ok=True)
    # the per-record index streams to disk a shard (one row group) at a time, as the pieces are merged in order
    with ParquetStream(store.root / "index.parquet") as stream:
        for piece_ids, done in map_pieces(dataset, engine, featurize_part, args, errors,
                                          [group_field] if group_field else [], bar, PieceFeatures.of):
            recomputed += [store.shard_path(name) for name in done.recomputed]
            counts += done.counts
            parts.append(done.n_parts)
            start = 0
            for k, (tokens, words) in enumerate(zip(done.n_tokens, done.n_words)):
                columns = {"id": piece_ids.slice(start, len(tokens)), "n_tokens": tokens, "n_words": words}
                if group_field:
                    columns["group"] = done.groups[k]
                    has_groups |= done.groups[k].null_count < len(tokens)
                stream.write(pa.table(columns), row_group_size=max(1, len(tokens)))
                start += len(tokens)
                sizes.append(len(tokens))
        bar.close()
        if not stream.started:
            raise ConfigError(f"the pool has no usable records ({', '.join(dataset.paths)})")
    warn_recomputed(recomputed)
    store.set_piece_parts(parts)
    index = PoolIndex(store.root / "index.parquet", has_groups, counts, np.asarray(sizes, dtype=np.int64),
                      errors.to_dict())
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


#: Files of a complete store besides its shards; their checksums are kept in ``_COMPLETE``.
INDEX_FILES = ("index.parquet", "counts.npy")


def _save_index(store: FeatureStore, index: PoolIndex) -> None:
    np.save(store.root / "counts.npy", index.counts)
    store.mark_complete({"n_shards": len(index.shard_sizes), "shard_sizes": index.shard_sizes.tolist(),
                         "piece_parts": store.piece_parts, "has_groups": index.has_groups,
                         "errors": index.errors, "n_records": index.n_records,
                         "checksums": {name: file_checksum(store.root / name) for name in INDEX_FILES}})


def _load_index(store: FeatureStore) -> PoolIndex:
    meta = store.meta()
    if meta.get("piece_parts") is not None:
        store.set_piece_parts(meta["piece_parts"])
    return PoolIndex(store.root / "index.parquet", meta["has_groups"], np.load(store.root / "counts.npy"),
                     np.asarray(meta["shard_sizes"], dtype=np.int64), meta["errors"])


def shard_counts(store: FeatureStore, index: int, rows: list[np.ndarray]) -> list[np.ndarray]:
    """Worker task: one shard's bucket counts summed over the records at each array of positions in the shard."""
    n = store.config.num_buckets
    if not any(len(r) for r in rows):
        return [np.zeros(n, dtype=np.int64) for _ in rows]
    features = store.read(index)
    masks = [np.zeros(features.n_records, dtype=bool) for _ in rows]
    for mask, r in zip(masks, rows):
        mask[r] = True
    return [features.counts(n, m) if m.any() else np.zeros(n, dtype=np.int64) for m in masks]


def piece_rows(store: FeatureStore | None, shard_sizes: np.ndarray | None) -> np.ndarray | None:
    """Usable records per input piece, from a store's shards (each piece's batches, in order); None if unknown."""
    if store is None or shard_sizes is None:
        return None
    parts = store.piece_parts if store.piece_parts is not None else store.meta().get("piece_parts")
    if parts is None or sum(parts) != len(shard_sizes):
        return None
    ends = np.cumsum(np.concatenate([[0], shard_sizes]))[np.cumsum(parts)]
    return np.diff(np.concatenate([[0], ends]))


def _per_shard(shard_sizes: np.ndarray, rows: list[np.ndarray]):
    """For each shard in order, its index and the positions of each of ``rows`` (sorted pool positions) inside it."""
    bounds = np.concatenate([[0], np.cumsum(shard_sizes)])
    for i in range(len(shard_sizes)):
        yield i, [r[np.searchsorted(r, bounds[i]): np.searchsorted(r, bounds[i + 1])] - bounds[i] for r in rows]


def masked_counts(store: FeatureStore, shard_sizes: np.ndarray, rows: list[np.ndarray],
                  engine: Engine | None = None) -> list[np.ndarray]:
    """Summed bucket counts over the records at each array of sorted pool positions, in one pass over the store
    (each task gets only its shard's positions: nothing of pool size is built or sent)."""
    items = ((store, i, within) for i, within in _per_shard(shard_sizes, rows))
    totals = [np.zeros(store.config.num_buckets, dtype=np.int64) for _ in rows]
    for parts in (engine or make_engine(1)).map(shard_counts, items):
        for total, part in zip(totals, parts):
            total += part
    return totals


def shard_matrix(store: FeatureStore, index: int, rows: np.ndarray):
    """Worker task: the records x buckets count matrix (CSR) of the records at ``rows`` of one shard."""
    from scipy import sparse

    if not len(rows):
        return sparse.csr_matrix((0, store.config.num_buckets), dtype=np.int32)
    return store.read(index).to_csr(store.config.num_buckets)[rows]


def rows_matrix(store: FeatureStore, shard_sizes: np.ndarray, rows: np.ndarray, engine: Engine | None = None):
    """The count matrix (CSR, one row per record, in the order of ``rows``: sorted pool positions) of a subset of
    the pool, read shard by shard: what a set-level selector over n-gram features needs."""
    from scipy import sparse

    items = ((store, i, within[0]) for i, within in _per_shard(shard_sizes, [np.asarray(rows)]))
    return sparse.vstack(list((engine or make_engine(1)).map(shard_matrix, items)), format="csr")


__all__ = ["PoolIndex", "featurize_part", "featurize_pool", "featurize_in_memory", "masked_counts", "piece_rows",
           "rows_matrix", "score_shard", "shard_counts", "store_for"]
