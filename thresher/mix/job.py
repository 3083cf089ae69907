"""The ``thresher mix`` jobs: RegMix from proxy runs already done, and baseline weights over a pool's groups.

``--from-runs`` fits a regressor to the runs, searches for the best mixture and writes ``OUT/mixture.yaml`` (weight
per group, method, regressor and its hyper-parameters, objective, seed, the search's settings, k-fold Spearman/RMSE
of the regressor), ``OUT/manifest.json`` (version, command, inputs with paths and sizes, counts) and, with
``predict``, ``OUT/predictions.csv`` (``index``, ``predicted``). ``--pool`` counts whitespace tokens per group and
writes a baseline's weights (and expected tokens and epochs per group under a token budget).
"""

from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path

import numpy as np
import yaml

from thresher.errors import ConfigError
from thresher.io.atomic import atomic_path, write_json
from thresher.io.provenance import versions
from thresher.jobs.rundir import claims_run_dir
from thresher.mix.regression import cross_validate, make_regressor
from thresher.mix.runs import MixtureTable, read_mixtures, read_runs, read_table
from thresher.mix.search import search_mixture
from thresher.run import Run
from thresher.selectors.budget import Budget


def _file_info(path: str | os.PathLike, rows: int) -> dict:
    p = Path(path)
    return {"path": str(path), "resolved_path": str(p.resolve()), "bytes": p.stat().st_size, "rows": rows}


def _write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def parse_token_budget(budget: str | int | float | None) -> float | None:
    """A budget such as '50M tokens' as a number of tokens (None stays None); counts and fractions are errors."""
    if budget is None:
        return None
    parsed = Budget.parse(budget)
    if parsed.kind != "tokens":
        raise ConfigError(f"a mixture's budget is a number of tokens (e.g. '50M tokens'), got {budget!r}")
    return parsed.value


@claims_run_dir("out")
def run_mix_from_runs(mixtures: str | os.PathLike, metrics: str | os.PathLike, objective: str,
                      out: str | os.PathLike, *, regressor: str = "gp", predict: str | os.PathLike | None = None,
                      seed: int = 0, folds: int = 5, n_samples: int = 100_000, top_k: int = 100,
                      strength: float = 1.0, budget: str | int | float | None = None,
                      prior: str | os.PathLike | None = None, command: list[str] | None = None) -> Run:
    """Fit ``regressor`` from the mixtures to metric ``objective`` (lower is better), search the simplex around
    ``prior`` (a one-row CSV of token shares or counts per group; default the runs' mean mixture) as RegMix does
    around the natural token distribution, and write the run directory ``out``; returns its :class:`Run`."""
    started = time.perf_counter()
    runs = read_runs(mixtures, metrics)
    y = runs.objective(objective)
    to_predict = read_mixtures(predict) if predict is not None else None
    if to_predict is not None:
        to_predict = _same_groups(to_predict, runs.groups, runs.mixtures_path)
    if prior is not None:
        table = _same_groups(read_table(prior, "prior"), runs.groups, runs.mixtures_path)
        if len(table.index) != 1 or np.any(table.values < 0) or table.values.sum() <= 0:
            raise ConfigError(f"{table.path}: the prior is one row of non-negative token shares or counts per group")
        prior_weights, prior_name = table.values[0] / table.values.sum(), str(prior)
    else:
        prior_weights, prior_name = runs.weights.mean(axis=0), "mean of the runs' mixtures"
    tokens = parse_token_budget(budget)
    diagnostics = cross_validate(regressor, runs.weights, y, folds=folds, seed=seed)
    model = make_regressor(regressor, seed=seed).fit(runs.weights, y)
    fitted = time.perf_counter()
    found = search_mixture(model, prior_weights, n_samples=n_samples, top_k=top_k, strength=strength, seed=seed)
    searched = time.perf_counter()
    best_run = int(np.argmin(y))
    mixture = {
        "method": "regmix",
        "regressor": regressor,
        "objective": objective,
        "seed": seed,
        "weights": {g: round(float(w), 6) for g, w in zip(runs.groups, found.weights)},
        **({"budget_tokens": int(tokens), "expected_tokens": {g: int(round(w * tokens)) for g, w in
                                                              zip(runs.groups, found.weights)}} if tokens else {}),
        "predicted_objective": round(found.predicted, 6),
        "best_run": {"index": runs.index[best_run], "objective": round(float(y[best_run]), 6),
                     "predicted": round(float(model.predict(runs.weights[best_run:best_run + 1])[0]), 6)},
        "cross_validation": {"folds": diagnostics["folds"], "spearman": round(diagnostics["spearman"], 4),
                             "rmse": round(diagnostics["rmse"], 6),
                             "fold_spearman_mean": round(diagnostics["fold_spearman_mean"], 4)},
        "search": {"prior": prior_name, "dirichlet_strength": strength, "n_samples": found.n_samples,
                   "top_k": found.top_k, "top_k_predicted": [round(float(found.top_k_predicted.min()), 6),
                                                             round(float(found.top_k_predicted.max()), 6)]},
        "regressor_params": _plain(model.params()),
    }
    out = Path(out)
    _write_text(yaml.safe_dump(mixture, sort_keys=False, allow_unicode=True), out / "mixture.yaml")
    outputs = {"mixture": "mixture.yaml"}
    if to_predict is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["index", "predicted"])
        writer.writerows([key, f"{value:.10g}"] for key, value in zip(to_predict.index,
                                                                      model.predict(to_predict.values)))
        _write_text(buffer.getvalue(), out / "predictions.csv")
        outputs["predictions"] = "predictions.csv"
    inputs = {"mixtures": _file_info(mixtures, len(runs.index)), "metrics": _file_info(metrics, len(runs.index))}
    if to_predict is not None:
        inputs["predict"] = _file_info(predict, len(to_predict.index))
    if prior is not None:
        inputs["prior"] = _file_info(prior, 1)
    extra_versions = {}
    if regressor == "lightgbm":
        import lightgbm

        extra_versions["lightgbm"] = lightgbm.__version__
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "mix", "method": "regmix",
        "inputs": inputs, "versions": {**versions(), **extra_versions},
        "counts": {"runs": len(runs.index), "groups": len(runs.groups), "metrics": len(runs.metric_names),
                   "predicted": len(to_predict.index) if to_predict is not None else 0},
        "timings": {"fit_and_cross_validate": round(fitted - started, 3), "search": round(searched - fitted, 3)},
        "outputs": outputs,
    }
    write_json(manifest, out / "manifest.json")
    return Run(out)


def _same_groups(table: MixtureTable, groups: list[str], runs_path: str) -> MixtureTable:
    """``table`` with its columns in the runs' group order; an error names the groups that differ."""
    missing = [g for g in groups if g not in table.columns]
    extra = [g for g in table.columns if g not in groups]
    if missing or extra:
        raise ConfigError(f"{table.path}: its groups differ from {runs_path}'s: "
                          + "; ".join(filter(None, [missing and f"missing {', '.join(missing)}",
                                                    extra and f"not in the runs {', '.join(extra)}"])))
    order = [table.columns.index(g) for g in groups]
    return MixtureTable(table.path, table.index, list(groups), table.values[:, order], table.lines)


def _plain(value: object) -> object:
    """Numbers and lists as plain Python (YAML without numpy tags), floats rounded for reading."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, float | np.floating):
        return round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return value


@claims_run_dir("out")
def run_mix_baseline(pool, out: str | os.PathLike, *, method: str, group_field: str = "domain",
                     budget: str | int | float | None = None, tau: float | None = None, max_epochs: float = 1.0,
                     command: list[str] | None = None) -> Run:
    """Baseline weights (proportional, uniform, temperature, unimax) from the whitespace tokens of each
    ``group_field`` value in ``pool`` (a :class:`~thresher.io.dataset.Dataset`); writes mixture.yaml and
    manifest.json into ``out``. Records without the field count under the group ``(missing)``."""
    from thresher.features.lengths import whitespace_token_counts
    from thresher.io.errors import ErrorLog
    from thresher.io.provenance import dataset_info
    from thresher.mix.baselines import baseline_weights, expected_tokens

    started = time.perf_counter()
    tokens_budget = parse_token_budget(budget)
    errors = ErrorLog(pool.on_error)
    tokens: dict[str, int] = {}
    records: dict[str, int] = {}
    for batch in pool.iter_batches(errors, extra_columns=[group_field]):
        groups = ["(missing)" if g is None else g for g in batch.column(group_field).to_pylist()]
        for group, n in zip(groups, whitespace_token_counts(batch.column("text")).tolist()):
            tokens[group] = tokens.get(group, 0) + n
            records[group] = records.get(group, 0) + 1
    if not tokens:
        raise ConfigError("the pool has no records to count tokens in")
    if set(tokens) == {"(missing)"}:
        raise ConfigError(f"no record has the field {group_field!r} (--group-field) to group by")
    names = sorted(tokens)
    counts = [tokens[g] for g in names]
    weights = baseline_weights(method, counts, tau=tau, budget=tokens_budget, max_epochs=max_epochs)
    mixture = {"method": method, **({"tau": tau} if method == "temperature" else {}),
               **({"max_epochs": max_epochs} if method == "unimax" else {}),
               "group_field": group_field, "weights": {g: round(float(w), 6) for g, w in zip(names, weights)},
               "pool_tokens": dict(zip(names, counts)), "pool_records": {g: records[g] for g in names}}
    if tokens_budget:
        drawn = expected_tokens(weights, tokens_budget, counts, max_epochs if method == "unimax" else None)
        mixture.update({"budget_tokens": int(tokens_budget),
                        "expected_tokens": {g: int(round(float(t))) for g, t in zip(names, drawn)},
                        "epochs": {g: round(float(t) / c, 4) if c else 0.0 for g, t, c in zip(names, drawn, counts)}})
    out = Path(out)
    _write_text(yaml.safe_dump(mixture, sort_keys=False, allow_unicode=True), out / "mixture.yaml")
    failed = errors.to_dict()
    manifest = {"command": command, "created_unix": int(time.time()), "job": "mix", "method": method,
                "inputs": {"pool": dataset_info(pool)}, "versions": versions(),
                "counts": {"input_records": sum(records.values()) + failed["total"],
                           "counted": sum(records.values()), "failed": failed["total"], "pool_failed": failed,
                           "groups": len(names), "tokens": sum(counts)},
                "timings": {"count_tokens": round(time.perf_counter() - started, 3)},
                "outputs": {"mixture": "mixture.yaml"}}
    write_json(manifest, out / "manifest.json")
    return Run(out)
