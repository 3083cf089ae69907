"""Hashed n-gram features: equal to a plain-Python tokenizer, never crossing records, stable across processes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash

from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import _MIX, HashedNgramConfig, HashedNgramFeaturizer, _finalise
from thresher.features.lengths import whitespace_token_counts


@pytest.fixture(scope="module")
def texts(sample_pool) -> pa.Array:
    return pq.read_table(sample_pool, columns=["text"])["text"].combine_chunks().slice(0, 800)


def _reference_buckets(featurizer: HashedNgramFeaturizer, text: str) -> list[np.ndarray]:
    """The features of one text computed token by token in Python."""
    cfg = featurizer.config
    toks = featurizer.tokens([text])[0]
    h = [xxhash.xxh3_64_intdigest(t.encode()) for t in toks]
    out = [np.array([x % cfg.num_buckets for x in h], dtype=np.int64)]
    gram = np.array(h, dtype=np.uint64)
    for order in range(1, cfg.ngrams):
        gram = gram[:-1] * _MIX ^ np.array(h[order:], dtype=np.uint64)
        out.append((_finalise(gram) % np.uint64(cfg.num_buckets)).astype(np.int64))
    return out


@pytest.mark.parametrize("cfg", [HashedNgramConfig(), HashedNgramConfig(tokenizer="whitespace", ngrams=3),
                                 HashedNgramConfig(num_buckets=100_000, lowercase=False)])
def test_vectorised_features_equal_per_record_reference(texts, cfg):
    fz = HashedNgramFeaturizer(cfg)
    batch = texts.slice(0, 120)
    features = fz.transform(batch)
    for j, b in enumerate(features.buckets):
        idx = features.record_index(j)
        for r, text in enumerate(batch.to_pylist()):
            np.testing.assert_array_equal(b[idx == r].astype(np.int64), _reference_buckets(fz, text)[j])


def test_wordpunct_splits_like_nltk():
    fz = HashedNgramFeaturizer()
    assert fz.tokens(["Don't stop—the U.S.A. café's 3.5% rate!!"])[0] == [
        "don", "'", "t", "stop", "—", "the", "u", ".", "s", ".", "a", ".", "café", "'", "s", "3", ".", "5", "%",
        "rate", "!!"]


def test_features_do_not_depend_on_batching(texts):
    fz = HashedNgramFeaturizer()
    whole = fz.transform(texts)
    parts = [fz.transform(texts.slice(i, 97)) for i in range(0, len(texts), 97)]
    for j in range(2):
        np.testing.assert_array_equal(whole.buckets[j], np.concatenate([p.buckets[j] for p in parts]))
    np.testing.assert_array_equal(whole.counts(10_000), sum(p.counts(10_000) for p in parts))


def test_bigrams_never_span_two_records():
    fz = HashedNgramFeaturizer()
    f = fz.transform(pa.array(["alpha beta", "gamma", "", "delta epsilon zeta"]))
    np.testing.assert_array_equal(f.n_tokens, [2, 1, 0, 3])
    assert len(f.buckets[1]) == 1 + 0 + 0 + 2
    np.testing.assert_array_equal(f.n_ngrams(), [3, 1, 0, 5])


def test_counts_weighted_sums_and_csr_agree(texts):
    f = HashedNgramFeaturizer().transform(texts.slice(0, 50))
    csr = f.to_csr(10_000)
    np.testing.assert_array_equal(np.asarray(csr.sum(axis=0)).ravel(), f.counts(10_000))
    w = np.random.default_rng(0).normal(size=10_000)
    np.testing.assert_allclose(f.weighted_sum(w), csr @ w)
    mask = np.zeros(50, bool)
    mask[::3] = True
    np.testing.assert_array_equal(f.counts(10_000, mask), np.asarray(csr[mask].sum(axis=0)).ravel())


def test_hashing_is_stable_across_processes_and_hash_seeds(texts):
    code = ("import pyarrow as pa, sys; from thresher.features.hashed_ngrams import HashedNgramFeaturizer as F;"
            "f = F().transform(pa.array([sys.argv[1]])); print(f.buckets[0].tolist(), f.buckets[1].tolist())")
    text = texts[0].as_py()[:400]
    outs = {subprocess.run([sys.executable, "-c", code, text], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout for seed in ("1", "2")}
    assert len(outs) == 1


def test_whitespace_token_counts_match_str_split(texts):
    expected = [len(t.split()) for t in texts.to_pylist()]
    np.testing.assert_array_equal(whitespace_token_counts(texts), expected)
    np.testing.assert_array_equal(whitespace_token_counts(texts.slice(5, 10)), expected[5:15])


def test_config_validation():
    with pytest.raises(ConfigError):
        HashedNgramConfig(num_buckets=1)
    with pytest.raises(ConfigError):
        HashedNgramConfig(tokenizer="bpe")
    assert HashedNgramConfig().fingerprint() != HashedNgramConfig(num_buckets=20_000).fingerprint()

