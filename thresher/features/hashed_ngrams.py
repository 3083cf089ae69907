"""Hashed n-gram features: every record becomes the bucket ids of its word n-grams (DSIR's representation).

The work is vectorised per batch: Arrow lower-cases and splits the whole batch, each *distinct* token of the batch is
hashed once with xxh3-64 (stable across processes and machines, unlike Python's ``hash``), and n-gram hashes are
combined with numpy integer arithmetic. No Python code runs per token.

A batch's features are kept as one flat array of bucket ids per n-gram order (a sparse count matrix in
coordinate form, duplicates not summed); per-record offsets follow from the token counts. Summing counts over any set
of records is then one ``np.bincount``, and a record's score under per-bucket weights is a gather plus a bincount.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from scipy import sparse

from thresher.errors import ConfigError

TOKENIZERS = ("wordpunct", "whitespace")
#: Runs of characters that are neither word characters nor spaces become tokens of their own ("wordpunct").
_PUNCT_RUN = r"([^\pL\pN_\s]+)"
_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant: spreads the first hash before xor-ing the next


@dataclass(frozen=True)
class HashedNgramConfig:
    """What defines the features: change any field and cached features are recomputed.

    num_buckets: size of the hashed vocabulary (DSIR default 10,000).
    ngrams: highest n-gram order; 2 means unigrams and bigrams.
    tokenizer: ``wordpunct`` (words and punctuation runs, like NLTK's ``wordpunct_tokenize``) or ``whitespace``.
    lowercase: fold case before hashing.
    """

    num_buckets: int = 10_000
    ngrams: int = 2
    tokenizer: str = "wordpunct"
    lowercase: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.num_buckets <= 2**32:
            raise ConfigError(f"num_buckets must be in [2, 2**32], got {self.num_buckets}")
        if not 1 <= self.ngrams <= 5:
            raise ConfigError(f"ngrams must be in [1, 5], got {self.ngrams}")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")

    @property
    def bucket_dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.num_buckets <= 2**16 else np.uint32)

    def fingerprint(self) -> str:
        """A short stable key for this configuration (and the feature code version)."""
        return xxhash.xxh3_64_hexdigest(json.dumps({"v": 1, **asdict(self)}, sort_keys=True).encode())


@dataclass
class NgramFeatures:
    """Features of a batch: ``buckets[j]`` holds the (j+1)-gram bucket ids of all records, record after record."""

    n_tokens: np.ndarray  # int64, tokens per record
    buckets: list[np.ndarray]

    @property
    def n_records(self) -> int:
        return len(self.n_tokens)

    def n_ngrams(self) -> np.ndarray:
        """Number of n-grams (all orders) per record."""
        return sum(np.maximum(self.n_tokens - j, 0) for j in range(len(self.buckets)))

    def record_index(self, order: int) -> np.ndarray:
        """For each entry of ``buckets[order]``, the index of its record."""
        return np.repeat(np.arange(self.n_records), np.maximum(self.n_tokens - order, 0))

    def counts(self, num_buckets: int, mask: np.ndarray | None = None) -> np.ndarray:
        """Bucket counts summed over all records, or over those where ``mask`` is true."""
        total = np.zeros(num_buckets, dtype=np.int64)
        for j, b in enumerate(self.buckets):
            if mask is not None:
                b = b[mask[self.record_index(j)]]
            total += np.bincount(b, minlength=num_buckets)
        return total

    def weighted_sum(self, weights: np.ndarray) -> np.ndarray:
        """Per record, the sum of ``weights[bucket]`` over its n-grams (float64)."""
        out = np.zeros(self.n_records, dtype=np.float64)
        for j, b in enumerate(self.buckets):
            out += np.bincount(self.record_index(j), weights=weights[b], minlength=self.n_records)
        return out

    def to_csr(self, num_buckets: int) -> sparse.csr_matrix:
        """Records x buckets count matrix (scipy CSR), for users who want the classic layout."""
        rows = np.concatenate([self.record_index(j) for j in range(len(self.buckets))])
        cols = np.concatenate(self.buckets).astype(np.int64)
        m = sparse.csr_matrix((np.ones(len(cols), np.int32), (rows, cols)), shape=(self.n_records, num_buckets))
        m.sum_duplicates()
        return m


class HashedNgramFeaturizer:
    """Turns a batch of texts into :class:`NgramFeatures`; deterministic, stateless, picklable."""

    def __init__(self, config: HashedNgramConfig | None = None):
        self.config = config or HashedNgramConfig()

    def tokens(self, text: pa.Array | pa.ChunkedArray) -> pa.ListArray:
        """Token lists of a batch of texts, as Arrow lists of strings."""
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        if self.config.lowercase:
            text = pc.utf8_lower(text)
        if self.config.tokenizer == "wordpunct":
            text = pc.replace_substring_regex(text, _PUNCT_RUN, r" \1 ")
        return pc.utf8_split_whitespace(text)

    def transform(self, text: pa.Array | pa.ChunkedArray) -> NgramFeatures:
        """Hashed n-gram bucket ids of every record of the batch."""
        toks = self.tokens(text)
        if isinstance(toks, pa.ChunkedArray):
            toks = toks.combine_chunks()
        offsets = toks.offsets.to_numpy().astype(np.int64)
        offsets = offsets - offsets[0]
        flat = toks.flatten()
        nonempty = pc.binary_length(flat).to_numpy() > 0
        if not nonempty.all():  # Arrow's split leaves "" tokens at leading/trailing/repeated spaces: drop them
            kept_before = np.concatenate([[0], np.cumsum(nonempty)])
            offsets = kept_before[offsets]
            flat = flat.filter(pa.array(nonempty))
        n_tokens = np.diff(offsets)
        hashes = token_hashes(flat)
        nb = np.uint64(self.config.num_buckets)
        dtype = self.config.bucket_dtype
        buckets = [(_finalise(hashes) % nb).astype(dtype)]
        gram = hashes
        for order in range(1, self.config.ngrams):
            # gram[i] is the hash of tokens i..i+order; keep only n-grams that stay inside one record.
            with np.errstate(over="ignore"):
                gram = gram[:-1] * _MIX ^ hashes[order:]
            starts = offsets[:-1]
            keep_len = np.maximum(n_tokens - order, 0)
            index = _ranges(starts, keep_len)
            buckets.append((_finalise(gram[index]) % nb).astype(dtype))
        return NgramFeatures(n_tokens.astype(np.int64), buckets)


def token_hashes(tokens: pa.Array) -> np.ndarray:
    """xxh3-64 of each token's UTF-8 bytes; each distinct token is hashed once."""
    if len(tokens) == 0:
        return np.zeros(0, dtype=np.uint64)
    encoded = pc.dictionary_encode(tokens)
    words = encoded.dictionary.cast(pa.large_binary()).to_pylist()
    table = np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))
    return table[encoded.indices.to_numpy()]


def _finalise(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser: makes every output bit depend on every input bit before taking ``% buckets``."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xFF51AFD7ED558CCD)
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xC4CEB9FE1A85EC53)
        return h ^ (h >> np.uint64(33))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every (s, l), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    first = np.repeat(starts - (ends - lengths), lengths)
    return first + np.arange(total, dtype=np.int64)
