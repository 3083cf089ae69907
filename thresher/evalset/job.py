"""The ``thresher evalset`` run directories: choose items (``run_evalset``), estimate new systems from them
(``run_estimate``), and check methods against random over splits of the systems (``run_evalset_check``)."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.evalset.check import CheckConfig, run_check
from thresher.evalset.estimate import calibrate
from thresher.evalset.methods import choose
from thresher.evalset.table import ScoreTable, read_item_costs, read_item_labels, read_scores
from thresher.io.atomic import write_csv, write_json, write_parquet
from thresher.io.provenance import versions
from thresher.io.writers import write_ids
from thresher.jobs.rundir import claims_run_dir


def _labels(items: str | os.PathLike | None, table: ScoreTable, item_field: str, label_field: str | None
            ) -> np.ndarray | None:
    if items is None:
        return None
    if not label_field:
        return None  # the items file may hold only costs
    return read_item_labels(items, table.items, item_field, label_field)


def _costs(items: str | os.PathLike | None, table: ScoreTable, item_field: str, cost_field: str | None
           ) -> np.ndarray | None:
    if cost_field is None:
        return None
    if items is None:
        raise ConfigError("--cost-field needs --items (the file with each item's cost)")
    return read_item_costs(items, table.items, item_field, cost_field)


def _finite(x: float) -> float | None:
    """JSON has no infinity: an interval with no finite half-width is written as null."""
    return x if np.isfinite(x) else None


@claims_run_dir("out")
def run_evalset(scores: str | os.PathLike, out: str | os.PathLike, *, budget: float, method: str = "difficulty",
                seed: int = 0, items: str | os.PathLike | None = None, label_field: str | None = None,
                cost_field: str | None = None, item_field: str = "item", system_field: str = "system",
                score_field: str = "score", level: float = 0.95, command: list[str] | None = None,
                report: bool = True) -> Path:
    """Choose ``budget`` items from the seen systems' ``scores`` by ``method`` (``METHOD`` or ``METHOD+ESTIMATOR``);
    write ``out/selected/ids.txt`` (in order), ``out/subset.parquet`` (item, weight), what the estimator needs,
    ``out/calibration.json`` (the seen systems' residuals, for the intervals), ``out/manifest.json`` and, with
    ``report``, ``out/report.html``. Returns ``out``. With ``cost_field`` (a column of ``items``), ``budget`` is a
    total cost."""
    out = Path(out)
    table = read_scores(scores, item_field, system_field, score_field)
    labels = _labels(items, table, item_field, label_field)
    costs = _costs(items, table, item_field, cost_field)
    subset = choose(method, table, budget, seed, labels, costs)
    calibration = calibrate(method, table, subset, budget, seed, labels, costs)
    (out / "selected").mkdir(parents=True, exist_ok=True)
    chosen = [table.items[r] for r in subset.rows]
    write_ids(chosen, out / "selected" / "ids.txt")
    write_parquet(pa.table({"item": chosen, "weight": subset.weights}), out / "subset.parquet")
    subset.estimator.save(out, chosen, table.items)
    write_json({"level": level, "residuals": calibration.residuals.tolist(), "low": calibration.low,
                "high": calibration.high, "half_width": _finite(calibration.half_width(level))},
               out / "calibration.json")
    write_json({"command": command, "created_unix": int(time.time()), "job": "evalset", "method": method,
                "estimator": subset.estimator.name,
                "budget": budget, "seed": seed, "scores": str(scores), "items": str(items) if items else None,
                "label_field": label_field, "versions": versions(),
                "cost": None if costs is None else {"field": cost_field, "budget": budget,
                                                    "chosen": float(costs[subset.rows].sum())},
                "counts": {"items": len(table.items), "seen_systems": len(table.systems), "chosen": len(chosen)},
                # each seen system estimated as if new (cross-fitted when the method or estimator looks at them)
                "seen_mae": float(calibration.residuals.mean()), "half_width": _finite(calibration.half_width(level)),
                "outputs": {"ids": "selected/ids.txt", "subset": "subset.parquet",
                            "calibration": "calibration.json"}}, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return out


@claims_run_dir("out")
def run_estimate(run: str | os.PathLike, scores: str | os.PathLike, out: str | os.PathLike, *,
                 item_field: str = "item", system_field: str = "system", score_field: str = "score",
                 level: float | None = None) -> list[dict]:
    """Each new system's estimated full-set score, with its interval, from its ``scores`` on the items ``run``
    chose (other items are ignored; a chosen item a system lacks is an error). Writes ``out/estimates.csv``
    (system, estimate, lo, hi, rank) and returns its rows."""
    import pyarrow.parquet as pq

    from thresher.evalset.estimate import Calibration
    from thresher.evalset.estimators import load_estimator

    run, out = Path(run), Path(out)
    if not (run / "subset.parquet").is_file():
        raise ConfigError(f"{run} is not a thresher evalset run (no subset.parquet)")
    chosen = pq.read_table(run / "subset.parquet")
    cal = json.loads((run / "calibration.json").read_text(encoding="utf-8"))
    calibration = Calibration(np.array(cal["residuals"]), cal["low"], cal["high"])
    new = read_scores(scores, item_field, system_field, score_field)
    where = {item: i for i, item in enumerate(new.items)}
    wanted = chosen["item"].to_pylist()
    missing = [item for item in wanted if item not in where]
    if missing:
        raise ConfigError(f"{scores}: no scores on {len(missing)} of the {len(wanted)} chosen items (e.g. "
                          f"{missing[0]!r}); score every new system on {run / 'selected' / 'ids.txt'}")
    on_chosen = new.scores[[where[item] for item in wanted]]
    weights = np.asarray(chosen["weight"].to_numpy())
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    name = manifest.get("estimator") or ("p-irt" if manifest.get("method") == "irt" else "mean")  # older runs
    estimator = load_estimator(run, name, weights, wanted)
    estimates = estimator.estimate(on_chosen)
    lo, hi = calibration.intervals(estimates, level or cal["level"])
    ranks = np.empty(len(estimates), dtype=np.int64)
    ranks[np.lexsort((np.arange(len(estimates)), -estimates))] = np.arange(1, len(estimates) + 1)
    rows = [{"system": s, "estimate": float(e), "lo": float(a), "hi": float(b), "rank": int(r)}
            for s, e, a, b, r in zip(new.systems, estimates, lo, hi, ranks)]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "estimates.csv", rows, list(rows[0]))
    write_json({"job": "evalset estimate", "created_unix": int(time.time()), "from_run": str(run),
                "scores": str(scores), "level": level or cal["level"], "systems": len(rows),
                "items_used": len(wanted), "outputs": {"estimates": "estimates.csv"}}, out / "manifest.json")
    return rows


@claims_run_dir("out")
def run_evalset_check(scores: str | os.PathLike, out: str | os.PathLike, *, config: CheckConfig | None = None,
                      items: str | os.PathLike | None = None, label_field: str | None = None,
                      cost_field: str | None = None, item_field: str = "item", system_field: str = "system",
                      score_field: str = "score", command: list[str] | None = None, report: bool = True) -> list[dict]:
    """Methods against random over seen/new splits of the systems in the full ``scores`` table
    (:mod:`thresher.evalset.check`); writes ``out/results.csv``, ``out/per_split.csv``, ``out/manifest.json`` and,
    with ``report``, ``out/report.html``."""
    config = config or CheckConfig()
    out = Path(out)
    table = read_scores(scores, item_field, system_field, score_field)
    labels = _labels(items, table, item_field, label_field)
    costs = _costs(items, table, item_field, cost_field)
    started = time.perf_counter()
    result = run_check(table, config, labels, costs)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "results.csv", result.rows, list(result.rows[0]))
    write_csv(out / "per_split.csv", result.per_split, list(result.per_split[0]))
    write_json({"command": command, "created_unix": int(time.time()), "job": "evalset check",
                "config": {"methods": list(config.methods), "budgets": list(config.budgets), "cost_field": cost_field,
                           "splits": config.splits, "seed": config.seed, "level": config.level},
                "scores": str(scores), "versions": versions(), "seconds": round(time.perf_counter() - started, 3),
                "counts": {"items": len(table.items), "systems": len(table.systems)},
                "outputs": {"results": "results.csv", "per_split": "per_split.csv"}}, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return result.rows


def format_check(rows: list[dict]) -> str:
    """The check's table as the CLI prints it: per budget, each method's mean tau, MAE, coverage and verdicts."""
    buf = io.StringIO()
    by = {(r["method"], r["budget"], r["metric"]): r for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for budget in dict.fromkeys(r["budget"] for r in rows):
        buf.write(f"budget {budget}: kendall tau | MAE | coverage (width); verdicts vs random\n")
        for m in methods:
            tau, mae, cov = by[m, budget, "kendall_tau"], by[m, budget, "mae"], by[m, budget, "coverage"]
            width = by[m, budget, "interval_width"]["mean"]
            verdicts = "" if m == "random" else f"  tau {tau['verdict']}, MAE {mae['verdict']}"
            buf.write(f"  {m:<11} {tau['mean']:.3f} | {mae['mean']:.4f} | {cov['mean']:.2f} ({width:.3f}){verdicts}\n")
    return buf.getvalue().rstrip()
