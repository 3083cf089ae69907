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
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import yaml

from thresher.engine import make_engine
from thresher.engine.pieces import map_pieces
from thresher.engine.plan import GLOBAL, MAP, Plan, Stage, Values, stage_seconds
from thresher.errors import ConfigError
from thresher.features.lengths import whitespace_token_counts
from thresher.io.atomic import atomic_path, write_json, write_parquet
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_info, versions
from thresher.jobs.rundir import claims_run_dir
from thresher.mix.baselines import baseline_weights, expected_tokens
from thresher.mix.proxy import MIN_RUNS, PROXIES, ProxySettings, Target, check_groups, regmix_plan, target_names
from thresher.mix.regression import BlendedMixingLaws, cross_validate, make_regressor
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


def _read(v: Values) -> dict:
    runs = read_runs(v.mixtures, v.metrics)
    to_predict = read_mixtures(v.predict) if v.predict is not None else None
    if to_predict is not None:
        to_predict = _same_groups(to_predict, runs.groups, runs.mixtures_path)
    if v.prior is not None:
        table = _same_groups(read_table(v.prior, "prior"), runs.groups, runs.mixtures_path)
        if len(table.index) != 1 or np.any(table.values < 0) or table.values.sum() <= 0:
            raise ConfigError(f"{table.path}: the prior is one row of non-negative token shares or counts per group")
        prior_weights, prior_name = table.values[0] / table.values.sum(), str(v.prior)
    else:
        prior_weights, prior_name = runs.weights.mean(axis=0), "mean of the runs' mixtures"
    return {"runs": runs, "y": runs.objective(v.objective), "to_predict": to_predict, "prior_weights": prior_weights,
            "prior_name": prior_name}


def _fit(v: Values) -> dict:
    diagnostics = cross_validate(v.regressor, v.runs.weights, v.y, folds=v.folds, seed=v.seed)
    return {"diagnostics": diagnostics, "model": make_regressor(v.regressor, seed=v.seed).fit(v.runs.weights, v.y)}


def _search(v: Values) -> dict:
    return {"found": search_mixture(v.model, v.prior_weights, n_samples=v.n_samples, top_k=v.top_k,
                                    strength=v.strength, seed=v.seed)}


def _predict(v: Values) -> dict:
    if v.to_predict is None:
        return {"predicted": None}
    return {"predicted": v.model.predict(v.to_predict.values)}


READ = Stage("read_runs", GLOBAL, "the mixtures and metrics tables (RegMix's format), checked row by row; --predict "
             "and --prior tables", _read, ("mixtures", "metrics", "objective", "predict", "prior"),
             ("runs", "y", "to_predict", "prior_weights", "prior_name"))
FIT = Stage("fit", GLOBAL, "k-fold cross-validation of the regressor, then its fit on every run", _fit,
            ("runs", "y", "regressor", "folds", "seed"), ("diagnostics", "model"))
SEARCH = Stage("search", GLOBAL, "Dirichlet samples around the prior, the top-k lowest predictions averaged", _search,
               ("model", "prior_weights", "n_samples", "top_k", "strength", "seed"), ("found",))
PREDICT = Stage("predict", GLOBAL, "the objective predicted for the --predict mixtures", _predict,
                ("model", "to_predict"), ("predicted",))
FROM_RUNS_PLAN = Plan("mix --from-runs", ("mixtures", "metrics", "objective", "predict", "prior", "regressor", "folds",
                                          "seed", "n_samples", "top_k", "strength"), (READ, FIT, SEARCH, PREDICT))


def regmix_mixture(v: Values, *, objective: str, regressor: str, seed: int, strength: float,
                   tokens: float | None, method: str = "regmix") -> dict:
    """mixture.yaml of a RegMix search (from the plan's ``runs``, ``y``, ``model``, ``found``, ``diagnostics`` and
    ``prior_name``): weights, expected tokens under the budget, the prediction, the best run, the diagnostics."""
    runs, y, model, found, diagnostics = v.runs, v.y, v.model, v.found, v.diagnostics
    best_run = int(np.argmin(y))
    return {
        "method": method,
        "regressor": regressor,
        "objective": objective,
        "seed": seed,
        **_weights(runs.groups, found.weights, tokens),
        "predicted_objective": round(found.predicted, 6),
        "best_run": {"index": runs.index[best_run], "objective": round(float(y[best_run]), 6),
                     "predicted": round(float(model.predict(runs.weights[best_run:best_run + 1])[0]), 6)},
        "cross_validation": {"folds": diagnostics["folds"], "spearman": round(diagnostics["spearman"], 4),
                             "rmse": round(diagnostics["rmse"], 6),
                             "fold_spearman_mean": round(diagnostics["fold_spearman_mean"], 4)},
        "search": {"prior": v.prior_name, "dirichlet_strength": strength, "n_samples": found.n_samples,
                   "top_k": found.top_k, "top_k_predicted": [round(float(found.top_k_predicted.min()), 6),
                                                             round(float(found.top_k_predicted.max()), 6)]},
        "regressor_params": _plain(model.params()),
    }


def regressor_versions(regressor: str) -> dict:
    """thresher's versions, plus LightGBM's when it fitted the runs."""
    if regressor != "lightgbm":
        return versions()
    import lightgbm

    return {**versions(), "lightgbm": lightgbm.__version__}


@claims_run_dir("out")
def run_mix_from_runs(mixtures: str | os.PathLike, metrics: str | os.PathLike, objective: str,
                      out: str | os.PathLike, *, regressor: str = "gp", predict: str | os.PathLike | None = None,
                      seed: int = 0, folds: int = 5, n_samples: int = 100_000, top_k: int = 100,
                      strength: float = 1.0, budget: str | int | float | None = None,
                      prior: str | os.PathLike | None = None, command: list[str] | None = None,
                      report: bool = True) -> Run:
    """Fit ``regressor`` from the mixtures to metric ``objective`` (lower is better), search the simplex around
    ``prior`` (a one-row CSV of token shares or counts per group; default the runs' mean mixture) as RegMix does
    around the natural token distribution, and write the run directory ``out``; returns its :class:`Run`."""
    tokens = parse_token_budget(budget)
    v = FROM_RUNS_PLAN.run(mixtures=mixtures, metrics=metrics, objective=objective, predict=predict, prior=prior,
                           regressor=regressor, folds=folds, seed=seed, n_samples=n_samples, top_k=top_k,
                           strength=strength)
    runs, to_predict = v.runs, v.to_predict
    mixture = regmix_mixture(v, objective=objective, regressor=regressor, seed=seed, strength=strength,
                             tokens=tokens)
    out = Path(out)
    _write_text(yaml.safe_dump(mixture, sort_keys=False, allow_unicode=True), out / "mixture.yaml")
    outputs = {"mixture": "mixture.yaml"}
    if to_predict is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["index", "predicted"])
        writer.writerows([key, f"{value:.10g}"] for key, value in zip(to_predict.index, v.predicted))
        _write_text(buffer.getvalue(), out / "predictions.csv")
        outputs["predictions"] = "predictions.csv"
    inputs = {"mixtures": _file_info(mixtures, len(runs.index)), "metrics": _file_info(metrics, len(runs.index))}
    if to_predict is not None:
        inputs["predict"] = _file_info(predict, len(to_predict.index))
    if prior is not None:
        inputs["prior"] = _file_info(prior, 1)
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "mix", "method": "regmix",
        "inputs": inputs, "versions": regressor_versions(regressor),
        "counts": {"runs": len(runs.index), "groups": len(runs.groups), "metrics": len(runs.metric_names),
                   "predicted": len(to_predict.index) if to_predict is not None else 0},
        "timings": stage_seconds(v.stages), "stages": v.stages,
        "outputs": outputs,
    }
    return _finish(out, manifest, report, v)


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


def count_group_tokens(batch, where, group_field: str) -> tuple[Counter, Counter]:
    """Engine task: whitespace tokens and records per ``group_field`` value of one batch."""
    groups = ["(missing)" if g is None else g for g in batch.column(group_field).to_pylist()]
    tokens: Counter = Counter()
    for group, n in zip(groups, whitespace_token_counts(batch.column("text")).tolist()):
        tokens[group] += n
    return tokens, Counter(groups)


def _summed(parts: list[tuple[Counter, Counter]]) -> tuple[Counter, Counter]:
    """A piece's batches' counts summed where the task ran (only the sums travel)."""
    return sum((p[0] for p in parts), Counter()), sum((p[1] for p in parts), Counter())


def _count(v: Values) -> dict:
    errors = ErrorLog(v.pool.on_error)
    tokens: Counter = Counter()
    records: Counter = Counter()
    for _, (t, r) in map_pieces(v.pool, v.engine, count_group_tokens, (v.group_field,), errors, [v.group_field],
                                combine=_summed):
        tokens.update(t)
        records.update(r)
    check_groups(list(tokens), v.group_field)
    return {"tokens": tokens, "records": records, "failed": errors.to_dict()}


def _weigh(v: Values) -> dict:
    names = sorted(v.tokens)
    counts = [v.tokens[g] for g in names]
    return {"names": names, "weights": baseline_weights(v.method, counts, tau=v.tau, budget=v.tokens_budget,
                                                        max_epochs=v.max_epochs)}


COUNT = Stage("count_tokens", MAP, "whitespace tokens and records per group, each task over its own piece of the "
              "pool", _count, ("pool", "group_field", "engine"), ("tokens", "records", "failed"))
WEIGH = Stage("weigh", GLOBAL, "the baseline's weight per group from the pool's tokens per group", _weigh,
              ("tokens", "method", "tau", "tokens_budget", "max_epochs"), ("names", "weights"))
BASELINE_PLAN = Plan("mix --method", ("pool", "group_field", "engine", "method", "tau", "tokens_budget",
                                      "max_epochs"), (COUNT, WEIGH))


@claims_run_dir("out")
def run_mix_baseline(pool, out: str | os.PathLike, *, method: str, group_field: str = "domain",
                     budget: str | int | float | None = None, tau: float | None = None, max_epochs: float = 1.0,
                     workers: int | None = None, command: list[str] | None = None, report: bool = True) -> Run:
    """Baseline weights (proportional, uniform, temperature, unimax) from the whitespace tokens of each
    ``group_field`` value in ``pool`` (a :class:`~thresher.io.dataset.Dataset`); writes mixture.yaml and
    manifest.json into ``out``. Records without the field count under the group ``(missing)``."""
    tokens_budget = parse_token_budget(budget)
    with make_engine(workers) as engine:
        v = BASELINE_PLAN.run(pool=pool, group_field=group_field, engine=engine, method=method, tau=tau,
                              tokens_budget=tokens_budget, max_epochs=max_epochs)
        engine_info = engine.describe()
    names, weights, records, failed = v.names, v.weights, v.records, v.failed
    counts = [v.tokens[g] for g in names]
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
    manifest = {"command": command, "created_unix": int(time.time()), "job": "mix", "method": method,
                "inputs": {"pool": dataset_info(pool)}, "versions": versions(), "engine": engine_info,
                "counts": {"input_records": sum(records.values()) + failed["total"],
                           "counted": sum(records.values()), "failed": failed["total"], "pool_failed": failed,
                           "groups": len(names), "tokens": sum(counts)},
                "timings": stage_seconds(v.stages), "stages": v.stages, "outputs": {"mixture": "mixture.yaml"}}
    return _finish(out, manifest, report)


REGMIX_PLAN = regmix_plan(FIT, SEARCH)


def _fit_laws(v: Values) -> dict:
    y_targets = v.runs.metrics[:, 1:1 + len(v.targets)]  # the target:NAME columns, in the targets' order

    def make() -> BlendedMixingLaws:
        return BlendedMixingLaws([t.weight for t in v.targets], v.seed)

    return {"diagnostics": cross_validate("mixing_laws", v.runs.weights, v.y, folds=v.folds, seed=v.seed, make=make,
                                          fit_on=y_targets),
            "model": make().fit(v.runs.weights, y_targets)}


FIT_LAWS = Stage("fit", GLOBAL, "one exponential mixing law per target set, blended by the targets' weights; k-fold "
                 "cross-validation of the blend", _fit_laws, ("runs", "y", "targets", "regressor", "folds", "seed"),
                 ("diagnostics", "model"))
def _targets(targets: list, target_weights: list[float] | None, method: str) -> list[Target]:
    """The target sets, named by their files and weighted (normalised) as the objective blends them."""
    if not targets:
        raise ConfigError(f"{method} over a pool needs at least one --target (what the mixture should be good at)")
    weights = [1.0] * len(targets) if target_weights is None else [float(w) for w in target_weights]
    if len(weights) != len(targets) or any(not np.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"--target-weights: one weight >= 0 per --target ({len(targets)}), not all 0; got "
                          f"{target_weights}")
    names = target_names([t.paths[0] for t in targets])
    return [Target(n, t, w / sum(weights)) for n, t, w in zip(names, targets, weights)]


#: Methods that train proxies on sampled mixtures and fit them: the fit stage of each.
FITTED_METHODS = {"regmix": FIT, "mixing_laws": FIT_LAWS}


def _csv_text(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


@claims_run_dir("out")
def run_mix_regmix(pool, targets: list, out: str | os.PathLike, *, group_field: str = "domain",
                   target_weights: list[float] | None = None, proxy: str = "ngram", runs: int = 16,
                   proxy_tokens: str | int | float = "2M tokens", budget: str | int | float | None = None,
                   regressor: str = "gp", seed: int = 0, folds: int = 5, n_samples: int = 100_000,
                   top_k: int = 100, strength: float = 1.0, order: int = 3, max_epochs: float = 1.0,
                   workers: int | None = None, command: list[str] | None = None, method: str = "regmix",
                   proxy_command: str | None = None, objective: str = "loss",
                   proxy_timeout: float | None = None, tiny_lm: dict | None = None, report: bool = True) -> Run:
    """RegMix end to end over ``pool`` (a :class:`~thresher.io.dataset.Dataset` with a ``group_field``): ``runs``
    proxy n-gram LMs, each trained on ``proxy_tokens`` drawn by one sampled mixture and measured on ``targets``
    (Datasets; the objective is their ``target_weights`` blend) and on each group's held-out slice; the regressor
    fitted on them and the simplex searched around the natural mixture. Writes ``out/runs.parquet``,
    ``out/mixtures.csv`` and ``out/metrics.csv`` (RegMix's format, for ``--from-runs``), ``out/mixture.yaml`` and
    ``out/manifest.json``; returns the :class:`Run`. Outputs do not depend on ``workers``. ``method="mixing_laws"``
    fits one exponential mixing law per target instead (Data Mixing Laws) and minimises their weighted sum.
    ``proxy_command``: the user's trainer per mixture instead of the n-gram LM (:mod:`thresher.mix.command`; its
    data in ``out/proxy_data``), whose metrics.json holds ``loss:TARGET`` per target or the ``objective`` metric.
    ``proxy="tiny_lm"``: a small transformer per mixture (:mod:`thresher.mix.tiny_lm`; ``tiny_lm``: its
    :class:`~thresher.mix.tiny_lm.TinyLMConfig` fields) instead of the n-gram LM."""
    if method not in FITTED_METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(FITTED_METHODS)}")
    if method == "mixing_laws":
        regressor = "mixing_laws"
    tiny = _tiny_config(proxy, tiny_lm)
    if proxy_command is not None:
        proxy, tiny = "command", None
    if runs < MIN_RUNS:
        raise ConfigError(f"--runs {runs}: regmix needs at least {MIN_RUNS} proxy runs (the regressor is "
                          "cross-validated on them)")
    chosen = _targets(targets, target_weights, method)
    settings = _proxy_settings(proxy_tokens, order=order, max_epochs=max_epochs, proxy=proxy, tiny=tiny)
    tokens = parse_token_budget(budget)
    fit = FITTED_METHODS[method]
    plan, extra = regmix_plan(fit, SEARCH), {}
    if proxy == "command":
        from thresher.mix.command import command_plan

        plan = command_plan(fit, SEARCH)
        extra = {"command": {"template": proxy_command, "workdir": str(Path(out) / "proxy_data"),
                             "objective": objective, "timeout": proxy_timeout}}
    with make_engine(workers) as engine:
        v = plan.run(pool=pool, group_field=group_field, engine=engine, targets=chosen, settings=settings,
                     n_runs=runs, seed=seed, regressor=regressor, folds=folds, n_samples=n_samples, top_k=top_k,
                     strength=strength, **extra)
        engine_info = engine.describe()
    groups, done = v.names, v.runs
    out = Path(out)
    columns = {"run": np.arange(len(done.index), dtype=np.int64),
               **{f"weight:{g}": done.weights[:, j] for j, g in enumerate(groups)},
               **{f"tokens:{g}": v.run_tokens[:, j] for j, g in enumerate(groups)},
               **{m: done.metrics[:, j] for j, m in enumerate(done.metric_names)}}
    write_parquet(pa.table(columns), out / "runs.parquet")
    _write_text(_csv_text(["index", *groups], ([i, *(f"{w:.10g}" for w in row)] for i, row in
                                                zip(done.index, done.weights))), out / "mixtures.csv")
    _write_text(_csv_text(["index", *done.metric_names], ([i, *(f"{x:.10g}" for x in row)] for i, row in
                                                            zip(done.index, done.metrics))), out / "metrics.csv")
    mixture = regmix_mixture(v, objective="target", regressor=regressor, seed=seed, strength=strength, tokens=tokens,
                             method=method)
    mixture.update({
        "group_field": group_field,
        "targets": [{"name": t.name, "paths": t.dataset.paths, "weight": round(t.weight, 6),
                     "records": c["records"]} for t, c in zip(chosen, v.target_counts)],
        "proxy": {"kind": proxy, **({"command": proxy_command, "objective": objective} if proxy == "command" else
                                    {"order": order, "vocabulary": v.vocab_size}),
                  **({"tiny_lm": {k: val for k, val in asdict(tiny).items() if k != "seed"}} if tiny else {}),
                  "tokens": int(settings.proxy_tokens), "runs": runs, "max_epochs": max_epochs,
                  "heldout_per_group": {"fraction": settings.heldout_fraction, "max_tokens": settings.heldout_tokens}},
        **_pool_shares(v),
    })
    mixture["natural"].update({"objective": round(float(v.y[0]), 6),
                               "predicted": round(float(v.model.predict(v.prior_weights[None, :])[0]), 6)})
    _write_text(yaml.safe_dump(_plain(mixture), sort_keys=False, allow_unicode=True), out / "mixture.yaml")
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "mix", "method": method,
        "inputs": {"pool": dataset_info(pool), "targets": [dataset_info(t.dataset) for t in chosen]},
        "versions": regressor_versions(regressor), "engine": engine_info,
        "counts": _read_counts(v, heldout_records={g: len(r) for g, r in zip(groups, v.heldout_rows)},
                               target_overlap=v.target_overlap, targets=v.target_counts, runs=len(done.index),
                               metrics=len(done.metric_names)),
        "timings": stage_seconds(v.stages), "proxy_run_seconds": [round(s, 3) for s in v.run_seconds],
        "stages": v.stages,
        "outputs": {"mixture": "mixture.yaml", "runs": "runs.parquet", "mixtures": "mixtures.csv",
                    "metrics": "metrics.csv"},
    }
    return _finish(out, manifest, report, v)


def _finish(out: Path, manifest: dict, report: bool, v: Values | None = None) -> Run:
    """The run's cross-validation table (a fitted method: every run's objective and its out-of-fold prediction),
    manifest.json, then report.html (unless ``report`` is False)."""
    if v is not None and "diagnostics" in v:
        rows = ([i, f"{y:.10g}", f"{p:.10g}"] for i, y, p in zip(v.runs.index, v.y, v.diagnostics["predicted"]))
        _write_text(_csv_text(["index", "objective", "predicted"], rows), out / "cross_validation.csv")
        manifest["outputs"]["cross_validation"] = "cross_validation.csv"
    write_json(manifest, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return Run(out)


def _tiny_config(proxy: str, tiny_lm: dict | None):
    """The tiny LM's :class:`~thresher.mix.tiny_lm.TinyLMConfig` from ``--tiny-lm KEY=VALUE`` settings (None for
    another proxy, which takes none)."""
    if proxy not in PROXIES:
        raise ConfigError(f"unknown proxy {proxy!r}; choose one of {', '.join(PROXIES)}")
    if proxy != "tiny_lm":
        if tiny_lm:
            raise ConfigError(f"--tiny-lm settings are for --proxy tiny_lm, not {proxy}")
        return None
    from thresher.mix.tiny_lm import TinyLMConfig

    unknown = sorted(set(tiny_lm or {}) - set(TinyLMConfig.__dataclass_fields__) - {"seed"})
    if unknown or "seed" in (tiny_lm or {}):
        raise ConfigError(f"tiny_lm: unknown setting(s) {', '.join(unknown or ['seed (use --seed)'])}; "
                          f"choose from {', '.join(f for f in TinyLMConfig.__dataclass_fields__ if f != 'seed')}")
    return TinyLMConfig(**(tiny_lm or {}))


def _proxy_settings(proxy_tokens: str | int | float, **fields: object) -> ProxySettings:
    """The proxies' settings, with ``--proxy-tokens`` parsed and checked."""
    settings = ProxySettings(proxy_tokens=parse_token_budget(proxy_tokens), **fields)
    if settings.proxy_tokens is None or settings.proxy_tokens < 1:
        raise ConfigError(f"--proxy-tokens must be a positive number of tokens, got {proxy_tokens!r}")
    return settings


def _check_online(method: str, steps: int, eta: float, smoothing: float) -> None:
    if steps < 1 or not eta > 0 or not 0 <= smoothing < 1:
        raise ConfigError(f"{method}: steps >= 1, eta > 0 and 0 <= smoothing < 1; got {steps}, {eta}, {smoothing}")


def _online_proxy(v: Values, settings: ProxySettings) -> dict:
    """mixture.yaml's ``proxy`` entry of an online method."""
    return {**v.proxy_spec.describe(), "tokens": int(settings.proxy_tokens), "max_epochs": settings.max_epochs}


def _weights(groups: list[str], weights: np.ndarray, tokens: float | None) -> dict:
    """mixture.yaml's weights, and under a token budget the expected tokens per group."""
    return {"weights": {g: round(float(w), 6) for g, w in zip(groups, weights)},
            **({"budget_tokens": int(tokens), "expected_tokens": {g: int(round(w * tokens)) for g, w in
                                                                  zip(groups, weights)}} if tokens else {})}


def _pool_shares(v: Values) -> dict:
    """mixture.yaml's natural weights and training tokens per group of a proxy plan."""
    return {"natural": {"weights": {g: round(float(w), 6) for g, w in zip(v.names, v.prior_weights)}},
            "pool_tokens": {g: int(t) for g, t in zip(v.names, v.train_tokens)}}


def _read_counts(v: Values, **more: object) -> dict:
    """The manifest's counts of a proxy plan: every input record read, failed or used."""
    read, failed = len(v.group_of), v.failed
    return {"input_records": read + failed["total"], "read": read, "failed": failed["total"], "pool_failed": failed,
            "groups": len(v.names), "records_used": len(v.needed), **more}


@claims_run_dir("out")
def run_mix_doremi(pool, out: str | os.PathLike, *, group_field: str = "domain",
                   proxy_tokens: str | int | float = "2M tokens", budget: str | int | float | None = None,
                   steps: int = 20, eta: float = 1.0, smoothing: float = 1e-3, seed: int = 0, order: int = 3,
                   max_epochs: float = 1.0, proxy: str = "ngram", tiny_lm: dict | None = None,
                   workers: int | None = None, command: list[str] | None = None, report: bool = True) -> Run:
    """DoReMi over ``pool``'s ``group_field`` values with proxies that train online (:mod:`thresher.mix.doremi`;
    ``proxy``: ``ngram`` or ``tiny_lm`` with its ``tiny_lm`` settings): a reference on the natural mixture, then
    Group DRO on the excess loss for ``steps`` steps of ``proxy_tokens / steps`` tokens (``eta``: step size,
    ``smoothing``: DoReMi's ``c``).
    Writes ``out/mixture.yaml`` (the averaged weights), ``out/trajectory.parquet`` (per step: weights, held-out
    loss, excess and updated weights per group; the reference's losses) and ``out/manifest.json``."""
    from thresher.mix.doremi import DOREMI_PLAN

    _check_online("doremi", steps, eta, smoothing)
    settings = _proxy_settings(proxy_tokens, order=order, max_epochs=max_epochs, proxy=proxy,
                               tiny=_tiny_config(proxy, tiny_lm))
    tokens = parse_token_budget(budget)
    with make_engine(workers) as engine:
        v = DOREMI_PLAN.run(pool=pool, group_field=group_field, engine=engine, targets=[], settings=settings,
                            seed=seed, doremi={"steps": steps, "eta": eta, "smoothing": smoothing})
        engine_info = engine.describe()
    groups, out = v.names, Path(out)
    measured = [groups[g] for g in v.measured_groups]
    columns: dict = {"step": np.array([r["step"] for r in v.dro_steps], dtype=np.int64)}
    for j, g in enumerate(groups):
        columns[f"weight:{g}"] = [float(r["weights"][j]) for r in v.dro_steps]
        columns[f"updated:{g}"] = [float(r["updated"][j]) for r in v.dro_steps]
        columns[f"excess:{g}"] = [float(r["excess"][j]) for r in v.dro_steps]
    for j, g in enumerate(measured):
        columns[f"loss:{g}"] = [float(r["losses"][j]) for r in v.dro_steps]
        columns[f"reference_loss:{g}"] = [float(r["losses"][j]) for r in v.reference_steps]
    write_parquet(pa.table(columns), out / "trajectory.parquet")
    final, reference = v.dro_steps[-1]["losses"], v.reference_steps[-1]["losses"]
    mixture = {
        "method": "doremi", "seed": seed, **_weights(groups, v.weights, tokens), "group_field": group_field,
        "doremi": {"steps": steps, "eta": eta, "smoothing": smoothing, "start": "uniform",
                   "reference": "natural token shares of the pool's training records",
                   "final_weights": {g: round(float(w), 6) for g, w in zip(groups, v.dro_steps[-1]["updated"])}},
        "heldout_loss": {g: {"reference": round(float(r), 6), "dro_proxy": round(float(f), 6),
                             "excess": round(float(max(f - r, 0.0)), 6)}
                         for g, r, f in zip(measured, reference, final)},
        "worst_group_excess": {"reference_mixture": 0.0,
                               "dro_proxy": round(float(np.max(np.maximum(final - reference, 0.0))), 6)},
        "proxy": _online_proxy(v, settings),
        **_pool_shares(v),
    }
    _write_text(yaml.safe_dump(_plain(mixture), sort_keys=False, allow_unicode=True), out / "mixture.yaml")
    return _finish(out, {
        "command": command, "created_unix": int(time.time()), "job": "mix", "method": "doremi",
        "inputs": {"pool": dataset_info(pool)}, "versions": versions(), "engine": engine_info,
        "counts": _read_counts(v, steps=steps,
                               heldout_records={g: len(r) for g, r in zip(groups, v.heldout_rows)}),
        "timings": stage_seconds(v.stages), "stages": v.stages,
        "outputs": {"mixture": "mixture.yaml", "trajectory": "trajectory.parquet"},
    }, report)


@claims_run_dir("out")
def run_mix_online(pool, targets: list, out: str | os.PathLike, *, method: str = "aioli",
                   group_field: str = "domain", target_weights: list[float] | None = None,
                   proxy_tokens: str | int | float = "2M tokens", budget: str | int | float | None = None,
                   steps: int = 10, eta: float = 1.0, smoothing: float = 1e-3, seed: int = 0, order: int = 3,
                   max_epochs: float = 1.0, proxy: str = "ngram", tiny_lm: dict | None = None,
                   workers: int | None = None, command: list[str] | None = None, report: bool = True) -> Run:
    """Aioli (``method="aioli"``) or Skill-It (``"skillit"``) over ``pool`` toward ``targets`` with an online
    proxy (:mod:`thresher.mix.aioli`; ``proxy``: ``ngram`` or ``tiny_lm``): ``steps`` rounds of
    ``proxy_tokens / steps`` tokens, one sweep per group estimating how each lowers the target losses,
    exponentiated-gradient updates (``eta``). Writes
    ``out/mixture.yaml`` (the weights averaged over the rounds), ``out/trajectory.parquet`` (per round: weights,
    gains, target losses, the interaction matrix) and ``out/manifest.json``."""
    from thresher.mix.aioli import ONLINE_METHODS, ONLINE_PLAN

    if method not in ONLINE_METHODS:
        raise ConfigError(f"unknown online method {method!r}; choose one of {', '.join(ONLINE_METHODS)}")
    _check_online(method, steps, eta, smoothing)
    chosen = _targets(targets, target_weights, method)
    settings = _proxy_settings(proxy_tokens, order=order, max_epochs=max_epochs, proxy=proxy,
                               tiny=_tiny_config(proxy, tiny_lm))
    tokens = parse_token_budget(budget)
    with make_engine(workers) as engine:
        v = ONLINE_PLAN.run(pool=pool, group_field=group_field, engine=engine, targets=chosen, settings=settings,
                            seed=seed, online={"method": method, "steps": steps, "eta": eta, "smoothing": smoothing})
        engine_info = engine.describe()
    groups, out, rows = v.names, Path(out), v.online_steps
    columns: dict = {"step": np.array([r["step"] for r in rows], dtype=np.int64)}
    for j, g in enumerate(groups):
        columns[f"weight:{g}"] = [float(r["weights"][j]) for r in rows]
        columns[f"gain:{g}"] = [float(r["gain"][j]) for r in rows]
        for i, t in enumerate(chosen):
            columns[f"interaction:{t.name}:{g}"] = [float(r["interactions"][i, j]) for r in rows]
    for i, t in enumerate(chosen):
        columns[f"loss:{t.name}"] = [float(r["losses"][i]) for r in rows]
    write_parquet(pa.table(columns), out / "trajectory.parquet")
    final = rows[-1]["losses"]
    mixture = {
        "method": method, "seed": seed, **_weights(groups, v.weights, tokens), "group_field": group_field,
        "online": {"steps": steps, "eta": eta, "smoothing": smoothing, "start": "uniform",
                   "interactions": "every round" if method == "aioli" else "once, after the first round",
                   "final_weights": {g: round(float(w), 6) for g, w in zip(groups, rows[-1]["updated"])}},
        "targets": [{"name": t.name, "paths": t.dataset.paths, "weight": round(t.weight, 6),
                     "records": c["records"], "proxy_loss_first_round": round(float(rows[0]["losses"][i]), 6),
                     "proxy_loss_last_round": round(float(final[i]), 6)}
                    for i, (t, c) in enumerate(zip(chosen, v.target_counts))],
        "proxy": _online_proxy(v, settings),
        **_pool_shares(v),
    }
    _write_text(yaml.safe_dump(_plain(mixture), sort_keys=False, allow_unicode=True), out / "mixture.yaml")
    return _finish(out, {
        "command": command, "created_unix": int(time.time()), "job": "mix", "method": method,
        "inputs": {"pool": dataset_info(pool), "targets": [dataset_info(t.dataset) for t in chosen]},
        "versions": versions(), "engine": engine_info,
        "counts": _read_counts(v, steps=steps, targets=v.target_counts),
        "timings": stage_seconds(v.stages), "stages": v.stages,
        "outputs": {"mixture": "mixture.yaml", "trajectory": "trajectory.parquet"},
    }, report)
