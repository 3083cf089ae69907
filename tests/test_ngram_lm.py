"""Kneser-Ney n-gram LM: a proper distribution, equal to a plain-Python reference, sensible on real text; and the
perplexity and CoLoR-Filter scorers built on it."""

from __future__ import annotations

import json
import math
import pickle
from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.errors import ConfigError
from thresher.lm import KneserNeyConfig, KneserNeyLM
from thresher.lm.ngram import FALLBACK_DISCOUNTS
from thresher.scorers.color_filter import ColorFilterConfig, ColorFilterScorer
from thresher.scorers.perplexity import NgramPerplexityConfig, NgramPerplexityScorer

TINY = ["the cat sat on the mat .", "the dog sat on the log !", "a cat saw a dog", "the cat ate the fish",
        "", "dog dog dog", "The Cat sat, on the mat."]


def _zipf_corpus(seed: int = 0, n: int = 300) -> list[str]:
    """Sentences of words drawn from a Zipf-like 300-word vocabulary, with some repeated phrases: rich enough that
    every order has counts of counts 1..4 (so discounts are estimated, not the fallback)."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(300)]
    weights = 1 / np.arange(1, 301)
    weights /= weights.sum()
    phrases = ["w0 w1 w2", "w3 w0 w1", "w5 w5"]
    out = []
    for _ in range(n):
        toks = list(rng.choice(words, size=rng.integers(0, 12), p=weights))
        if rng.random() < 0.5:
            at = int(rng.integers(0, len(toks) + 1))
            toks[at:at] = phrases[int(rng.integers(0, len(phrases)))].split()
        out.append(" ".join(toks))
    return out


class ReferenceKN:
    """Interpolated modified Kneser-Ney as written in Chen & Goodman / KenLM, one probability at a time, with dicts
    of string tuples: ``<s> w1 .. wm </s>`` per sentence; adjusted counts are raw counts at the highest order and
    for n-grams starting with <s>, distinct left extensions otherwise; the unigram level interpolates with the
    uniform distribution over vocabulary + </s> + <unk>."""

    def __init__(self, sentences: list[list[str]], order: int, discount: str | float = "auto"):
        self.order = order
        raw = [Counter() for _ in range(order)]
        for toks in sentences:
            s = ["<s>", *toks, "</s>"]
            for i in range(1, len(s)):
                for n in range(1, min(order, i + 1) + 1):
                    raw[n - 1][tuple(s[i - n + 1:i + 1])] += 1
        self.adj = [dict() for _ in range(order)]
        self.adj[-1] = dict(raw[-1])
        for n in range(order - 1, 0, -1):
            left = defaultdict(set)
            for g in raw[n]:
                left[g[1:]].add(g[0])
            for g, c in raw[n - 1].items():
                self.adj[n - 1][g] = c if g[0] == "<s>" else len(left[g])
        self.disc = [self._discounts(list(a.values()), discount) for a in self.adj]
        self.by_context = [defaultdict(dict) for _ in range(order)]
        for n in range(order):
            for g, a in self.adj[n].items():
                self.by_context[n][g[:-1]][g[-1]] = a
        self.vocab_size = len(self.adj[0]) + 1

    @staticmethod
    def _discounts(values: list[int], discount) -> tuple[float, float, float]:
        if discount != "auto":
            return (discount,) * 3
        n = [sum(1 for v in values if v == k) for k in (1, 2, 3, 4)]
        try:
            y = n[0] / (n[0] + 2 * n[1])
            d = tuple(k - (k + 1) * y * n[k] / n[k - 1] for k in (1, 2, 3))
        except ZeroDivisionError:
            return FALLBACK_DISCOUNTS
        return d if all(0 < x <= k for k, x in zip((1, 2, 3), d)) else FALLBACK_DISCOUNTS

    def prob(self, word: str, context: tuple[str, ...]) -> float:
        context = context[max(0, len(context) - (self.order - 1)):] if self.order > 1 else ()
        p = None
        for n in range(0, len(context) + 1):  # n = context length
            ext = self.by_context[n].get(context[len(context) - n:] if n else ())
            if not ext:
                continue  # context never seen: p stays the lower order's
            disc = self.disc[n]
            total = sum(ext.values())
            gamma = sum(disc[min(a, 3) - 1] for a in ext.values()) / total
            a = ext.get(word, 0)
            own = (a - disc[min(a, 3) - 1]) / total if a else 0.0
            lower = 1 / self.vocab_size if p is None else p
            p = own + gamma * lower
        return p

    def sentence_log_probs(self, toks: list[str]) -> list[float]:
        s = ["<s>", *toks, "</s>"]
        return [math.log(self.prob(s[i], tuple(s[:i]))) for i in range(1, len(s))]


def _tokens(lm: KneserNeyLM, texts: list[str]) -> list[list[str]]:
    return lm.config.featurizer().tokens(texts)


# -- the model ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_sum_to_one_over_vocabulary(order):
    lm = KneserNeyLM(KneserNeyConfig(order=order)).fit([pa.array(TINY[:3]), pa.array(TINY[3:])])
    vocab = sorted({w for toks in _tokens(lm, TINY) for w in toks})
    assert lm.vocab_size_ == len(vocab) + 2  # + </s> + <unk>
    for context in ["", "the", "the cat", "cat sat on", "zzz cat", "qq rr", ". the", "dog dog"]:
        k = len(context.split())
        # every word after the context, then </s> (the context alone), then an unknown word
        texts = [f"{context} {w}".strip() for w in vocab] + [context, f"{context} zzzunknown".strip()]
        logp, offsets = lm.token_log_probs(pa.array(texts))
        probs = np.exp(logp[offsets[:-1] + k])
        assert probs.min() > 0
        assert probs.sum() == pytest.approx(1.0, abs=1e-6), context


@pytest.mark.parametrize("order,discount", [(1, "auto"), (2, "auto"), (3, "auto"), (4, "auto"), (5, "auto"),
                                            (3, 0.75), (2, 1.0)])
def test_equals_plain_python_reference(order, discount):
    train = _zipf_corpus(0)
    test = _zipf_corpus(1, 60) + ["w0 w1 w2 unseen w3 w0", "", "unseen", "w299 w298 w37 w36"]
    lm = KneserNeyLM(KneserNeyConfig(order=order, discount=discount))
    lm.fit(pa.array(train[i:i + 64]) for i in range(0, len(train), 64))  # several batches, merged
    ref = ReferenceKN(_tokens(lm, train), order, discount)
    if discount == "auto":
        assert all(tuple(d) != FALLBACK_DISCOUNTS for d in lm.discounts_)  # the estimates are exercised
    np.testing.assert_allclose(lm.discounts_, np.array(ref.disc), rtol=1e-12)
    logp, offsets = lm.token_log_probs(pa.array(test))
    expected = np.concatenate([ref.sentence_log_probs(t) for t in _tokens(lm, test)])
    np.testing.assert_allclose(logp, expected, rtol=0, atol=1e-6)
    total, n = lm.log_prob(pa.array(test))
    np.testing.assert_array_equal(n, [len(t) + 1 for t in _tokens(lm, test)])
    np.testing.assert_allclose(total, np.add.reduceat(expected, offsets[:-1]), atol=1e-5)


def test_tiny_corpus_falls_back_to_kenlm_discounts_and_stays_finite():
    lm = KneserNeyLM().fit(pa.array(["a b", "a c"]))
    assert tuple(lm.discounts_[-1]) == FALLBACK_DISCOUNTS
    total, n = lm.log_prob(pa.array(["x y z", "", None, "a b c d"]))
    assert np.isfinite(total).all() and (total < 0).all()
    np.testing.assert_array_equal(n, [4, 1, 1, 5])


def test_scores_do_not_depend_on_batching_and_survive_pickle(sample_pool):
    texts = pq.read_table(sample_pool, columns=["text"])["text"].combine_chunks().slice(0, 400)
    one = KneserNeyLM().fit([texts])
    many = KneserNeyLM().fit(texts.slice(i, 37) for i in range(0, len(texts), 37))
    a, na = one.log_prob(texts.slice(100, 50))
    b, nb = many.log_prob(texts.slice(100, 50))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(na, nb)
    clone = pickle.loads(pickle.dumps(many))
    np.testing.assert_array_equal(clone.log_prob(texts.slice(100, 50))[0], a)
    # whole batch vs record by record
    for r in range(100, 105):
        assert clone.log_prob(texts.slice(r, 1))[0][0] == pytest.approx(a[r - 100], abs=1e-9)


def test_save_load_round_trip(tmp_path, sample_pool):
    texts = pq.read_table(sample_pool, columns=["text"])["text"].combine_chunks()
    lm = KneserNeyLM(KneserNeyConfig(order=4, lowercase=False)).fit([texts.slice(0, 500)])
    lm.save(tmp_path / "lm")
    back = KneserNeyLM.load(tmp_path / "lm")
    assert back.config == lm.config
    np.testing.assert_array_equal(back.log_prob(texts.slice(500, 200))[0], lm.log_prob(texts.slice(500, 200))[0])
    assert not list((tmp_path / "lm").glob(".*tmp*"))  # atomic writes leave no temporaries


@pytest.mark.parametrize("kwargs", [{"order": 0}, {"order": 6}, {"order": 2.0}, {"discount": 0},
                                    {"discount": 1.5}, {"discount": "kn"}, {"discount": -0.1},
                                    {"tokenizer": "spacy"}])
def test_bad_config(kwargs):
    with pytest.raises(ConfigError):
        KneserNeyConfig(**kwargs)
    with pytest.raises(ConfigError):
        NgramPerplexityConfig(**kwargs)


def test_bad_use():
    with pytest.raises(ConfigError):
        ColorFilterConfig(conditional="pool")
    with pytest.raises(ConfigError):
        KneserNeyLM().log_prob(pa.array(["a"]))
    with pytest.raises(ConfigError):
        KneserNeyLM().fit([])
    with pytest.raises(ConfigError):
        NgramPerplexityScorer().score(pa.array(["a"]))


# -- on real text ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool(sample_pool) -> pa.Table:
    return pq.read_table(sample_pool, columns=["id", "text", "domain"])


@pytest.fixture(scope="module")
def split(pool) -> np.ndarray:
    """A fixed random half of the pool: True = fit side, False = scored side."""
    return np.random.default_rng(0).random(pool.num_rows) < 0.5


def test_perplexity_separates_code_from_prose(pool, split, tmp_path):
    domain = np.array(pool["domain"].to_pylist())
    text = pool["text"]
    prose = np.isin(domain, ["literature", "news"])
    scorer = NgramPerplexityScorer(NgramPerplexityConfig(order=3)).fit([text.filter(pa.array(prose & split))])
    held_prose = scorer.score(text.filter(pa.array(prose & ~split)))
    code = scorer.score(text.filter(pa.array(domain == "code")))
    assert np.nanmedian(code["ngram_ppl"]) > 2 * np.nanmedian(held_prose["ngram_ppl"])
    np.testing.assert_allclose(held_prose["ngram_ppl"], np.exp(-held_prose["ngram_logp"]))
    # save/load gives identical scores; empty texts get NaN
    scorer.save(tmp_path / "ppl")
    back = NgramPerplexityScorer.load(tmp_path / "ppl")
    batch = pa.array(["", "   ", None, "It was a dark and stormy night.", "def f(x): return x"])
    a, b = scorer.score(batch), back.score(batch)
    np.testing.assert_array_equal(a["ngram_logp"], b["ngram_logp"])
    assert np.isnan(a["ngram_logp"][:3]).all() and np.isfinite(a["ngram_logp"][3:]).all()
    assert a["ngram_ppl"][3] < a["ngram_ppl"][4]


def _target_texts(path) -> pa.Array:
    with open(path) as f:
        return pa.array([json.loads(line)["text"] for line in f])


@pytest.mark.parametrize("conditional,min_precision", [("pool+target", 0.6), ("target", 0.4)])
def test_color_filter_ranks_news_first(pool, split, news_target, tmp_path, conditional, min_precision):
    text, domain = pool["text"], np.array(pool["domain"].to_pylist())
    scorer = ColorFilterScorer(ColorFilterConfig(conditional=conditional))
    scorer.fit([text.filter(pa.array(split))], [_target_texts(news_target)])
    held = text.filter(pa.array(~split))
    held_domain = domain[~split]
    out = scorer.score(held)
    s = out["color_score"]
    np.testing.assert_allclose(s, out["color_prior_loss"] - out["color_cond_loss"])
    means = {d: np.nanmean(s[held_domain == d]) for d in np.unique(held_domain)}
    assert max(means, key=means.get) == "news", means
    is_news = held_domain == "news"
    k = int(is_news.sum())
    top = np.argsort(-np.nan_to_num(s, nan=-np.inf), kind="stable")[:k]
    assert is_news[top].mean() > min_precision  # precision at k = number of news records; random gives 0.09
    if conditional == "pool+target":
        scorer.save(tmp_path / "color")
        back = ColorFilterScorer.load(tmp_path / "color").score(held.slice(0, 300))
        np.testing.assert_array_equal(back["color_score"], s[:300])
