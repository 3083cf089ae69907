"""What every LF generator returns: the LF and how it did on the dev records it was written from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from thresher.errors import ConfigError
from thresher.label.lfs import LabelingFunction


@dataclass
class GeneratedLF:
    """A generated LF and how it did on the dev records it was written from."""

    lf: LabelingFunction
    label: str | None  # the class it votes (None: several, as a prototypes LF)
    hits: int  # dev records it voted on
    correct: int  # of those, how many carry its label
    n_dev: int
    lift: float | None  # the bar it cleared: prior + lift · (1 − prior) (lower than asked when relaxed)

    @property
    def precision(self) -> float:
        return self.correct / self.hits if self.hits else 0.0

    @property
    def coverage(self) -> float:
        return self.hits / self.n_dev if self.n_dev else 0.0

    def note(self) -> str:
        return (f"dev precision {self.precision:.2f} ({self.correct}/{self.hits}), coverage {self.coverage:.1%}"
                + (f", lift {self.lift:g}" if self.lift is not None else ""))


def wilson_lower(correct: np.ndarray, n: np.ndarray, z: float) -> np.ndarray:
    """Lower end of the Wilson score interval of a proportion: small counts are not trusted at face value."""
    n = np.maximum(np.asarray(n, dtype=np.float64), 1e-12)
    p = np.asarray(correct, dtype=np.float64) / n
    centre = p + z * z / (2 * n)
    spread = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


class LFRefused(ConfigError):
    """A generated LF not written because its dev precision is not clearly above chance (:func:`chance_precision`)."""


#: a scored LF is written only if its dev precision's lower bound beats chance with 95% confidence (one-sided 2.5%,
#: shared out over the margins tried: Bonferroni)
REFUSE_ALPHA = 0.025


def chance_precision(votes: np.ndarray, y: np.ndarray, k: int) -> float:
    """The precision an LF with the same vote shares would have if its votes were independent of the classes:
    sum over classes of (share of its votes for c) x (share of dev records in c), Cohen's chance agreement. It is
    the class's base rate for an LF voting one class; for an LF voting many, it is below the largest class's share,
    which an LF that tells the classes apart need not beat (an LF 75% right on a 69/31 task is informative)."""
    voted = votes[votes >= 0]
    if not len(voted):
        return 1.0
    return float(np.bincount(voted, minlength=k) @ np.bincount(y, minlength=k)) / (len(voted) * len(y))


def choose_margin(lf, scores: np.ndarray, labels: np.ndarray, y: np.ndarray, z: float,
                  margins: Sequence[float]) -> tuple[float, int, int]:
    """Set ``lf.margin`` to the one of ``margins`` maximising lower-bound dev precision × dev coverage among those
    whose precision is clearly above chance, for an LF that votes through ``lf.decide(scores, labels)``; return
    (margin, votes, right).

    "Clearly above chance": the Wilson lower bound beats :func:`chance_precision` at that margin, at 95% confidence
    Bonferroni-corrected over the margins (trying six margins on labels unrelated to the texts, one passes an
    uncorrected bound by luck: 14 right of 42 votes against 20% chance). So an LF cannot qualify by agreeing with a
    90% class nearly everywhere, and one that is sure and right on a few records qualifies at the margin that keeps
    only those. Refused (:class:`LFRefused`) when no margin qualifies: such an LF only adds
    noise (class names as zero-shot descriptions often do: "ham" is food to an embedding model)."""
    k = max(int(labels.max()), int(y.max())) + 1
    z_refuse = NormalDist().inv_cdf(1 - REFUSE_ALPHA / len(margins))
    best = None  # (score, margin, votes, right)
    closest = (-np.inf, 0, 0, 1.0)  # (lower bound - chance, votes, right, chance): what the refusal reports
    for margin in margins:
        lf.margin = margin
        votes = lf.decide(scores, labels)
        voted = votes >= 0
        if not voted.any():
            continue
        n_votes, right = int(voted.sum()), int((votes[voted] == y[voted]).sum())
        chance = chance_precision(votes, y, k)
        edge = float(wilson_lower(right, n_votes, z_refuse)) - chance
        if edge > closest[0]:
            closest = (edge, n_votes, right, chance)
        score = float(wilson_lower(right, n_votes, z)) * voted.mean()
        if edge > 0 and (best is None or score > best[0]):
            best = (score, margin, n_votes, right)
    if best is None:
        _, n_votes, right, chance = closest
        raise LFRefused(f"LF {lf.name!r}: its dev precision ({right}/{n_votes}) is not clearly above chance "
                        f"({chance:.0%}, votes independent of the classes) at any margin; not written (describe the "
                        "classes, or word the prompt better)")
    lf.margin = best[1]
    return best[1:]
