"""What every LF generator returns: the LF and how it did on the dev records it was written from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


#: a scored LF is written only if its dev precision's 95% lower bound beats chance
REFUSE_Z = 1.96


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
    """Set ``lf.margin`` to the one of ``margins`` maximising (lower-bound dev precision − chance) × dev coverage,
    for an LF that votes through ``lf.decide(scores, labels)``; return (margin, votes, right).

    Precision is measured against :func:`chance_precision` at each margin, so an LF that wins by voting the largest
    class everywhere scores nothing: on a 90/10 task the margin that lets it vote the rare class where it is sure
    wins over the one that agrees with 90% of the records. Refused (:class:`LFRefused`) when at the chosen margin the
    lower-bound precision (95% Wilson bound) does not beat chance: such an LF only adds noise (class names as
    zero-shot descriptions often do: "ham" is food to an embedding model)."""
    k = max(int(labels.max()), int(y.max())) + 1
    best = (margins[0], 0, 0, 1.0, -np.inf)
    for margin in margins:
        lf.margin = margin
        votes = lf.decide(scores, labels)
        voted = votes >= 0
        if not voted.any():
            continue
        right = int((votes[voted] == y[voted]).sum())
        chance = chance_precision(votes, y, k)
        score = (float(wilson_lower(right, voted.sum(), z)) - chance) * voted.mean()
        if score > best[4]:
            best = (margin, int(voted.sum()), right, chance, score)
    lf.margin, n_votes, right, chance = best[:4]
    if not n_votes or wilson_lower(right, n_votes, REFUSE_Z) <= chance:
        raise LFRefused(f"LF {lf.name!r}: its dev precision ({right}/{n_votes}) is not clearly above chance "
                        f"({chance:.0%}, votes independent of the classes); not written (describe the classes, or "
                        "word the prompt better)")
    return best[:3]
