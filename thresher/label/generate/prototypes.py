"""Embedding LFs from a few labelled records: nearest-centroid LFs on the records themselves and zero-shot LFs on
descriptions of the classes, each a :class:`PrototypeLF` whose margin is chosen on the dev records.

Nearest centroid: a class's prototypes are up to ``max_prototypes`` of its dev records, those nearest its centroid
(the most typical, so the file stays readable and the centroid stays put). Its dev numbers are those of the LF as
written, leave-one-out: a prototype is compared with its class's centroid without itself.

Zero-shot: a class's prototype is its description (by default its name), as in zero-shot classification by
embedding similarity.

For both, the margin (how far the nearest class must beat the runner-up) is the one of ``MARGINS`` whose Wilson
lower bound of dev precision times dev coverage is largest among those clearly above chance (:func:`choose_margin`):
precise enough to trust, broad enough to matter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from thresher.errors import ConfigError
from thresher.label.generate.generated import GeneratedLF, choose_margin
from thresher.label.lfs import PrototypeLF

MARGINS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)  # cosine similarity


def _embed(texts: Sequence[str], backend: str) -> np.ndarray:
    from thresher.embeddings import make_backend

    return np.asarray(make_backend(backend).encode([t or "" for t in texts]), dtype=np.float64)


def _normalise(rows: np.ndarray) -> np.ndarray:
    return rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)


def generate_centroid_lf(texts: Sequence[str], y: Sequence[int], classes: Sequence[str], backend: str = "static",
                         max_prototypes: int = 30, z: float = 1.0, name: str = "nearest_centroid") -> GeneratedLF:
    """A nearest-centroid :class:`PrototypeLF` from labelled dev records (see the module docstring)."""
    y = np.asarray(y, dtype=np.int64)
    present = [c for c in range(len(classes)) if (y == c).any()]
    if len(present) < 2:
        raise ConfigError("a nearest-centroid LF needs dev records of at least two classes")
    if max_prototypes < 1:
        raise ConfigError(f"max_prototypes must be >= 1, got {max_prototypes}")
    emb = _normalise(_embed(texts, backend))
    chosen = []  # per class, the dev rows that become its prototypes: the nearest to the class centroid
    for c in present:
        rows = np.flatnonzero(y == c)
        centroid = _normalise(emb[rows].sum(axis=0))
        chosen.append(np.sort(rows[np.argsort(-(emb[rows] @ centroid), kind="stable")[:max_prototypes]]))
    # dev numbers of the LF as written (centroids of its prototypes), leave-one-out for the prototypes themselves
    sums = np.stack([emb[rows].sum(axis=0) for rows in chosen])
    sizes = np.array([len(rows) for rows in chosen], dtype=np.float64)
    loo = np.repeat(sums[None], len(y), axis=0)
    n_loo = np.repeat(sizes[None], len(y), axis=0)
    for i, rows in enumerate(chosen):
        loo[rows, i] -= emb[rows]
        n_loo[rows, i] -= 1
    sims = np.einsum("nd,ncd->nc", emb, _normalise(loo))
    sims[n_loo == 0] = -1.0
    prototypes = {classes[c]: [texts[r] for r in rows] for c, rows in zip(present, chosen)}
    lf = PrototypeLF(name, prototypes, backend)
    _, votes, right = choose_margin(lf, sims, np.array(present, dtype=np.int32), y, z, MARGINS)
    return GeneratedLF(lf, None, votes, right, len(y), None)


def generate_zero_shot_lf(texts: Sequence[str], y: Sequence[int], classes: Sequence[str],
                          descriptions: Mapping[str, str] | None = None, backend: str = "static", z: float = 1.0,
                          name: str = "zero_shot") -> GeneratedLF:
    """A zero-shot :class:`PrototypeLF`: each class described by ``descriptions[class]`` (default: its name);
    the dev records only choose the margin and measure it."""
    descriptions = dict(descriptions or {})
    unknown = sorted(set(descriptions) - set(classes))
    if unknown:
        raise ConfigError(f"descriptions for {', '.join(unknown)}, which are not classes ({', '.join(classes)})")
    lf = PrototypeLF(name, {c: [descriptions.get(c, c)] for c in classes}, backend)
    sims = lf.similarities(texts)
    _, votes, right = choose_margin(lf, sims, np.arange(len(classes), dtype=np.int32), np.asarray(y), z, MARGINS)
    return GeneratedLF(lf, None, votes, right, len(texts), None)
