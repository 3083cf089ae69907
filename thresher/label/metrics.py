"""Label quality metrics that count abstains as errors, so a model cannot look better by refusing to answer.

snorkel's ``LabelModel.score`` drops abstained records before computing accuracy, which inflates results; here
accuracy and macro-F1 are over ALL records and abstains are reported next to them.
"""

from __future__ import annotations

import numpy as np

from thresher.errors import ConfigError
from thresher.label.matrix import ABSTAIN


def label_metrics(y_true, y_pred, n_classes: int) -> dict:
    """Accuracy and macro-F1 over all records (an abstain is a wrong answer), coverage, abstains, covered accuracy."""
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_pred = np.asarray(y_pred).astype(np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ConfigError(f"y_true has {y_true.size} labels, y_pred has {y_pred.size}")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= n_classes):
        raise ConfigError(f"gold labels must be class indices in 0..{n_classes - 1}")
    if y_pred.size and (y_pred.min() < ABSTAIN or y_pred.max() >= n_classes):
        raise ConfigError(f"predictions must be class indices in 0..{n_classes - 1} or {ABSTAIN} (abstain)")
    n = y_true.size
    covered = y_pred != ABSTAIN
    correct = covered & (y_pred == y_true)
    # per-class F1 over all records: an abstain on a class-c record is a false negative for c
    tp = np.bincount(y_true[correct], minlength=n_classes).astype(np.float64)
    support = np.bincount(y_true, minlength=n_classes).astype(np.float64)
    predicted = np.bincount(y_pred[covered], minlength=n_classes).astype(np.float64)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    present = (support > 0) | (predicted > 0)
    n_covered = int(covered.sum())
    return {
        "n": int(n),
        "accuracy": float(correct.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "coverage": float(n_covered / n) if n else 0.0,
        "n_abstain": int(n - n_covered),
        "accuracy_on_covered": float(correct.sum() / n_covered) if n_covered else 0.0,
    }
