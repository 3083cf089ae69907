"""DCLM-style quality classifier: "does this record look like my target?" as a probability.

DCLM (Li et al., 2024) trains a fastText bigram classifier with high-quality text as positives and random pool text
as negatives and keeps the records it scores highest. thresher trains the same kind of model without fastText:
hashed unigram+bigram features (sublinear tf, L2-normalised rows, 2^18 buckets) and an L2-regularised logistic
regression fitted by L-BFGS, with classes weighted to balance (targets are usually far smaller than the negative
sample). A held-out split (default 20%) reports accuracy and AUC; the final model is then refitted on all data.
Columns: ``classifier_prob`` (P(target)) and ``classifier_logit`` (its log-odds, the natural logits for
score-as-logits sampling).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer
from thresher.io.atomic import atomic_path, write_json


@dataclass(frozen=True)
class ClassifierConfig:
    """num_buckets/ngrams: hashed n-gram features. l2: ridge penalty on the weights (per example, as in
    scikit-learn's ``1 / (C * n)``). heldout: fraction kept out to report accuracy/AUC (0 disables). balance: weight
    the classes equally."""

    num_buckets: int = 2**18
    ngrams: int = 2
    l2: float = 1e-4
    max_iter: int = 100
    heldout: float = 0.2
    balance: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.l2 < 0:
            raise ConfigError(f"l2 must be >= 0, got {self.l2}")
        if not 0 <= self.heldout < 1:
            raise ConfigError(f"heldout must be in [0, 1), got {self.heldout}")
        if self.max_iter < 1:
            raise ConfigError(f"max_iter must be >= 1, got {self.max_iter}")
        _ = self.features  # validates num_buckets and ngrams

    @property
    def features(self) -> HashedNgramConfig:
        return HashedNgramConfig(num_buckets=self.num_buckets, ngrams=self.ngrams)


class QualityClassifier:
    """Binary logistic regression on hashed n-grams: ``fit(positives, negatives)``, then ``score(texts)``."""

    def __init__(self, config: ClassifierConfig | None = None):
        self.config = config or ClassifierConfig()
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0
        self.report_: dict = {}

    def featurize(self, text: pa.Array | pa.ChunkedArray | list[str]):
        """Records x buckets sparse matrix: log(1 + count), each row scaled to unit length."""
        if isinstance(text, list):
            text = pa.array(text, type=pa.large_string())
        x = HashedNgramFeaturizer(self.config.features).transform(text).to_csr(self.config.num_buckets)
        x = x.astype(np.float64)
        np.log1p(x.data, out=x.data)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        from scipy import sparse

        return sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ x

    def fit(self, positives: pa.Array | list[str], negatives: pa.Array | list[str]) -> QualityClassifier:
        """Train on target-like ``positives`` and pool ``negatives``; fills ``report_`` with held-out metrics."""
        n_pos, n_neg = len(positives), len(negatives)
        if n_pos < 2 or n_neg < 2:
            raise ConfigError(f"the classifier needs at least 2 positives and 2 negatives, got {n_pos} and {n_neg}")
        from scipy import sparse

        x = sparse.vstack([self.featurize(positives), self.featurize(negatives)]).tocsr()
        y = np.concatenate([np.ones(n_pos), np.zeros(n_neg)])
        self.report_ = {"positives": n_pos, "negatives": n_neg}
        if self.config.heldout > 0:
            test = _split(y, self.config.heldout, self.config.seed)
            coef, b = self._train(x[~test], y[~test])
            logit = x[test] @ coef + b
            self.report_["heldout"] = {"records": int(test.sum()), **_binary_metrics(y[test], logit)}
        self.coef_, self.intercept_ = self._train(x, y)
        self.report_["train"] = _binary_metrics(y, x @ self.coef_ + self.intercept_)
        return self

    def _train(self, x, y: np.ndarray) -> tuple[np.ndarray, float]:
        from scipy.optimize import minimize

        w = np.ones_like(y)
        if self.config.balance:
            w = np.where(y == 1, 0.5 / max(y.mean(), 1e-12), 0.5 / max(1 - y.mean(), 1e-12))
        w = w / w.sum()
        s = 2 * y - 1
        lam = self.config.l2
        xt = x.T.tocsr()

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            coef, b = theta[:-1], theta[-1]
            margin = s * (x @ coef + b)
            value = w @ np.logaddexp(0, -margin) + 0.5 * lam * coef @ coef
            g = -w * s * _sigmoid(-margin)
            return value, np.concatenate([xt @ g + lam * coef, [g.sum()]])

        def hessp(theta: np.ndarray, v: np.ndarray) -> np.ndarray:
            p = _sigmoid(x @ theta[:-1] + theta[-1])
            dv = w * p * (1 - p) * (x @ v[:-1] + v[-1])
            return np.concatenate([xt @ dv + lam * v[:-1], [dv.sum()]])

        # Newton-CG with exact Hessian-vector products (scikit-learn's newton-cg): a handful of iterations where
        # L-BFGS needs dozens over 2^18 weights.
        result = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, hessp=hessp, method="Newton-CG",
                          options={"maxiter": self.config.max_iter, "xtol": 1e-8})
        return result.x[:-1], float(result.x[-1])

    def score(self, text: pa.Array | pa.ChunkedArray | list[str]) -> dict[str, np.ndarray]:
        """``classifier_logit`` and ``classifier_prob`` = P(target-like) per record."""
        if self.coef_ is None:
            raise ConfigError("QualityClassifier.score called before fit (or load)")
        logit = self.featurize(text) @ self.coef_ + self.intercept_
        return {"classifier_prob": _sigmoid(logit), "classifier_logit": logit}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model (weights as float32 npy + config and report as JSON) to a directory."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with atomic_path(path / "weights.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, np.concatenate([self.coef_, [self.intercept_]]).astype(np.float64))
        write_json({"config": asdict(self.config), "report": self.report_}, path / "classifier.json")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> QualityClassifier:
        path = Path(path)
        if not (path / "classifier.json").is_file():
            raise ConfigError(f"{path} holds no saved classifier (classifier.json)")
        meta = json.loads((path / "classifier.json").read_text())
        model = cls(ClassifierConfig(**meta["config"]))
        theta = np.load(path / "weights.npy")
        model.coef_, model.intercept_, model.report_ = theta[:-1], float(theta[-1]), meta["report"]
        return model


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -z))


def _split(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified held-out mask: ``fraction`` of each class, at least one of each, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        k = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        test[rng.choice(idx, size=k, replace=False)] = True
    return test


def _binary_metrics(y: np.ndarray, logit: np.ndarray) -> dict:
    """Accuracy at logit 0, balanced accuracy and ROC AUC (Mann-Whitney, ties counted half)."""
    pred = logit > 0
    pos, neg = y == 1, y == 0
    from scipy.stats import rankdata

    ranks = rankdata(logit)
    auc = (ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / max(pos.sum() * neg.sum(), 1)
    return {"accuracy": round(float((pred == pos).mean()), 4),
            "balanced_accuracy": round(float((pred[pos].mean() + (~pred[neg]).mean()) / 2), 4),
            "auc": round(float(auc), 4)}
