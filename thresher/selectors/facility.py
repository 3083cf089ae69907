"""Facility location on a sparse k-nearest-neighbour similarity graph: pick records that represent all the others.

The objective is ``f(S) = sum_i max_{j in S} W[i, j]`` where ``W`` is the **kNN graph**: row ``i`` holds the
cosine similarities of record ``i`` to its ``k_neighbors`` most similar records (itself included), clipped at 0;
every other entry is 0. A record therefore counts as covered only by a pick among its own nearest neighbours. ``f`` is
monotone and submodular, so greedy maximisation is within ``1 - 1/e`` of the optimum (Nemhauser et al., 1978).

The graph is built exactly, by blocked matrix products and a per-row running top-k (``O(n^2 d)`` time, ``O(n k)``
memory: 200k records fit in well under 24 GiB, where a dense similarity matrix would need 160 GB). Gains use the
transpose in CSR form, whose row ``j`` lists the records that candidate ``j`` can cover: the gain of ``j`` is
``sum_i max(W[i, j] - cover[i], 0)`` over that row, computed for many candidates at once with one ``bincount``.

With ``k_neighbors=None`` the **dense** objective ``sum_i max_{j in S} max(x_i . x_j, 0)`` is maximised instead,
on a float32 similarity matrix (``4 n^2`` bytes: for pools up to a few tens of thousands of records). When the budget
is a small share of the pool, the kNN objective ignores far-away coverage; :func:`dense_objective` scores any
selection on the dense definition, whichever objective chose it.

Optimizers (all deterministic for a seed):

- ``greedy``: every remaining candidate's gain at every step (the reference; ``O(k nnz)``).
- ``lazy``: Minoux's accelerated greedy. Stale gains are upper bounds (submodularity), kept in a heap; the top is
  re-evaluated until it is fresh. Picks exactly what ``greedy`` picks, ties to the lower index.
- ``stochastic``: Mirzasoleiman et al. (2015), "Lazier than lazy greedy": each step evaluates a uniform sample of
  ``ceil(n / k * log(1 / epsilon))`` remaining candidates; ``1 - 1/e - epsilon`` in expectation.
- ``greedi``: Mirzasoleiman et al. (2013), GreeDi: records are split into ``parts`` random parts, each part solves
  its own problem (its own kNN graph when embeddings are given), and lazy greedy runs again over the union of the
  parts' picks on the full graph; the better of that and the best part's picks is returned. Each part only needs
  its own rows, so the first round can later run on separate machines.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from thresher.errors import ConfigError
from thresher.selectors.budget import Budget
from thresher.selectors.diversity import CHUNK_BYTES, as_embeddings, chunk_rows, record_count

OPTIMIZERS = ("greedy", "lazy", "stochastic", "greedi")


def _block_threshold(block: np.ndarray, kk: int, axis: int = 1) -> np.ndarray:
    """Per row of ``block`` (per column if ``axis=0``), a value that at least ``kk`` of its entries reach.

    The k-th largest of ``8k`` strided group maxima: one cache-friendly pass, and close to the k-th largest entry.
    """
    if axis == 0:
        block = block.T  # a view: the reductions below then run along the block's rows, in memory order
    m, w = block.shape
    groups = 8 * kk
    if w >= 2 * groups:
        full = (w // groups) * groups
        if axis == 0:
            gmax = block.T[:full].reshape(-1, groups, m).max(axis=0).T
            tail = block[:, full:]
            gmax = np.ascontiguousarray(gmax)
            np.maximum(gmax[:, :w - full], tail, out=gmax[:, :w - full])
        else:
            gmax = block[:, :full].reshape(m, -1, groups).max(axis=1)
            np.maximum(gmax[:, :w - full], block[:, full:], out=gmax[:, :w - full])
        return np.partition(gmax, groups - kk, axis=1)[:, groups - kk]
    if w > kk:
        return np.partition(block, w - kk, axis=1)[:, w - kk]
    return np.full(m, -np.inf, dtype=block.dtype)


class _TopK:
    """Running top-k per row over blocks of columns: candidates above a per-row lower bound of the final k-th value
    are buffered per block of rows, and a buffer is cut back to its rows' best k when it grows (ties to the lower
    column); cutting also raises the bounds, so fewer candidates pass later."""

    def __init__(self, n: int, kk: int, size: int):
        self.kk = kk
        self.size = size
        self.thr = np.full(n, -np.inf, dtype=np.float32)
        self.buffers: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        self.counts: dict[int, int] = {}

    def offer(self, row0: int, col0: int, block: np.ndarray, transposed: bool = False) -> None:
        """Candidates from ``block``: its rows are records ``row0..`` and columns ``col0..`` (swapped if
        ``transposed``: then the block's columns are the rows being ranked)."""
        axis = 0 if transposed else 1
        m = block.shape[1] if transposed else block.shape[0]
        thr = self.thr[row0:row0 + m]
        np.maximum(thr, _block_threshold(block, self.kk, axis), out=thr)
        flat = np.flatnonzero(block >= (thr[None, :] if transposed else thr[:, None]))
        r, c = np.divmod(flat, block.shape[1])
        if transposed:
            r, c = c, r
        self._add(row0, (r + row0, (c + col0).astype(np.int64), block.ravel()[flat]))

    def _add(self, row0: int, part: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        key = row0 // self.size
        self.buffers.setdefault(key, []).append(part)
        self.counts[key] = self.counts.get(key, 0) + len(part[0])
        if self.counts[key] > 4 * self.size * self.kk:
            self._compact(key)

    def _compact(self, key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r, c, v = (np.concatenate(x) for x in zip(*self.buffers[key]))
        order = np.lexsort((c, -v, r))
        r, c, v = r[order], c[order], v[order]
        rank = np.arange(len(r)) - np.searchsorted(r, r, side="left")
        keep = rank < self.kk
        r, c, v = r[keep], c[keep], v[keep]
        last = np.flatnonzero(rank[keep] == self.kk - 1)
        self.thr[r[last]] = np.maximum(self.thr[r[last]], v[last])
        self.buffers[key], self.counts[key] = [(r, c, v)], len(r)
        return r, c, v

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, column, value) of every row's best k, rows ascending, best first within a row."""
        parts = [self._compact(key) for key in sorted(self.buffers)]
        return tuple(np.concatenate(x) for x in zip(*parts))


def knn_graph(X: np.ndarray, k_neighbors: int = 32, block_rows: int | None = None) -> sparse.csr_matrix:
    """The kNN similarity graph: row i keeps its ``k_neighbors`` largest dot products (itself always), clipped at 0.

    Exact (no approximate index) and deterministic: ties go to the lower column index. The similarity matrix is
    computed in square blocks of ``block_rows`` (default: about 256 MiB of temporaries), each off-diagonal block once
    and used for both its rows and its columns (half the products). A row's top k are found without sorting it: only
    entries above a running lower bound of its k-th value are kept (see :func:`_block_threshold`), then sorted.
    Returns an n x n float32 CSR with sorted indices.
    """
    X = as_embeddings(X)
    n = X.shape[0]
    if k_neighbors < 1:
        raise ConfigError(f"k_neighbors must be >= 1, got {k_neighbors}")
    kk = min(k_neighbors, n)
    size = min(n, block_rows or max(kk, int((CHUNK_BYTES / 6) ** 0.5)))
    top = _TopK(n, kk, size)
    self_sim = np.einsum("ij,ij->i", X, X)
    for a in range(0, n, size):
        xa = X[a:a + size]
        for b in range(a, n, size):
            block = xa @ X[b:b + size].T
            if a == b:
                local = np.arange(len(block))
                block[local, local] = np.inf  # a record is always its own neighbour, whatever its duplicates
            top.offer(a, b, block)
            if a != b:
                top.offer(b, a, block, transposed=True)
    r, c, v = top.result()
    is_self = c == r
    v[is_self] = self_sim[r[is_self]]
    np.maximum(v, 0, out=v)
    graph = sparse.csr_matrix((v, (r, c)), shape=(n, n), dtype=np.float32)
    graph.eliminate_zeros()
    graph.sort_indices()
    return graph


def graph_objective(graph: sparse.spmatrix, selected: np.ndarray) -> float:
    """``f(S)`` on a graph: sum over records (rows) of the best similarity to a selected record (column)."""
    selected = np.asarray(selected, dtype=np.int64)
    if len(selected) == 0:
        return 0.0
    sub = sparse.csc_matrix(graph)[:, selected]
    return float(np.asarray(sub.max(axis=1).todense(), dtype=np.float64).sum())


def dense_objective(X: np.ndarray, selected: np.ndarray, block_rows: int = 16_384) -> float:
    """``f(S)`` on the dense cosine matrix: ``sum_i max(0, max_{j in S} x_i . x_j)``, computed in row blocks.

    Needs only ``n x |S|`` products, so it can score any selection of any pool, whichever graph chose it.
    """
    X = as_embeddings(X)
    S = X[np.asarray(selected, dtype=np.int64)]
    if len(S) == 0:
        return 0.0
    total = 0.0
    for a in range(0, X.shape[0], block_rows):
        best = (X[a:a + block_rows] @ S.T).max(axis=1)
        total += float(np.maximum(best, 0).astype(np.float64).sum())
    return total


class _Cover:
    """Coverage state for candidates (rows of ``cover``) over records (its columns): ``cur[i]`` is record i's best
    similarity to the picks so far."""

    def __init__(self, cover: sparse.csr_matrix):
        self.indptr = cover.indptr.astype(np.int64)
        self.indices = cover.indices
        self.data = cover.data.astype(np.float64)
        self.cur = np.zeros(cover.shape[1], dtype=np.float64)
        self.evaluations = 0

    def gains(self, cand: np.ndarray) -> np.ndarray:
        """Marginal gains of the candidates ``cand``; each one's terms are summed in the same order every time, so a
        gain never depends on which other candidates are evaluated with it."""
        cand = np.asarray(cand, dtype=np.int64)
        self.evaluations += len(cand)
        starts = self.indptr[cand]
        lens = self.indptr[cand + 1] - starts
        total = int(lens.sum())
        if total == 0:
            return np.zeros(len(cand))
        seg = np.repeat(np.arange(len(cand)), lens)
        pos = np.arange(total) + np.repeat(starts - (np.cumsum(lens) - lens), lens)
        terms = self.data[pos] - self.cur[self.indices[pos]]
        np.maximum(terms, 0, out=terms)
        return np.bincount(seg, weights=terms, minlength=len(cand))

    def add(self, j: int) -> float:
        """Pick candidate ``j``: update the cover, return its gain."""
        gain = float(self.gains(np.array([j]))[0])
        a, b = self.indptr[j], self.indptr[j + 1]
        idx = self.indices[a:b]
        self.cur[idx] = np.maximum(self.cur[idx], self.data[a:b])
        return gain


class _DenseCover:
    """The same coverage state on the dense objective: the clipped similarity matrix ``max(X X^T, 0)`` is held in
    float32 (``4 n^2`` bytes, built in row blocks), and a gain is ``sum_i max(S[j, i], cover[i]) - sum_i cover[i]``."""

    def __init__(self, X: np.ndarray, max_bytes: int):
        n = X.shape[0]
        if 4 * n * n > max_bytes:
            raise ConfigError(f"the dense similarity matrix of {n:,} records needs {4 * n * n / 2**30:.1f} GiB, over "
                              f"the {max_bytes / 2**30:.1f} GiB allowed: use the kNN graph (k_neighbors=32)")
        self.sim = np.empty((n, n), dtype=np.float32)
        rows = chunk_rows(n, bytes_per_cell=4)
        for a in range(0, n, rows):
            np.matmul(X[a:a + rows], X.T, out=self.sim[a:a + rows])
            np.maximum(self.sim[a:a + rows], 0, out=self.sim[a:a + rows])
        self.cur = np.zeros(n, dtype=np.float32)
        self.cur_sum = 0.0
        self.evaluations = 0

    def gains(self, cand: np.ndarray) -> np.ndarray:
        """Marginal gains of the candidates ``cand`` (each row reduced on its own, so batches do not matter)."""
        cand = np.asarray(cand, dtype=np.int64)
        self.evaluations += len(cand)
        out = np.empty(len(cand), dtype=np.float64)
        step = max(1, chunk_rows(self.sim.shape[0], bytes_per_cell=4, budget=64 * 2**20))
        for a in range(0, len(cand), step):
            block = np.maximum(self.sim[cand[a:a + step]], self.cur)
            out[a:a + step] = block.sum(axis=1, dtype=np.float64)
        return out - self.cur_sum

    def add(self, j: int) -> float:
        """Pick ``j``: update the cover, return its gain."""
        gain = float(self.gains(np.array([j]))[0])
        np.maximum(self.cur, self.sim[j], out=self.cur)
        self.cur_sum = float(self.cur.sum(dtype=np.float64))
        return gain


def _greedy(cover: _Cover | _DenseCover, cand: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """Plain greedy over the sorted candidate array ``cand``: argmax of all gains each step, ties to the lower index."""
    alive = np.ones(len(cand), dtype=bool)
    order, gains = [], []
    for _ in range(k):
        live = np.flatnonzero(alive)
        g = cover.gains(cand[live])
        t = live[int(np.argmax(g))]
        alive[t] = False
        order.append(int(cand[t]))
        gains.append(cover.add(int(cand[t])))
    return order, gains


def _lazy(cover: _Cover | _DenseCover, cand: np.ndarray, k: int, batch: int = 16) -> tuple[list[int], list[float]]:
    """Minoux's lazy greedy: a heap of (-upper bound, index, step evaluated); a top evaluated at this step is picked.

    Stale entries are re-evaluated in batches of up to ``batch`` (one vectorised call); extra evaluations never change
    the result, only the work.
    """
    g0 = cover.gains(cand)
    heap = [(-float(g), int(j), 0) for g, j in zip(g0, cand)]
    heapq.heapify(heap)
    order, gains = [], []
    step = 0
    while len(order) < k and heap:
        top = heapq.heappop(heap)
        if top[2] == step:
            order.append(top[1])
            gains.append(cover.add(top[1]))
            step += 1
            continue
        stale = [top[1]]
        while heap and len(stale) < batch and heap[0][2] != step:
            stale.append(heapq.heappop(heap)[1])
        for g, j in zip(cover.gains(np.array(stale)), stale):
            heapq.heappush(heap, (-float(g), j, step))
    return order, gains


def _stochastic(cover: _Cover | _DenseCover, cand: np.ndarray, k: int, epsilon: float,
                rng: np.random.Generator) -> tuple[list[int], list[float]]:
    """Stochastic greedy: each step, the best of a uniform sample (without replacement) of the remaining candidates."""
    pool = cand.copy()
    size = len(pool)
    s = max(1, math.ceil(len(cand) / k * math.log(1 / epsilon)))
    order, gains = [], []
    for _ in range(k):
        m = min(s, size)
        pos = np.sort(rng.choice(size, m, replace=False)) if m < size else np.arange(size)
        g = cover.gains(pool[pos])
        best = np.flatnonzero(g == g.max())
        p = int(pos[best[np.argmin(pool[pos[best]])]])  # ties to the lower record index
        j = int(pool[p])
        size -= 1
        pool[p], pool[size] = pool[size], pool[p]  # swap-remove: O(1) per pick
        order.append(j)
        gains.append(cover.add(j))
    return order, gains


@dataclass(frozen=True)
class FacilityResult:
    """Picks in order, each pick's gain on the objective maximised (kNN graph or dense), and the work it took."""

    order: np.ndarray
    gains: np.ndarray
    evaluations: int = 0
    seconds: dict = field(default_factory=dict)

    @property
    def curve(self) -> np.ndarray:
        """The objective after each pick: ``curve[t] = f(order[:t + 1])``."""
        return np.cumsum(self.gains)

    @property
    def objective(self) -> float:
        return float(self.gains.sum())


@dataclass(frozen=True)
class FacilityLocation:
    """Maximise facility location on the kNN cosine graph of L2-normalised embeddings.

    k_neighbors: neighbours kept per record (itself included). A record is only covered by a pick among them, so
    when the budget is a small share of the pool, more neighbours make the kNN objective closer to the dense one.
    ``None``: maximise the dense objective (needs ``4 n^2`` bytes, at most ``max_dense_bytes``).
    optimizer: ``greedy``, ``lazy`` (exact greedy, the default), ``stochastic`` or ``greedi`` (see the module).
    epsilon: stochastic greedy's accuracy knob (sample size ``n / k * log(1 / epsilon)``).
    parts: GreeDi's number of parts.
    """

    k_neighbors: int | None = 32
    optimizer: str = "lazy"
    epsilon: float = 0.01
    parts: int = 4
    seed: int = 0
    block_rows: int | None = None
    max_dense_bytes: int = 8 * 2**30

    name = "facility"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"facility-location optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.k_neighbors is not None and self.k_neighbors < 1:
            raise ConfigError(f"k_neighbors must be >= 1 (or None for the dense objective), got {self.k_neighbors}")
        if not 0 < self.epsilon < 1:
            raise ConfigError(f"epsilon must be in (0, 1), got {self.epsilon}")
        if self.parts < 1:
            raise ConfigError(f"parts must be >= 1, got {self.parts}")

    def maximize(self, X: np.ndarray | None, budget: int | str | Budget,
                 graph: sparse.spmatrix | None = None) -> FacilityResult:
        """Pick ``budget`` records. ``graph`` (from :func:`knn_graph`) is built from ``X`` when not given; with
        ``k_neighbors=None`` the dense objective is maximised instead, from ``X``."""
        seconds = {}
        start = time.perf_counter()
        if self.k_neighbors is None:
            if X is None:
                raise ConfigError("dense facility location (k_neighbors=None) needs the embeddings")
            X = as_embeddings(X)
            n = X.shape[0]

            def make(rows: np.ndarray | None) -> _Cover | _DenseCover:
                return _DenseCover(X if rows is None else X[rows], self.max_dense_bytes)
        else:
            if graph is None:
                if X is None:
                    raise ConfigError("facility location needs embeddings or a kNN graph")
                X = as_embeddings(X)
                graph = knn_graph(X, self.k_neighbors, self.block_rows)
                seconds["graph"] = time.perf_counter() - start
            graph = sparse.csr_matrix(graph)
            n = graph.shape[0]
            if graph.shape != (n, n):
                raise ConfigError(f"the similarity graph must be square, got {graph.shape}")
            if graph.nnz and graph.data.min() < 0:
                raise ConfigError("facility location needs non-negative similarities (clip the graph at 0)")
            cover_matrix = graph.T.tocsr()  # row j: the records candidate j can cover

            def make(rows: np.ndarray | None) -> _Cover | _DenseCover:
                if rows is None:
                    return _Cover(cover_matrix)
                if X is not None:  # what a worker holding only these rows would build
                    return _Cover(knn_graph(X[rows], self.k_neighbors, self.block_rows).T.tocsr())
                return _Cover(graph[rows][:, rows].T.tocsr())
        k = record_count(budget, n)
        start = time.perf_counter()
        if self.optimizer == "greedi":
            order, gains, evals = self._greedi(make, n, k)
        else:
            cover = make(None)
            cand = np.arange(n, dtype=np.int64)
            if self.optimizer == "greedy":
                order, gains = _greedy(cover, cand, k)
            elif self.optimizer == "lazy":
                order, gains = _lazy(cover, cand, k)
            else:
                order, gains = _stochastic(cover, cand, k, self.epsilon, np.random.default_rng(self.seed))
            evals = cover.evaluations
        seconds["optimize"] = time.perf_counter() - start
        return FacilityResult(np.asarray(order, dtype=np.int64), np.asarray(gains, dtype=np.float64), evals,
                              {key: round(v, 3) for key, v in seconds.items()})

    def _greedi(self, make, n: int, k: int) -> tuple[list[int], list[float], int]:
        """Two rounds: lazy greedy inside each random part, then lazy greedy over the union on the full problem."""
        parts = [np.sort(p) for p in np.array_split(np.random.default_rng(self.seed).permutation(n), self.parts)]
        evals = 0
        local_orders = []
        for part in parts:
            if len(part) == 0:
                continue
            cover = make(part)
            local, _ = _lazy(cover, np.arange(len(part), dtype=np.int64), min(k, len(part)))
            evals += cover.evaluations
            local_orders.append(part[np.asarray(local, dtype=np.int64)])
        union = np.unique(np.concatenate(local_orders))
        cover = make(None)
        best, best_gains = _lazy(cover, union, min(k, len(union)))
        evals += cover.evaluations
        for local in local_orders:
            if len(local) < k:
                continue
            cover = make(None)
            gains = [cover.add(int(j)) for j in local[:k]]
            evals += cover.evaluations
            if sum(gains) > sum(best_gains):
                best, best_gains = [int(j) for j in local[:k]], gains
        if len(best) < k:  # tiny parts: fill up with lazy greedy over the rest of the pool
            cover = make(None)
            best_gains = [cover.add(j) for j in best]
            rest = np.setdiff1d(np.arange(n, dtype=np.int64), np.asarray(best, dtype=np.int64))
            more, more_gains = _lazy(cover, rest, k - len(best))
            evals += cover.evaluations
            best, best_gains = list(best) + more, best_gains + more_gains
        return best, best_gains, evals

    def select(self, X: np.ndarray, budget: int | str | Budget, scores: np.ndarray | None = None) -> np.ndarray:
        """Indices of the selected records, in pick order (``scores`` is not used: the signature is shared with the
        other embedding selectors)."""
        return self.maximize(X, budget).order
