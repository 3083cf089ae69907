"""The label job: apply LFs to a pool, fit a label model, and write labels as side-car scores by id.

Run directory:
  ``labels/matrix.npz`` (the pool's sparse label matrix, rows in ``scores.parquet`` order), ``labels/lfs.json``,
  ``labels/dev_matrix.npz`` (with a dev set);
  ``scores/scores.parquet``: ``id``, ``label`` (class index, -1 = abstain: no LF voted), ``label_name``,
  ``label_confidence`` (the label's probability), ``prob_<class>`` per class, ``n_votes``, ``n_words``, and with an
  end model ``end_label``, ``end_label_name``, ``end_confidence`` (it labels every record, covered or not);
  ``manifest.json``: counts that add up (read = labelled + abstained + failed), the class balance and where it
  came from, the LF analysis, and dev metrics of the label model, majority vote and the end model.
A later ``thresher select --from-run DIR --where "label_name == 'sport' and label_confidence > 0.9"`` selects on
them.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.engine import make_engine
from thresher.engine.plan import GLOBAL, MAP, Plan, Stage, Values, stage_seconds
from thresher.errors import ConfigError
from thresher.features.lengths import whitespace_token_counts
from thresher.io.atomic import write_json, write_parquet
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_info, versions
from thresher.jobs.rundir import claims_run_dir
from thresher.label.lf_files import LFSet, as_lf_set
from thresher.label.lfs import ABSTAIN
from thresher.run import Run

CLASS_BALANCE_CHOICES = ("estimate", "uniform", "dev")


@claims_run_dir("out")
def run_labeling(pool: Dataset, lfs: LFSet | str | os.PathLike | Sequence, out: str | os.PathLike, *,
                 classes: Sequence[str] | None = None, model: str | None = None, model_params: dict | None = None,
                 dev: Dataset | None = None, label_field: str = "label", dev_where: str | None = None,
                 class_balance: str | Sequence[float] = "estimate", end_model: str | None = None,
                 end_model_params: dict | None = None, scores_from: str | os.PathLike | None = None, seed: int = 0,
                 workers: int | None = None, progress: bool = True, command: list[str] | None = None,
                 report: bool = True, lf_timeout: float | None = None) -> Run:
    """Label every record of ``pool`` with the LFs in ``lfs`` (a .py/.yaml file, an :class:`LFSet`, or a list of
    LFs with ``classes``) and label model ``model``; see the module docstring for what is written.

    ``dev``: records with true labels in ``label_field`` (class names or indices), for LF accuracies, dev metrics
    and ``class_balance="dev"``; ``dev_where`` keeps only the dev records where it holds, e.g.
    ``"split == 'dev'"`` on a file whose ``split`` column marks the dev rows (columns are read as strings).
    ``end_model``: ``hashed`` or ``static`` to train a classifier on the labels.
    ``scores_from``: a run whose side-car columns score LFs may read. ``lf_timeout``: seconds each LF may take per
    batch (default ``thresher.label.apply.DEFAULT_LF_TIMEOUT``, 0 = no limit).
    """
    from thresher.label.analysis import analyse, format_analysis
    from thresher.label.apply import DEFAULT_LF_TIMEOUT
    from thresher.label.models import DEFAULT_LABEL_MODEL, make_label_model
    from thresher.label.models.fit_check import describe_fit

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    lf_set = as_lf_set(lfs, classes)
    model_name = model or DEFAULT_LABEL_MODEL
    label_model = make_label_model(model_name, **(model_params or {}))
    end_config = _end_config(end_model, end_model_params)
    balance = _class_balance(class_balance, len(lf_set.classes), dev is not None)
    if dev_where and dev is None:
        raise ConfigError("dev_where (--dev-where) filters a dev set: give one with --dev")
    scores = Run(scores_from).scores() if scores_from else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    with make_engine(workers) as engine:  # one engine (one set of workers) for the pool and the dev set
        v = LABEL_PLAN.run(pool=pool, lf_set=lf_set, dev=dev, dev_where=dev_where, label_field=label_field,
                           scores=scores, workers=workers, engine=engine, progress=progress,
                           lf_timeout=DEFAULT_LF_TIMEOUT if lf_timeout is None else lf_timeout,
                           label_model=label_model, model_name=model_name, balance=balance, seed=seed,
                           end_config=end_config)
    applied, dev_applied, y_dev, errors, texts = v.applied, v.dev_applied, v.y_dev, v.errors, v.texts
    L, pred, proba, metrics = applied.matrix, v.pred, v.proba, {**v.dev_metrics, **v.end_metrics}
    timings = stage_seconds(v.stages)
    analysis = analyse(L, y_dev, dev_applied.matrix if dev_applied is not None else None,
                       getattr(label_model, "lf_accuracies_", None))
    table = _scores_table(applied.ids, pred, proba, L.n_votes(), lf_set.classes, pool, texts, v.end_columns)
    (out / "scores").mkdir(exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    write_parquet(table, out / "scores" / "scores.parquet")
    L.save(out / "labels" / "matrix.npz")
    if dev_applied is not None:
        dev_applied.matrix.save(out / "labels" / "dev_matrix.npz")
    write_json(lf_set.describe(), out / "labels" / "lfs.json")

    failed = errors.to_dict()
    n = L.n_records
    labelled = int((pred != ABSTAIN).sum())
    counts = {"input_records": n + failed["total"], "labelled": labelled, "abstained": n - labelled,
              "failed": failed["total"], "pool_failed": failed, "lf_errors": applied.lf_failures,
              "by_class": {c: int((pred == i).sum()) for i, c in enumerate(lf_set.classes)}}
    counts["all_accounted_for"] = labelled + counts["abstained"] + counts["failed"] == counts["input_records"]
    timings["total"] = round(time.perf_counter() - t_start, 4)
    fit_check = describe_fit(label_model, lf_set.classes)
    if fit_check and fit_check["warning"]:
        sys.stderr.write(f"thresher: warning: {fit_check['warning']}\n")
    config = {"model": model_name, "model_params": label_model.get_params(), "class_balance": _jsonable(balance),
              "seed": seed, "label_field": label_field if dev is not None else None,
              "dev_where": dev_where if dev is not None else None,
              "dev_records": len(y_dev) if y_dev is not None else None,
              "end_model": asdict(end_config) if end_config else None,
              "scores_from": str(scores_from) if scores_from else None}
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "label",
        "config": config,
        "label_config": config,  # kept when a recipe's select step replaces "config" with the selection's
        "classes": lf_set.classes, "lfs": lf_set.describe(),
        "inputs": {"pool": dataset_info(pool), **({"dev": dataset_info(dev)} if dev is not None else {})},
        "versions": versions(), "engine": applied.engine, "counts": counts,
        "class_balance": {"values": [float(v) for v in label_model.class_balance_],
                          "source": label_model.class_balance_source_, "fit_check": fit_check},
        "analysis": analysis, "analysis_table": format_analysis(analysis, lf_set.classes),
        "lf_error_examples": applied.failure_examples, "metrics": metrics, "timings": timings,
        "stages": v.stages,
        "label_metrics": metrics,  # kept when a recipe's select step replaces "metrics" with the selection's
        "outputs": {"scores": "scores/scores.parquet", "matrix": "labels/matrix.npz", "lfs": "labels/lfs.json"},
    }
    write_json(manifest, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return Run(out)



def _apply(v: Values) -> dict:
    from thresher.label.apply import apply_lfs

    errors = ErrorLog(v.pool.on_error)
    applied = apply_lfs(v.pool, v.lf_set, errors, workers=v.workers, scores=v.scores, progress=v.progress,
                        lf_timeout=v.lf_timeout, engine=v.engine)
    dev_applied, y_dev, dev_rows = None, None, None
    if v.dev is not None:
        # Dev ids may repeat, and a dev set need not carry the pool's side-car score columns.
        where = dev_filter(v.dev_where)
        dev_applied = apply_lfs(v.dev, v.lf_set, ErrorLog(v.dev.on_error), workers=v.workers, engine=v.engine,
                                scores=v.scores, check_columns=False, lf_timeout=v.lf_timeout,
                                extra_columns=(v.label_field, *where.columns) if where else (v.label_field,))
        if where is not None:
            dev_applied, dev_rows = _dev_subset(dev_applied, where)
        y_dev = dev_labels(dev_applied.extra[v.label_field], dev_applied.ids, v.lf_set.classes, v.label_field)
    return {"applied": applied, "errors": errors, "dev_applied": dev_applied, "y_dev": y_dev, "dev_rows": dev_rows}


def _fit_label_model(v: Values) -> dict:
    L, model = v.applied.matrix, v.label_model
    dev_pair = (v.dev_applied.matrix, v.y_dev) if v.dev_applied is not None else None
    model.fit(L, class_balance=v.balance, dev=dev_pair, seed=v.seed)
    dev = {"dev": dev_metrics(model, v.model_name, *dev_pair, seed=v.seed)} if dev_pair is not None else {}
    return {"proba": model.predict_proba(L), "pred": model.predict(L, abstain="abstain", seed=v.seed),
            "dev_metrics": dev}


def _end_model(v: Values) -> dict:
    if v.end_config is None:
        return {"texts": None, "end_columns": {}, "end_metrics": {}}
    texts = _texts(v.pool)
    dev_texts = None
    if v.dev is not None:
        dev_texts = _texts(v.dev)
        dev_texts = dev_texts.take(pa.array(v.dev_rows)) if v.dev_rows is not None else dev_texts
    report, proba, dev_report = train_end_model(v.end_config, texts, v.proba, v.applied.matrix.n_votes(), dev_texts,
                                                v.y_dev)
    pred = proba.argmax(axis=1)
    columns = {"end_label": pa.array(pred, pa.int32()),
               "end_label_name": pa.array([v.lf_set.classes[i] for i in pred], pa.large_string()),
               "end_confidence": pa.array(proba.max(axis=1), pa.float64())}
    metrics = {"end_model": report}
    if dev_report is not None:
        metrics["dev"] = {**v.dev_metrics.get("dev", {}), "end_model": dev_report}
    return {"texts": texts, "end_columns": columns, "end_metrics": metrics}


APPLY = Stage("apply", MAP, "every LF over every record batch (and the dev set): the sparse label matrix", _apply,
              ("pool", "lf_set", "dev", "dev_where", "label_field", "scores", "workers", "engine", "progress",
               "lf_timeout"),
              ("applied", "errors", "dev_applied", "y_dev", "dev_rows"))
FIT_LABEL_MODEL = Stage("label_model", GLOBAL, "the label model fitted on the whole label matrix, then a label and "
                        "class probabilities per record", _fit_label_model,
                        ("applied", "dev_applied", "y_dev", "label_model", "model_name", "balance", "seed"),
                        ("proba", "pred", "dev_metrics"))
END_MODEL = Stage("end_model", GLOBAL, "optional: a classifier trained on the texts and the label model's "
                  "probabilities (--end-model)", _end_model,
                  ("end_config", "pool", "dev", "dev_rows", "applied", "proba", "y_dev", "lf_set", "dev_metrics"),
                  ("texts", "end_columns", "end_metrics"))
LABEL_PLAN = Plan("label", ("pool", "lf_set", "dev", "dev_where", "label_field", "scores", "workers", "engine",
                            "progress", "lf_timeout", "label_model", "model_name", "balance", "seed", "end_config"),
                  (APPLY, FIT_LABEL_MODEL, END_MODEL))

def dev_labels(values: pa.Array, ids: pa.Array, classes: Sequence[str], field: str) -> np.ndarray:
    """Dev labels as class indices (see :func:`class_indices`); every dev record needs one."""
    if len(values) and values.null_count == len(values):
        raise ConfigError(f"dev has no field {field!r} (no dev record has a value in it); give the field holding "
                          "the true labels with --label-field")
    ids = ids.to_pylist()
    out = class_indices(values.to_pylist(), ids, classes, field, what="dev record")
    if (out < 0).any():
        raise ConfigError(f"dev record {ids[int(np.argmax(out < 0))]!r} has no value in field {field!r}; every dev "
                          "record needs a true label")
    return out


def class_indices(values: Sequence, ids: Sequence, classes: Sequence[str], field: str,
                  what: str = "record") -> np.ndarray:
    """Labels as class indices: class names, or whole numbers in range; -1 where a record has none; any other
    value is an error naming its record."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.full(len(values), -1, dtype=np.int64)
    for row, v in enumerate(values):
        if v is None:
            continue
        if v in index:
            out[row] = index[v]
        elif isinstance(v, str) and re.fullmatch(r"\d+", v) and int(v) < len(classes):
            out[row] = int(v)
        else:
            raise ConfigError(f"{what} {ids[row]!r}: {field} = {v!r} is not a class ({', '.join(classes)}) or a "
                              "class index")
    return out


def dev_metrics(label_model, name: str, L_dev, y_dev: np.ndarray, seed: int = 0) -> dict:
    """The label model's and majority vote's metrics on dev, over all dev records (abstains count as wrong)."""
    from thresher.label.metrics import label_metrics
    from thresher.label.models import make_label_model

    k = L_dev.n_classes
    result = {name: label_metrics(y_dev, label_model.predict(L_dev, abstain="abstain", seed=seed), k)}
    if name != "majority_vote":
        mv = make_label_model("majority_vote").fit(L_dev, seed=seed)
        result["majority_vote"] = label_metrics(y_dev, mv.predict(L_dev, abstain="abstain", seed=seed), k)
    return result


def _end_config(kind: str | None, params: dict | None):
    if kind in (None, "none"):
        if params:
            raise ConfigError("end model parameters given without an end model (end_model='hashed' or 'static')")
        return None
    from thresher.label.end_model import EndModelConfig

    try:
        return EndModelConfig(features=kind, **(params or {}))
    except TypeError as e:
        raise ConfigError(f"end model: {e}") from None


def train_end_model(config, texts: pa.Array, proba: np.ndarray, n_votes: np.ndarray, dev_texts: pa.Array | None,
                    y_dev: np.ndarray | None) -> tuple[dict, np.ndarray, dict | None]:
    """Fit the end model on covered records' probabilistic labels; its probabilities for every record and its
    dev metrics (next to the label model's) when a dev set is given."""
    from thresher.label.end_model import EndModel
    from thresher.label.metrics import label_metrics

    train = n_votes >= max(config.min_votes, 1)
    if train.sum() < 2:
        raise ConfigError(f"the end model needs at least 2 records with LF votes, got {int(train.sum())}")
    model = EndModel(config).fit(texts.filter(pa.array(train)), proba[train])
    all_proba = model.predict_proba(texts)
    dev_report = None
    if dev_texts is not None:
        dev_report = label_metrics(y_dev, model.predict(dev_texts), proba.shape[1])
    return model.report_, all_proba, dev_report


def dev_filter(dev_where: str | None):
    """The parsed ``dev_where`` expression, or None."""
    if not dev_where:
        return None
    from thresher.selectors.where import WhereExpression

    return WhereExpression(dev_where)


def dev_where_rows(table: pa.Table, where) -> np.ndarray:
    """Row numbers of the dev records where ``where`` holds (its columns read as strings); none left is an error
    naming the expression."""
    try:
        rows = np.flatnonzero(where.mask(table))
    except ConfigError as e:
        raise ConfigError(f"dev_where: {e}") from None
    if not len(rows):
        raise ConfigError(f"dev_where {where.text!r} keeps none of the {len(table):,} dev records (its columns are "
                          "compared as strings, e.g. \"split == 'dev'\")")
    return rows


def _dev_subset(applied, where) -> tuple[object, np.ndarray]:
    """The dev records where ``where`` holds (its columns read as strings): their votes, ids and extra columns,
    and their row numbers in reading order; none left is an error naming the expression."""
    from dataclasses import replace

    rows = dev_where_rows(pa.table({"id": applied.ids, **applied.extra}), where)
    idx = pa.array(rows)
    return replace(applied, ids=applied.ids.take(idx), matrix=applied.matrix.rows(rows),
                   extra={k: v.take(idx) for k, v in applied.extra.items()}), rows


def _texts(ds: Dataset) -> pa.Array:
    """Every usable text of ``ds`` in reading order (bad records were already counted by the LF pass)."""
    return ds.read_all(ErrorLog("skip")).column("text").combine_chunks()


def prob_columns(classes: Sequence[str]) -> list[str]:
    """``prob_<class>`` column names: lower-case, non-alphanumerics as ``_``; unique or an error."""
    names = [f"prob_{re.sub(r'[^0-9a-z]+', '_', c.lower()).strip('_') or i}" for i, c in enumerate(classes)]
    if len(set(names)) != len(names):
        raise ConfigError(f"classes {list(classes)} give clashing column names {names}; rename the classes")
    return names


def _scores_table(ids: pa.Array, pred: np.ndarray, proba: np.ndarray, n_votes: np.ndarray, classes: Sequence[str],
                  pool: Dataset, texts: pa.Array | None, end_columns: dict) -> pa.Table:
    labelled = pred != ABSTAIN
    names = np.asarray(classes, dtype=object)[np.where(labelled, pred, 0)]
    confidence = proba[np.arange(len(pred)), np.where(labelled, pred, 0)]
    texts = texts if texts is not None else _texts(pool)
    cols = {"id": ids,
            "label": pa.array(pred, pa.int32()),
            "label_name": pa.array(names, pa.large_string(), mask=~labelled),
            "label_confidence": pa.array(confidence, pa.float64(), mask=~labelled)}
    for j, col in enumerate(prob_columns(classes)):
        cols[col] = pa.array(proba[:, j], pa.float64())
    cols["n_votes"] = pa.array(n_votes, pa.int32())
    cols["n_words"] = pa.array(whitespace_token_counts(texts))  # as the pipeline counts them (token budgets)
    cols.update(end_columns)
    return pa.table(cols)


def _class_balance(value: str | Sequence[float], k: int, has_dev: bool) -> str | np.ndarray:
    """``estimate`` | ``uniform`` | ``dev`` | k proportions (a list, or ``"0.3,0.7"``)."""
    if isinstance(value, str) and value in CLASS_BALANCE_CHOICES:
        if value == "dev" and not has_dev:
            raise ConfigError("class_balance 'dev' needs a dev set (--dev)")
        return value
    try:
        values = np.asarray([float(v) for v in (value.split(",") if isinstance(value, str) else value)])
    except (TypeError, ValueError):
        raise ConfigError(f"class balance is one of {', '.join(CLASS_BALANCE_CHOICES)} or {k} proportions "
                          f"(e.g. 0.3,0.7); got {value!r}") from None
    if len(values) != k or (values < 0).any() or values.sum() <= 0:
        raise ConfigError(f"class balance needs {k} non-negative proportions, got {value!r}")
    return values / values.sum()


def _jsonable(value):
    return value.tolist() if isinstance(value, np.ndarray) else value


