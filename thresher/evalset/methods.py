"""How ``budget`` evaluation items are chosen from the seen systems' scores, and how much each one counts.

- ``random``: a seeded uniform sample; each item weighs 1 / budget (the baseline every method must beat).
- ``stratified``: random within each label (``--items`` with a label column), allocated in proportion to the
  labels' sizes; an item weighs its stratum's share of the full set over the items drawn from it.
- ``difficulty`` (the default): random within five strata of items ordered by the seen systems' mean score, with
  Neyman allocation: a stratum gets items in proportion to its size times the spread of the seen systems' scores
  on its items (plus a floor, and at least one), so items every system gets right (or wrong) are sampled thinly
  and the contested ones densely; weights as in ``stratified``, so the weighted mean stays unbiased. Its estimator
  is ``control`` (:mod:`thresher.evalset.estimators`).
- ``anchor`` (Vivek et al., 2024, "Anchor Points"): items are points in the space of the seen systems' scores (one
  coordinate per system); k-medoids with k = budget picks the medoids, and each one weighs the share of the full
  set in its cluster. Items the seen systems score alike are redundant; an anchor stands for its cluster.
- ``irt`` (tinyBenchmarks, Polo et al., 2024): a seeded random sample, estimated by p-IRT from a 2PL IRT model
  fitted on the seen systems (:mod:`thresher.evalset.irt`).
- ``active`` (Active Testing, Kossen et al., 2021): items drawn one after another, without replacement, with
  probability proportional to a surrogate's expected loss, here the seen systems' mean shortfall from the best
  score (plus the same floor as ``difficulty``, so that every item can be drawn); each item weighs its LURE weight
  (Farquhar et al., 2021) over the budget, which makes the weighted mean unbiased for every system's full-set score
  although hard items are drawn more often. The draw is a Gumbel-top-k ordering (the same law as drawing one at a
  time), so it costs one sort.

Each method has a default estimator (``DEFAULT_ESTIMATOR``); ``METHOD+ESTIMATOR`` (say ``random+control``) pairs a
method's items with another estimator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.evalset.estimators import ESTIMATORS, build_estimator
from thresher.evalset.irt import IRT2PL, fit_2pl
from thresher.evalset.table import ScoreTable
from thresher.selectors.quotas import allocate

METHODS = ("random", "stratified", "anchor", "irt", "difficulty", "active")  # the order seeds each method's draws
DEFAULT_ESTIMATOR = {"random": "mean", "stratified": "mean", "difficulty": "control", "anchor": "mean",
                     "irt": "p-irt", "active": "mean"}
#: Lloyd-style k-medoid passes at most (they stop earlier when no medoid moves).
MAX_PASSES = 30
#: Strata of ``difficulty``, and the floor added to each stratum's spread (a share of the table's score range), so
#: that a stratum the seen systems all agree on is still sampled for new systems that may not.
DIFFICULTY_STRATA = 5
SPREAD_FLOOR = 0.05


def parse_spec(spec: str) -> tuple[str, str]:
    """``METHOD`` or ``METHOD+ESTIMATOR`` as (method, estimator), checked."""
    method, _, estimator = spec.partition("+")
    if method not in METHODS:
        raise ConfigError(f"unknown evalset method {method!r}; choose from {', '.join(METHODS)}")
    estimator = estimator or DEFAULT_ESTIMATOR[method]
    if estimator not in ESTIMATORS:
        raise ConfigError(f"unknown estimator {estimator!r} in {spec!r}; choose from {', '.join(ESTIMATORS)}")
    return method, estimator


@dataclass(frozen=True)
class EvalSubset:
    """The chosen items (row indices into the scores table, in the order they were chosen), their design weights
    (summing to 1) and the estimator of a new system's full-set score from its scores on them."""

    rows: np.ndarray
    weights: np.ndarray
    method: str
    estimator: object

    def estimate(self, scores: np.ndarray) -> np.ndarray:
        """Full-set estimates from scores on the chosen items (rows aligned with ``rows``; one column a system)."""
        return self.estimator.estimate(scores)


def choose(spec: str, seen: ScoreTable, budget: int, seed: int = 0, labels: np.ndarray | None = None
           ) -> EvalSubset:
    """``budget`` items of ``seen`` chosen by the method of ``spec``, with its estimator (module docstring)."""
    method, estimator = parse_spec(spec)
    n = len(seen.items)
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or not 1 <= budget <= n:
        raise ConfigError(f"budget must be a whole number of items from 1 to {n}, got {budget!r}")
    rng = np.random.default_rng([seed, 0xE7A1, METHODS.index(method)])
    if method in ("random", "irt"):
        rows, weights = rng.choice(n, size=budget, replace=False), np.full(budget, 1.0 / budget)
    elif method == "stratified":
        if labels is None or len(labels) != n:
            raise ConfigError("method 'stratified' needs a label per item (--items FILE --label-field COLUMN)")
        _, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
        rows, weights = _stratified(codes, allocate(np.bincount(codes), budget, "proportional"), rng)
    elif method == "difficulty":
        rows, weights = _difficulty(seen.scores, budget, rng)
    elif method == "active":
        x = np.asarray(seen.scores, dtype=np.float64)
        low, high = float(x.min()), float(x.max())
        rows, weights = lure_draw(high - x.mean(axis=1) + SPREAD_FLOOR * max(high - low, 1e-12), budget, rng)
    else:
        rows, weights = _anchor(seen.scores, budget, rng)
    return EvalSubset(rows, weights, spec, build_estimator(estimator, rows, weights, seen.scores, _fitted))


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


def _stratified(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``counts[g]`` items drawn at random from stratum g; each weighs its stratum's share of the items over the
    number drawn from it. Strata are interleaved at random, so a prefix is not one stratum."""
    sizes = np.bincount(codes, minlength=len(counts))
    rows, weights = [], []
    for g in np.flatnonzero(counts):
        rows.append(rng.choice(np.flatnonzero(codes == g), size=counts[g], replace=False))
        weights.append(np.full(counts[g], sizes[g] / len(codes) / counts[g]))
    order = rng.permutation(int(counts.sum()))
    return np.concatenate(rows)[order], np.concatenate(weights)[order]


def lure_draw(proposal: np.ndarray, budget: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``budget`` items drawn in turn without replacement, each with probability proportional to ``proposal`` among
    the items left, and their LURE weights over the budget: v_m = 1 + (N - M) / (N - m) x (1 / ((N - m + 1) q_m) - 1)
    for the m-th draw (1-based) of M from N, with q_m its probability at that draw."""
    w = np.asarray(proposal, dtype=np.float64)
    n = len(w)
    if not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise ConfigError("an active-testing proposal must be positive and finite for every item")
    keys = np.log(w) + rng.gumbel(size=n)
    rows = np.lexsort((np.arange(n), -keys))[:budget]  # Gumbel-top-k: the order of successive draws
    left = w.sum() - np.concatenate([[0.0], np.cumsum(w[rows])[:-1]])
    q = w[rows] / left
    m = np.arange(1, budget + 1)
    ratio = np.divide(n - budget, n - m, out=np.zeros(budget), where=n - m > 0)  # the last of all N items: v = 1
    v = 1 + ratio * (1 / ((n - m + 1) * q) - 1)
    return rows, v / budget


def _difficulty(scores: np.ndarray, budget: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Equal-size strata of items by the seen systems' mean score; Neyman allocation on the spread of their scores."""
    x = np.asarray(scores, dtype=np.float64)
    n, k = len(x), min(DIFFICULTY_STRATA, budget)
    codes = np.empty(n, dtype=np.int64)
    codes[np.lexsort((np.arange(n), x.mean(axis=1)))] = np.arange(n) * k // n
    sizes = np.bincount(codes, minlength=k)
    spread = np.bincount(codes, weights=x.std(axis=1), minlength=k) / sizes
    spread += SPREAD_FLOOR * max(float(x.max() - x.min()), 1e-12)
    counts = 1 + allocate(sizes - 1, budget - k, "weights", weights=sizes * spread)  # at least one per stratum
    return _stratified(codes, counts, rng)


def _anchor(scores: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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
    return medoids, pooled[same] / n


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
