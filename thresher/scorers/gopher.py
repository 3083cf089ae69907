"""Gopher's rule-based quality signals (Rae et al., 2021, section A.1.1 and table A1), as side-car columns.

Each record gets the numeric signals (word count, mean word length, symbol ratios, line statistics, stop words,
duplicate line/paragraph fractions, top and duplicate n-gram character fractions) plus ``gopher_pass`` and
``gopher_reason``, the first rule that failed. Thresholds default to the published ones and are all settable,
so a threshold can change without recomputing the signals: they are in the columns.

Words are runs of non-space characters split into word and punctuation runs (NLTK's ``wordpunct``); the published
rules used a word tokenizer whose data cannot be downloaded here, so counts can differ slightly from other
implementations on punctuation-heavy text. Duplicate-line fractions ignore blank lines (datatrove counts them, so
any text with two paragraph breaks "repeats" a line); bullets are lines starting with "•", as in datatrove. The
alphabetic-word ratio is over whitespace-separated words, as the paper's "words": "Noah," has a letter, "=" has
none (datatrove divides by all tokens, so every comma counts against the text and comma-heavy prose such as the
KJV Bible fails).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from thresher.errors import ConfigError
from thresher.scorers.rules import Rule, RuleFamilyScorer

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_WORD = re.compile(r"\w+|[^\w\s]+")
_PARAGRAPH = re.compile(r"\n{2,}")
_ALPHA = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class GopherConfig:
    """The published thresholds (None disables a rule)."""

    min_words: int | None = 50
    max_words: int | None = 100_000
    min_mean_word_length: float | None = 3
    max_mean_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines: float | None = 0.9
    max_ellipsis_lines: float | None = 0.3
    min_alpha_words: float | None = 0.8
    min_stop_words: int | None = 2
    max_dup_line_frac: float | None = 0.3
    max_dup_para_frac: float | None = 0.3
    max_dup_line_char_frac: float | None = 0.2
    max_dup_para_char_frac: float | None = 0.2
    max_top_ngram_char_frac: dict[int, float] = field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    max_dup_ngram_char_frac: dict[int, float] = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, dict):
                if any(not 1 <= n <= 20 or not 0 <= v <= 1 for n, v in value.items()):
                    raise ConfigError(f"{name}: n-gram orders in 1..20 and fractions in [0, 1], got {value}")
            elif value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0 or None, got {value}")


def _duplicates(items: list[str]) -> tuple[int, int]:
    """Number of items that repeat an earlier one, and their characters."""
    seen: set[str] = set()
    n = chars = 0
    for item in items:
        if item in seen:
            n += 1
            chars += len(item)
        else:
            seen.add(item)
    return n, chars


def _dup_ngram_chars(words: list[str], n: int) -> int:
    """Characters of words inside n-grams that occurred before (overlapping repeats counted once)."""
    seen: set[tuple[str, ...]] = set()
    covered = np.zeros(len(words), dtype=bool)
    for i in range(len(words) - n + 1):
        gram = tuple(words[i: i + n])
        if gram in seen:
            covered[i: i + n] = True
        else:
            seen.add(gram)
    return sum(len(w) for w, c in zip(words, covered) if c)


def gopher_signals(text: str, config: GopherConfig) -> dict[str, float]:
    """The numeric Gopher signals of one text."""
    tokens = _WORD.findall(text)
    words = [t for t in tokens if _ALPHA.search(t) or t[0].isalnum()]
    n_words = len(words)
    lines = text.splitlines() or [""]
    paragraphs = _PARAGRAPH.split(text.strip())
    n_chars = max(len(text), 1)
    lower = [w.lower() for w in words]
    spaced = text.split()
    out = {
        "gopher_words": n_words,
        "gopher_mean_word_length": float(np.mean([len(w) for w in words])) if words else 0.0,
        "gopher_hash_ratio": text.count("#") / max(n_words, 1),
        "gopher_ellipsis_ratio": (text.count("...") + text.count("…")) / max(n_words, 1),
        "gopher_bullet_lines": sum(s.lstrip().startswith("•") for s in lines) / len(lines),
        "gopher_ellipsis_lines": sum(s.rstrip().endswith(("...", "…")) for s in lines) / len(lines),
        "gopher_alpha_words": sum(bool(_ALPHA.search(w)) for w in spaced) / max(len(spaced), 1),
        "gopher_stop_words": sum(w in STOP_WORDS for w in lower),
    }
    # Blank lines are not content: counting them, every text with two paragraph breaks "repeats" a line.
    content_lines = [s for s in lines if s.strip()] or [""]
    dup_lines, dup_line_chars = _duplicates(content_lines)
    dup_paras, dup_para_chars = _duplicates(paragraphs)
    out.update(gopher_dup_line_frac=dup_lines / len(content_lines), gopher_dup_para_frac=dup_paras / len(paragraphs),
               gopher_dup_line_char_frac=dup_line_chars / n_chars, gopher_dup_para_char_frac=dup_para_chars / n_chars)
    for n in config.max_top_ngram_char_frac:
        grams = Counter(tuple(lower[i: i + n]) for i in range(len(lower) - n + 1))
        top = max(grams.items(), key=lambda kv: (kv[1], kv[0]), default=((), 0))
        # a top n-gram that occurs once is not repetition
        out[f"gopher_top_{n}gram_char_frac"] = (sum(map(len, top[0])) * top[1] / n_chars) if top[1] > 1 else 0.0
    for n in config.max_dup_ngram_char_frac:
        out[f"gopher_dup_{n}gram_char_frac"] = _dup_ngram_chars(lower, n) / n_chars
    return out


def gopher_rules(c: GopherConfig) -> list[Rule]:
    """The Gopher rules in the paper's order; a threshold of None drops its rule."""
    spec = [
        ("too_few_words", "gopher_words", "min", c.min_words),
        ("too_many_words", "gopher_words", "max", c.max_words),
        ("short_words", "gopher_mean_word_length", "min", c.min_mean_word_length),
        ("long_words", "gopher_mean_word_length", "max", c.max_mean_word_length),
        ("too_many_hashes", "gopher_hash_ratio", "max", c.max_symbol_word_ratio),
        ("too_many_ellipses", "gopher_ellipsis_ratio", "max", c.max_symbol_word_ratio),
        ("bullet_lines", "gopher_bullet_lines", "max", c.max_bullet_lines),
        ("ellipsis_lines", "gopher_ellipsis_lines", "max", c.max_ellipsis_lines),
        ("few_alphabetic_words", "gopher_alpha_words", "min", c.min_alpha_words),
        ("few_stop_words", "gopher_stop_words", "min", c.min_stop_words),
        ("duplicate_lines", "gopher_dup_line_frac", "max", c.max_dup_line_frac),
        ("duplicate_paragraphs", "gopher_dup_para_frac", "max", c.max_dup_para_frac),
        ("duplicate_line_chars", "gopher_dup_line_char_frac", "max", c.max_dup_line_char_frac),
        ("duplicate_paragraph_chars", "gopher_dup_para_char_frac", "max", c.max_dup_para_char_frac),
    ]
    spec += [(f"top_{n}gram", f"gopher_top_{n}gram_char_frac", "max", t) for n, t in c.max_top_ngram_char_frac.items()]
    spec += [(f"duplicate_{n}grams", f"gopher_dup_{n}gram_char_frac", "max", t)
             for n, t in c.max_dup_ngram_char_frac.items()]
    return [Rule(reason, col, bound, t) for reason, col, bound, t in spec if t is not None]


class GopherScorer(RuleFamilyScorer):
    """Scores a batch of texts with the Gopher quality and repetition rules (no fitting needed)."""

    prefix = "gopher"
    config_type = GopherConfig
    signals = staticmethod(gopher_signals)
    rules = staticmethod(gopher_rules)
