"""How a new system's full-set score is estimated from its scores on the chosen items.

- ``mean``: the weighted mean over the chosen items (the weights the selection method gave them).
- ``control``: the seen systems as control variates. Their full-set scores are known, so the weighted mean's error
  on these very items is known for each of them; a new system's error is estimated as that of the mixture of seen
  systems that scores most like it on the chosen items (non-negative weights summing to one, fitted by weighted
  least squares), and subtracted. Equivalently: the mixture's full-set score, plus the new system's weighted mean
  difference from the mixture on the chosen items. Its error is the sampling error of that difference: small when
  some mix of seen systems tracks the new one item by item (related models, checkpoints, sizes of one family); a
  system unlike every seen one gains nothing and can lose, as the mixture's own error is added to its.
- ``irt``, ``p-irt`` (tinyBenchmarks, Polo et al., 2024): a 2PL IRT model fitted on the seen systems gives the new
  system an ability from its scores on the chosen items; ``irt`` is the model's predicted mean over all items,
  ``p-irt`` keeps the observed scores on the chosen items and predicts only the others.
- ``gp-irt`` (the same paper): lambda x the weighted mean + (1 - lambda) x p-IRT, with tinyBenchmarks' rule
  lambda = b^2 / (b^2 + sigma^2): sigma^2 the weighted mean's sampling variance for this system (from its own
  scores on the chosen items), b^2 p-IRT's mean squared error on seen systems, cross-fitted over two halves of
  them (a model fitted on one half estimates the other from the chosen items).

Each estimator is saved in the run directory with what it needs (``control``: the seen systems' scores on the chosen
items and their full-set scores; ``p-irt``: every item's parameters), so ``evalset estimate`` works from the run alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
from scipy.optimize import nnls

from thresher.errors import ConfigError
from thresher.evalset.irt import IRT2PL

ESTIMATORS = ("mean", "control", "irt", "p-irt", "gp-irt")


class Estimator(Protocol):
    """What every estimator offers: its name, the estimates, and saving what it needs into a run directory."""

    name: str

    def estimate(self, scores: np.ndarray) -> np.ndarray:
        """Full-set estimates from ``scores`` on the chosen items (one row per item, one column per system)."""

    def save(self, out: Path, chosen: list[str], items: tuple[str, ...]) -> None:
        """Write what :func:`load_estimator` needs beside ``subset.parquet``."""


@dataclass(frozen=True)
class WeightedMean:
    weights: np.ndarray

    name = "mean"

    def estimate(self, scores: np.ndarray) -> np.ndarray:
        return self.weights @ scores

    def save(self, out: Path, chosen: list[str], items: tuple[str, ...]) -> None:
        """Nothing beyond subset.parquet's weights."""

    @classmethod
    def load(cls, run: Path, weights: np.ndarray, chosen: list[str]) -> WeightedMean:
        return cls(weights)


@dataclass(frozen=True)
class ControlVariates:
    """The weighted mean corrected by the seen systems' known errors on the same items (module docstring)."""

    weights: np.ndarray
    seen_scores: np.ndarray  # the seen systems' scores on the chosen items (items x seen systems)
    seen_means: np.ndarray  # their full-set scores

    name = "control"

    def estimate(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        errors = self.seen_means - self.weights @ self.seen_scores  # each seen system's error, were it new
        root = np.sqrt(self.weights)[:, None]
        basis = root * self.seen_scores
        # the fit's weights sum to one: the constraint joins the least squares as a heavily weighted extra row
        scale = 1e3 * max(float(np.abs(basis).max()), 1.0)
        a = np.vstack([basis, np.full((1, basis.shape[1]), scale)])
        out = self.weights @ scores
        for j in range(scores.shape[1]):
            mix, _ = nnls(a, np.append(root[:, 0] * scores[:, j], scale))
            out[j] += mix @ errors / max(mix.sum(), 1e-12)
        return out

    def save(self, out: Path, chosen: list[str], items: tuple[str, ...]) -> None:
        from thresher.io.atomic import write_parquet

        columns = {"item": chosen} | {f"seen_{k}": self.seen_scores[:, k] for k in range(self.seen_scores.shape[1])}
        write_parquet(pa.table(columns), out / "control.parquet")
        write_parquet(pa.table({"seen": np.arange(len(self.seen_means)), "full_mean": self.seen_means}),
                      out / "control_means.parquet")

    @classmethod
    def load(cls, run: Path, weights: np.ndarray, chosen: list[str]) -> ControlVariates:
        import pyarrow.parquet as pq

        table = pq.read_table(run / "control.parquet")
        if table["item"].to_pylist() != chosen:
            raise ConfigError(f"{run / 'control.parquet'} does not list the chosen items in order")
        seen = np.column_stack([table[c].to_numpy() for c in table.column_names if c != "item"])
        means = pq.read_table(run / "control_means.parquet")["full_mean"].to_numpy()
        return cls(weights, seen.astype(np.float64), means.astype(np.float64))


@dataclass(frozen=True)
class PIRT:
    """p-IRT over every item the model knows; ``rows`` are the chosen items' places among them."""

    rows: np.ndarray
    model: IRT2PL

    name = "p-irt"

    def estimate(self, scores: np.ndarray) -> np.ndarray:
        return self.model.p_irt(self.rows, scores)

    def save(self, out: Path, chosen: list[str], items: tuple[str, ...]) -> None:
        from thresher.io.atomic import write_parquet

        write_parquet(pa.table({"item": list(items), "a": self.model.a, "b": self.model.b}), out / "irt.parquet")

    @classmethod
    def load(cls, run: Path, weights: np.ndarray, chosen: list[str]) -> PIRT:
        import pyarrow.parquet as pq

        irt = pq.read_table(run / "irt.parquet")
        place = {item: i for i, item in enumerate(irt["item"].to_pylist())}
        return cls(np.array([place[item] for item in chosen]), IRT2PL(irt["a"].to_numpy(), irt["b"].to_numpy(),
                                                                      np.zeros(0)))


@dataclass(frozen=True)
class IRTPrediction(PIRT):
    """tinyBenchmarks' plain IRT estimate: the model's predicted scores on every item, the chosen ones included."""

    name = "irt"

    def estimate(self, scores: np.ndarray) -> np.ndarray:
        return self.model.predict(self.model.abilities(self.rows, np.asarray(scores, dtype=np.float64))).mean(axis=0)


@dataclass(frozen=True)
class GPIRT:
    """tinyBenchmarks' gp-IRT: the weighted mean and p-IRT, mixed per system by their estimated errors."""

    rows: np.ndarray
    weights: np.ndarray
    model: IRT2PL
    bias2: float  # p-IRT's cross-fitted mean squared error on the seen systems

    name = "gp-irt"

    def estimate(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        mean = self.weights @ scores
        n, total = len(self.rows), len(self.model.a)
        spread = ((self.weights[:, None] * (scores - mean)) ** 2).sum(axis=0) * n / max(n - 1, 1)
        variance = spread * (1 - n / total)
        both = self.bias2 + variance
        lam = np.divide(self.bias2, both, out=np.ones_like(both), where=both > 0)
        return lam * mean + (1 - lam) * self.model.p_irt(self.rows, scores)

    def save(self, out: Path, chosen: list[str], items: tuple[str, ...]) -> None:
        from thresher.io.atomic import write_json

        PIRT(self.rows, self.model).save(out, chosen, items)
        write_json({"bias2": self.bias2}, out / "gp_irt.json")

    @classmethod
    def load(cls, run: Path, weights: np.ndarray, chosen: list[str]) -> GPIRT:
        import json

        pirt = PIRT.load(run, weights, chosen)
        bias2 = json.loads((run / "gp_irt.json").read_text(encoding="utf-8"))["bias2"]
        return cls(pirt.rows, weights, pirt.model, float(bias2))


def pirt_cross_fit_error(rows: np.ndarray, seen_scores: np.ndarray, fit_irt: Callable[[np.ndarray], IRT2PL]
                         ) -> float:
    """p-IRT's mean squared error on the seen systems, each half estimated by a model fitted on the other."""
    x = np.asarray(seen_scores, dtype=np.float64)
    halves = np.arange(x.shape[1]) % 2
    if min(np.bincount(halves, minlength=2)) < 1:
        return 0.0
    errors = []
    for h in (0, 1):
        fit, held = np.flatnonzero(halves != h), np.flatnonzero(halves == h)
        model = fit_irt(x[:, fit])
        errors.append(model.p_irt(rows, x[np.ix_(rows, held)]) - x[:, held].mean(axis=0))
    return float(np.mean(np.concatenate(errors) ** 2))


def build_estimator(name: str, rows: np.ndarray, weights: np.ndarray, seen_scores: np.ndarray,
                    fit_irt: Callable[[np.ndarray], IRT2PL] | None = None) -> Estimator:
    """The estimator ``name`` for items ``rows`` (with design ``weights``) chosen on ``seen_scores`` (items x seen
    systems, every item); ``fit_irt(seen_scores)`` gives the 2PL model for ``p-irt``."""
    if name not in ESTIMATORS:
        raise ConfigError(f"unknown estimator {name!r}; choose from {', '.join(ESTIMATORS)}")
    if name == "mean":
        return WeightedMean(weights)
    if name == "control":
        return ControlVariates(weights, np.asarray(seen_scores[rows], dtype=np.float64),
                               np.asarray(seen_scores, dtype=np.float64).mean(axis=0))
    if name in ("irt", "p-irt"):
        return (PIRT if name == "p-irt" else IRTPrediction)(np.asarray(rows), fit_irt(seen_scores))
    return GPIRT(np.asarray(rows), weights, fit_irt(seen_scores), pirt_cross_fit_error(rows, seen_scores, fit_irt))


def load_estimator(run: Path, name: str, weights: np.ndarray, chosen: list[str]) -> Estimator:
    """The estimator a run saved (its manifest names it)."""
    kinds = {"mean": WeightedMean, "control": ControlVariates, "irt": IRTPrediction, "p-irt": PIRT, "gp-irt": GPIRT}
    if name not in kinds:
        raise ConfigError(f"{run}: unknown estimator {name!r} in its manifest")
    return kinds[name].load(run, weights, chosen)
