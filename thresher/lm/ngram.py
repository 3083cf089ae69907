"""Word n-gram language model with interpolated modified Kneser-Ney smoothing, counted and queried with numpy.

The model is the one KenLM's ``lmplz`` estimates (Chen & Goodman, 1998; Heafield et al., 2013):

* every record is ``<s> w1 ... wm </s>``; ``<s>`` is context only and ``</s>`` is predicted, so a record of ``m``
  tokens has ``m + 1`` predictions, and n-grams never cross records (the first word is predicted from ``<s>``
  alone, the second from ``<s> w1``, ...);
* adjusted counts: raw counts for the highest order and for n-grams that start with ``<s>`` (nothing can precede
  them), the number of distinct left extensions ``N1+(. g)`` otherwise;
* per order, three discounts ``D1, D2, D3+`` from the count-of-counts ``n1..n4`` of the adjusted counts,
  ``D_k = k - (k + 1) Y n_{k+1} / n_k`` with ``Y = n1 / (n1 + 2 n2)``; an order whose counts give a discount
  outside ``(0, k]`` (tiny corpora) gets KenLM's fallback ``0.5, 1, 1.5``;
* ``p(w | h) = (a(hw) - D(a(hw))) / a(h.) + gamma(h) p(w | h')`` with
  ``gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / a(h.)``, and ``p(w | h) = p(w | h')`` for a context never
  seen; the unigram distribution is interpolated with the uniform distribution over the vocabulary plus ``</s>``
  plus ``<unk>``, so an unknown word gets ``gamma(empty) / |V|`` and every log probability is finite.

Vectorised like :mod:`thresher.features.hashed_ngrams`: tokens are xxh3-64 hashes from
:meth:`HashedNgramFeaturizer.token_hashes`, an n-gram's key is the rolling combination ``key(h) * MIX ^ w`` (64
bits, so collisions are negligible), counts come from sorting, and a query is a vectorised lookup per order into
that order's table sorted by key. No Python code runs per token or per n-gram.
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash

from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import _MIX, TOKENIZERS, HashedNgramConfig, HashedNgramFeaturizer
from thresher.io.atomic import atomic_path, write_json

#: Hashes of the boundary tokens. They hold spaces, which no token of either tokenizer can, so text never
#: produces them.
BOS = np.uint64(xxhash.xxh3_64_intdigest(b" <s> "))
EOS = np.uint64(xxhash.xxh3_64_intdigest(b" </s> "))
#: KenLM's ``--discount_fallback`` values, for orders whose count-of-counts cannot estimate discounts.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
_FORMAT_VERSION = 1
_MERGE_ROWS = 1 << 21  # pending per-batch rows of an order that trigger a merge (or a quarter of the merged rows)


#: What ``fit`` methods take: an iterable of Arrow string batches, or one array.
Texts = Iterable[pa.Array | pa.ChunkedArray] | pa.Array | pa.ChunkedArray


@dataclass(frozen=True)
class KneserNeyConfig:
    """order: highest n-gram order (1..5).
    discount: ``"auto"`` (modified Kneser-Ney, three discounts per order estimated from count-of-counts) or one
    fixed discount in (0, 1] for every count and order (interpolated Kneser-Ney).
    tokenizer, lowercase: how text becomes tokens, as in :class:`HashedNgramConfig`.
    """

    order: int = 3
    discount: str | float = "auto"
    tokenizer: str = "wordpunct"
    lowercase: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.order, bool) or not isinstance(self.order, numbers.Integral) or not 1 <= self.order <= 5:
            raise ConfigError(f"order must be an integer in [1, 5], got {self.order!r}")
        if isinstance(self.discount, str):
            if self.discount != "auto":
                raise ConfigError(f"discount must be 'auto' or a number in (0, 1], got {self.discount!r}")
        elif isinstance(self.discount, bool) or not isinstance(self.discount, numbers.Real) \
                or not 0 < self.discount <= 1:
            raise ConfigError(f"discount must be 'auto' or a number in (0, 1], got {self.discount!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")

    def featurizer(self) -> HashedNgramFeaturizer:
        """The tokenizer that turns text into token hashes for this model."""
        return HashedNgramFeaturizer(HashedNgramConfig(tokenizer=self.tokenizer, lowercase=self.lowercase))


def _stream(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every record as ``<s> tokens </s>``, concatenated: (token hashes, position in its record, record offsets)."""
    n = np.diff(offsets)
    lens = n + 2
    starts = np.zeros(len(n) + 1, dtype=np.int64)
    np.cumsum(lens, out=starts[1:])
    stream = np.empty(int(starts[-1]), dtype=np.uint64)
    is_token = np.ones(len(stream), dtype=bool)
    is_token[starts[:-1]] = False
    is_token[starts[1:] - 1] = False
    stream[is_token] = hashes
    stream[starts[:-1]] = BOS
    stream[starts[1:] - 1] = EOS
    dist = np.arange(len(stream), dtype=np.int64) - np.repeat(starts[:-1], lens)
    return stream, dist, starts


def _extend(keys: np.ndarray, stream: np.ndarray) -> np.ndarray:
    """Keys of the n-grams ending at each position, from the keys of the (n-1)-grams (position 0 is junk)."""
    out = np.empty_like(keys)
    out[:1] = 0
    with np.errstate(over="ignore"):
        np.multiply(keys[:-1], _MIX, out=out[1:])
    np.bitwise_xor(out[1:], stream[1:], out=out[1:])
    return out


def _starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Indices where a new key starts in a sorted array."""
    first = np.ones(len(sorted_keys), dtype=bool)
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    return np.flatnonzero(first)


def _unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (sorted) and their counts; ``np.unique`` is several times slower on uint64."""
    k = np.sort(keys)
    starts = _starts(k)
    return k[starts], np.diff(np.append(starts, len(k)))


def _unique_inverse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (sorted) and, for each input key, the index of its distinct key."""
    order = np.argsort(keys)
    k = keys[order]
    first = np.ones(len(k), dtype=bool)
    np.not_equal(k[1:], k[:-1], out=first[1:])
    inverse = np.empty(len(k), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return k[first], inverse


def _reduce(keys: np.ndarray, counts: np.ndarray | None, cols: list[np.ndarray | None], runs: bool = False) -> list:
    """Sort by key and sum the counts of equal keys (all ones if ``counts`` is None); other columns keep the value
    of one row of each key (they are functions of the key). ``runs``: the input is a few sorted runs, which a
    stable sort (timsort) merges in linear time."""
    order = np.argsort(keys, kind="stable" if runs else None)
    k = keys[order]
    starts = _starts(k)
    if counts is None:
        c = np.diff(np.append(starts, len(k))).astype(np.int64)
    else:
        c = np.add.reduceat(counts[order], starts) if len(k) else counts[:0]
    rows = order[starts]
    return [k[starts], c, *(None if col is None else col[rows] for col in cols)]


class NgramCounts:
    """Raw n-gram counts of a corpus, accumulated batch by batch; what :class:`KneserNeyLM` is estimated from.

    Per order, for every distinct n-gram: its key, its count, the key of its context (the first n-1 tokens), the
    key of its suffix (the last n-1 tokens) and whether it starts with ``<s>``. Counts of two corpora merge with
    :meth:`merge` (CoLoR-Filter's conditional model reuses the prior's pool counts this way).
    """

    def __init__(self, config: KneserNeyConfig | None = None):
        self.config = config or KneserNeyConfig()
        self._featurizer = self.config.featurizer()
        self.n_tokens = 0
        self.n_records = 0
        # per order: list of [keys, counts, ctx, suffix, starts_with_bos]; the first entry is the merged part
        self._parts: list[list[list]] = [[] for _ in range(self.config.order)]

    def add(self, text: pa.Array | pa.ChunkedArray) -> NgramCounts:
        """Count the n-grams of a batch of texts."""
        hashes, offsets = self._featurizer.token_hashes(text)
        self.add_hashes(hashes, offsets)
        return self

    def add_hashes(self, hashes: np.ndarray, offsets: np.ndarray) -> None:
        """Count the n-grams of token hashes with record offsets (the output of ``token_hashes``)."""
        self.n_tokens += len(hashes)
        self.n_records += len(offsets) - 1
        stream, dist, _ = _stream(hashes, offsets)
        keys = stream
        for n in range(1, self.config.order + 1):
            if n > 1:
                prev, keys = keys, _extend(keys, stream)
            pos = np.flatnonzero(dist >= max(1, n - 1))
            if n == 1:
                part = _reduce(keys[pos], None, [None, None, None])
            else:
                bos = dist[pos] == n - 1 if n < self.config.order else None
                part = _reduce(keys[pos], None, [prev[pos - 1], prev[pos], bos])
            self._parts[n - 1].append(part)
            if sum(len(p[0]) for p in self._parts[n - 1][1:]) > max(len(self._parts[n - 1][0][0]) // 4, _MERGE_ROWS):
                self._merge_order(n - 1)

    def merge(self, other: NgramCounts) -> NgramCounts:
        """A new :class:`NgramCounts` with the counts of both corpora (same order and tokenizer)."""
        if other.config != self.config:
            raise ConfigError(f"cannot merge counts of different configurations: {self.config} vs {other.config}")
        out = NgramCounts(self.config)
        out.n_tokens = self.n_tokens + other.n_tokens
        out.n_records = self.n_records + other.n_records
        for j, (a, b) in enumerate(zip(self.tables(), other.tables())):
            out._parts[j] = [list(a), list(b)]
            out._merge_order(j)
        return out

    def _merge_order(self, j: int) -> None:
        parts = self._parts[j]
        if len(parts) > 1:
            cat = [None if p0 is None else np.concatenate([p[i] for p in parts]) for i, p0 in enumerate(parts[0])]
            self._parts[j] = parts = None  # free the parts before sorting: the merge peaks at ~3x the counts
            self._parts[j] = [_reduce(cat[0], cat[1], cat[2:], runs=True)]

    def tables(self) -> list[tuple]:
        """Per order, ``(keys, counts, ctx, suffix, starts_with_bos)`` sorted by key (ctx etc. None if unused)."""
        if self.n_records == 0:
            raise ConfigError("no text to count: the training corpus is empty")
        for j in range(self.config.order):
            self._merge_order(j)
        return [tuple(p[0]) for p in self._parts]


class KneserNeyLM:
    """Interpolated modified Kneser-Ney n-gram LM on hashed tokens: fit on batches of texts, then score batches.

    Per order the model is one table sorted by n-gram key, a row per n-gram: ``key`` (uint64), ``mass``, its
    interpolated probability mass ``(a - D) / a(h.)`` (float32), and, below the highest order, ``backoff``, its
    weight ``gamma`` as a context (float32; 1 for n-grams never seen as a context). That is 12-16 bytes per n-gram,
    and a row's fields share a cache line. A lookup starts at a directory entry indexed by the key's top bits
    (keys are uniform hashes, so buckets hold about one key) and scans forward: one random memory access per
    query instead of a binary search's twenty. Directories (4 bytes or less per n-gram) are rebuilt on load and
    unpickling, not stored.
    """

    def __init__(self, config: KneserNeyConfig | None = None):
        self.config = config or KneserNeyConfig()
        self._featurizer = self.config.featurizer()
        self.tables_: list[np.ndarray] | None = None
        self._dirs: list[tuple[np.ndarray, np.uint64]] = []
        self.gamma0_ = 0.0  # interpolation weight of the uniform distribution in the unigram level
        self.vocab_size_ = 0  # distinct training tokens + </s> + <unk>
        self.discounts_ = np.zeros((0, 3))
        self.n_tokens_ = 0

    # -- fitting -----------------------------------------------------------------------------------------------

    def fit(self, texts: Texts) -> KneserNeyLM:
        """Count n-grams over batches of texts (streamed: counts are merged as batches arrive), then estimate."""
        if isinstance(texts, pa.Array | pa.ChunkedArray):
            texts = [texts]
        counts = NgramCounts(self.config)
        for batch in texts:
            counts.add(batch)
        return self.fit_counts(counts)

    def fit_counts(self, counts: NgramCounts) -> KneserNeyLM:
        """Estimate the model from raw counts."""
        if counts.config != self.config:
            raise ConfigError(f"counts were made with {counts.config}, the model wants {self.config}")
        tables = counts.tables()
        order = self.config.order
        keys = [t[0] for t in tables]
        adjusted = [None] * order
        adjusted[-1] = tables[-1][1]
        for j in range(order - 2, -1, -1):
            # a(g) = number of distinct left extensions, i.e. of distinct (j+2)-grams whose suffix is g
            suffixes, left = _unique_counts(tables[j + 1][3])
            cont = np.zeros(len(keys[j]), dtype=np.int64)
            cont[np.searchsorted(keys[j], suffixes)] = left
            bos = tables[j][4]
            adjusted[j] = cont if bos is None else np.where(bos, tables[j][1], cont)
            if not (adjusted[j] > 0).all():
                raise RuntimeError("inconsistent n-gram counts (a 64-bit key collision?)")
        self.discounts_ = np.array([self._discounts(a) for a in adjusted])

        mass, backoff = [], []
        for j in range(order):
            a = adjusted[j]
            d = self.discounts_[j][np.minimum(a, 3) - 1]
            if j == 0:
                total = float(a.sum())
                mass.append((a - d) / total)
                self.gamma0_ = float(d.sum() / total)
                continue
            contexts, inv = _unique_inverse(tables[j][2])
            total = np.bincount(inv, weights=a)
            mass.append((a - d) / total[inv])
            gamma = np.bincount(inv, weights=d) / total
            lower = keys[j - 1]
            if j == 1:  # <s> is a context of bigrams but not a unigram: add it with no mass of its own
                at = np.searchsorted(lower, BOS)
                lower = keys[0] = np.insert(lower, at, BOS)
                mass[0] = np.insert(mass[0], at, 0.0)
            pos = np.searchsorted(lower, contexts)
            if not (lower[np.minimum(pos, len(lower) - 1)] == contexts).all():
                raise RuntimeError("a context is missing from the lower order (a 64-bit key collision?)")
            g = np.ones(len(lower))
            g[pos] = gamma
            backoff.append(g)
        backoff.append(None)
        self.tables_ = [_table(k, m, b) for k, m, b in zip(keys, mass, backoff)]
        self._build_directories()
        self.vocab_size_ = len(tables[0][0]) + 1
        self.n_tokens_ = counts.n_tokens
        return self

    def _discounts(self, adjusted: np.ndarray) -> tuple[float, float, float]:
        """D1, D2, D3+ for one order: modified Kneser-Ney estimates, the fixed discount, or KenLM's fallback."""
        if self.config.discount != "auto":
            d = float(self.config.discount)
            return d, d, d
        n = np.bincount(np.minimum(adjusted, 5), minlength=6)[1:5].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = n[0] / (n[0] + 2 * n[1])
            d = [k - (k + 1) * y * n[k] / n[k - 1] for k in (1, 2, 3)]
        if all(np.isfinite(x) and 0 < x <= k for k, x in zip((1, 2, 3), d)):
            return float(d[0]), float(d[1]), float(d[2])
        return FALLBACK_DISCOUNTS

    def _build_directories(self) -> None:
        """Per order, the index of the first key of each bucket of keys' top ``b`` bits (2**b <= max(n-grams, 2))."""
        self._dirs = []
        for table in self.tables_:
            keys = table["key"][:-1]
            bits = max(len(keys).bit_length() - 1, 1)  # at least 2 buckets: numpy's ``x >> 64`` is ``x``
            shift = np.uint64(64 - bits)
            starts = np.arange(1 << bits, dtype=np.uint64) << shift
            dtype = np.int32 if len(table) < 2**31 else np.int64
            self._dirs.append((np.searchsorted(keys, starts).astype(dtype), shift))

    # -- scoring -----------------------------------------------------------------------------------------------

    def token_log_probs(self, text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """(natural-log probability of every prediction, record offsets): record ``r`` predicts its tokens then
        ``</s>``, entries ``offsets[r]:offsets[r + 1]``."""
        return self.token_log_probs_hashes(*self._featurizer.token_hashes(text))

    def token_log_probs_hashes(self, hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`token_log_probs` from token hashes and record offsets (the output of ``token_hashes``)."""
        if self.tables_ is None:
            raise ConfigError("KneserNeyLM used before fit")
        stream, dist, _ = _stream(hashes, offsets)
        p = np.full(len(stream), self.gamma0_ / self.vocab_size_)
        # order 1 at every position (<s> too: its backoff weight is gamma(<s>) for the bigram that follows)
        pos = np.arange(len(stream))
        keys, backoff = stream, None
        for j in range(self.config.order):
            if j:
                keys = _extend(keys, stream)
                pos = pos[dist[pos] >= j]  # an n-gram can only be known if its suffix is
            pos, rows = self._lookup(j, keys, pos)
            if backoff is not None:  # p_j = mass + gamma(context) p_(j-1); the context ends one position earlier
                p *= backoff
            p[pos] += rows["mass"]
            if j + 1 < self.config.order:
                backoff = np.ones(len(stream) + 1)
                backoff[pos + 1] = rows["backoff"]
                backoff = backoff[:-1]
        predicted = dist >= 1
        logp = np.log(p[predicted])
        n = np.diff(offsets)
        out_offsets = np.zeros(len(n) + 1, dtype=np.int64)
        np.cumsum(n + 1, out=out_offsets[1:])
        return logp, out_offsets

    def _lookup(self, j: int, keys: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions whose key is in order j's table, their table rows) for the keys at ``positions``."""
        table = self.tables_[j]
        directory, shift = self._dirs[j]
        q = keys[positions]
        idx = directory[q >> shift].astype(np.intp)
        row = np.empty(len(q), dtype=np.intp)
        found = np.zeros(len(q), dtype=bool)
        active = np.arange(len(q))
        while active.size:  # scan forward in the bucket; the sentinel key 2**64-1 ends every scan
            k = table["key"][idx[active]]
            qa = q[active]
            hit = active[k == qa]
            found[hit] = True
            row[hit] = idx[hit]
            active = active[k < qa]
            idx[active] += 1
        return positions[found], table[row[found]]

    def log_prob(self, text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """(sum of natural-log probabilities per record, number of predictions per record = tokens + 1)."""
        logp, offsets = self.token_log_probs(text)
        return _per_record(logp, offsets)

    def log_prob_hashes(self, hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`log_prob` from token hashes and record offsets."""
        return _per_record(*self.token_log_probs_hashes(hashes, offsets))

    # -- persistence -------------------------------------------------------------------------------------------

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_dirs", "_featurizer")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._featurizer = self.config.featurizer()
        self._dirs = []
        if self.tables_ is not None:
            self._build_directories()

    def save(self, path: str | os.PathLike) -> None:
        """Write ``kneser_ney.npz`` (tables) and ``kneser_ney.json`` (config and statistics) into directory
        ``path``, each atomically."""
        if self.tables_ is None:
            raise ConfigError("KneserNeyLM.save called before fit")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with atomic_path(path / "kneser_ney.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **{f"order_{j + 1}": t for j, t in enumerate(self.tables_)})
        write_json({"format": _FORMAT_VERSION, "config": asdict(self.config), "gamma0": self.gamma0_,
                    "vocab_size": self.vocab_size_, "discounts": self.discounts_, "n_tokens": self.n_tokens_,
                    "n_ngrams": self.n_ngrams()}, path / "kneser_ney.json")

    @classmethod
    def load(cls, path: str | os.PathLike) -> KneserNeyLM:
        """A model written by :meth:`save`."""
        path = Path(path)
        meta = json.loads((path / "kneser_ney.json").read_text())
        if meta.get("format") != _FORMAT_VERSION:
            raise ConfigError(f"{path}: unsupported n-gram model format {meta.get('format')!r}")
        lm = cls(KneserNeyConfig(**meta["config"]))
        with np.load(path / "kneser_ney.npz") as z:
            lm.tables_ = [z[f"order_{j + 1}"] for j in range(lm.config.order)]
        lm.gamma0_ = float(meta["gamma0"])
        lm.vocab_size_ = int(meta["vocab_size"])
        lm.discounts_ = np.array(meta["discounts"], dtype=np.float64).reshape(-1, 3)
        lm.n_tokens_ = int(meta["n_tokens"])
        lm._build_directories()
        return lm

    def n_ngrams(self) -> list[int]:
        """Number of n-grams per order (the unigrams include ``</s>`` and the context-only ``<s>``)."""
        return [len(t) - 1 for t in self.tables_ or []]

    def nbytes(self) -> int:
        """Memory held by the model's tables and directories."""
        return sum(t.nbytes for t in self.tables_ or []) + sum(d.nbytes for d, _ in self._dirs)


def _table(keys: np.ndarray, mass: np.ndarray, backoff: np.ndarray | None) -> np.ndarray:
    """One order's rows sorted by key, plus a sentinel row (key 2**64-1, no mass, backoff 1) that ends scans."""
    fields = [("key", "<u8"), ("mass", "<f4")] + ([("backoff", "<f4")] if backoff is not None else [])
    table = np.empty(len(keys) + 1, dtype=fields)
    table["key"][:-1] = keys
    table["key"][-1] = np.iinfo(np.uint64).max
    table["mass"][:-1] = mass
    table["mass"][-1] = 0
    if backoff is not None:
        table["backoff"][:-1] = backoff
        table["backoff"][-1] = 1
    return table


def _per_record(logp: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of per-prediction values per record (every record has at least one prediction, its ``</s>``)."""
    n = np.diff(offsets)
    if len(n) == 0:
        return np.zeros(0), n
    return np.add.reduceat(logp, offsets[:-1]), n
