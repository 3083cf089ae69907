"""On-disk cache of a dataset's embeddings, one ``.npy`` file per batch, keyed by a fingerprint of the back-end, the
stored dtype and the inputs.

Shards are written to a temporary file and renamed, so a crashed run leaves only whole shards behind and the next
run with the same fingerprint resumes from them; a ``_COMPLETE`` marker says every shard is there. Vectors are
stored as float16 by default (half the disk; cosines change by about 1e-3) and always handed out as float32. Freshly
computed vectors are rounded through the stored dtype too, so a resumed run scores exactly like an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash

from thresher.embeddings.backends import EmbeddingBackend
from thresher.errors import ConfigError
from thresher.features.shards import CorruptShardError, discard, file_checksum, load_shard, warn_recomputed
from thresher.io.atomic import atomic_path, write_json
from thresher.progress import Progress

DTYPES = ("float16", "float32")


def as_texts(text: pa.Array | pa.ChunkedArray | list[str | None]) -> list[str]:
    """A batch of texts as a Python list, missing texts as empty strings."""
    values = text.to_pylist() if isinstance(text, pa.Array | pa.ChunkedArray) else list(text)
    return [t or "" for t in values]


def piece_shard_name(piece: int, part: int) -> str:
    """File name of the embeddings of batch ``part`` of input piece ``piece`` (fixed by the input and batch size)."""
    return f"shard-{piece:06d}-{part:04d}.npy"


class EmbeddingStore:
    """A folder ``<cache_dir>/emb-<key>/`` of shards, one per batch, for one (back-end fingerprint, dtype, data
    fingerprint): ``shard-000000.npy`` for the ``i``-th batch, or a shard named by its input piece and part
    (:func:`piece_shard_name`), whose order the completion marker lists (``shards``).

    ``data_fingerprint`` is the caller's: it must change whenever the texts or their split into batches do (e.g.
    file fingerprints, text field and batch size). A shard whose row count does not match its batch is recomputed.
    """

    def __init__(self, cache_dir: str | os.PathLike, backend: EmbeddingBackend | str, data_fingerprint: str,
                 dtype: str = "float16"):
        if dtype not in DTYPES:
            raise ConfigError(f"embedding dtype must be one of {DTYPES}, got {dtype!r}")
        self.backend_fingerprint = backend if isinstance(backend, str) else backend.fingerprint()
        self.data_fingerprint = data_fingerprint
        self.dtype = dtype
        key = {"v": 1, "backend": self.backend_fingerprint, "dtype": dtype, "data": data_fingerprint}
        self.key = xxhash.xxh3_64_hexdigest(json.dumps(key, sort_keys=True).encode())
        self.root = Path(cache_dir) / f"emb-{self.key}"

    @classmethod
    def open(cls, root: str | os.PathLike) -> EmbeddingStore:
        """A complete store by its folder (as recorded in a run's manifest)."""
        root = Path(root)
        if not (root / "_COMPLETE").is_file():
            raise ConfigError(f"{root}: no complete embedding cache there (deleted, or the run did not finish)")
        meta = json.loads((root / "_COMPLETE").read_text())
        store = cls(root.parent, meta["backend_fingerprint"], meta["data_fingerprint"], meta["dtype"])
        store.root = root
        return store

    def shard_path(self, index: int | str) -> Path:
        """The file of the ``index``-th shard, or of the shard named ``index``."""
        return self.root / (index if isinstance(index, str) else f"shard-{index:06d}.npy")

    def has(self, index: int | str, n_rows: int | None = None) -> bool:
        """Shard ``index`` is stored (with ``n_rows`` rows, if given)."""
        return self.reusable(index, n_rows) is not None

    def reusable(self, index: int | str, n_rows: int | None = None) -> np.ndarray | None:
        """Shard ``index`` as stored, if it is there, intact and (if given) has ``n_rows`` rows; else None (a damaged
        one is removed, with a warning, for the caller to encode again)."""
        if not self.shard_path(index).is_file():
            return None
        try:
            matrix = self.read(index)
        except CorruptShardError as e:
            warn_recomputed([e.path])
            return None
        return matrix if n_rows is None or matrix.shape[0] == n_rows else None

    def write(self, index: int | str, matrix: np.ndarray) -> np.ndarray:
        """Store one shard atomically; return it as float32, as :meth:`read` will give it back."""
        self.root.mkdir(parents=True, exist_ok=True)
        stored = np.ascontiguousarray(matrix, dtype=self.dtype)
        with atomic_path(self.shard_path(index)) as tmp:
            np.save(tmp, stored)
        return stored.astype(np.float32)

    def read(self, index: int | str, mmap: bool = True) -> np.ndarray:
        """Shard ``index`` in its stored dtype (memory-mapped unless ``mmap=False``); a damaged shard (unreadable,
        or in a complete store, with other bytes than when it was completed) is removed and raises
        :class:`CorruptShardError`."""
        path = self.shard_path(index)
        matrix = load_shard(path, lambda p: np.load(p, mmap_mode="r" if mmap else None))
        expected = self._checksums()
        if expected is not None and path.name in expected and file_checksum(path) != expected[path.name]:
            discard(path)
            raise CorruptShardError(path, "its bytes changed since the cache was completed")
        return matrix

    def _checksums(self) -> dict[str, str] | None:
        """The shards' checksums by file name, recorded when the store was completed (None while it is not)."""
        if not self.is_complete():
            return None
        meta = self.meta()
        return dict(zip((self.shard_path(i).name for i in self.shards(meta)), meta.get("checksums", [])))

    @staticmethod
    def shards(meta: dict) -> list[int | str]:
        """The shards of a complete store in order: their names, or their numbers."""
        return meta.get("shards") or list(range(meta["n_shards"]))

    def mark_complete(self, meta: dict) -> None:
        """Record the store as complete, with each shard's checksum (checked whenever a shard is read again);
        ``meta["shards"]``: the shards' names in order, when they are named."""
        meta = {**meta, "checksums": [file_checksum(self.shard_path(i)) for i in self.shards(meta)]}
        write_json(meta, self.root / "_COMPLETE")

    def is_complete(self) -> bool:
        return (self.root / "_COMPLETE").is_file()

    def meta(self) -> dict:
        """What :meth:`mark_complete` recorded (shard count, rows, dim, dtype, back-end fingerprint)."""
        return json.loads((self.root / "_COMPLETE").read_text())

    def iter_shards(self) -> Iterator[np.ndarray]:
        """Every shard of a complete store in order, as float32 (one shard in memory at a time)."""
        if not self.is_complete():
            raise ConfigError(f"{self.root}: the embedding cache is incomplete; run embed_texts over the data first")
        for index in self.shards(self.meta()):
            yield np.asarray(self.read(index), dtype=np.float32)

    def matrix(self) -> np.ndarray:
        """The whole embedding matrix of a complete store, float32 (n_rows x dim, all in memory)."""
        shards = list(self.iter_shards())
        return np.concatenate(shards) if shards else np.zeros((0, self.meta()["dim"]), dtype=np.float32)


def embed_shard(backend: EmbeddingBackend, store: EmbeddingStore | None, index: int | str,
                text: pa.Array | pa.ChunkedArray | list[str]) -> np.ndarray:
    """Worker task: the float32 embeddings of one batch, from the store if a previous run wrote them, else encoded
    (and stored)."""
    texts = as_texts(text)
    if store is None:
        return backend.encode(texts)
    stored = store.reusable(index, len(texts))  # read (and checked) once
    if stored is not None:
        return np.asarray(stored, dtype=np.float32)
    return store.write(index, backend.encode(texts))


def embed_texts(backend: EmbeddingBackend, batches: Iterable[pa.Array | pa.ChunkedArray | list[str]],
                store: EmbeddingStore | None = None, progress: bool = True,
                total: int | None = None) -> Iterator[np.ndarray]:
    """Yield a float32 embedding matrix per batch of texts, in order, reusing and filling ``store``.

    Memory stays bounded by one batch. Once every batch has been yielded the store is marked complete, and later
    runs can read it with :meth:`EmbeddingStore.iter_shards` without reading the texts. ``total``: record count for
    the progress bar, if known.
    """
    if store is not None and store.backend_fingerprint != backend.fingerprint():
        raise ConfigError(f"{store.root}: this embedding cache belongs to another model than backend {backend.name!r}")
    n_shards = n_rows = 0
    dim: int | None = None
    with Progress(f"embed ({backend.name})", total=total, enabled=progress) as bar:
        for index, batch in enumerate(batches):
            matrix = embed_shard(backend, store, index, batch)
            n_shards, n_rows, dim = n_shards + 1, n_rows + len(matrix), matrix.shape[1]
            bar.update(len(matrix))
            yield matrix
    if store is not None:
        store.mark_complete({"n_shards": n_shards, "n_rows": n_rows, "dim": dim if dim is not None else backend.dim,
                             "dtype": store.dtype, "backend": backend.name,
                             "backend_fingerprint": store.backend_fingerprint,
                             "data_fingerprint": store.data_fingerprint})


@dataclass(frozen=True)
class StoreRows:
    """Rows ``take`` of shard ``shard`` of a complete embedding store, as unit vectors: a block of rows that an
    engine task loads itself (see :mod:`thresher.selectors.kmeans`), so the matrix never passes through the main
    process."""

    root: str
    shard: int | str
    take: np.ndarray

    @property
    def n(self) -> int:
        return len(self.take)

    def rows(self) -> np.ndarray:
        X = np.asarray(EmbeddingStore.open(self.root).read(self.shard)[self.take], dtype=np.float32)
        norms = np.linalg.norm(X, axis=1, keepdims=True)  # as selectors.diversity.normalize_rows does
        return X / np.where(norms > 0, norms, 1).astype(np.float32)


def store_blocks(store: EmbeddingStore, positions: np.ndarray) -> list[StoreRows]:
    """The store's rows ``positions`` (sorted, in the store's row order) as one block per shard that holds any."""
    shards = store.shards(store.meta())
    sizes = [np.load(store.shard_path(i), mmap_mode="r").shape[0] for i in shards]  # headers only
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    cuts = np.searchsorted(positions, starts)
    return [StoreRows(str(store.root), shard, positions[cuts[k]:cuts[k + 1]] - starts[k])
            for k, shard in enumerate(shards) if cuts[k + 1] > cuts[k]]
