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
- ``auto``: ``difficulty`` or ``consistency``, whichever ranks better in a check on the seen systems alone (their
  own seen/new splits): consistency ranks far better where near-tied systems make random rank poorly, and worse
  elsewhere.
- ``variance``, ``consistency``, ``diffdisc`` (subset2evaluate, Zouhar et al., 2025): the items of highest utility
  (:mod:`thresher.evalset.utilities`), weighted equally. Chosen for being unrepresentative, their plain mean is far
  off the full-set score, so their default estimator is ``control``, which corrects it by the seen systems' errors.

Each method has a default estimator (``DEFAULT_ESTIMATOR``); ``METHOD+ESTIMATOR`` (say ``random+control``) pairs a
method's items with another estimator. With a cost per item, ``random``, ``irt``, ``stratified`` and ``difficulty``
take a budget in cost (:func:`cost_counts`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.evalset.estimators import ESTIMATORS, Estimator, build_estimator
from thresher.evalset.irt import IRT2PL, fit_2pl
from thresher.evalset.table import ScoreTable
from thresher.selectors.quotas import allocate

#: Every method; the order seeds each one's draws, so new ones go at the end.
METHODS = ("random", "stratified", "anchor", "irt", "difficulty", "active", "variance", "consistency", "diffdisc",
           "auto")
#: subset2evaluate's selectors: the budget items of highest utility (:mod:`thresher.evalset.utilities`).
TOP_UTILITY = ("variance", "consistency", "diffdisc")
DEFAULT_ESTIMATOR = {"random": "mean", "stratified": "mean", "difficulty": "control", "anchor": "mean",
                     "irt": "p-irt", "active": "mean", "variance": "control", "consistency": "control",
                     "diffdisc": "control", "auto": "control"}
#: ``auto`` picks among these by an inner check on the seen systems (the first wins ties), over this many splits.
AUTO_CANDIDATES = ("difficulty", "consistency")
AUTO_SPLITS = 8
#: Methods that take a budget in cost (``costs``): random draws within strata whose counts come from the costs.
COST_METHODS = ("random", "irt", "stratified", "difficulty")
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
    estimator: Estimator

    def estimate(self, scores: np.ndarray) -> np.ndarray:
        """Full-set estimates from scores on the chosen items (rows aligned with ``rows``; one column a system)."""
        return self.estimator.estimate(scores)


def choose(spec: str, seen: ScoreTable, budget: float, seed: int = 0, labels: np.ndarray | None = None,
           costs: np.ndarray | None = None) -> EvalSubset:
    """``budget`` items of ``seen`` chosen by the method of ``spec``, with its estimator (module docstring). With
    ``costs`` (one per item), ``budget`` is a total cost instead: see :func:`cost_counts`."""
    method, estimator = parse_spec(spec)
    n = len(seen.items)
    _check_budget(method, budget, n, costs)
    if method == "auto":
        picked = choose(f"{auto_pick(seen, budget, seed, estimator)}+{estimator}", seen, budget, seed)
        return EvalSubset(picked.rows, picked.weights, picked.method, picked.estimator)
    rng = np.random.default_rng([seed, 0xE7A1, METHODS.index(method)])
    if method in ("random", "irt"):
        size = budget if costs is None else int(cost_counts(np.zeros(n, dtype=np.int64), np.ones(1), costs, budget)[0])
        rows, weights = rng.choice(n, size=size, replace=False), np.full(size, 1.0 / size)
    elif method == "stratified":
        if labels is None or len(labels) != n:
            raise ConfigError("method 'stratified' needs a label per item (--items FILE --label-field COLUMN)")
        _, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
        sizes = np.bincount(codes)
        counts = (allocate(sizes, budget, "proportional") if costs is None else
                  cost_counts(codes, sizes.astype(np.float64), costs, budget))
        rows, weights = _stratified(codes, counts, rng)
    elif method == "difficulty":
        rows, weights = _difficulty(seen.scores, budget, rng, costs)
    elif method == "active":
        rows, weights = lure_draw(_expected_loss(seen.scores), budget, rng)
    elif method in TOP_UTILITY:
        from thresher.evalset import utilities

        utility = (utilities.diffdisc(_fitted(seen.scores)) if method == "diffdisc" else
                   getattr(utilities, method)(seen.scores))
        rows, weights = utilities.top(utility, budget, rng), np.full(budget, 1.0 / budget)
    else:
        rows, weights = _anchor(seen.scores, budget, rng)
    return EvalSubset(rows, weights, spec, build_estimator(estimator, rows, weights, seen.scores, _fitted))


def auto_pick(seen: ScoreTable, budget: int, seed: int, estimator: str) -> str:
    """The candidate whose subsets rank the held-out half of the seen systems best (mean Kendall tau over
    ``AUTO_SPLITS`` seeded halvings; ties and tables of fewer than six systems go to the first candidate)."""
    from scipy import stats

    n_systems = len(seen.systems)
    if n_systems < 6:
        return AUTO_CANDIDATES[0]
    truth = seen.full_means()
    taus = np.zeros(len(AUTO_CANDIDATES))
    for split in range(AUTO_SPLITS):
        order = np.random.default_rng([seed, 0xA070, split]).permutation(n_systems)
        inner_seen, inner_new = np.sort(order[: n_systems // 2]), np.sort(order[n_systems // 2:])
        for k, candidate in enumerate(AUTO_CANDIDATES):
            subset = choose(f"{candidate}+{estimator}", seen.take_systems(inner_seen), budget, seed + split)
            estimates = subset.estimate(seen.scores[np.ix_(subset.rows, inner_new)])
            taus[k] += np.nan_to_num(stats.kendalltau(estimates, truth[inner_new]).statistic)
    return AUTO_CANDIDATES[int(np.argmax(taus))]


def _check_budget(method: str, budget: float, n: int, costs: np.ndarray | None) -> None:
    """A whole number of items, or with ``costs`` a positive total cost for a method that can spend one."""
    if costs is None:
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or not 1 <= budget <= n:
            raise ConfigError(f"budget must be a whole number of items from 1 to {n}, got {budget!r}")
        return
    if method not in COST_METHODS:
        raise ConfigError(f"a budget in cost works with {', '.join(COST_METHODS)}, not {method!r}")
    if len(costs) != n:
        raise ConfigError(f"{len(costs)} costs for {n} items")
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)) or not budget > 0:
        raise ConfigError(f"a cost budget must be a positive number, got {budget!r}")


def cost_counts(codes: np.ndarray, weights: np.ndarray, costs: np.ndarray, budget: float) -> np.ndarray:
    """Items per stratum under a budget in cost: the most items whose *expected* cost (each stratum's count times
    its mean cost) stays within ``budget``, apportioned by ``weights`` with at least one per stratum. The items are
    then drawn at random within strata, so the estimate stays unbiased and the cost actually spent varies around
    the expected one (the run reports it)."""
    sizes = np.bincount(codes)
    mean_cost = np.bincount(codes, weights=costs) / sizes
    k, n = len(sizes), int(sizes.sum())

    def counts(m: int) -> np.ndarray:
        return 1 + allocate(sizes - 1, m - k, "weights", weights=weights)

    if counts(k) @ mean_cost > budget:
        raise ConfigError(f"a cost budget of {budget:g} does not buy one item of each of the {k} strata (expected "
                          f"cost {counts(k) @ mean_cost:g})")
    low, high = k, n  # the largest m whose expected cost fits: counts(m) grows with m
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if counts(mid) @ mean_cost <= budget else (low, mid - 1)
    return counts(low)


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


def _expected_loss(scores: np.ndarray) -> np.ndarray:
    """Active Testing's proposal: the seen systems' mean shortfall from the best score, plus the spread floor."""
    x = np.asarray(scores, dtype=np.float64)
    low, high = float(x.min()), float(x.max())
    return high - x.mean(axis=1) + SPREAD_FLOOR * max(high - low, 1e-12)


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


def _difficulty(scores: np.ndarray, budget: float, rng: np.random.Generator, costs: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Equal-size strata of items by the seen systems' mean score; Neyman allocation on the spread of their scores.
    With costs, each stratum is halved into its cheaper and dearer items and the allocation divides by the square
    root of the stratum's mean cost (the optimum for a fixed expected cost), so cheap contested items are favoured."""
    x = np.asarray(scores, dtype=np.float64)
    n, k = len(x), DIFFICULTY_STRATA if costs is not None else min(DIFFICULTY_STRATA, budget)
    codes = np.empty(n, dtype=np.int64)
    codes[np.lexsort((np.arange(n), x.mean(axis=1)))] = np.arange(n) * k // n
    if costs is not None:
        dearer = np.zeros(n, dtype=np.int64)
        for g in range(k):
            members = np.flatnonzero(codes == g)
            by_cost = members[np.lexsort((members, costs[members]))]
            dearer[by_cost[len(by_cost) // 2:]] = 1
        _, codes = np.unique(codes * 2 + dearer, return_inverse=True)
        k = int(codes.max()) + 1
    sizes = np.bincount(codes, minlength=k)
    spread = np.bincount(codes, weights=x.std(axis=1), minlength=k) / sizes
    spread += SPREAD_FLOOR * max(float(x.max() - x.min()), 1e-12)
    if costs is None:
        counts = 1 + allocate(sizes - 1, budget - k, "weights", weights=sizes * spread)  # at least one per stratum
    else:
        mean_cost = np.bincount(codes, weights=costs, minlength=k) / sizes
        counts = cost_counts(codes, sizes * spread / np.sqrt(mean_cost), costs, budget)
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
