"""Embedding back-ends, the embedding cache and the embedding-similarity scorer, with the real models and the bundled
sample (no mocks).

Cost on 2 cores: about 60 s in all (37 s of CPU), half of it MiniLM encoding the ~290 texts below (128 tokens each).
The static model is distilled from MiniLM the first time any code needs it, once per machine (1.5-3.5 minutes
depending on load), and cached in ``$THRESHER_CACHE`` or ``~/.cache/thresher/models``; afterwards it loads in under a
second. The embed extra is required (CI installs it): a missing package fails these tests, it does not skip them.
Re-distilling gave bit-identical files (with 1 and 2 threads) when checked by hand; it takes minutes, so it is
not repeated here.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.embeddings import (
    EmbeddingStore,
    SentenceTransformerBackend,
    StaticBackend,
    embed_texts,
    make_backend,
)
from thresher.embeddings import backends as backends_module  # noqa: E402
from thresher.engine.local import LocalEngine  # noqa: E402
from thresher.errors import ConfigError  # noqa: E402
from thresher.scorers.similarity import EmbeddingSimilarityScorer  # noqa: E402

PER_DOMAIN = 25


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerBackend:
    return SentenceTransformerBackend(max_seq_length=128)


@pytest.fixture(scope="module")
def static() -> StaticBackend:
    return StaticBackend()


@pytest.fixture(scope="module")
def pool_by_domain(sample_pool) -> tuple[pa.Array, np.ndarray]:
    """The first 25 records of every domain of the bundled pool (225 records, news 11%)."""
    table = pq.read_table(sample_pool, columns=["text", "domain"])
    domains = np.array(table["domain"].to_pylist())
    rows = np.sort(np.concatenate([np.flatnonzero(domains == d)[:PER_DOMAIN] for d in np.unique(domains)]))
    return table["text"].take(pa.array(rows)), domains[rows]


@pytest.fixture(scope="module")
def target_texts(news_target) -> list[str]:
    with open(news_target) as f:
        return [json.loads(line)["text"] for line in f][:64]


class CountingBackend:
    """A real back-end that counts how many batches it had to encode."""

    def __init__(self, inner):
        self.inner, self.name, self.calls = inner, inner.name, 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return self.inner.encode(texts)


def test_importing_embeddings_does_not_import_torch():
    code = ("import sys, thresher.embeddings, thresher.scorers.similarity; "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'model2vec') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_minilm_gives_unit_vectors_that_put_paraphrases_close(minilm):
    emb = minilm.encode(["A cat is sleeping on the sofa.", "A kitten naps on the couch.",
                         "Quarterly earnings rose five percent on strong bond sales.", ""])
    assert emb.shape == (4, 384) and emb.dtype == np.float32 and minilm.dim == 384
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3


def test_static_backend_is_deterministic_and_reloadable(static, sample_pool, tmp_path):
    texts = pq.read_table(sample_pool, columns=["text"])["text"].to_pylist()[:2000]
    first = static.encode(texts)  # speed is measured in bench/bench_embeddings.py, not here
    assert first.shape == (2000, 256) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)

    backends_module._MODELS.clear()  # a second load from disk, as in a fresh process
    again = StaticBackend()
    assert again.fingerprint() == static.fingerprint() and np.array_equal(again.encode(texts), first)

    own = tmp_path / "my-model2vec-model"  # a user's own model2vec folder: same files, same vectors and fingerprint
    shutil.copytree(static.model_dir(), own)
    user = StaticBackend.load(own)
    assert user.fingerprint() == static.fingerprint() and np.array_equal(user.encode(texts[:50]), first[:50])
    assert make_backend("static", path=str(own)).params()["path"] == str(own)
    assert not user.encode([""]).any()  # no tokens: a zero vector, cosine 0 to everything


@pytest.mark.parametrize("name", ["minilm", "static"])
def test_similarity_scorer_ranks_news_above_every_other_domain(name, minilm, static, pool_by_domain,
                                                               target_texts):
    backend = minilm if name == "minilm" else static
    texts, domains = pool_by_domain
    pool = backend.encode(texts.to_pylist())
    for background in (None, pool):
        scorer = EmbeddingSimilarityScorer(backend, k=10).fit_embeddings(backend.encode(target_texts), background)
        cols = scorer.score_embeddings(pool)
        for column in ("emb_centroid_cos", "emb_knn_cos"):
            means = {d: cols[column][domains == d].mean() for d in np.unique(domains)}
            top = np.argsort(-cols[column], kind="stable")[:PER_DOMAIN]
            precision = (domains[top] == "news").mean()
            if name == "minilm" or background is not None:  # static needs the background (see similarity.py)
                assert max(means, key=means.get) == "news", (column, background is not None, means)
                assert precision >= 0.4, (column, background is not None, precision)  # base rate 0.11
            assert np.all(np.abs(cols[column]) <= 1 + 1e-5)
    assert np.allclose(scorer.score(texts.slice(0, 20))["emb_knn_cos"], cols["emb_knn_cos"][:20], atol=1e-5)


def test_fit_from_texts_matches_fit_from_embeddings(static, pool_by_domain, target_texts):
    texts, _ = pool_by_domain
    a = EmbeddingSimilarityScorer("static", k=5).fit(pa.array(target_texts), background=texts, batch_size=50)
    b = EmbeddingSimilarityScorer(static, k=5).fit_embeddings(static.encode(target_texts),
                                                              static.encode(texts.to_pylist()))
    sa, sb = a.score(texts), b.score(texts)
    assert all(np.allclose(sa[c], sb[c], atol=1e-6) for c in sa)
    knn_chunked = EmbeddingSimilarityScorer(static, k=5, chunk_size=7).fit_embeddings(
        static.encode(target_texts), static.encode(texts.to_pylist())).score(texts)["emb_knn_cos"]
    assert np.allclose(knn_chunked, sb["emb_knn_cos"], atol=1e-6)  # exact kNN whatever the target chunking


def test_store_round_trip_resumes_a_crashed_run(static, sample_pool, tmp_path):
    texts = pq.read_table(sample_pool, columns=["text"])["text"].slice(0, 1200)
    batches = [texts.slice(i, 300) for i in range(0, 1200, 300)]
    reference = np.concatenate(list(embed_texts(static, batches, EmbeddingStore(tmp_path / "ref", static, "d"),
                                                progress=False)))
    assert np.abs(reference - static.encode(texts.to_pylist())).max() < 2e-3  # float16 on disk

    store = EmbeddingStore(tmp_path / "c", static, "d")
    run = embed_texts(static, batches, store, progress=False)
    next(run), next(run)
    run.close()  # the "crash": two shards written, no completion marker
    assert store.has(0) and store.has(1) and not store.has(2) and not store.is_complete()
    assert not list(store.root.glob(".*tmp*"))
    assert np.load(store.shard_path(0)).dtype == np.float16

    counting = CountingBackend(static)
    resumed = np.concatenate(list(embed_texts(counting, batches, store, progress=False)))
    assert counting.calls == 2 and np.array_equal(resumed, reference)  # resumed == uninterrupted, bit for bit
    assert store.is_complete() and store.meta()["n_rows"] == 1200 and store.meta()["dim"] == 256
    assert np.array_equal(store.matrix(), reference)

    counting.calls = 0
    assert np.array_equal(np.concatenate(list(embed_texts(counting, batches, store, progress=False))), reference)
    assert counting.calls == 0

    assert EmbeddingStore(tmp_path / "c", static, "d", dtype="float32").root != store.root
    assert EmbeddingStore(tmp_path / "c", static, "other data").root != store.root
    rebatched = [texts.slice(i, 250) for i in range(0, 1200, 250)]  # a stale shard of another size is recomputed
    counting.calls = 0
    out = np.concatenate(list(embed_texts(counting, rebatched, store, progress=False)))
    assert counting.calls == 5 and np.array_equal(out, reference)


def test_scorer_pickles_small_and_scores_the_same_in_worker_processes(static, pool_by_domain, target_texts,
                                                                      tmp_path):
    texts, _ = pool_by_domain
    scorer = EmbeddingSimilarityScorer(static, k=5).fit(target_texts, background=texts)
    expected = scorer.score(texts)
    assert len(pickle.dumps(scorer)) < scorer.target_.nbytes + 20_000  # the model is never pickled
    scorer.save(tmp_path / "scorer")
    assert len(pickle.dumps(scorer)) < 20_000  # once saved, workers read target.npy themselves

    batches = [(scorer, texts.slice(i, 60)) for i in range(0, len(texts), 60)]
    with LocalEngine(workers=2) as engine:
        parts = list(engine.map(EmbeddingSimilarityScorer.score, batches))
    for column in expected:
        assert np.array_equal(np.concatenate([p[column] for p in parts]), expected[column])

    loaded = EmbeddingSimilarityScorer.load(tmp_path / "scorer")
    assert loaded.get_params() == scorer.get_params()
    assert all(np.array_equal(loaded.score(texts)[c], expected[c]) for c in expected)

    np.save(tmp_path / "scorer" / "target.npy", np.zeros((3, 256), dtype=np.float32))
    with pytest.raises(ConfigError, match="changed"):
        EmbeddingSimilarityScorer.load(tmp_path / "scorer")


def test_configuration_errors(static, tmp_path):
    with pytest.raises(ConfigError, match="unknown embedding backend"):
        make_backend("word2vec")
    with pytest.raises(ConfigError, match="never downloaded"):
        SentenceTransformerBackend("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ConfigError, match="model2vec model folder"):
        StaticBackend.load(tmp_path)
    scorer = EmbeddingSimilarityScorer(static)
    with pytest.raises(ConfigError, match="before fit"):
        scorer.score(pa.array(["text"]))
    with pytest.raises(ConfigError, match="non-empty target"):
        scorer.fit(["", None])
    scorer.fit(["A short target text about elections."])
    with pytest.raises(ConfigError, match="dimension"):
        scorer.score_embeddings(np.ones((2, 384), dtype=np.float32))
    assert scorer.score(pa.array([], pa.string()))["emb_centroid_cos"].shape == (0,)
    with pytest.raises(ConfigError, match="another model"):
        list(embed_texts(static, [["x"]], EmbeddingStore(tmp_path, "some other model", "d"), progress=False))
