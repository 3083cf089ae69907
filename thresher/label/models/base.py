"""What every label model shares: parameter handling, class-balance resolution and the predict/abstain/tie policy.

A subclass implements ``_fit(L, prior, rng, dev)`` (``prior`` is the resolved class balance, or None when the model
should estimate it) and ``_proba(L)`` (per-record class probabilities). Everything else -- how rows without votes,
abstains and ties are handled -- lives here so the models cannot disagree about it.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import scipy.sparse as sp

from thresher.errors import ConfigError
from thresher.label.matrix import ABSTAIN, LabelMatrix, as_label_matrix

CLASS_BALANCE_SOURCES = ("given", "dev", "estimated", "uniform")
ABSTAIN_POLICIES = ("prior", "abstain")
TIE_POLICIES = ("prior", "random", "abstain")


def onehot(L: LabelMatrix, dtype=np.float64) -> sp.csr_matrix:
    """(n, m·k) CSR with a 1 at column j·k + c when LF j voted class c: every model's sums become one sparse product."""
    v = L.votes
    k = L.n_classes
    cols = v.indices.astype(np.int64) * k + v.data.astype(np.int64) - 1
    return sp.csr_matrix((np.ones(len(cols), dtype=dtype), cols, v.indptr), shape=(L.n_records, L.n_lfs * k))


def _row_reduce(ufunc, x: np.ndarray) -> np.ndarray:
    """ufunc-reduce along rows; for few columns a loop over columns is several times faster than ``axis=1``."""
    if x.shape[1] > 16:
        return ufunc.reduce(x, axis=1)
    out = x[:, 0].copy()
    for c in range(1, x.shape[1]):
        ufunc(out, x[:, c], out=out)
    return out


def softmax_rows(log_scores: np.ndarray) -> tuple[np.ndarray, float]:
    """Row softmax of log scores, in place, and the summed log normaliser (the data log-likelihood for EM models)."""
    top = _row_reduce(np.maximum, log_scores)
    log_scores -= top[:, None]
    np.exp(log_scores, out=log_scores)
    total = _row_reduce(np.add, log_scores)
    log_scores /= total[:, None]
    return log_scores, float(np.log(total).sum() + top.sum())


def validate_prior(prior, n_classes: int) -> np.ndarray:
    """A class balance given by the user: k non-negative numbers, renormalised to sum to 1."""
    p = np.asarray(prior, dtype=np.float64).ravel()
    if p.shape != (n_classes,):
        raise ConfigError(f"class_balance has {p.size} entries, the label matrix has {n_classes} classes")
    if not np.all(np.isfinite(p)) or (p < 0).any() or p.sum() <= 0:
        raise ConfigError("class_balance must be non-negative numbers with a positive sum")
    return p / p.sum()


def is_count(value: object, minimum: int = 1) -> bool:
    """A whole number (not a bool) of at least ``minimum``."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= minimum


def check_em_params(model: LabelModel) -> None:
    """The checks every EM-fitted model shares: iterations, tolerance, correlated-LF threshold, warm-start size."""
    if not is_count(model.max_iter):
        raise ConfigError(f"max_iter must be an integer >= 1, got {model.max_iter!r}")
    if not model.tol > 0:
        raise ConfigError(f"tol must be > 0, got {model.tol}")
    if not 0 < model.correlation_threshold <= 1.01:
        raise ConfigError(f"correlation_threshold must be in (0, 1] (or >1 to disable), "
                          f"got {model.correlation_threshold}")
    if not model.warm_start_records >= 100:
        raise ConfigError(f"warm_start_records must be >= 100, got {model.warm_start_records}")


class LabelModel:
    """Base class: ``fit`` on a label matrix, then ``predict_proba`` / ``predict`` with explicit abstain and tie policy.

    After ``fit``: ``class_balance_`` (k,), ``class_balance_source_`` (one of given/dev/estimated/uniform),
    ``lf_accuracies_`` (m,) -- the estimated probability that each LF is right when it votes -- and ``n_classes_``.
    """

    name = "base"
    #: whether the model estimates the class balance itself when asked to (otherwise the base class does, from MV)
    estimates_class_balance = True

    # ---------------------------------------------------------------- sklearn-style parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters, as sklearn's ``get_params``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> LabelModel:
        """Set constructor parameters (validated), as sklearn's ``set_params``."""
        valid = self._param_names()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ConfigError(f"label model {self.name!r} does not take {', '.join(unknown)}; "
                              f"its parameters are {', '.join(valid) or '(none)'}")
        for key, value in params.items():
            setattr(self, key, value)
        self._validate_params()
        return self

    def _validate_params(self) -> None:
        """Raise ConfigError on a bad parameter value; subclasses extend."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ---------------------------------------------------------------- fit
    def fit(self, L: LabelMatrix | np.ndarray, class_balance: str | np.ndarray | list[float] = "estimate",
            dev: tuple[LabelMatrix | np.ndarray, np.ndarray] | None = None, seed: int = 0) -> LabelModel:
        """Learn the LFs' accuracies (and, with ``class_balance="estimate"``, the class balance) from ``L``.

        ``class_balance``: "estimate" (from the unlabelled votes), "uniform", "dev" (class frequencies of ``dev``'s
        gold labels) or an array of k class proportions. ``dev`` is ``(L_dev, y_dev)``.
        """
        self._validate_params()
        L = as_label_matrix(L)
        k = L.n_classes
        if L.n_records == 0:
            raise ConfigError("cannot fit a label model on an empty label matrix")
        if L.nnz == 0:
            raise ConfigError(f"no LF voted on any of the {L.n_records:,} records (coverage 0%), so there is nothing "
                              "to learn a label model from: check the LFs' keywords, patterns and columns against "
                              "a few records")
        prior, source = self._resolve_class_balance(class_balance, dev, k)
        self.n_classes_ = k
        self.n_lfs_ = L.n_lfs
        self.lf_names_ = L.lf_names
        rng = np.random.default_rng(seed)
        if prior is None and not self.estimates_class_balance:
            prior = estimate_class_balance(L)
        dev_lm = None
        if dev is not None:
            dev_lm = (as_label_matrix(dev[0], k), np.asarray(dev[1]).astype(np.int64).ravel())
            if dev_lm[0].n_lfs != L.n_lfs or dev_lm[0].n_records != len(dev_lm[1]):
                raise ConfigError("dev label matrix must have the same LFs as L and one gold label per record")
        estimated = self._fit(L, prior, rng, dev_lm)
        if prior is None:
            prior = estimated
        self.class_balance_ = np.asarray(prior, dtype=np.float64)
        self.class_balance_source_ = source
        return self

    def _resolve_class_balance(self, class_balance, dev, k: int) -> tuple[np.ndarray | None, str]:
        if isinstance(class_balance, str):
            if class_balance == "estimate":
                return None, "estimated"
            if class_balance == "uniform":
                return np.full(k, 1.0 / k), "uniform"
            if class_balance == "dev":
                if dev is None:
                    raise ConfigError('class_balance="dev" needs dev=(L_dev, y_dev)')
                y_dev = np.asarray(dev[1]).astype(np.int64).ravel()
                if y_dev.size == 0 or y_dev.min() < 0 or y_dev.max() >= k:
                    raise ConfigError(f"dev labels must be class indices in 0..{k - 1}")
                counts = np.bincount(y_dev, minlength=k).astype(np.float64) + 1.0  # add-one: no class gets 0
                return counts / counts.sum(), "dev"
            raise ConfigError(f"class_balance must be 'estimate', 'uniform', 'dev' or an array, got {class_balance!r}")
        return validate_prior(class_balance, k), "given"

    def _fit(self, L: LabelMatrix, prior: np.ndarray | None, rng: np.random.Generator,
             dev: tuple[LabelMatrix, np.ndarray] | None = None) -> np.ndarray | None:
        """Fit parameters; return the estimated class balance when ``prior`` is None."""
        raise NotImplementedError

    # ---------------------------------------------------------------- predict
    def _check_fitted(self, L) -> LabelMatrix:
        if not hasattr(self, "class_balance_"):
            raise ConfigError(f"label model {self.name!r} is not fitted; call fit(L) first")
        L = as_label_matrix(L, self.n_classes_)
        if L.n_lfs != self.n_lfs_:
            raise ConfigError(f"label matrix has {L.n_lfs} LFs, the model was fitted on {self.n_lfs_}")
        return L

    def _proba(self, L: LabelMatrix) -> np.ndarray:
        """(n, k) class probabilities for every row (rows without votes are overwritten by the caller)."""
        raise NotImplementedError

    def predict_proba(self, L: LabelMatrix | np.ndarray) -> np.ndarray:
        """(n, k) float64 class probabilities; rows where every LF abstained get ``class_balance_``."""
        L = self._check_fitted(L)
        proba = self._proba(L)
        empty = L.n_votes() == 0
        if empty.any():
            proba[empty] = self.class_balance_
        return proba

    def predict(self, L: LabelMatrix | np.ndarray, abstain: str = "abstain", ties: str = "prior",
                seed: int = 0) -> np.ndarray:
        """Hard labels (int, -1 = abstain).

        ``abstain``: rows where every LF abstained get -1 ("abstain") or the most frequent class ("prior").
        ``ties``: rows whose top probability is shared by several classes go to the tied class with the larger
        ``class_balance_`` ("prior"), a seeded random tied class ("random"), or -1 ("abstain").
        """
        if abstain not in ABSTAIN_POLICIES:
            raise ConfigError(f"abstain must be one of {', '.join(ABSTAIN_POLICIES)}, got {abstain!r}")
        if ties not in TIE_POLICIES:
            raise ConfigError(f"ties must be one of {', '.join(TIE_POLICIES)}, got {ties!r}")
        L = self._check_fitted(L)
        proba = self.predict_proba(L)
        return decide(proba, L.n_votes() == 0, self.class_balance_, abstain, ties, seed)


def decide(proba: np.ndarray, empty: np.ndarray, prior: np.ndarray, abstain: str, ties: str, seed: int) -> np.ndarray:
    """Turn probabilities into labels under the abstain/tie policy (shared by every model)."""
    top = proba.max(axis=1, keepdims=True)
    tied = proba >= top - 1e-9 * np.maximum(top, 1e-300)
    n_tied = tied.sum(axis=1)
    if ties == "random":
        rng = np.random.default_rng(seed)
        keys = np.where(tied, rng.random(proba.shape), -1.0)
        pred = keys.argmax(axis=1)
    else:
        # among tied classes, the one with the larger prior; exact prior ties go to the lower class index
        keys = np.where(tied, prior[None, :], -1.0)
        pred = keys.argmax(axis=1)
        if ties == "abstain":
            pred[n_tied > 1] = ABSTAIN
    pred = pred.astype(np.int64)
    if empty.any():
        pred[empty] = ABSTAIN if abstain == "abstain" else int(np.argmax(prior))
    return pred


def estimate_class_balance(L: LabelMatrix, n_iter: int = 50) -> np.ndarray:
    """Class balance from the votes alone, for models that cannot estimate it themselves (MeTaL, triplet, MV).

    Runs the one-coin Dawid-Skene EM (O(nnz) per iteration), whose class priors are the posterior class frequencies:
    unlike counting majority-vote winners it corrects for LFs that over-vote a class.
    """
    from thresher.label.models.dawid_skene import DawidSkene

    model = DawidSkene(confusion="one_coin", max_iter=n_iter)
    return model._fit(L, None, np.random.default_rng(0))
