"""The end model: a classifier trained on the label model's probabilistic labels, as in WRENCH and snorkel.

LFs only vote where their keywords fire; a classifier trained on the labelled records learns from every word of
them and so generalises to records no LF covers (and often beyond the label model's accuracy on covered ones).
It is a multinomial logistic (softmax) regression with soft targets, L2-regularised and fitted by L-BFGS, on
either the hashed uni+bigram features of the quality classifier (``features="hashed"``, log-tf, unit-length
rows), static embeddings (``features="static"``) or MiniLM sentence embeddings (``features="minilm"``); both
embeddings need ``thresher[embed]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.softmax import fit_softmax, softmax

FEATURES = ("hashed", "static", "minilm")


@dataclass(frozen=True)
class EndModelConfig:
    """features: hashed | static | minilm. num_buckets/ngrams: hashed n-gram features. l2: ridge penalty per example.
    min_votes: train only on records with at least this many LF votes (uncovered records carry only the prior)."""

    features: str = "hashed"
    num_buckets: int = 2**16
    ngrams: int = 2
    l2: float = 1e-4
    max_iter: int = 300
    min_votes: int = 1

    def __post_init__(self) -> None:
        if self.features not in FEATURES:
            raise ConfigError(f"end model features must be one of {', '.join(FEATURES)}, got {self.features!r}")
        if self.l2 < 0 or self.max_iter < 1 or self.min_votes < 0:
            raise ConfigError("end model: l2 >= 0, max_iter >= 1 and min_votes >= 0 are required")


class EndModel:
    """Softmax regression on text features, trained on probabilistic labels: ``fit(texts, probs)``."""

    def __init__(self, config: EndModelConfig | None = None):
        self.config = config or EndModelConfig()
        self.coef_: np.ndarray | None = None
        self.intercept_: np.ndarray | None = None
        self.report_: dict = {}

    def features(self, texts: pa.Array | Sequence[str]):
        """Records × features: sparse hashed n-grams or dense embeddings."""
        if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
            texts = pa.array(list(texts), type=pa.large_string())
        if self.config.features != "hashed":
            from thresher.embeddings import make_backend

            return np.asarray(make_backend(self.config.features).encode(texts.to_pylist()), dtype=np.float64)
        from thresher.scorers.classifier import ClassifierConfig, QualityClassifier

        featurizer = QualityClassifier(ClassifierConfig(num_buckets=self.config.num_buckets, ngrams=self.config.ngrams))
        return featurizer.featurize(texts)

    def fit(self, texts: pa.Array | Sequence[str], probs: np.ndarray) -> EndModel:
        """Fit on ``texts`` with soft targets ``probs`` (n × k, rows summing to 1)."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] < 2 or len(probs) != len(texts):
            raise ConfigError(f"end model: probs must be (n_texts, n_classes), got {probs.shape} for "
                              f"{len(texts)} texts")
        if len(texts) < 2:
            raise ConfigError("end model: need at least 2 labelled records to train")
        return self.fit_features(self.features(texts), probs)

    def fit_features(self, x, probs: np.ndarray) -> EndModel:
        """Fit on rows of :meth:`features` already computed (to train several models on one featurisation)."""
        self.coef_, self.intercept_ = fit_softmax(x, np.asarray(probs, dtype=np.float64), self.config.l2,
                                                  self.config.max_iter)
        self.report_ = {"trained_on": x.shape[0], "config": asdict(self.config)}
        return self

    def predict_proba(self, texts: pa.Array | Sequence[str]) -> np.ndarray:
        return self.predict_proba_features(self.features(texts))

    def predict_proba_features(self, x) -> np.ndarray:
        """Class probabilities for rows of :meth:`features`."""
        if self.coef_ is None:
            raise ConfigError("EndModel.predict_proba called before fit")
        return softmax(x @ self.coef_ + self.intercept_)

    def predict(self, texts: pa.Array | Sequence[str]) -> np.ndarray:
        """The most probable class per text (the end model never abstains)."""
        return self.predict_proba(texts).argmax(axis=1)
