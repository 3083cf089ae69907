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
import re
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from thresher.errors import ConfigError

TOKENIZERS = ("wordpunct", "whitespace")
#: NLTK's wordpunct_tokenize: runs of word characters, and runs of other non-space characters.
_WORDPUNCT = re.compile(r"\w+|[^\w\s]+")
#: The same punctuation runs in RE2 syntax, for Arrow (\\w is ASCII-only in RE2, hence the classes).
_PUNCT_RUN = r"([^\pL\pN_\s]+)"
_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant: spreads the first hash before xor-ing the next


@dataclass(frozen=True)
class HashedNgramConfig:
    """What defines the features: change any field and cached features are recomputed.

    num_buckets: size of the hashed vocabulary (DSIR default 10,000).
    ngrams: highest n-gram order; 2 means unigrams and bigrams.
    tokenizer: ``wordpunct`` (words and punctuation runs, like NLTK's ``wordpunct_tokenize``) or ``whitespace``.
    lowercase: fold case before hashing.
    seed: seed of the token hash. Another seed spreads the same n-grams over other buckets: a selector that
    optimises a distance in one feature space is measured in another (``thresher evaluate`` uses seed 0).
    """

    num_buckets: int = 10_000
    ngrams: int = 2
    tokenizer: str = "wordpunct"
    lowercase: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.num_buckets <= 2**32:
            raise ConfigError(f"num_buckets must be in [2, 2**32], got {self.num_buckets}")
        if not 1 <= self.ngrams <= 5:
            raise ConfigError(f"ngrams must be in [1, 5], got {self.ngrams}")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"tokenizer must be one of {TOKENIZERS}, got {self.tokenizer!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**64:
            raise ConfigError(f"seed must be an integer in [0, 2**64), got {self.seed!r}")

    @property
    def bucket_dtype(self) -> np.dtype:
        return np.dtype(np.uint16 if self.num_buckets <= 2**16 else np.uint32)

    def fingerprint(self) -> str:
        """A short stable key for this configuration (and the feature code version). Seed 0 is left out, so the
        keys of features cached before the seed existed still hold."""
        fields = asdict(self)
        if not fields["seed"]:
            del fields["seed"]
        return xxhash.xxh3_64_hexdigest(json.dumps({"v": 1, **fields}, sort_keys=True).encode())


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

    def to_csr(self, num_buckets: int) -> scipy.sparse.csr_matrix:  # noqa: F821
        """Records x buckets count matrix (scipy CSR), for users who want the classic layout."""
        from scipy import sparse

        rows = np.concatenate([self.record_index(j) for j in range(len(self.buckets))])
        cols = np.concatenate(self.buckets).astype(np.int64)
        m = sparse.csr_matrix((np.ones(len(cols), np.int32), (rows, cols)), shape=(self.n_records, num_buckets))
        m.sum_duplicates()
        return m


class HashedNgramFeaturizer:
    """Turns a batch of texts into :class:`NgramFeatures`; deterministic, stateless, picklable.

    Tokenising works on the batch's *vocabulary*, not its text: Arrow splits the batch on whitespace and
    dictionary-encodes the words; only the distinct words are lower-cased, split into word and punctuation runs
    (``wordpunct``: NLTK's pattern ``\\w+|[^\\w\\s]+``) and hashed; numpy then expands the per-word hashes back
    to the token stream. The result equals tokenising every record on its own.
    """

    def __init__(self, config: HashedNgramConfig | None = None):
        self.config = config or HashedNgramConfig()

    def tokens(self, texts: list[str]) -> list[list[str]]:
        """Token lists of some texts, in plain Python: the reference that :meth:`transform` reproduces."""
        out = []
        for t in texts:
            words = (t or "").split()
            if self.config.lowercase:
                words = [w.lower() for w in words]
            if self.config.tokenizer == "wordpunct":
                words = [s for w in words for s in _WORDPUNCT.findall(w)]
            out.append(words)
        return out

    def token_hashes(self, text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """(hash of every token of the batch, record offsets into that array)."""
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        # Trimming first is not cosmetic: pyarrow 26's utf8_split_whitespace can read past the data buffer when
        # the last string ends in whitespace, and then returns a token with a trailing space (seen on real data).
        words = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(text))
        offsets = words.offsets.to_numpy().astype(np.int64)
        offsets = offsets - offsets[0]
        encoded = pc.dictionary_encode(words.flatten())
        piece_hash, piece_start, piece_len = self._vocabulary_hashes(encoded.dictionary)
        idx = encoded.indices.to_numpy()
        occ_len = piece_len[idx]
        before = np.concatenate([[0], np.cumsum(occ_len)])
        if len(piece_len) and piece_len.min() == 1 and piece_len.max() == 1:
            return piece_hash[idx], before[offsets]
        return piece_hash[_ranges(piece_start[idx], occ_len)], before[offsets]

    def _vocabulary_hashes(self, vocab: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each distinct word: the hashes of its tokens (flat), where they start, and how many there are.

        Splitting runs on the vocabulary, in Arrow: punctuation runs get spaces around them, the words are split
        again, and each distinct piece is hashed once.
        """
        if self.config.lowercase:
            vocab = pc.utf8_lower(vocab)
        if self.config.tokenizer == "wordpunct":
            vocab = pc.utf8_trim_whitespace(pc.replace_substring_regex(vocab, _PUNCT_RUN, r" \1 "))
        split = pc.utf8_split_whitespace(vocab)
        offsets = split.offsets.to_numpy().astype(np.int64)
        offsets -= offsets[0]
        pieces = split.flatten()
        nonempty = pc.binary_length(pieces).to_numpy() > 0  # Arrow's split yields "" at leading/trailing spaces
        if not nonempty.all():
            offsets = np.concatenate([[0], np.cumsum(nonempty)])[offsets]
            pieces = pieces.filter(pa.array(nonempty))
        encoded = pc.dictionary_encode(pieces)
        distinct = _hash_all(encoded.dictionary.cast(pa.large_binary()).to_pylist(), self.config.seed)
        return distinct[encoded.indices.to_numpy()], offsets[:-1], np.diff(offsets)

    def transform(self, text: pa.Array | pa.ChunkedArray) -> NgramFeatures:
        """Hashed n-gram bucket ids of every record of the batch."""
        hashes, offsets = self.token_hashes(text)
        n_tokens = np.diff(offsets)
        nb = np.uint64(self.config.num_buckets)
        dtype = self.config.bucket_dtype
        buckets = [(hashes % nb).astype(dtype)]  # xxh3 output is already uniform
        gram = hashes
        for order in range(1, self.config.ngrams):
            # gram[i] is the hash of tokens i..i+order; keep only n-grams that stay inside one record.
            with np.errstate(over="ignore"):
                gram = gram[:-1] * _MIX ^ hashes[order:]
            keep_len = np.maximum(n_tokens - order, 0)
            index = _ranges(offsets[:-1], keep_len)
            buckets.append((_finalise(gram[index]) % nb).astype(dtype))
        return NgramFeatures(n_tokens.astype(np.int64), buckets)


def _hash_all(words: list[bytes], seed: int = 0) -> np.ndarray:
    """xxh3-64 of each byte string, with ``seed``."""
    if seed:
        return np.fromiter((xxhash.xxh3_64_intdigest(w, seed) for w in words), dtype=np.uint64, count=len(words))
    return np.fromiter(map(xxhash.xxh3_64_intdigest, words), dtype=np.uint64, count=len(words))


def _finalise(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser: makes every output bit depend on every input bit before taking ``% buckets``."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xFF51AFD7ED558CCD)
        h = h ^ (h >> np.uint64(33))
        h = h * np.uint64(0xC4CEB9FE1A85EC53)
        return h ^ (h >> np.uint64(33))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for every (s, l), vectorised: one cumulative sum of unit steps, with
    a jump at each range start."""
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    step = np.ones(total, dtype=np.int64)
    step[0] = starts[0]
    step[(np.cumsum(lengths) - lengths)[1:]] = starts[1:] - (starts[:-1] + lengths[:-1] - 1)
    return np.cumsum(step)
