"""Gopher quality and repetition rules on real text."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thresher.errors import ConfigError
from thresher.scorers.gopher import GopherConfig, GopherScorer, gopher_signals

PARAGRAPH = (
    "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, and "
    "nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of "
    "the world. It is a way I have of driving off the spleen and regulating the circulation. Whenever I find "
    "myself growing grim about the mouth, whenever it is a damp, drizzly November in my soul, then I account it "
    "high time to get to sea as soon as I can."
)


def _score(*texts, **config):
    return GopherScorer(GopherConfig(**config)).score(pa.array(list(texts)))


def test_a_normal_paragraph_passes():
    cols = _score(PARAGRAPH)
    assert cols["gopher_pass"][0] and cols["gopher_reason"][0] is None
    assert 80 < cols["gopher_words"][0] < 100 and cols["gopher_stop_words"][0] >= 5


@pytest.mark.parametrize("text,reason", [
    ("buy now " * 60, "few_stop_words"),
    ("a b c d e f g h i j the of " * 10, "short_words"),
    ("\n".join(["Limited offer, the best prices with free shipping today!"] * 12), "duplicate_lines"),
    (" ".join(f"#tag{i} #deal{i} and the #sale{i} of the #best{i}" for i in range(20)), "too_many_hashes"),
    ("Too short to be a document, the end.", "too_few_words"),
    ("\n".join(f"• item number {i} of the list with the details and more..." for i in range(30)), "bullet_lines"),
])
def test_junk_is_rejected_with_its_reason(text, reason):
    cols = _score(text)
    assert not cols["gopher_pass"][0]
    assert cols["gopher_reason"][0] == reason


def test_repeated_ngrams_are_measured():
    s = gopher_signals(" ".join([PARAGRAPH] * 3), GopherConfig())
    assert s["gopher_dup_5gram_char_frac"] > 0.5 and s["gopher_dup_10gram_char_frac"] > 0.5
    assert gopher_signals(PARAGRAPH, GopherConfig())["gopher_dup_5gram_char_frac"] == 0


def test_thresholds_are_settable_and_validated():
    assert _score(PARAGRAPH, min_words=500)["gopher_reason"][0] == "too_few_words"
    assert _score("buy now " * 60, min_mean_word_length=None, min_stop_words=None,
                  max_top_ngram_char_frac={}, max_dup_ngram_char_frac={})["gopher_pass"][0]
    with pytest.raises(ConfigError):
        GopherConfig(max_dup_line_frac=-1)


def test_prose_passes_more_often_than_dictionary_entries_and_code(sample_pool):
    table = pq.read_table(sample_pool, columns=["text", "domain"]).slice(0, 2500)
    cols = GopherScorer().score(table["text"])
    domains = table["domain"].to_pylist()
    rate = {d: sum(p for p, dd in zip(cols["gopher_pass"], domains) if dd == d) / n
            for d, n in Counter(domains).items()}
    assert rate["literature"] > 0.9 and rate["speeches"] > 0.9
    assert rate["quotes"] < 0.5 and rate["code"] < rate["literature"]
