"""How much labelling a record would teach the model: uncertainty of its class probabilities, for choosing which
unlabelled records go to annotators next (``thresher audit``'s ``uncertainty`` column, and the uncertainty
strategies of ``thresher evaluate --experiment active``)."""

from __future__ import annotations

import numpy as np

UNCERTAINTY = ("margin", "entropy", "least_confidence")
#: The default acquisition strategy: the smallest gap between the two likeliest classes (the strongest of the three
#: in the active-learning benchmark, and a standard baseline for linear text classifiers).
DEFAULT_STRATEGY = "margin"


def uncertainty(probs: np.ndarray, strategy: str = DEFAULT_STRATEGY) -> np.ndarray:
    """Per row of class probabilities, higher = less sure: ``margin`` 1 - (p1 - p2), ``entropy`` -sum p log p,
    ``least_confidence`` 1 - p1."""
    probs = np.asarray(probs, dtype=np.float64)
    if strategy == "entropy":
        return -(probs * np.log(np.maximum(probs, 1e-300))).sum(axis=1)
    if strategy == "margin":
        if probs.shape[1] < 2:
            return np.zeros(len(probs))
        top2 = -np.partition(-probs, 1, axis=1)[:, :2]
        return 1.0 - (top2[:, 0] - top2[:, 1])
    if strategy == "least_confidence":
        return 1.0 - probs.max(axis=1)
    raise ValueError(f"unknown uncertainty {strategy!r}; choose from {', '.join(UNCERTAINTY)}")
