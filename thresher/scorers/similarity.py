"""Embedding similarity to a target sample: cosine to the target's centroid, and mean cosine to the nearest target
records.

Columns ``emb_centroid_cos`` (cosine between a record's embedding and the normalised mean of the target's
embeddings: one dot product per record) and ``emb_knn_cos`` (mean cosine to the record's ``k`` most similar target
records, exact (no approximate index): a matrix product over chunks of the target, fine up to about 100k target
records). The centroid
rewards the target's main theme; the kNN score also rewards records close to a minority of the target.

Background. Averaged embeddings, static ones most of all, share a common direction: every long English text has a
cosine of 0.5-0.85 to every other, so the target's centroid mostly measures "long English prose". Given a sample of
the pool as ``background``, the scorer subtracts the background's mean and projects out its top
``remove_components`` principal components (Mu & Viswanath's "all-but-the-top") from every vector before the
cosines, so they measure what the target has that the pool at large does not. On pool-en with the news target this
raised the static back-end's precision at 5% from 0.29 to 0.50 (see bench/results/embeddings.md).

The scorer pickles without its model (each worker process loads the model once, see
:mod:`thresher.embeddings.backends`) and, once saved or loaded, without its target matrix either: workers then read
``target.npy`` from the scorer's folder, memory-mapped, once per process. Install with
``pip install 'thresher[embed]'``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from thresher.embeddings.backends import BACKENDS, EmbeddingBackend, make_backend, normalise_rows
from thresher.embeddings.store import as_texts, embed_texts
from thresher.errors import ConfigError
from thresher.io.atomic import atomic_path, write_json
from thresher.io.sources import file_fingerprint

#: Saved targets loaded by this process, by (folder, target file fingerprint).
_TARGETS: dict[tuple[str, str], np.ndarray] = {}
_QUERY_CHUNK = 1024


class EmbeddingSimilarityScorer:
    """Fit on target texts, then score batches of pool texts or their cached embeddings (scikit-learn style).

    backend: ``minilm``, ``static``, or an :class:`~thresher.embeddings.EmbeddingBackend`; ``backend_params`` go
    to :func:`~thresher.embeddings.make_backend` (e.g. ``max_seq_length=128``, ``pca_dims=128``).
    k: target neighbours averaged in ``emb_knn_cos`` (capped at the target size).
    chunk_size: target rows per matrix product (memory is about ``1024 x chunk_size x 8`` bytes).
    remove_components: top principal components of the background projected out (only with a background).
    """

    def __init__(self, backend: str | EmbeddingBackend = "minilm", k: int = 10, chunk_size: int = 8192,
                 remove_components: int = 1, **backend_params: Any):
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        if chunk_size < 1:
            raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
        if remove_components < 0:
            raise ConfigError(f"remove_components must be >= 0, got {remove_components}")
        self.backend = make_backend(backend, **backend_params)
        self.k = k
        self.chunk_size = chunk_size
        self.remove_components = remove_components
        self.target_: np.ndarray | None = None
        self.centroid_: np.ndarray | None = None
        self.mean_: np.ndarray | None = None  # background mean, subtracted before the cosines (None: no background)
        self.components_: np.ndarray | None = None  # background principal components projected out
        self._saved: tuple[str, str] | None = None  # (folder, target.npy fingerprint) once saved or loaded

    def fit(self, target_texts: list[str] | pa.Array | pa.ChunkedArray,
            background: list[str] | pa.Array | pa.ChunkedArray | None = None, batch_size: int = 1024,
            progress: bool = False) -> EmbeddingSimilarityScorer:
        """Embed the target (and the optional background: a sample of the pool, a few thousand records is plenty)
        and keep the target matrix and its normalised centroid."""
        background_matrix = None if background is None else self._embed(background, batch_size, progress)
        return self.fit_embeddings(self._embed(target_texts, batch_size, progress), background_matrix)

    def _embed(self, text: list[str] | pa.Array | pa.ChunkedArray, batch_size: int, progress: bool) -> np.ndarray:
        texts = as_texts(text)
        batches = (texts[i:i + batch_size] for i in range(0, len(texts), batch_size))
        matrices = list(embed_texts(self.backend, batches, progress=progress, total=len(texts)))
        return np.concatenate(matrices) if matrices else np.zeros((0, 0), dtype=np.float32)

    def fit_embeddings(self, matrix: np.ndarray, background: np.ndarray | None = None) -> EmbeddingSimilarityScorer:
        """Fit on embeddings computed with this scorer's back-end (e.g. from an :class:`EmbeddingStore`)."""
        self.mean_ = self.components_ = None
        if background is not None:
            background = np.asarray(background)
            if background.ndim != 2 or not np.any(background):
                raise ConfigError("the background has no embeddable text: give a sample of the pool, or None")
            background = normalise_rows(background).astype(np.float64)
            self.mean_ = background.mean(axis=0).astype(np.float32)
            centred = background - self.mean_
            r = min(self.remove_components, len(background) - 1, background.shape[1])
            self.components_ = np.linalg.svd(centred, full_matrices=False)[2][:max(r, 0)].astype(np.float32)
        target = np.asarray(matrix)
        if target.ndim == 2:
            target = self._transform(target)
        if target.ndim != 2 or not np.any(target):
            raise ConfigError("the target has no embeddable text: give a non-empty target")
        centroid = target.astype(np.float64).mean(axis=0)
        self.centroid_ = (centroid / np.linalg.norm(centroid)).astype(np.float32)
        self.target_ = target
        self._saved = None
        return self

    def _transform(self, matrix: np.ndarray) -> np.ndarray:
        """Unit rows, less the background's mean and top components when fitted with a background."""
        rows = normalise_rows(matrix)
        if self.mean_ is None:
            return rows
        empty = ~rows.any(axis=1)
        rows -= self.mean_
        if self.components_ is not None and len(self.components_):
            rows -= (rows @ self.components_.T) @ self.components_
        rows[empty] = 0  # a text with no tokens stays at cosine 0, not at minus the background mean
        return normalise_rows(rows)

    def score(self, text: pa.Array | pa.ChunkedArray | list[str]) -> dict[str, np.ndarray]:
        """``emb_centroid_cos`` and ``emb_knn_cos`` for a batch of texts (empty texts score 0)."""
        return self.score_embeddings(self.backend.encode(as_texts(text)))

    def score_embeddings(self, matrix: np.ndarray) -> dict[str, np.ndarray]:
        """The same columns from embeddings already computed with this scorer's back-end (e.g. cached)."""
        target = self._target()
        queries = np.asarray(matrix)
        if queries.ndim != 2 or (len(queries) and queries.shape[1] != target.shape[1]):
            raise ConfigError(f"embeddings of shape {queries.shape} do not match the target's dimension "
                              f"{target.shape[1]}: embed the pool with the scorer's backend ({self.backend.name})")
        queries = self._transform(queries)
        k = min(self.k, len(target))
        knn = np.empty(len(queries), dtype=np.float64)
        for start in range(0, len(queries), _QUERY_CHUNK):
            knn[start:start + _QUERY_CHUNK] = _mean_top_k(queries[start:start + _QUERY_CHUNK], target, k,
                                                          self.chunk_size)
        return {"emb_centroid_cos": (queries @ self.centroid_).astype(np.float64), "emb_knn_cos": knn}

    def _target(self) -> np.ndarray:
        if self.target_ is None and self._saved is not None:
            if self._saved not in _TARGETS:
                _TARGETS[self._saved] = _load_target(*self._saved)
            self.target_ = _TARGETS[self._saved]
        if self.target_ is None or self.centroid_ is None:
            raise ConfigError("EmbeddingSimilarityScorer.score called before fit")
        return self.target_

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        if self._saved is not None:  # workers read the saved target file instead of receiving it in every task
            state["target_"] = None
        return state

    def get_params(self) -> dict:
        params = self.backend.params() if hasattr(self.backend, "params") else {}
        return {"backend": self.backend.name, "backend_params": params, "k": self.k, "chunk_size": self.chunk_size,
                "remove_components": self.remove_components}

    def save(self, path: str | os.PathLike) -> None:
        """Write ``target.npy``, ``centroid.npy`` and ``scorer.json`` (back-end name, parameters, fingerprint)."""
        target = self._target()
        if self.backend.name not in BACKENDS or not hasattr(self.backend, "params"):
            raise ConfigError(f"cannot save a scorer with the custom backend {self.backend.name!r}")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with atomic_path(path / "target.npy") as tmp:
            np.save(tmp, np.asarray(target, dtype=np.float32))
        with atomic_path(path / "centroid.npy") as tmp:
            np.save(tmp, self.centroid_)
        if self.mean_ is not None:
            with atomic_path(path / "background.npz") as tmp:
                np.savez(tmp, mean=self.mean_, components=self.components_)
        elif (path / "background.npz").exists():
            (path / "background.npz").unlink()
        target_fp = file_fingerprint(str(path / "target.npy"))
        write_json({"v": 1, **self.get_params(), "backend_fingerprint": self.backend.fingerprint(),
                    "n_target": len(target), "dim": target.shape[1], "background": self.mean_ is not None,
                    "target_fingerprint": target_fp},
                   path / "scorer.json")
        self._saved = (str(path.resolve()), target_fp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EmbeddingSimilarityScorer:
        """A scorer saved with :meth:`save`; refuses one whose embedding model has changed since."""
        path = Path(path)
        if not (path / "scorer.json").is_file():
            raise ConfigError(f"{path}: not a saved embedding scorer (no scorer.json)")
        meta = json.loads((path / "scorer.json").read_text())
        scorer = cls(meta["backend"], k=meta["k"], chunk_size=meta["chunk_size"],
                     remove_components=meta["remove_components"], **meta["backend_params"])
        if scorer.backend.fingerprint() != meta["backend_fingerprint"]:
            raise ConfigError(f"{path}: the embedding model of backend {meta['backend']!r} changed since this "
                              "scorer was fitted; fit it again")
        scorer.centroid_ = np.load(path / "centroid.npy")
        if (path / "background.npz").is_file():
            with np.load(path / "background.npz") as z:
                scorer.mean_, scorer.components_ = z["mean"], z["components"]
        scorer._saved = (str(path.resolve()), meta["target_fingerprint"])
        scorer.target_ = _TARGETS[scorer._saved] = _load_target(*scorer._saved)
        return scorer


def _load_target(folder: str, fingerprint: str) -> np.ndarray:
    """The saved target matrix, memory-mapped, after checking it is the one the scorer was saved with."""
    path = Path(folder) / "target.npy"
    if not path.is_file() or file_fingerprint(str(path)) != fingerprint:
        raise ConfigError(f"{folder}: the saved embedding scorer's target.npy changed or disappeared since it was "
                          "saved; fit and save the scorer again")
    return np.load(path, mmap_mode="r")


def _mean_top_k(queries: np.ndarray, target: np.ndarray, k: int, chunk_size: int) -> np.ndarray:
    """Mean of each query row's ``k`` largest cosines to the target rows, one target chunk at a time."""
    best = np.full((len(queries), k), -np.inf, dtype=np.float32)
    for start in range(0, len(target), chunk_size):
        sims = queries @ np.asarray(target[start:start + chunk_size]).T
        both = np.concatenate([best, sims], axis=1)
        best = np.partition(both, both.shape[1] - k, axis=1)[:, -k:]
    best.sort(axis=1)  # a fixed summation order, whatever the chunking
    return best.mean(axis=1, dtype=np.float64)
