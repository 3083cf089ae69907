"""Data mixing: in what proportions to train on each group (domain, source, language, quality bucket).

``baselines``: proportional, uniform, temperature and UniMax weights from token counts per group.
``runs``: proxy runs someone already did, read from RegMix's published CSV format.
``regression``: regressors from mixture weights to an objective (LightGBM as RegMix, a Gaussian process, the
exponential mixing law), with cross-validated diagnostics. ``search``: RegMix's search of the simplex.
``job``: the ``thresher mix`` run directories (mixture.yaml, manifest.json, predictions.csv).
"""

from __future__ import annotations

from thresher.mix.baselines import BASELINES, baseline_weights, expected_tokens
from thresher.mix.regression import REGRESSORS, cross_validate, make_regressor
from thresher.mix.runs import MixtureRuns, read_mixtures, read_runs
from thresher.mix.search import SearchResult, search_mixture

__all__ = ["BASELINES", "baseline_weights", "expected_tokens", "REGRESSORS", "make_regressor", "cross_validate",
           "MixtureRuns", "read_mixtures", "read_runs", "SearchResult", "search_mixture"]
