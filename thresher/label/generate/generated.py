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
    """A generated LF not written because its dev precision is not clearly above the most frequent class's share."""


#: a scored LF is written only if its dev precision's 95% lower bound beats the most frequent class's share
REFUSE_Z = 1.96


def choose_margin(lf, scores: np.ndarray, labels: np.ndarray, y: np.ndarray, z: float,
                  margins: Sequence[float]) -> tuple[float, int, int]:
    """Set ``lf.margin`` to the one of ``margins`` maximising lower-bound dev precision × dev coverage, for an LF
    that votes through ``lf.decide(scores, labels)``; return (margin, votes, right).

    Refused (:class:`LFRefused`) when at that margin the lower-bound precision does not beat always answering the most
    frequent class (95% Wilson bound): such an LF only adds noise (class names as zero-shot descriptions often do:
    "ham" is food to an embedding model)."""
    best = (margins[0], 0, 0, -1.0)
    base_rate = float(np.bincount(y).max() / len(y))
    for margin in margins:
        lf.margin = margin
        votes = lf.decide(scores, labels)
        voted = votes >= 0
        right = int((votes[voted] == y[voted]).sum())
        score = float(wilson_lower(right, voted.sum(), z)) * voted.mean() if voted.any() else 0.0
        if score > best[3]:
            best = (margin, int(voted.sum()), right, score)
    if not best[1] or wilson_lower(best[2], best[1], REFUSE_Z) <= base_rate:
        raise LFRefused(f"LF {lf.name!r}: its dev precision is not clearly above always answering the most frequent "
                          f"class ({base_rate:.0%}); not written (describe the classes, or word the prompt better)")
    lf.margin = best[0]
    return best[:3]
