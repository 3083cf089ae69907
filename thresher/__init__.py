"""thresher: decide which records a model should be trained on, labelled with, and evaluated on.

    import thresher as th
    pool = th.read("pool/*.parquet")
    target = th.read("target.jsonl")
    run = th.select(pool, target=target, method="dsir", budget="5%", seed=0, out="runs/wiki")
    print(run.summary())
"""

from __future__ import annotations

from thresher._version import __version__
from thresher.api import select
from thresher.errors import ConfigError, InputError, ThresherError
from thresher.io.dataset import Dataset, read
from thresher.run import Run

__all__ = ["__version__", "read", "select", "Dataset", "Run", "ThresherError", "ConfigError", "InputError"]
