"""thresher: decide which records a model should be trained on, labelled with, and evaluated on.

    import thresher as th
    pool = th.read("pool/*.parquet")
    target = th.read("target.jsonl")
    run = th.select(pool, target=target, method="dsir", budget="5%", seed=0, out="runs/wiki")
    print(run.summary())

    scored = th.score(pool, ["gopher", "langid", "classifier"], target=target, out="runs/scored")
    top = th.reselect(scored, out="runs/top", where="gopher_pass and lang == 'en'", score="classifier", budget="5%")
    kept = th.deduplicate(pool, out="runs/dedup")  # (th.dedup is the dedup subpackage)
    ev = th.evaluate(pool, target=target, heldout="heldout.jsonl", methods="dsir,classifier", out="runs/ev")
    print(ev.summary())  # vs random and stratified at 1%, 5%, 20%, 5 seeds, with intervals and verdicts
    labels = th.label(pool, "lfs.yaml", out="runs/labels", dev="dev.parquet")  # weak supervision; @th.lf for LFs
    audit = th.audit("labelled.parquet", out="runs/audit")  # label issues, label quality, outliers by id
    mix = th.mix_from_runs("mixtures.csv", "metrics.csv", "pile_cc_loss", out="runs/mix")  # RegMix from proxy runs
"""

from __future__ import annotations

import sys
import types

from thresher._version import __version__
from thresher.engine import engine  # light (no numpy); eager, as a lazy name would be shadowed by the subpackage
from thresher.errors import ConfigError, InputError, ThresherError

#: Where each public name lives: imported on first use, so that ``import thresher`` (and every CLI command, which
#: imports the package first) does not pay for numpy, pyarrow and every job's modules before it needs them.
_LAZY = {
    **{name: "thresher.api" for name in ("compare", "deduplicate", "embed", "evalset_check", "evalset_estimate",
                                         "evaluate", "evaluate_active", "evaluate_curation", "generate_lfs",
                                         "mix_from_runs", "mixture_weights", "reselect", "score", "select")},
    "Dataset": "thresher.io.dataset", "read": "thresher.io.dataset",
    **{name: "thresher.pipeline" for name in ("Dedup", "Filter", "Pipeline", "Score", "Select")},
    "Run": "thresher.run",
}

__all__ = ["__version__", "read", "select", "reselect", "compare", "score", "embed", "deduplicate", "evaluate",
           "evaluate_curation", "evaluate_active",
           "label", "lf", "generate_lfs", "audit", "mix", "mix_from_runs", "mixture_weights", "evalset",
           "evalset_estimate",
           "evalset_check",
           "Pipeline", "Dedup", "Score", "Filter", "Select", "Dataset", "Run", "ThresherError",
           "ConfigError", "InputError", "engine"]


#: Subpackages that are also API functions: ``thresher.label`` / ``th.label(...)``, ``thresher.mix`` / ``th.mix(...)``,
#: ``thresher.audit`` / ``th.audit(...)``.
_CALLABLE = ("label", "mix", "evalset", "audit")


class _CallableModule(types.ModuleType):
    """A subpackage that is also the API function of its name (``th.label(...)``, ``th.mix(...)``)."""

    def __call__(self, *args, **kwargs):
        import thresher.api

        return getattr(thresher.api, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


class _Thresher(types.ModuleType):
    """Makes the ``thresher.label`` and ``thresher.mix`` subpackages callable as soon as they are imported (by any
    route), so importing them lazily keeps ``import thresher`` light (they load scipy) while ``th.label(...)`` and
    ``th.mix(...)`` still work; and keeps a subpackage named like a lazy API function (``thresher.evaluate``) from
    replacing it."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return  # importing the thresher.evaluate subpackage must not hide th.evaluate (the function, lazily)
        if name in _CALLABLE and isinstance(value, types.ModuleType) and not isinstance(value, _CallableModule):
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Thresher


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # once: later lookups are plain attribute reads
        return value
    if name == "label":
        import thresher.label

        return thresher.label
    if name in ("mix", "evalset", "audit"):
        import importlib

        return importlib.import_module(f"thresher.{name}")
    if name == "lf":
        from thresher.label.lfs import lf

        return lf
    raise AttributeError(f"module 'thresher' has no attribute {name!r}")
