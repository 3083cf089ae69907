"""Data mixing: in what proportions to train on each group (domain, source, language, quality bucket).

``baselines``: proportional, uniform, temperature and UniMax weights from token counts per group.
``runs``: proxy runs someone already did, read from RegMix's published CSV format.
``regression``: regressors from mixture weights to an objective (LightGBM as RegMix, a Gaussian process, the
exponential mixing law), with cross-validated diagnostics. ``search``: RegMix's search of the simplex.
``proxy``: n-gram proxies on sampled mixtures of a pool (RegMix end to end); ``tiny_lm``: a small transformer
proxy; ``command``: the user's trainer as the proxy. ``online``: an n-gram proxy that trains step by step, which
``doremi`` (Group DRO on the excess loss) and ``aioli`` (Aioli and Skill-It: interactions from sweeps) steer.
``job``: the ``thresher mix`` run directories (mixture.yaml, runs.parquet, trajectory.parquet, manifest.json,
predictions.csv, report.html).
"""

from __future__ import annotations

from thresher.mix.baselines import BASELINES, baseline_weights, expected_tokens
from thresher.mix.regression import REGRESSORS, cross_validate, make_regressor
from thresher.mix.runs import MixtureRuns, read_mixtures, read_runs
from thresher.mix.search import SearchResult, search_mixture

__all__ = ["BASELINES", "baseline_weights", "expected_tokens", "REGRESSORS", "make_regressor", "cross_validate",
           "MixtureRuns", "read_mixtures", "read_runs", "SearchResult", "search_mixture"]
