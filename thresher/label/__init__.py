"""Weak supervision: labelling functions vote on records, a label model turns the votes into labels.

    from thresher.label import LabelMatrix, make_label_model, label_metrics
    L = LabelMatrix.from_dense(votes, n_classes=3)        # -1 = abstain
    model = make_label_model().fit(L)  # DEFAULT_LABEL_MODEL (class_conditional); class balance from the votes
    y = model.predict(L, abstain="abstain", ties="prior") # -1 where every LF abstained
    print(model.class_balance_, model.class_balance_source_, label_metrics(y_true, y, 3))
"""

from __future__ import annotations

from thresher.label.matrix import ABSTAIN, LabelMatrix, as_label_matrix
from thresher.label.metrics import label_metrics
from thresher.label.models import DEFAULT_LABEL_MODEL, LABEL_MODELS, LabelModel, make_label_model

__all__ = ["ABSTAIN", "LabelMatrix", "as_label_matrix", "LabelModel", "LABEL_MODELS", "DEFAULT_LABEL_MODEL",
           "make_label_model", "label_metrics"]
