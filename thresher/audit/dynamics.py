"""Training-dynamics scores of labelled records: how a classifier's view of each record moves while it trains.

One run trains softmax regression by mini-batch SGD (AdaGrad) for ``epochs`` passes over the records (seeded order) and,
after every epoch, notes each record's probability of its given label, whether the likeliest class is that label,
and its margin. Several seeded runs are averaged, as the papers do. The scores (high = hard or suspect unless said):

* ``el2n`` (Paul et al. 2021, "Data Diet"): the L2 norm of (probabilities - one-hot label) after ``score_epoch``
  epochs, early in training. Easy, memorised records score near 0.
* ``grand``: the norm of the record's loss gradient after ``score_epoch`` epochs. For this linear model it is
  ``el2n * sqrt(|x|^2 + 1)``: the same ranking wherever the feature rows have one length (hashed features do).
* ``forgetting_events`` (Toneva et al. 2019): epochs where a record that was classified right is then wrong;
  records never classified right get ``epochs`` (more than any record can be forgotten), as in the paper.
* ``aum`` (Pleiss et al. 2020, area under the margin): the mean over epochs of the given label's logit minus the
  largest other logit. Low or negative: likely mislabelled (higher = easier, unlike the others).
* ``carto_confidence``, ``carto_variability``, ``carto_correctness`` (Swayamdipta et al. 2020, dataset
  cartography): the mean and standard deviation over epochs of the given label's probability, and the share of
  epochs classified right; ``carto_region``: ``ambiguous`` (variability in the top third), else
  ``easy`` (confidence >= 0.5) or ``hard``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from thresher.engine.local import LocalEngine
from thresher.errors import ConfigError
from thresher.scorers.registry import TRAINING_DYNAMICS
from thresher.softmax import softmax

DYNAMICS = TRAINING_DYNAMICS  # el2n, grand, forgetting, aum, cartography
CARTO_REGIONS = ("easy", "ambiguous", "hard")


@dataclass(frozen=True)
class DynamicsConfig:
    """epochs: SGD passes per run. seeds: runs averaged. score_epoch: when EL2N and GraNd are taken.
    batch_size, lr, l2: mini-batch size, AdaGrad learning rate and L2 penalty of the SGD (AdaGrad: rare n-gram
    features learn as fast as common ones)."""

    epochs: int = 10
    seeds: int = 3
    score_epoch: int = 2
    batch_size: int = 32
    lr: float = 0.05
    l2: float = 1e-4

    def __post_init__(self) -> None:
        if self.epochs < 2 or self.seeds < 1 or self.batch_size < 1 or self.lr <= 0 or self.l2 < 0:
            raise ConfigError("training dynamics: epochs >= 2, seeds >= 1, batch_size >= 1, lr > 0 and l2 >= 0 "
                              "are required")
        if not 1 <= self.score_epoch <= self.epochs:
            raise ConfigError(f"score_epoch must be between 1 and epochs ({self.epochs}), got {self.score_epoch}")


def parse_dynamics(names: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"el2n,aum"``, a list, or ``"all"`` as a tuple of known score names (in :data:`DYNAMICS` order)."""
    if not names:
        return ()
    items = [s.strip() for s in names.split(",")] if isinstance(names, str) else [str(s) for s in names]
    if "all" in items:
        return DYNAMICS
    unknown = [s for s in items if s and s not in DYNAMICS]
    if unknown:
        raise ConfigError(f"unknown training-dynamics score(s) {', '.join(unknown)}; choose from "
                          f"{', '.join(DYNAMICS)} or all")
    return tuple(s for s in DYNAMICS if s in items)


def training_dynamics(x, labels: np.ndarray, n_classes: int, config: DynamicsConfig | None = None, seed: int = 0,
                      map_fn: Callable[[Callable, Iterable[tuple]], Iterable] | None = None) -> dict[str, np.ndarray]:
    """Every score of the module docstring for the rows of ``x`` with given ``labels`` (class indices), averaged
    over ``config.seeds`` runs; ``map_fn`` (an engine's map) runs them in parallel, with the same result."""
    config = config or DynamicsConfig()
    labels = np.asarray(labels, dtype=np.int64)
    items = [(x, labels, n_classes, config, seed * 1_000_003 + s) for s in range(config.seeds)]
    runs = list((map_fn or LocalEngine(1).map)(train_run, items))
    probs = np.stack([r["prob"] for r in runs])  # seeds x epochs x n
    correct = np.stack([r["correct"] for r in runs])
    margins = np.stack([r["margin"] for r in runs])
    forgotten = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1).astype(np.float64)
    forgotten[~correct.any(axis=1)] = config.epochs
    confidence = probs.mean(axis=(0, 1))
    variability = probs.std(axis=1).mean(axis=0)
    region = np.where(confidence >= 0.5, 0, 2)
    if len(variability):
        region[variability >= np.quantile(variability, 2 / 3)] = 1
    return {"el2n": np.mean([r["el2n"] for r in runs], axis=0), "grand": np.mean([r["grand"] for r in runs], axis=0),
            "forgetting_events": forgotten.mean(axis=0), "aum": margins.mean(axis=(0, 1)),
            "carto_confidence": confidence, "carto_variability": variability,
            "carto_correctness": correct.mean(axis=(0, 1)), "carto_region": region}


def train_run(x, labels: np.ndarray, n_classes: int, config: DynamicsConfig, seed: int) -> dict[str, np.ndarray]:
    """One seeded SGD run: per epoch, each record's given-label probability, correctness and margin, and EL2N
    and GraNd after ``score_epoch`` epochs."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    sparse = hasattr(x, "tocsr")
    if sparse:
        x = x.tocsr()
    w = np.zeros((x.shape[1], n_classes))
    b = np.zeros(n_classes)
    g2w, g2b = np.full_like(w, 1e-8), np.full_like(b, 1e-8)  # AdaGrad's sums of squared gradients
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), labels] = 1.0
    rows = np.arange(n)
    out = {k: np.empty((config.epochs, n)) for k in ("prob", "margin")}
    out["correct"] = np.empty((config.epochs, n), dtype=bool)
    for epoch in range(config.epochs):
        order = rng.permutation(n)
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            xb = x[batch]
            g = (softmax(xb @ w + b) - onehot[batch]) / len(batch)
            if sparse:
                cols, grad = _sparse_grad(xb, g)
            else:
                cols, grad = slice(None), np.asarray(xb.T @ g)
            grad = grad + config.l2 * w[cols]
            g2w[cols] += grad ** 2
            w[cols] -= config.lr * grad / np.sqrt(g2w[cols])
            gb = g.sum(axis=0)
            g2b += gb ** 2
            b -= config.lr * gb / np.sqrt(g2b)
        logits = x @ w + b
        p = softmax(logits)
        given = logits[rows, labels]
        others = logits.copy()
        others[rows, labels] = -np.inf
        out["prob"][epoch] = p[rows, labels]
        out["margin"][epoch] = given - others.max(axis=1)
        out["correct"][epoch] = out["margin"][epoch] > 0
        if epoch + 1 == config.score_epoch:
            error = np.sqrt(((p - onehot) ** 2).sum(axis=1))
            norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel()) if sparse else np.linalg.norm(x, axis=1)
            out["el2n"], out["grand"] = error, error * np.sqrt(norms ** 2 + 1)
    return out


def _sparse_grad(xb, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the feature columns the batch uses, the loss gradient of their weight rows): x_b^T g without the
    all-zero rows."""
    rows = np.repeat(np.arange(xb.shape[0]), np.diff(xb.indptr))
    cols, where = np.unique(xb.indices, return_inverse=True)
    contrib = xb.data[:, None] * g[rows]
    return cols, np.column_stack([np.bincount(where, weights=contrib[:, j], minlength=len(cols))
                                  for j in range(g.shape[1])])
