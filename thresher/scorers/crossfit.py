"""Cross-fitting for scorers that learn from a sample of the pool they then score.

A classifier trained with pool records as negatives, or an n-gram LM trained on them (CoLoR-Filter's prior),
remembers those records: scored afterwards, they look more "pool-like" than they are (the classifier pushes its own
negatives down; both CoLoR-Filter models assign them high probability, squashing their score toward zero). With a
10,000-record sample of a 100,000-record pool that is one record in ten scored unfairly.

:class:`CrossFitted` splits the sample in two folds by a hash of the text, fits one scorer per fold, and scores a
record that was in fold A with the scorer fitted on fold B (and vice versa); records outside the sample get the mean
of both scorers' numeric columns. So no record is scored by a model that saw it, and the result does not depend on
batch size or worker count.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash


def text_hashes(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """xxh3-64 of each text's UTF-8 bytes (null texts hash as empty)."""
    values = text.to_pylist()
    return np.fromiter((xxhash.xxh3_64_intdigest((t or "").encode()) for t in values), dtype=np.uint64,
                       count=len(values))


class CrossFitted:
    """Two copies of a scorer, each fitted on one half of the pool sample; see the module docstring."""

    def __init__(self, make: Callable[[], object], fit: Callable[[object, pa.Array], object]):
        self.make = make
        self.fit_one = fit
        self.scorers: list[object] = []
        self.folds: list[np.ndarray] = []  # sorted text hashes of each fold

    def fit(self, pool_sample: pa.Array) -> CrossFitted:
        """Fit one scorer per fold; ``fit`` is called with each fold's texts (the rest of the data is its own)."""
        hashes = text_hashes(pool_sample)
        in_b = (hashes & np.uint64(1)).astype(bool)
        for mask in (~in_b, in_b):
            scorer = self.fit_one(self.make(), pool_sample.filter(pa.array(mask)))
            self.scorers.append(scorer)
            self.folds.append(np.unique(hashes[mask]))
        # fitting functions may drop the factories' closures over big data: keep only what scoring needs
        self.make = self.fit_one = None
        return self

    @property
    def report_(self) -> dict:
        """The fitted scorers' own reports (e.g. held-out accuracy), per fold."""
        return {f"fold_{i}": getattr(s, "report_", {}) for i, s in enumerate(self.scorers)}

    def score(self, text: pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
        """Each record scored by a model that did not see it; non-members by the mean of both."""
        hashes = text_hashes(text)
        member = [_isin_sorted(hashes, fold) for fold in self.folds]
        parts = [s.score(text) for s in self.scorers]
        out: dict[str, np.ndarray] = {}
        for name, a in parts[0].items():
            b = parts[1][name]
            if not np.issubdtype(np.asarray(a).dtype, np.number):
                out[name] = np.where(member[0], b, a)
                continue
            a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            out[name] = np.where(member[0], b, np.where(member[1], a, (a + b) / 2))
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Each fold's scorer in ``fold_0/`` and ``fold_1/`` (when the scorer can save itself)."""
        for i, scorer in enumerate(self.scorers):
            if hasattr(scorer, "save"):
                scorer.save(Path(path) / f"fold_{i}")


def _isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values
