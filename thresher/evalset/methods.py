"""How ``budget`` evaluation items are chosen from the seen systems' scores, and how much each one counts.

- ``random``: a seeded uniform sample; each item weighs 1 / budget (the baseline every method must beat).
- ``stratified``: random within each label (``--items`` with a label column), allocated in proportion to the
  labels' sizes; an item weighs its stratum's share of the full set over the items drawn from it.
- ``anchor`` (Vivek et al., 2024, "Anchor Points"): items are points in the space of the seen systems' scores (one
  coordinate per system); k-medoids with k = budget picks the medoids, and each one weighs the share of the full
  set in its cluster. Items the seen systems score alike are redundant; an anchor stands for its cluster.
- ``irt`` (tinyBenchmarks, Polo et al., 2024): a seeded random sample, and a 2PL IRT model fitted on the seen
  systems (:mod:`thresher.evalset.irt`); a new system is estimated by p-IRT, its scores on the chosen items plus
  the model's predictions on the others.

A new system's full-set score is otherwise the weighted mean of its scores on the chosen items.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.evalset.irt import IRT2PL, fit_2pl
from thresher.evalset.table import ScoreTable
from thresher.selectors.quotas import allocate

METHODS = ("random", "stratified", "anchor", "irt")
#: Lloyd-style k-medoid passes at most (they stop earlier when no medoid moves).
MAX_PASSES = 30


@dataclass(frozen=True)
class EvalSubset:
    """The chosen items (row indices into the scores table, in the order they were chosen) and their weights in
    the full-set estimate (summing to 1)."""

    rows: np.ndarray
    weights: np.ndarray
    method: str
    model: IRT2PL | None = None  # irt: the items' parameters, for the p-IRT estimate

    def estimate(self, scores: np.ndarray) -> np.ndarray:
        """Full-set estimates from scores on the chosen items (rows aligned with ``rows``; one column a system)."""
        if self.model is not None:
            return self.model.p_irt(self.rows, scores)
        return self.weights @ scores


def choose(method: str, seen: ScoreTable, budget: int, seed: int = 0, labels: np.ndarray | None = None
           ) -> EvalSubset:
    """``budget`` items of ``seen`` chosen by ``method`` (see the module docstring)."""
    n = len(seen.items)
    if method not in METHODS:
        raise ConfigError(f"unknown evalset method {method!r}; choose from {', '.join(METHODS)}")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or not 1 <= budget <= n:
        raise ConfigError(f"budget must be a whole number of items from 1 to {n}, got {budget!r}")
    rng = np.random.default_rng([seed, 0xE7A1, METHODS.index(method)])
    if method == "random":
        rows = rng.choice(n, size=budget, replace=False)
        return EvalSubset(rows, np.full(budget, 1.0 / budget), method)
    if method == "stratified":
        if labels is None or len(labels) != n:
            raise ConfigError("method 'stratified' needs a label per item (--items FILE --label-field COLUMN)")
        return _stratified(np.asarray(labels).astype(str), budget, rng)
    if method == "irt":
        rows = rng.choice(n, size=budget, replace=False)
        return EvalSubset(rows, np.full(budget, 1.0 / budget), method, _fitted(seen.scores))
    return _anchor(seen.scores, budget, rng)


_FITS: dict[bytes, IRT2PL] = {}


def _fitted(scores: np.ndarray) -> IRT2PL:
    """The 2PL fit of a table, kept for the next call on the same table (a check fits each split's halves once
    for every budget)."""
    key = hashlib.blake2b(np.ascontiguousarray(scores).tobytes(), digest_size=16).digest() + str(scores.shape).encode()
    if key not in _FITS:
        if len(_FITS) > 64:
            _FITS.clear()
        _FITS[key] = fit_2pl(scores)
    return _FITS[key]


def _stratified(labels: np.ndarray, budget: int, rng: np.random.Generator) -> EvalSubset:
    names, codes, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    counts = allocate(sizes, budget, "proportional")
    rows, weights = [], []
    for g in np.flatnonzero(counts):
        members = np.flatnonzero(codes == g)
        rows.append(rng.choice(members, size=counts[g], replace=False))
        weights.append(np.full(counts[g], sizes[g] / len(labels) / counts[g]))
    order = rng.permutation(budget)  # strata interleaved at random, so a prefix is not one label
    return EvalSubset(np.concatenate(rows)[order], np.concatenate(weights)[order], "stratified")


def _anchor(scores: np.ndarray, k: int, rng: np.random.Generator) -> EvalSubset:
    """k-medoids (k-means++ seeding, then alternate: assign to the nearest medoid, move each medoid to the member
    with the smallest summed distance to its cluster) on the items' score vectors."""
    x = np.asarray(scores, dtype=np.float64)
    n = len(x)
    medoids = _seed(x, k, rng)
    for _ in range(MAX_PASSES):
        assign = _nearest(x, medoids)
        moved = medoids.copy()
        for c in range(k):
            members = np.flatnonzero(assign == c)
            if len(members) == 0:
                continue
            inner = _distances(x[members], x[members]).sum(axis=1)
            moved[c] = members[np.argmin(inner)]
        if np.array_equal(moved, medoids):
            break
        medoids = moved
    sizes = np.bincount(_nearest(x, medoids), minlength=k).astype(np.float64)
    # medoids with the same scores (common with 0/1 correctness) are interchangeable: they share their clusters
    _, same, count = np.unique(x[medoids], axis=0, return_inverse=True, return_counts=True)
    same = same.ravel()
    pooled = np.bincount(same, weights=sizes) / count
    return EvalSubset(medoids, pooled[same] / n, "anchor")


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def _nearest(x: np.ndarray, medoids: np.ndarray) -> np.ndarray:
    """Each item's nearest medoid (ties to the first), in blocks to bound memory."""
    out = np.empty(len(x), dtype=np.int64)
    for a in range(0, len(x), 4096):
        out[a:a + 4096] = np.argmin(_distances(x[a:a + 4096], x[medoids]), axis=1)
    return out


def _seed(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding over distinct items: each next medoid drawn with probability proportional to its squared
    distance to the nearest one chosen so far."""
    chosen = [int(rng.integers(len(x)))]
    d2 = _distances(x, x[chosen])[:, 0] ** 2
    for _ in range(k - 1):
        total = d2.sum()
        if total <= 0:  # every item coincides with a medoid: take the rest at random among the others
            rest = np.setdiff1d(np.arange(len(x)), chosen)
            chosen += rng.choice(rest, size=k - len(chosen), replace=False).tolist()
            break
        nxt = int(rng.choice(len(x), p=d2 / total))
        chosen.append(nxt)
        d2 = np.minimum(d2, _distances(x, x[[nxt]])[:, 0] ** 2)
    return np.array(chosen, dtype=np.int64)
