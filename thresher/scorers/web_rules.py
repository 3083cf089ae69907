"""The C4 (Raffel et al., 2020) and FineWeb (Penedo et al., 2024) document rules, as side-car columns.

C4's rules are partly line filters: lines without terminal punctuation, with fewer than 3 words, mentioning
javascript or cookie/terms policies, or holding a word over 1,000 characters are dropped before the document-level
checks. thresher never edits the user's text; it scores the document on the lines C4 would keep
(``c4_kept_lines``, ``c4_sentences``) and reports the document rules: lorem ipsum, a curly bracket, fewer than 5
sentences (lorem ipsum and brackets count only on lines C4 keeps, as in C4). Sentences are counted as runs of
terminal punctuation, so abbreviations ("e.g. this") count as ends. FineWeb's four rules follow datatrove 0.10's
implementation and thresholds: line ratios over non-blank lines, Unicode sentence terminals (no quotes).
bench/bench_rules.py measures agreement with datatrove.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from thresher.scorers.rules import Rule, RuleFamilyScorer

_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_SENTENCE_END = re.compile(r"[.!?]+(?:[\"')\]]*)(?=\s|$)")
_WORD = re.compile(r"\w+|[^\w\s]+")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_C4_END = (".", "?", "!", '"', "'")
#: Sentence terminals (Unicode STerm) of the major scripts; for English text, FineWeb's full list is the same.
_FINEWEB_END = tuple(".!?。！？｡．‼‽⁇⁈⁉।॥۔؟։፧፨။၊។៕")


@dataclass(frozen=True)
class C4Config:
    min_sentences: int | None = 5
    min_words_per_line: int = 3
    max_word_length: int = 1000
    lorem_ipsum: bool = True
    curly_bracket: bool = True


@dataclass(frozen=True)
class FineWebConfig:
    min_line_punct_ratio: float | None = 0.12
    max_short_line_ratio: float | None = 0.67
    short_line_length: int = 30
    max_char_dup_ratio: float | None = 0.01
    max_newline_ratio: float | None = 0.3


def c4_signals(text: str, c: C4Config) -> dict[str, float]:
    kept, sentences = 0, 0
    lorem = curly = False
    lines = text.splitlines()
    for line in lines:
        words = line.strip().split()
        line = _CITATION.sub("", line.strip())
        low = line.lower()
        if (any(len(w) > c.max_word_length for w in words) or not line.endswith(_C4_END) or line.endswith("...")
                or len(words) < c.min_words_per_line):
            continue
        # as in C4, lorem ipsum and curly brackets condemn a document only on lines it would keep
        lorem |= "lorem ipsum" in low
        curly |= "{" in line
        if "javascript" in low or any(p in low for p in _POLICY):
            continue
        kept += 1
        sentences += max(1, len(_SENTENCE_END.findall(line)))
    return {"c4_lines": len(lines), "c4_kept_lines": kept, "c4_sentences": sentences,
            "c4_lorem_ipsum": float(lorem), "c4_curly_bracket": float(curly)}


def c4_rules(c: C4Config) -> list[Rule]:
    rules = []
    if c.lorem_ipsum:
        rules.append(Rule("lorem_ipsum", "c4_lorem_ipsum", "max", 0.0))
    if c.curly_bracket:
        rules.append(Rule("curly_bracket", "c4_curly_bracket", "max", 0.0))
    if c.min_sentences is not None:
        rules.append(Rule("too_few_sentences", "c4_sentences", "min", c.min_sentences))
    return rules


def fineweb_signals(text: str, c: FineWebConfig) -> dict[str, float]:
    lines = [s for s in text.split("\n") if s.strip()] or [""]  # blank lines are not lines of content
    seen: set[str] = set()
    dup_chars = 0
    for line in lines:
        if line in seen:
            dup_chars += len(line)
        seen.add(line)
    n_words = max(len(_WORD.findall(text)), 1)
    return {
        "fineweb_line_punct_ratio": sum(s.endswith(_FINEWEB_END) for s in lines) / len(lines),
        "fineweb_short_line_ratio": sum(len(s) <= c.short_line_length for s in lines) / len(lines),
        "fineweb_char_dup_ratio": dup_chars / max(len(text.replace("\n", "")), 1),
        "fineweb_newline_ratio": text.count("\n") / n_words,
    }


def fineweb_rules(c: FineWebConfig) -> list[Rule]:
    spec = [("line_punct_ratio", "fineweb_line_punct_ratio", "min", c.min_line_punct_ratio),
            ("short_line_ratio", "fineweb_short_line_ratio", "max", c.max_short_line_ratio),
            ("char_dup_ratio", "fineweb_char_dup_ratio", "max", c.max_char_dup_ratio),
            ("list_ratio", "fineweb_newline_ratio", "max", c.max_newline_ratio)]
    return [Rule(r, col, b, t) for r, col, b, t in spec if t is not None]


class C4Scorer(RuleFamilyScorer):
    """C4 document rules on a batch of texts."""

    prefix = "c4"
    config_type = C4Config
    signals = staticmethod(c4_signals)
    rules = staticmethod(c4_rules)


class FineWebScorer(RuleFamilyScorer):
    """FineWeb's quality rules on a batch of texts."""

    prefix = "fineweb"
    config_type = FineWebConfig
    signals = staticmethod(fineweb_signals)
    rules = staticmethod(fineweb_rules)
