"""Labelling functions on real text: keyword/regex (vectorised and Python fallback), score columns, decorated and
batched callables, and the .py/.yaml loaders with errors that name the file and line."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.demo import sample_path
from thresher.errors import ConfigError
from thresher.label.lf_files import LFSet, load_lfs
from thresher.label.lfs import ABSTAIN, CallableLF, KeywordLF, LFError, RegexLF, ScoreLF

BBC = sample_path("labeled/bbc_news.parquet")
CLASSES = ["business", "entertainment", "politics", "sport", "tech"]


@pytest.fixture(scope="module")
def bbc() -> pa.Table:
    return pq.read_table(BBC).select(["id", "text", "label"])


def test_keyword_lf_matches_a_python_reference_on_real_articles(bbc):
    words = ["match", "world cup", "coach", "C++"]
    lf = KeywordLF("sport", "sport", words)
    votes = lf.apply(bbc, CLASSES).votes
    ref = re.compile(r"\b(?:match|world\s+cup|coach|C\+\+)\b", re.IGNORECASE)
    expected = np.array([3 if ref.search(t) else ABSTAIN for t in bbc["text"].to_pylist()])
    assert lf.vectorised
    np.testing.assert_array_equal(votes, expected)
    assert 5 < (votes == 3).sum() < len(votes)  # fires on some real articles, not all


def test_whole_word_and_case_sensitivity():
    table = pa.table({"id": ["a", "b", "c"], "text": ["The matches ended", "a Match", "APPLE and apple"]})
    assert KeywordLF("m", "sport", ["match"]).apply(table, CLASSES).votes.tolist() == [-1, 3, -1]
    assert KeywordLF("m", "sport", ["match"], whole_word=False).apply(table, CLASSES).votes.tolist() == [3, 3, -1]
    assert KeywordLF("a", "tech", ["APPLE"], case_sensitive=True).apply(table, CLASSES).votes.tolist() == [-1, -1, 4]


def test_regex_that_re2_cannot_run_falls_back_to_python_with_the_same_result(bbc):
    lf = RegexLF("money", "business", r"(?<=\$)\d+(\.\d+)?(bn|m)\b")
    assert not lf.vectorised  # look-behind is not RE2
    expected = [0 if re.search(r"(?<=\$)\d+(\.\d+)?(bn|m)\b", t, re.I) else -1 for t in bbc["text"].to_pylist()]
    assert lf.apply(bbc, CLASSES).votes.tolist() == expected
    assert 0 in expected


def test_score_lf_reads_numbers_booleans_and_numeric_strings_and_abstains_on_nulls():
    table = pa.table({"id": list("abcde"), "text": ["x"] * 5, "q": ["0.9", "0.1", None, "true", "false"]})
    lf = ScoreLF("q_high", "q", 0.5, "tech", op=">", else_label="business")
    assert lf.apply(table, CLASSES).votes.tolist() == [4, 0, -1, 4, 0]
    numeric = table.set_column(2, "q", pa.array([0.9, 0.1, None, 1.0, 0.0]))
    assert lf.apply(numeric, CLASSES).votes.tolist() == [4, 0, -1, 4, 0]
    with pytest.raises(ConfigError, match="'q' holds 'high'"):
        lf.apply(table.set_column(2, "q", pa.array(["high"] * 5)), CLASSES)
    with pytest.raises(ConfigError, match="op must be one of"):
        ScoreLF("bad", "q", 0.5, "tech", op="=>")


def test_decorated_lfs_return_names_indices_or_none_and_errors_name_the_lf_and_record(bbc):
    @th.lf
    def mentions_film(text):
        return "entertainment" if "film" in text.lower() else None

    @th.lf(name="politics_index")
    def pol(text):
        return 2 if "minister" in text.lower() else -1

    assert isinstance(mentions_film, CallableLF) and mentions_film.name == "mentions_film"
    assert mentions_film("a film") == "entertainment"  # still callable directly
    film = mentions_film.apply(bbc, CLASSES).votes
    assert set(film.tolist()) == {1, -1}
    assert pol.apply(bbc, CLASSES).votes.tolist() == [2 if "minister" in t.lower() else -1
                                                       for t in bbc["text"].to_pylist()]

    @th.lf
    def broken(text):
        return "weather" if "rain" in text else None

    rainy = next(i for i, t in zip(bbc["id"].to_pylist(), bbc["text"].to_pylist()) if "rain" in t)
    with pytest.raises(LFError, match=rf"'broken' failed on record '{re.escape(rainy)}'.*'weather'"):
        broken.apply(bbc, CLASSES)
    skipped = broken.apply(bbc, CLASSES, on_error="skip")
    assert skipped.failed_rows and (skipped.votes == -1).all()
    assert skipped.failures[0].startswith(rainy)


def test_a_python_lf_is_called_once_per_record_whatever_it_returns():
    # Plain values (names, None, ints) take a tight loop; the first other value or error hands over to the careful
    # per-record path, which must use the value already computed, not call the LF again.
    calls = []
    values = ["sport", None, 1, np.int64(3), "tech", True, ValueError("bad"), -1, 2.0, "politics"]

    def fn(text):
        calls.append(text)
        value = values[int(text)]
        if isinstance(value, Exception):
            raise value
        return value

    batch = pa.table({"id": [f"r{i}" for i in range(len(values))], "text": [str(i) for i in range(len(values))]})
    out = CallableLF(fn, name="mixed").apply(batch, CLASSES, on_error="skip")
    assert calls == [str(i) for i in range(len(values))]
    assert out.votes.tolist() == [3, -1, 1, 3, 4, -1, -1, -1, -1, 2]
    assert out.failed_rows == [5, 6, 8]
    assert [f.split(":")[0] for f in out.failures] == ["r5", "r6", "r8"]


def test_batched_callable_gets_lists_and_a_failing_batch_is_narrowed_to_the_bad_record():
    calls = []

    @th.lf(batched=True)
    def zero_shot(texts):
        calls.append(len(texts))
        if any("boom" in t for t in texts):
            raise RuntimeError("model crashed")
        return ["sport" if "goal" in t else None for t in texts]

    table = pa.table({"id": ["r1", "r2", "r3"], "text": ["a goal", "boom", "nothing"]})
    with pytest.raises(LFError, match="'zero_shot' failed on record 'r2': RuntimeError: model crashed"):
        zero_shot.apply(table, CLASSES)
    ok = table.slice(0, 1)
    calls.clear()
    assert zero_shot.apply(ok, CLASSES).votes.tolist() == [3] and calls == [1]
    skipped = zero_shot.apply(table, CLASSES, on_error="skip")
    assert skipped.votes.tolist() == [3, -1, -1] and skipped.failed_rows == [1]


def test_yaml_loader_builds_each_kind_and_names_the_line_of_mistakes(tmp_path):
    good = tmp_path / "lfs.yaml"
    good.write_text("classes: [neg, pos]\nlfs:\n"
                    "  - {name: kw, label: pos, keywords: [great, superb]}\n"
                    "  - {name: rx, label: neg, regex: ['\\bawful\\b', 'dull']}\n"
                    "  - {name: sc, label: pos, column: stars, threshold: 4, op: '>='}\n")
    lfs = load_lfs(good)
    assert [type(f) for f in lfs.lfs] == [KeywordLF, RegexLF, ScoreLF] and lfs.classes == ["neg", "pos"]
    assert lfs.columns == ["stars"]
    cases = {"  - {name: kw, label: maybe, keywords: [x]}\n": r":3: .*'maybe', which is not a class",
             "  - {name: kw, label: pos, keyword: [x]}\n": r":3: unknown key\(s\) keyword",
             "  - {name: kw, label: pos, regex: '(unclosed'}\n": r":3: .*invalid regular expression",
             "  - {name: kw, label: pos}\n": r":3: give exactly one of keywords, regex, column .* prototypes or prompt"}
    for entry, message in cases.items():
        bad = tmp_path / "bad.yaml"
        bad.write_text("classes: [neg, pos]\nlfs:\n" + entry)
        with pytest.raises(ConfigError, match=message):
            load_lfs(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("classes: [neg, pos]\nlfs:\n  - {name: a, label: pos, keywords: [x]}\n"
                   "  - {name: a, label: neg, keywords: [y]}\n")
    with pytest.raises(ConfigError, match="two labelling functions are named a"):
        load_lfs(dup)


def test_python_loader_collects_module_level_lfs_in_order_and_reports_errors_with_lines(tmp_path):
    src = tmp_path / "lfs.py"
    src.write_text("import thresher as th\nCLASSES = ['neg', 'pos']\n\n"
                   "@th.lf\ndef b_second(text):\n    return None\n\n"
                   "@th.lf\ndef a_first(text):\n    return 'pos'\n\n"
                   "kw = th.label.lfs.KeywordLF('kw', 'neg', ['bad'])\n"
                   "def helper(text):\n    return 1\n")
    lfs = load_lfs(src)
    assert lfs.names == ["b_second", "a_first", "kw"]  # definition order; undecorated helpers are ignored
    (tmp_path / "syntax.py").write_text("CLASSES = ['a', 'b']\n\ndef f(:\n")
    with pytest.raises(ConfigError, match=r"syntax\.py:3: syntax error"):
        load_lfs(tmp_path / "syntax.py")
    (tmp_path / "raises.py").write_text("CLASSES = ['a', 'b']\nx = 1\ny = 1 / 0\n")
    with pytest.raises(ConfigError, match=r"raises\.py:3: importing the LF file failed: ZeroDivisionError"):
        load_lfs(tmp_path / "raises.py")
    (tmp_path / "noclasses.py").write_text("import thresher as th\n@th.lf\ndef f(t):\n    return None\n")
    with pytest.raises(ConfigError, match="define the class names"):
        load_lfs(tmp_path / "noclasses.py")
    with pytest.raises(ConfigError, match="LF files are .py"):
        (tmp_path / "lfs.txt").write_text("x")
        load_lfs(tmp_path / "lfs.txt")


def test_lf_set_checks_labels_against_classes():
    with pytest.raises(ConfigError, match="not a class"):
        LFSet(["a", "b"], [KeywordLF("k", "c", ["x"])])
    with pytest.raises(ConfigError, match="at least 2 classes"):
        LFSet(["a"], [KeywordLF("k", "a", ["x"])])
    with pytest.raises(ConfigError, match="label_names"):
        LFSet(["a", "b"], [CallableLF(len, label_names=["b", "a"])])


def test_example_lf_sets_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "examples" / "label"
    sizes = {p.name: len(load_lfs(p)) for p in sorted(root.glob("*.*")) if p.suffix in (".py", ".yaml")}
    assert set(sizes) == {"bbc_news.yaml", "rotten_tomatoes.py", "brown_genre.yaml", "sms_spam.yaml",
                          "spamassassin.yaml", "fortunes_offensive.yaml", "reuters_crude.yaml", "vader_tweets.yaml",
                          "newsgroups20.yaml", "reuters_r8.yaml", "election_tweets.yaml", "review_sentences.yaml"}
    assert all(7 <= n <= 40 for n in sizes.values())


TRICKY = ["über alles", "Danke für alles", "Die Straße ist lang", "café au lait", "un café.", "cafés", "naïve approach",
          "naïveté", "I love C++ and C# code", "C++", "C#", "c#/.NET", "ASP .NET core", "C++11", "the U.S. economy",
          "U.S.", "(U.S.)", "US economy", "x\u00a0the\u00a0y", "x\u3000the y", "the\ny", "match.", "rematch",
          "match_point", "_match", "matché", "match\u0301", "1match", "２match", "über", "Über-Ich", "für\n",
          "Cafe\u0301", "Москва сегодня", "москвá", "東京 news", "", " "]
KEYWORDS = [["über", "für", "straße"], ["café", "naïve"], ["C++", "C#", ".NET"], ["U.S."], ["x the y"], ["match"],
            ["москва"], ["東京"], ["the y"]]


@pytest.mark.parametrize("keywords", KEYWORDS)
@pytest.mark.parametrize("case_sensitive", [False, True])
def test_keyword_lfs_give_the_same_matches_in_re2_and_python_re(keywords, case_sensitive):
    # Regression: RE2's \b is ASCII-only (über, café never matched) and \b never follows C++ or C#.
    lf = KeywordLF("k", "sport", keywords, case_sensitive=case_sensitive)
    assert lf.vectorised and lf.view_pattern is not None  # matched on the ASCII view of the texts
    text = pa.array(TRICKY + VIEW_TRICKY, pa.large_string())
    np.testing.assert_array_equal(lf.matches(text), lf.matches(text, engine="python"))
    np.testing.assert_array_equal(lf.matches(text, engine="unicode")[:len(TRICKY)],
                                  lf.matches(text, engine="python")[:len(TRICKY)])


#: Texts where the ASCII view writes characters: non-ASCII punctuation and spaces next to keywords, and U+0345
#: (a combining mark, not a word character, whose case variants are letters: RE2's case-folded Unicode class
#: took it for a word character).
VIEW_TRICKY = ["match—the y", "x—the y", "the—y", "C++—", "“über”", "über’s",
               "×über×", "x the y", "naïve ", "ͅmatch", "matchͅ", "ͅüber",
               " C# ", "　東京、", "москва…", "U.S.–", "x —the y"]


def test_the_ascii_view_rewrites_only_non_ascii_non_word_characters():
    from thresher.label import lfs as lfs_module
    from thresher.label.lfs import ascii_view

    text = pa.array(["a b—c é_ü ٣ͅ　", "plain ascii\x1f", "東京", ""], pa.large_string())
    assert ascii_view(text).to_pylist() == ["a\x1fb\x00c é_ü ٣\x00\x1f", "plain ascii\x1f", "東京", ""]
    # Large batches are rewritten by RE2 instead of str.translate: the same texts.
    many = pa.array(VIEW_TRICKY * 500 + ["a b—c é_ü ٣ͅ　"], pa.large_string())
    assert pa.compute.sum(pa.compute.binary_length(many)).as_py() > lfs_module.VIEW_TRANSLATE_BYTES
    assert ascii_view(many).to_pylist() == [t.translate(lfs_module._VIEW_TABLE) for t in many.to_pylist()]
    assert ascii_view(many)[-1].as_py() == "a\x1fb\x00c é_ü ٣\x00\x1f"
    ascii_only = pa.array(["plain", "text"], pa.large_string())
    assert ascii_view(ascii_only) is ascii_only  # nothing to rewrite: no copy


def test_rows_that_need_python_re_or_the_view_are_found_from_the_bytes_as_re2_would():
    # The NumPy byte scan replaces an RE2 pass per batch; it must flag the same records as the RE2 definition,
    # on string and large_string arrays, slices (non-zero offset), chunked arrays and nulls.
    import random

    from thresher.label.lfs import _non_ascii_byte, _unsafe_byte, rows_with_bytes

    rng = random.Random(7)
    chars = ["a", " ", "\n", "\x0b", "\x1c", "\x1f", "é", "\u2014", "\x00", "z"]
    values = ["".join(rng.choice(chars) for _ in range(rng.randint(0, 5))) for _ in range(2000)] + [None, "", "x\n"]
    for kind in (pa.string(), pa.large_string()):
        array = pa.array(values, kind)
        for part in (array, array.slice(7, 1500), pa.chunked_array([array.slice(0, 5), array.slice(5)])):
            whole = part.combine_chunks() if isinstance(part, pa.ChunkedArray) else part
            unsafe = pa.compute.match_substring_regex(whole, r"[^\x00-\x0a\x0c-\x1b\x20-\x7f]|\n\z")
            assert rows_with_bytes(part, _unsafe_byte, final_newline=True).tolist() == \
                pa.compute.fill_null(unsafe, False).to_pylist()
            non_ascii = pa.compute.invert(pa.compute.fill_null(pa.compute.string_is_ascii(whole), True))
            assert rows_with_bytes(part, _non_ascii_byte).tolist() == non_ascii.to_pylist()


def test_grouped_matching_equals_each_lf_alone_on_short_and_long_texts(bbc):
    # The apply path matches keyword LFs in groups (all at once on short texts), on the ASCII view where the
    # keywords allow it and on the texts themselves where they do not (a non-word non-ASCII character).
    from thresher.label.lfs import match_re2_lfs

    lfs = [KeywordLF(f"k{i}{c}", "sport", k, case_sensitive=c) for i, k in enumerate(KEYWORDS) for c in (False, True)]
    lfs += [KeywordLF("dash", "sport", ["x—the", "£5"]), KeywordLF("iota", "sport", ["ιx"], whole_word=False),
            RegexLF("r1", "sport", r"\b(fine|great) (film|work)s?\b"), RegexLF("r2", "sport", r"\bcaf\w\b")]
    assert {f.name for f in lfs if f.view_pattern is None} == {"dash", "iota"}
    short = pa.array(TRICKY + VIEW_TRICKY + ["x—the", "£5", "ιx", "ͅx", "fine works"], pa.large_string())
    long = pa.concat_arrays([short, bbc["text"].combine_chunks().cast(pa.large_string())])
    for text in (short, long):
        got = match_re2_lfs(lfs, text)
        for f, hit in zip(lfs, got):
            np.testing.assert_array_equal(hit, f.matches(text, engine="python"), err_msg=f.name)
    assert sum(h.sum() for h in match_re2_lfs(lfs, short)) > 40


def test_keywords_match_whole_words_in_any_script_and_with_punctuation_at_the_edges():
    def hits(keywords, **kw):
        lf = KeywordLF("k", "sport", keywords, **kw)
        return [t for t, hit in zip(TRICKY, lf.matches(pa.array(TRICKY, pa.large_string()))) if hit]

    assert hits(["über"]) == ["über alles", "über", "Über-Ich"]
    assert hits(["café"]) == ["café au lait", "un café."]
    assert hits(["naïve"]) == ["naïve approach"]
    assert hits(["C++", "C#"]) == ["I love C++ and C# code", "C++", "C#", "c#/.NET", "C++11"]
    assert hits([".NET"]) == ["c#/.NET", "ASP .NET core"]
    assert hits(["U.S."]) == ["the U.S. economy", "U.S.", "(U.S.)"]
    assert hits(["x the y"]) == ["x\u00a0the\u00a0y", "x\u3000the y"]  # any Unicode whitespace between words
    assert hits(["match"]) == ["match.", "match\u0301"]  # a combining mark is not a word character (as \w)
    assert hits(["москва"]) == ["Москва сегодня"]
    assert hits(["über"], case_sensitive=True) == ["über alles", "über"]
    assert hits(["match"], whole_word=False) == [t for t in TRICKY if "match" in t]


def test_regex_lfs_with_unicode_sensitive_classes_agree_across_engines():
    # \b, \w, \d, \s are ASCII in RE2 and Unicode in Python re: records where that matters are matched by Python.
    text = pa.array(TRICKY + ["٣ items", "3 items", "a\x1cb", "end$\n"], pa.large_string())
    for pattern in [r"\bfür\b", r"\bcaf\w\b", r"\bna\w+ve\b", r"\d items", r"a\sb", r"\bUS\b", r"^über",
                    r"alles$", r"\W+", r"\bmatch\b"]:
        lf = RegexLF("r", "sport", pattern)
        assert lf.vectorised, pattern
        np.testing.assert_array_equal(lf.matches(text), lf.matches(text, engine="python"), err_msg=pattern)
    assert RegexLF("r", "sport", r"\bfür\b").matches(text).sum() == 2


def test_the_non_word_class_of_both_engines_agrees_on_every_assigned_character():
    import unicodedata

    chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    re2 = pa.compute.match_substring_regex(pa.array(chars, pa.large_string()), r"^[^\pL\pN_]$")
    python = [bool(re.fullmatch(r"\W", c)) for c in chars]
    assert re2.to_pylist() == python


def test_yaml_booleans_are_strict(tmp_path):
    path = tmp_path / "lfs.yaml"
    path.write_text('classes: [a, b]\nlfs:\n  - {name: r1, label: a, keywords: [The], case_sensitive: "false"}\n')
    with pytest.raises(ConfigError, match=r"lfs\.yaml:3: LF 'r1': case_sensitive must be true or false, got 'false'"):
        load_lfs(path)
    path.write_text("classes: [a, b]\nlfs:\n  - {name: r2, label: a, regex: ['x'], case_sensitive: 1}\n")
    with pytest.raises(ConfigError, match=r"lfs\.yaml:3: LF 'r2': case_sensitive must be true or false, got 1"):
        load_lfs(path)
    path.write_text("classes: [a, b]\nlfs:\n  - {name: k, label: a, keywords: [x], whole_word: 'no'}\n")
    with pytest.raises(ConfigError, match=r"lfs\.yaml:3: LF 'k': whole_word must be true or false"):
        load_lfs(path)
    path.write_text("classes: [a, b]\nlfs:\n  - {name: k, label: a, keywords: [x], case_sensitive: false, "
                    "whole_word: false}\n")
    lf = load_lfs(path).lfs[0]
    assert lf.case_sensitive is False and lf.whole_word is False
    with pytest.raises(ConfigError, match="case_sensitive must be true or false"):
        KeywordLF("k", "a", ["x"], case_sensitive="false")


REGEXES = [r"\bfür\b", r"\bcaf\w\b", r"(\w+\s?){1,3}$", r"\d items", r"\D+\d", r"a\sb", r"\S+\s\S+", r"^über",
           r"(?m:^the)", r"alles$", r"(?m:y$)", r"\W+", r"[\w.]+@", r"[^\W\d]+", r"\bneither\b.*\bnor\b",
           r"\bmatch\b", r"\bx\b", r"(?i:MATCH)é", r"(?-i:C)\+\+", r"\b\d{1,2}-\d{1,2}\b (win|victory)",
           r"[$£€]\s?\d+(\.\d+)?\s?(bn|m)\b", r"\b(fine|great) (film|work)s?\b", r"(?s:x.the)", r"x.the", r"\Bat",
           r"US\b\.", r"\.\bNET"]


def test_regexes_keep_python_meaning_on_re2_on_tricky_and_real_text(bbc):
    # Python re is the reference; RE2 runs the rewritten pattern (no Python re) wherever it can be rewritten.
    text = pa.concat_arrays([pa.array(TRICKY + ["٣ items", "3 items", "a\x1cb", "end$\n", "the\ny\n", "x\nthe"],
                                      pa.large_string()), bbc["text"].combine_chunks().cast(pa.large_string())])
    engines = {}
    for pattern in REGEXES:
        for case_sensitive in (False, True):
            lf = RegexLF("r", "sport", pattern, case_sensitive=case_sensitive)
            engines[pattern] = lf.engine
            np.testing.assert_array_equal(lf.matches(text), lf.matches(text, engine="python"), err_msg=pattern)
    untranslated = {p for p, e in engines.items() if e != "re2"}
    # Only a \b between two things that may or may not be word characters, \B and a negated class holding a
    # negated category keep Python re (for non-ASCII records only).
    assert untranslated == {r"\bneither\b.*\bnor\b", r"[^\W\d]+", r"\Bat"}
    assert all(engines[p] == "re2+python" for p in untranslated)
    # Those check Python re only on the records an RE2 prefilter (the undecidable \b left out) matches.
    assert all(RegexLF("r", "sport", p).loose_pattern is not None for p in (r"\bneither\b.*\bnor\b", r"\Bat"))


def test_every_regex_and_keyword_lf_of_the_yaml_examples_runs_on_re2_alone():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "examples" / "label"
    for name in ("bbc_news.yaml", "brown_genre.yaml"):
        assert {f.engine for f in load_lfs(root / name).lfs} == {"re2"}, name


def test_look_arounds_and_back_references_are_the_only_patterns_left_to_python_re():
    assert RegexLF("r", "sport", r"(?<=\$)\d+").engine == "python"
    assert RegexLF("r", "sport", r"(\w)\1").engine == "python"
    catastrophic = RegexLF("r", "sport", r"(\w+\s?)*$")  # exponential in Python re on long texts: see test_label_guards
    assert catastrophic.engine == "re2"
    short = pa.array(TRICKY, pa.large_string())
    np.testing.assert_array_equal(catastrophic.matches(short), catastrophic.matches(short, engine="python"))


@pytest.mark.parametrize("python_class, re2_class", [(r"\d", r"\p{Nd}"), (r"\s", None)])
def test_digit_and_space_classes_of_both_engines_agree_on_every_assigned_character(python_class, re2_class):
    import unicodedata

    from thresher.label.patterns import SPACE_IN

    chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    re2 = pa.compute.match_substring_regex(pa.array(chars, pa.large_string()), f"^[{re2_class or SPACE_IN}]$")
    assert re2.to_pylist() == [bool(re.fullmatch(python_class, c)) for c in chars]


def test_random_regexes_mean_the_same_on_re2_as_in_python_re():
    # Random patterns of the constructs whose meaning differs between the engines, on random strings of letters
    # that fold oddly (ß, Σ/σ/ς, the Kelvin sign), combining marks, Arabic-Indic digits and Unicode spaces.
    import random

    rng = random.Random(20240601)
    atoms = [r"\b", r"\w", r"\W", r"\d", r"\D", r"\s", r"\S", "a", "é", "ß", "-", " ", ".", "$", "^", r"[\w-]",
             r"[^\s]", "x", "(a|é)", "[aé]", "Σ", "k"]
    chars = list("aAéÉßxk\u212a-. \n\u0663" + "3Σσς_\u00a0\u0301\u2014\u0345") + ["ab", "é!"]
    text = pa.array(["".join(rng.choice(chars) for _ in range(rng.randint(0, 8))) for _ in range(1000)],
                    pa.large_string())
    checked = on_view = 0
    for _ in range(300):
        pattern = "".join(rng.choice(atoms) + rng.choice(["", "", "+", "*", "?", "{1,2}"])
                          for _ in range(rng.randint(1, 4)))
        try:
            re.compile(pattern)
        except re.error:
            continue
        for case_sensitive in (False, True):
            lf = RegexLF("r", "sport", pattern, case_sensitive=case_sensitive)
            np.testing.assert_array_equal(lf.matches(text), lf.matches(text, engine="python"), err_msg=pattern)
            checked += lf.engine == "re2"
            on_view += lf.view_pattern is not None
    assert checked > 400 and on_view > 400
