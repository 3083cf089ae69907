"""Selectors that look at more than one record at a time: diversity on embeddings and budgets per group.

Where each lives:

- :mod:`thresher.selectors.kcenter`: :class:`~thresher.selectors.kcenter.KCenter`, greedy k-center (core-set).
- :mod:`thresher.selectors.facility`: :class:`~thresher.selectors.facility.FacilityLocation` on a sparse
  k-nearest-neighbour similarity graph (lazy, stochastic and GreeDi optimizers), :func:`knn_graph` and the objectives.
- :mod:`thresher.selectors.quotas`: :class:`~thresher.selectors.quotas.Quotas` (stratified budgets from a label
  column) and :class:`~thresher.selectors.quotas.QualityDiversity` (QuaDMix-style sampling).
- :mod:`thresher.selectors.kmeans`: seeded :func:`~thresher.selectors.kmeans.kmeans`, a map over row blocks;
  :mod:`thresher.selectors.clusters`: :class:`~thresher.selectors.clusters.ClusterBalanced` on it.

Every one has ``select(...)`` returning record indices in priority order (best or first drawn first), exactly
``budget`` of them, where ``budget`` is a record count, a fraction or a :class:`Budget` (token budgets are not
supported: ask for an upper-bound count and cut the order with ``Budget.take``). Randomness comes only from
``numpy.random.default_rng(seed)``, or, for quotas, from position-keyed noise (:mod:`thresher.selectors.noise`).
This module holds the input checks they share, a registry by name
(:data:`DIVERSITY_SELECTORS`, :func:`make_diversity_selector`) and one entry point for the pipeline,
:func:`run_diversity_selector`, which also accepts token budgets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from thresher.errors import ConfigError
from thresher.selectors.budget import Budget

#: Bytes of temporaries a chunked matrix product may hold at once (similarity block plus its top-k indices).
CHUNK_BYTES = 256 * 2**20


def as_embeddings(X: np.ndarray) -> np.ndarray:
    """``X`` as a C-contiguous float32 matrix (records x dims), checked: the one layout the selectors compute on."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ConfigError(f"embeddings must be a non-empty 2-D matrix (records x dims), got shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise ConfigError("embeddings contain NaN or infinite values")
    return X


def normalize_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), so that cosine similarity is a dot product."""
    X = as_embeddings(X)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1).astype(np.float32)


def record_count(budget: int | float | str | Budget, n: int) -> int:
    """The number of records a budget asks for out of ``n``; more than ``n`` is an error, as everywhere in thresher."""
    b = Budget.parse(budget)
    k = b.records(n)
    if k is None:
        raise ConfigError(f"budget {b} is in tokens; these selectors need a record count: select an upper-bound "
                          "count, then cut the order with Budget.take")
    return k


def group_codes(labels: np.ndarray | list) -> tuple[list[str], np.ndarray]:
    """(sorted distinct labels as strings, int64 code of each record): groups are ordered by name, None is 'None'."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or len(arr) == 0:
        raise ConfigError(f"group labels must be a non-empty 1-D column, got shape {arr.shape}")
    names, codes = np.unique(arr.astype(str), return_inverse=True)
    return [str(x) for x in names], codes.astype(np.int64)


def as_scores(scores: np.ndarray | None, n: int, required: bool, what: str) -> np.ndarray | None:
    """``scores`` as float64 of length ``n`` (NaN ranks last), or a clear error when a rule needs them."""
    if scores is None:
        if required:
            raise ConfigError(f"{what} needs a score per record")
        return None
    s = np.asarray(scores, dtype=np.float64)
    if s.shape[0] != n:
        raise ConfigError(f"{what}: got {s.shape[0]} scores for {n} records")
    return s


def matvec(X: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``X @ x`` in one thread: a multi-threaded BLAS matrix-vector product can be 30x slower on a busy machine."""
    return np.einsum("ij,j->i", X, x)


def chunk_rows(n_cols: int, bytes_per_cell: int = 12, budget: int = CHUNK_BYTES) -> int:
    """Rows per block so that a (rows x n_cols) block of ``bytes_per_cell`` fits in ``budget`` bytes."""
    return max(1, budget // max(1, n_cols * bytes_per_cell))


#: name -> (module, class, inputs it reads): the registry an integrator can expose next to ``SELECTORS``. ``blocks``:
#: its embeddings may be row blocks that engine tasks load (see :mod:`thresher.selectors.kmeans`).
DIVERSITY_SELECTORS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "kcenter": ("thresher.selectors.kcenter", "KCenter", ("embeddings", "scores?")),
    "facility": ("thresher.selectors.facility", "FacilityLocation", ("embeddings",)),
    "clusters": ("thresher.selectors.clusters", "ClusterBalanced", ("embeddings", "scores?", "blocks")),
    "quotas": ("thresher.selectors.quotas", "Quotas", ("labels", "scores?")),
    "quadmix": ("thresher.selectors.quotas", "QualityDiversity", ("labels", "scores")),
    "mixture": ("thresher.selectors.mixture", "MixtureQuotas", ("labels", "scores?")),
}


def make_diversity_selector(name: str, **params: object):
    """Build a diversity or quota selector by name; parameters that are None keep their defaults."""
    import importlib

    if name not in DIVERSITY_SELECTORS:
        raise ConfigError(f"unknown selector {name!r}; choose from {', '.join(DIVERSITY_SELECTORS)}")
    module, cls_name, _ = DIVERSITY_SELECTORS[name]
    cls = getattr(importlib.import_module(module), cls_name)
    given = {k: v for k, v in params.items() if v is not None}
    unknown = [k for k in given if k not in cls.__dataclass_fields__]
    if unknown:
        raise ConfigError(f"selector {name!r} does not take {', '.join(unknown)}")
    try:
        return cls(**given)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"selector {name!r}: bad parameter value ({e})") from None


def token_upper_bound(budget: Budget, n_tokens: np.ndarray) -> int:
    """The most records any prefix within a token budget can hold: as many of the shortest records as fit."""
    fits = int(np.searchsorted(np.cumsum(np.sort(np.asarray(n_tokens))), budget.value, side="right"))
    return max(1, min(len(n_tokens), fits))


def reads_blocks(name: str) -> bool:
    """Whether selector ``name`` takes its embeddings as row blocks that engine tasks load."""
    return "blocks" in DIVERSITY_SELECTORS.get(name, ("", "", ()))[2]


def run_diversity_selector(selector, budget: int | float | str | Budget, *,
                           embeddings: np.ndarray | Sequence | None = None,
                           labels: np.ndarray | list | None = None, scores: np.ndarray | None = None,
                           n_tokens: np.ndarray | None = None, engine=None) -> np.ndarray:
    """Indices selected by any selector of :data:`DIVERSITY_SELECTORS`, from the inputs it reads.

    One entry point for the pipeline: a token budget is turned into an upper-bound record count (see
    :func:`token_upper_bound`), the selector ranks that many records, and ``Budget.take`` keeps the prefix that fits.
    ``embeddings`` may be row blocks for a selector that :func:`reads_blocks`; ``engine`` runs its passes.
    """
    name = selector.name
    needs = dict((x.rstrip("?"), not x.endswith("?")) for x in DIVERSITY_SELECTORS[name][2] if x != "blocks")
    if embeddings is not None and not isinstance(embeddings, np.ndarray) and not reads_blocks(name):
        raise ConfigError(f"selector {name!r} needs its embeddings as one matrix")
    if "embeddings" in needs and embeddings is None:
        raise ConfigError(f"selector {name!r} needs embeddings")
    if "labels" in needs and labels is None:
        raise ConfigError(f"selector {name!r} needs a group label per record")
    if needs.get("scores") and scores is None:
        raise ConfigError(f"selector {name!r} needs a score per record")
    if "embeddings" not in needs:
        n = len(labels)
    else:
        n = len(embeddings) if isinstance(embeddings, np.ndarray) else sum(b.n for b in embeddings)
    b = Budget.parse(budget)
    if hasattr(selector, "select_tokens"):  # a mixture: a token quota per group, not a record count
        if n_tokens is None:
            raise ConfigError(f"selector {name!r} needs the token count of every record")
        return selector.select_tokens(labels, n_tokens, b, scores)
    if b.kind == "tokens":
        if n_tokens is None:
            raise ConfigError(f"a token budget ({b}) needs the token count of every record")
        count = token_upper_bound(b, n_tokens)
    else:
        count = record_count(b, n)
    first = embeddings if "embeddings" in needs else labels
    order = selector.select(first, count, scores, engine=engine) if reads_blocks(name) else \
        selector.select(first, count, scores)
    if b.kind == "tokens":
        order = b.take(order, n, np.asarray(n_tokens))
    return order
