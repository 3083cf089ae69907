"""C4 and FineWeb rules, and the shared threshold mechanism, on real and constructed text."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.scorers.rules import Rule, apply_rules
from thresher.scorers.web_rules import C4Config, C4Scorer, FineWebConfig, FineWebScorer

PROSE = "\n".join([
    "The committee met on Tuesday to review the budget for the coming year.",
    "Members agreed that the new library needs more funding than planned.",
    "A vote on the proposal is expected next month, after a public hearing.",
    "Several residents asked whether the park renovation would be delayed.",
    "The chair said the schedule would be published on the city website.",
    "Officials expect the final figures to be ready by the end of March.",
])


def test_prose_passes_both_families():
    assert C4Scorer().score(pa.array([PROSE]))["c4_pass"][0]
    assert FineWebScorer().score(pa.array([PROSE]))["fineweb_pass"][0]


def test_c4_document_rules():
    cols = C4Scorer().score(pa.array([PROSE + "\nLorem ipsum dolor sit amet, consectetur.",
                                      PROSE.replace("budget", "budget {draft}"),
                                      "One sentence only, with enough words.\nmenu\nhome | about | contact"]))
    assert list(cols["c4_reason"]) == ["lorem_ipsum", "curly_bracket", "too_few_sentences"]
    assert cols["c4_kept_lines"][2] == 1 and cols["c4_lines"][2] == 3


def test_c4_drops_policy_and_javascript_lines_before_counting():
    lines = ["Please enable JavaScript to view this page properly today."] * 3 + [
        "This site uses cookies to improve your experience, as usual."] * 3 + [PROSE.splitlines()[0]]
    cols = C4Scorer().score(pa.array(["\n".join(lines)]))
    assert cols["c4_kept_lines"][0] == 1 and cols["c4_reason"][0] == "too_few_sentences"
    assert C4Scorer(C4Config(min_sentences=1)).score(pa.array(["\n".join(lines)]))["c4_pass"][0]


def test_fineweb_rules():
    listy = "\n".join(f"item {i}" for i in range(40))
    boiler = PROSE + "\n" + "\n".join(["Share this article on social media and by email today."] * 3)
    cols = FineWebScorer().score(pa.array([listy, boiler]))
    assert cols["fineweb_reason"][0] == "line_punct_ratio"
    assert cols["fineweb_reason"][1] == "char_dup_ratio" and cols["fineweb_char_dup_ratio"][1] > 0.1
    relaxed = FineWebScorer(FineWebConfig(max_char_dup_ratio=None)).score(pa.array([boiler]))
    assert relaxed["fineweb_pass"][0]


def test_first_failing_rule_wins_and_bounds_are_respected():
    cols = {"a": np.array([1.0, 5.0, 5.0, 10.0]), "b": np.array([0.0, 0.0, 9.0, 9.0])}
    rules = [Rule("a_low", "a", "min", 2.0), Rule("b_high", "b", "max", 5.0), Rule("a_at_most_5", "a", "max", 5.0,
                                                                                     inclusive=True)]
    out = apply_rules(cols, rules, "x")
    assert list(out["x_reason"]) == ["a_low", "a_at_most_5", "b_high", "b_high"]
    assert list(out["x_pass"]) == [False, False, False, False]
    assert list(apply_rules(cols, rules[:1], "x")["x_pass"]) == [False, True, True, True]


def test_on_the_sample_prose_passes_and_fragments_fail(sample_pool):
    table = pq.read_table(sample_pool, columns=["text", "domain"]).slice(0, 2500)
    domains = table["domain"].to_pylist()
    rates = {}
    for scorer, col in ((C4Scorer(), "c4_pass"), (FineWebScorer(), "fineweb_pass")):
        passed = scorer.score(table["text"])[col]
        rates[col] = {d: sum(p for p, dd in zip(passed, domains) if dd == d) / n for d, n in Counter(domains).items()}
        assert rates[col]["speeches"] > 0.8, (col, rates[col])
    # one-liners have too few sentences for C4; source code has too few punctuated lines for FineWeb
    assert rates["c4_pass"]["quotes"] < 0.1
    assert rates["fineweb_pass"]["code"] < rates["fineweb_pass"]["speeches"] / 2
