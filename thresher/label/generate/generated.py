"""What every LF generator returns: the LF and how it did on the dev records it was written from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
