"""thresher: decide which records a model should be trained on, labelled with, and evaluated on.

    import thresher as th
    pool = th.read("pool/*.parquet")
    target = th.read("target.jsonl")
    run = th.select(pool, target=target, method="dsir", budget="5%", seed=0, out="runs/wiki")
    print(run.summary())

    scored = th.score(pool, ["gopher", "langid", "classifier"], target=target, out="runs/scored")
    top = scored.reselect(out="runs/top", where="gopher_pass and lang == 'en'", score="classifier", budget="5%")
    kept = th.deduplicate(pool, out="runs/dedup")  # (th.dedup is the dedup subpackage)
    ev = th.evaluate(pool, target=target, heldout="heldout.jsonl", methods="dsir,classifier", out="runs/ev")
    print(ev.summary())  # vs random and stratified at 1%, 5%, 20%, 5 seeds, with intervals and verdicts
"""

from __future__ import annotations

from thresher._version import __version__
from thresher.api import deduplicate, embed, evaluate, score, select
from thresher.errors import ConfigError, InputError, ThresherError
from thresher.io.dataset import Dataset, read
from thresher.pipeline import Dedup, Filter, Pipeline, Score, Select
from thresher.run import Run

__all__ = ["__version__", "read", "select", "score", "embed", "deduplicate", "evaluate", "Pipeline", "Dedup",
           "Score", "Filter", "Select", "Dataset", "Run", "ThresherError", "ConfigError", "InputError"]
