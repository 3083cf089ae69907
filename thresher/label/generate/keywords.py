"""Keyword LFs written from a few labelled records, as Snuba and Reef do: mine n-grams, keep the precise ones, pick a
diverse few per class.

1. Candidates: word n-grams (1..``max_n``, lower-cased, ``\\w+`` tokens joined by one space) found in at least
   ``min_count`` dev records.
2. Each candidate votes the class most of its records carry. It is kept when the lower end of its precision's Wilson
   interval (``z``) reaches ``prior + lift · (1 − prior)`` of that class: a rare class's keyword must beat its base
   rate clearly, a frequent class's must be nearly always right (for an 88% class, lift 0.5 asks for 94%).
3. Per class, greedily: the candidate whose lower precision bound times the class records it newly covers is largest
   joins, until ``max_per_class`` LFs or nothing adds ``min_new`` records (Snuba's diversity step: a second keyword
   that fires on the same records adds nothing). A class left without LFs is tried again with ``lift`` halved, then
   0, so every class that can have a keyword better than its base rate gets one.

Token counts screen the candidates; each pick is then matched as a real :class:`KeywordLF` (whole word, any case),
so the precision and coverage reported are exactly what the LF does on the dev records. Deterministic: ties break on
the term.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.label.generate.generated import GeneratedLF, wilson_lower
from thresher.label.lfs import KeywordLF

_TOKEN = re.compile(r"\w+")


def ngrams(text: str, max_n: int) -> set[str]:
    """The distinct word n-grams (1..max_n) of a text, lower-cased."""
    tokens = _TOKEN.findall(text.lower())
    return {" ".join(tokens[i:i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1)}


def generate_keyword_lfs(texts: Sequence[str], y: Sequence[int], classes: Sequence[str], max_n: int = 2,
                         min_count: int = 3, lift: float = 0.5, z: float = 1.0, max_per_class: int = 10,
                         min_new: int = 1, max_candidates: int = 300) -> list[GeneratedLF]:
    """Keyword LFs from dev ``texts`` with gold class indices ``y``; see the module docstring for the method.

    A class that gets no LF at ``lift`` is tried again at ``lift / 2`` and then 0 (precision above its base rate
    only): an LF set that votes one class alone labels every record it covers with that class, and an end model
    trained on those records learns nothing else (SMS spam at 100 labels: no ham keyword reaches 94%).
    ``max_candidates``: per class, how many of the most promising n-grams (by the token screen) compete.
    """
    y = np.asarray(y, dtype=np.int64)
    k = len(classes)
    if len(texts) != len(y):
        raise ConfigError(f"{len(texts)} dev texts but {len(y)} labels")
    if len(y) == 0:
        raise ConfigError("generating LFs needs labelled dev records; got none")
    if y.min() < 0 or y.max() >= k:
        raise ConfigError(f"dev labels must be class indices in 0..{k - 1}")
    if not (max_n >= 1 and min_count >= 1 and 0 <= lift < 1 and z >= 0 and max_per_class >= 1 and min_new >= 1):
        raise ConfigError("need max_n >= 1, min_count >= 1, 0 <= lift < 1, z >= 0, max_per_class >= 1 and "
                          "min_new >= 1")
    prior = np.bincount(y, minlength=k) / len(y)
    grams, docs = _gram_docs(texts, max_n, min_count)
    counts = np.array([np.bincount(y[d], minlength=k) for d in docs], dtype=np.int64).reshape(len(grams), k)
    majority = counts.argmax(axis=1) if len(grams) else np.zeros(0, np.int64)
    hits = counts.sum(axis=1)
    lower = wilson_lower(counts[np.arange(len(grams)), majority], hits, z) if len(grams) else np.zeros(0)
    column = pa.array([t or "" for t in texts], pa.string())
    chosen: list[GeneratedLF] = []
    for c in range(k):
        for level in dict.fromkeys((lift, lift / 2, 0.0)):
            required = prior[c] + level * (1 - prior[c])
            screened = np.flatnonzero((majority == c) & (lower >= required))
            screened = screened[np.lexsort((-hits[screened], -lower[screened]))][:max_candidates]
            candidates = []
            for g in sorted(screened, key=lambda i: (-hits[i], grams[i])):
                hit = np.zeros(len(y), bool)
                hit[docs[g]] = True
                candidates.append(_Candidate(grams[g], hit, int(counts[g, c])))
            picked = _greedy(candidates, y == c, required, max_per_class, min_new, z, classes[c], column)
            if picked:
                chosen += [GeneratedLF(cand.lf, classes[c], int(cand.hit.sum()), cand.correct, len(y), level)
                           for cand in picked]
                break
    return chosen


@dataclass
class _Candidate:
    """An n-gram, the dev records it is in, how many carry the class; ``lf`` once matched exactly."""

    gram: str
    hit: np.ndarray
    correct: int
    lf: KeywordLF | None = None


def _gram_docs(texts: Sequence[str], max_n: int, min_count: int) -> tuple[list[str], list[np.ndarray]]:
    """The n-grams in at least ``min_count`` texts (sorted) and the indices of the texts holding each."""
    docs: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        for gram in ngrams(text or "", max_n):
            docs.setdefault(gram, []).append(i)
    grams = sorted(g for g, d in docs.items() if len(d) >= min_count)
    return grams, [np.array(docs[g], dtype=np.int64) for g in grams]


def _greedy(candidates: list[_Candidate], target: np.ndarray, required: float, max_per_class: int, min_new: int,
            z: float, label: str, column: pa.Array) -> list[_Candidate]:
    """Snuba's diversity step: repeatedly take the candidate whose precision lower bound times the class records it
    newly covers is largest; stop at ``max_per_class`` or when none adds ``min_new`` records.

    The token screen finds the candidates; a pick is then matched as the real KeywordLF (whole word, any case). Where
    that differs from the tokens (punctuation inside a word, say), the exact numbers replace the screened ones and the
    candidate competes again, or drops out if it no longer clears ``required``."""
    covered = np.zeros(len(target), bool)
    remaining = list(candidates)
    picked: list[_Candidate] = []
    while len(picked) < max_per_class:
        best, best_score = None, 0.0
        for cand in remaining:
            new = int((cand.hit & target & ~covered).sum())
            if new < min_new:
                continue
            score = float(wilson_lower(cand.correct, cand.hit.sum(), z)) * new
            if score > best_score:  # candidates come in (frequency, term) order: the first best wins ties
                best, best_score = cand, score
        if best is None:
            break
        if best.lf is None:
            best.lf = KeywordLF(_name(label, best.gram), label, [best.gram])
            exact = best.lf.matches(column)
            if not np.array_equal(exact, best.hit):
                best.hit, best.correct = exact, int((exact & target).sum())
                if not exact.any() or wilson_lower(best.correct, exact.sum(), z) < required:
                    remaining.remove(best)
                continue  # compete again on the exact numbers
        covered |= best.hit & target
        remaining.remove(best)
        picked.append(best)
    return picked


def _name(label: str, gram: str) -> str:
    """An LF name from its class and keyword: kw_<class>_<keyword>, non-word characters as underscores."""
    return re.sub(r"\W+", "_", f"kw_{label}_{gram}").strip("_")
