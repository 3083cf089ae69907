"""Label models: turn a label matrix of noisy LF votes into class probabilities, and the registry that names them."""

from __future__ import annotations

from thresher.errors import ConfigError
from thresher.label.models.base import LabelModel, estimate_class_balance
from thresher.label.models.dawid_skene import DawidSkene
from thresher.label.models.firing import ClassConditionalModel
from thresher.label.models.majority import MajorityVote, WeightedMajorityVote
from thresher.label.models.metal import MetalModel
from thresher.label.models.triplet import TripletModel

LABEL_MODELS: dict[str, type[LabelModel]] = {
    "majority_vote": MajorityVote,
    "weighted_majority_vote": WeightedMajorityVote,
    "dawid_skene": DawidSkene,
    "metal": MetalModel,
    "triplet": TripletModel,
    "class_conditional": ClassConditionalModel,
}

#: class_conditional: models abstains and unipolar LFs, stays at the Bayes oracle on synthetic votes
#: (bench/results/label_synthetic.md) and, anchored on the majority vote when its fit check fails, is never below
#: majority vote beyond noise on the eleven real LF sets (bench/results/label_real.md, leave-one-task-out there).
DEFAULT_LABEL_MODEL = "class_conditional"


def make_label_model(name: str = DEFAULT_LABEL_MODEL, **params) -> LabelModel:
    """A label model by registry name, with validated parameters; unknown names list the valid ones."""
    if name not in LABEL_MODELS:
        raise ConfigError(f"unknown label model {name!r}; choose from {', '.join(LABEL_MODELS)}")
    return LABEL_MODELS[name]().set_params(**params)  # defaults first, then the user's values, validated


__all__ = ["LabelModel", "LABEL_MODELS", "DEFAULT_LABEL_MODEL", "make_label_model", "MajorityVote",
           "WeightedMajorityVote", "DawidSkene", "MetalModel", "TripletModel",
           "ClassConditionalModel", "estimate_class_balance"]
