"""Keyword LFs written from a few labelled records, as Snuba and Reef do: mine n-grams, keep the precise ones, pick a
diverse few per class.

1. Candidates: word n-grams (1..``max_n``, lower-cased, ``\\w+`` tokens joined by one space) found in at least
   ``min_count`` dev records.
2. Each candidate votes the class most of its records carry. It is kept when the lower end of its precision's Wilson
   interval (``z``) reaches ``prior + lift · (1 − prior)`` of that class: a rare class's keyword must beat its base
   rate clearly, a frequent class's must be nearly always right (for an 88% class, lift 0.5 asks for 94%).
3. Per class, greedily: the candidate whose lower precision bound times the class records it newly covers is largest
   joins, until ``max_per_class`` LFs or nothing adds ``min_new`` records (Snuba's diversity step: a second keyword
   that fires on the same records adds nothing).

Token counts screen the candidates; the survivors are then matched as real :class:`KeywordLF` s (whole word, any
case), so the precision and coverage reported are exactly what the LF does on the dev records. Deterministic: ties
break on the term.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.label.lfs import KeywordLF

_TOKEN = re.compile(r"\w+")


@dataclass
class GeneratedLF:
    """A generated LF and how it did on the dev records it was written from."""

    lf: KeywordLF
    label: str
    hits: int  # dev records it voted on
    correct: int  # of those, how many carry its label
    n_dev: int

    @property
    def precision(self) -> float:
        return self.correct / self.hits if self.hits else 0.0

    @property
    def coverage(self) -> float:
        return self.hits / self.n_dev if self.n_dev else 0.0

    def note(self) -> str:
        return f"dev precision {self.precision:.2f} ({self.correct}/{self.hits}), coverage {self.coverage:.1%}"


def wilson_lower(correct: np.ndarray, n: np.ndarray, z: float) -> np.ndarray:
    """Lower end of the Wilson score interval of a proportion: small counts are not trusted at face value."""
    n = np.maximum(np.asarray(n, dtype=np.float64), 1e-12)
    p = np.asarray(correct, dtype=np.float64) / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def ngrams(text: str, max_n: int) -> set[str]:
    """The distinct word n-grams (1..max_n) of a text, lower-cased."""
    tokens = _TOKEN.findall(text.lower())
    return {" ".join(tokens[i:i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1)}


def generate_keyword_lfs(texts: Sequence[str], y: Sequence[int], classes: Sequence[str], max_n: int = 2,
                         min_count: int = 3, lift: float = 0.5, z: float = 1.0, max_per_class: int = 10,
                         min_new: int = 1, max_candidates: int = 2000) -> list[GeneratedLF]:
    """Keyword LFs from dev ``texts`` with gold class indices ``y``; see the module docstring for the method."""
    y = np.asarray(y, dtype=np.int64)
    k = len(classes)
    if len(texts) != len(y):
        raise ConfigError(f"{len(texts)} dev texts but {len(y)} labels")
    if len(y) == 0:
        raise ConfigError("generating LFs needs labelled dev records; got none")
    if y.min() < 0 or y.max() >= k:
        raise ConfigError(f"dev labels must be class indices in 0..{k - 1}")
    if not (max_n >= 1 and min_count >= 1 and 0 <= lift < 1 and z >= 0 and max_per_class >= 1):
        raise ConfigError("need max_n >= 1, min_count >= 1, 0 <= lift < 1, z >= 0 and max_per_class >= 1")
    prior = np.bincount(y, minlength=k) / len(y)
    required = prior + lift * (1 - prior)
    # screen on token counts: document frequency and per-class counts of every n-gram
    per_class: dict[str, np.ndarray] = {}
    df: Counter = Counter()
    for text, label in zip(texts, y):
        for gram in ngrams(text or "", max_n):
            df[gram] += 1
            per_class.setdefault(gram, np.zeros(k, np.int64))[label] += 1
    frequent = sorted((g for g, n in df.items() if n >= min_count), key=lambda g: (-df[g], g))
    screened = []
    for gram in frequent:
        counts = per_class[gram]
        c = int(np.argmax(counts))
        if wilson_lower(counts[c], counts.sum(), z) >= required[c]:
            screened.append((gram, c))
    screened = screened[:max_candidates]
    # exact matching as the LFs will do it
    column = pa.array([t or "" for t in texts], pa.string())
    candidates = []
    for gram, c in screened:
        lf = KeywordLF(_name(classes[c], gram), classes[c], [gram])
        hit = lf.matches(column)
        correct = int((hit & (y == c)).sum())
        if hit.sum() and wilson_lower(correct, hit.sum(), z) >= required[c]:
            candidates.append((lf, c, hit, correct))
    chosen: list[GeneratedLF] = []
    for c in range(k):
        mine = [cand for cand in candidates if cand[1] == c]
        covered = np.zeros(len(y), bool)
        target = y == c
        for _ in range(max_per_class):
            best, best_score = None, 0.0
            for cand in mine:
                lf, _, hit, correct = cand
                new = int((hit & target & ~covered).sum())
                if new < min_new:
                    continue
                score = float(wilson_lower(correct, hit.sum(), z)) * new
                if score > best_score:  # candidates are in (frequency, term) order: the first best wins ties
                    best, best_score = cand, score
            if best is None:
                break
            lf, _, hit, correct = best
            covered |= hit & target
            mine.remove(best)
            chosen.append(GeneratedLF(lf, classes[c], int(hit.sum()), correct, len(y)))
    return chosen


def _name(label: str, gram: str) -> str:
    """An LF name from its class and keyword: kw_<class>_<keyword>, non-word characters as underscores."""
    return re.sub(r"\W+", "_", f"kw_{label}_{gram}").strip("_")
