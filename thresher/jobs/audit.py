"""The audit job: out-of-sample class probabilities for a labelled pool, then per record how trustworthy its label
is, which labels are likely wrong (confident learning) and what they should be, as side-car scores by id.

Run directory:
  ``scores/scores.parquet``: ``id``, ``label`` (the given class index, -1 where the record has no label),
  ``label_name``, ``suggested_label`` / ``suggested_label_name`` (the likeliest class out of sample),
  ``label_quality`` (low = doubtful label; see :mod:`thresher.audit.quality`), ``is_label_issue`` (confident
  learning, :mod:`thresher.audit.confident`), ``outlier_score`` (mean cosine distance to the nearest records),
  ``near_duplicate_of`` (the id of a near-duplicate record, preferring one in another split), ``label_conflict``
  (its near-duplicates carry another label), ``cross_split_duplicate`` (with ``split_field``: train/test
  leakage), with ``dynamics`` the training-dynamics scores (``el2n``, ``grand``, ``forgetting_events``, ``aum``,
  ``carto_*``; :mod:`thresher.audit.dynamics`), ``uncertainty`` (1 - the margin between the two likeliest
  classes: the unlabelled records worth labelling next), ``prob_<class>`` per class, ``fold`` and ``n_words``;
  ``manifest.json``: counts that add up (read = audited + unlabelled + failed), per-class issue counts, the
  confident joint and noise matrix, the cross-validated accuracy, and the worst-scored records as examples.
Flagged records stay in the data: removing them is an explicit selection, e.g.
``thresher select --from-run DIR --where "not is_label_issue" --selector threshold --score label_quality
--threshold 0`` keeps every record not flagged, and ``--where "label < 0" --selector topk --score uncertainty
--budget 100`` picks the next hundred records for annotators (margin sampling, the active-learning default).
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

from thresher.audit.acquisition import uncertainty
from thresher.audit.confident import DEFAULT_FILTER, FILTERS, confident_joint, find_label_issues
from thresher.audit.crossval import CrossValConfig, cross_val_probs
from thresher.audit.quality import DEFAULT_QUALITY, QUALITY_METHODS, knn_outlier_scores, label_quality
from thresher.engine import make_engine
from thresher.engine.plan import GLOBAL, MAP, Plan, Stage, Values, stage_seconds
from thresher.errors import ConfigError
from thresher.features.lengths import whitespace_token_counts
from thresher.io.atomic import write_json, write_parquet
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_info, versions
from thresher.jobs.label import class_indices, prob_columns
from thresher.jobs.rundir import claims_run_dir
from thresher.run import Run

FEATURES = ("hashed", "tfidf", "static", "minilm")
EXAMPLES = 20  # worst-scored records kept in the manifest for the report
#: Above this share of audited records flagged, the run warns: labels that noisy are rare, and a classifier too weak
#: for the task looks exactly like them (its own errors are flagged), which the data alone cannot tell apart.
HIGH_ISSUE_RATE = 0.2
FEATURE_CHUNK = 4096  # records per featurisation task


@claims_run_dir("out")
def run_audit(pool: Dataset, out: str | os.PathLike, *, label_field: str = "label",
              classes: Sequence[str] | None = None, features: str = "hashed", folds: int = 5, l2: float = 1e-4,
              filter_by: str = DEFAULT_FILTER, quality: str = DEFAULT_QUALITY,
              probs_from: str | os.PathLike | None = None, outlier_k: int = 10, split_field: str | None = None,
              duplicate_threshold: float | None = 0.7, dynamics: str | Sequence[str] | None = None,
              dynamics_params: dict | None = None, seed: int = 0,
              workers: int | None = None, progress: bool = True, command: list[str] | None = None,
              report: bool = True) -> Run:
    """Audit the labels in ``label_field`` of ``pool``; see the module docstring for what is written.

    ``classes``: the class names in index order (default: the labels seen, sorted; numerals numerically).
    ``features``: what the cross-validated softmax regression reads (hashed n-grams, the same weighted by the
    pool's IDF (``tfidf``), static or MiniLM embeddings).
    ``probs_from``: use these out-of-sample probabilities instead (a run directory or a Parquet/JSONL/CSV file
    with ``id`` and ``prob_<class>`` columns, e.g. a model of your own scored by cross-validation).
    ``filter_by``: the confident-learning rule (:data:`thresher.audit.confident.FILTERS`); ``quality``: the
    ``label_quality`` score (:data:`thresher.audit.quality.QUALITY_METHODS`); ``outlier_k``: neighbours for
    ``outlier_score`` (0 = no outlier scores). ``split_field``: a field naming each record's split (train, test,
    ...), so that near-duplicates across splits are found first and counted as leakage. ``duplicate_threshold``:
    Jaccard similarity of word 5-gram sets for near-duplicates (None = no duplicate search). ``dynamics``:
    training-dynamics scores to add (``el2n``, ``grand``, ``forgetting``, ``aum``, ``cartography`` or ``all``),
    from SGD runs on the same features; ``dynamics_params``: :class:`thresher.audit.dynamics.DynamicsConfig` fields.
    """
    if features not in FEATURES:
        raise ConfigError(f"features must be one of {', '.join(FEATURES)}, got {features!r}")
    if filter_by not in FILTERS:
        raise ConfigError(f"filter_by must be one of {', '.join(FILTERS)}, got {filter_by!r}")
    if quality not in QUALITY_METHODS:
        raise ConfigError(f"quality must be one of {', '.join(QUALITY_METHODS)}, got {quality!r}")
    if outlier_k < 0:
        raise ConfigError(f"outlier_k must be >= 0, got {outlier_k}")
    if duplicate_threshold is not None and not 0 < duplicate_threshold < 1:
        raise ConfigError(f"duplicate_threshold must be in (0, 1), or None for no duplicate search; got "
                          f"{duplicate_threshold}")
    cv = CrossValConfig(folds=folds, l2=l2)
    from thresher.audit.dynamics import DynamicsConfig, parse_dynamics

    dynamics = parse_dynamics(dynamics)
    try:
        dynamics_config = DynamicsConfig(**(dynamics_params or {})) if dynamics else None
    except TypeError as e:
        raise ConfigError(f"dynamics parameters: {e}") from None
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with make_engine(workers) as engine:
        v = AUDIT_PLAN.run(pool=pool, label_field=label_field, classes=classes, features=features, cv=cv,
                           probs_from=probs_from, filter_by=filter_by, quality=quality, outlier_k=outlier_k,
                           split_field=split_field, duplicate_threshold=duplicate_threshold, dynamics=dynamics,
                           dynamics_config=dynamics_config, seed=seed, engine=engine)
    classes = v.classes
    table = _scores_table(v, classes)
    (out / "scores").mkdir(exist_ok=True)
    write_parquet(table, out / "scores" / "scores.parquet")

    counts = _counts(v, table)
    metrics = _metrics(v)
    warnings = _warnings(metrics)
    timings = stage_seconds(v.stages)
    timings["total"] = round(time.perf_counter() - t_start, 4)
    config = {"label_field": label_field, "features": None if probs_from else features,
              "folds": None if probs_from else folds, "l2": None if probs_from else l2, "filter_by": filter_by,
              "quality": quality, "probs_from": str(probs_from) if probs_from else None, "outlier_k": outlier_k,
              "split_field": split_field, "duplicate_threshold": duplicate_threshold, "dynamics": list(dynamics),
              "dynamics_params": asdict(dynamics_config) if dynamics_config else None, "seed": seed}
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "audit", "config": config,
        "audit_config": config,  # kept when a select from this run replaces "config" with the selection's
        "classes": list(classes), "inputs": {"pool": dataset_info(pool)}, "versions": versions(),
        "engine": engine.describe(), "counts": counts, "metrics": metrics,
        "audit_metrics": metrics,  # kept when a select from this run replaces "metrics" with the selection's
        "warnings": warnings,
        "confident_joint": v.joint.counts.tolist(), "noise_matrix": np.round(v.joint.noise_matrix(), 6).tolist(),
        "thresholds": np.round(v.joint.thresholds, 6).tolist(),
        "examples": {"label_issues": _examples(v, np.flatnonzero(v.issues), v.quality_scores),
                     "outliers": _examples(v, np.flatnonzero(v.given >= 0), -v.outliers)
                     if v.outliers is not None else []},
        "timings": timings, "stages": v.stages,
        "outputs": {"scores": "scores/scores.parquet"},
    }
    write_json(manifest, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return Run(out)


def _counts(v: Values, table: pa.Table) -> dict:
    """Records read = audited + unlabelled + failed; issues and suggestions per class; duplicates and regions."""
    failed = v.errors.to_dict()
    labelled = v.given >= 0
    n = len(v.given)
    counts = {"input_records": n + failed["total"], "audited": int(labelled.sum()),
              "unlabelled": int(n - labelled.sum()), "failed": failed["total"], "pool_failed": failed,
              "label_issues": int(v.issues.sum()),
              "by_class": {c: {"records": int((v.given == i).sum()),
                               "label_issues": int(v.issues[v.given == i].sum()),
                               "suggested": int((v.suggested[labelled] == i).sum())}
                           for i, c in enumerate(v.classes)}}
    if v.duplicates is not None:
        counts["near_duplicates"] = v.duplicates.counts(v.splits)
    if "carto_region" in v.dynamics_scores:
        regions = table.column("carto_region").drop_null().value_counts().to_pylist()
        counts["carto_regions"] = {r["values"]: int(r["counts"]) for r in regions}
    counts["all_accounted_for"] = counts["audited"] + counts["unlabelled"] + counts["failed"] == \
        counts["input_records"]
    return counts


def _metrics(v: Values) -> dict:
    labelled = v.given >= 0
    y, p = v.given[labelled], v.probs[labelled]
    return {"cv_accuracy": float((p.argmax(axis=1) == y).mean()) if len(y) else None,
            "label_issues": int(v.issues.sum()), "label_issue_rate": float(v.issues.sum() / max(len(y), 1)),
            "estimated_noise_rate": v.joint.noise_rate()}


def _warnings(metrics: dict) -> list[str]:
    """A warning (also printed) when so many labels are flagged that a weak classifier is the likelier cause."""
    if metrics["label_issue_rate"] <= HIGH_ISSUE_RATE:
        return []
    text = (f"{metrics['label_issue_rate']:.0%} of the audited labels are flagged: either the labels are very noisy "
            f"or the classifier is too weak for this task (cross-validated accuracy {metrics['cv_accuracy']:.2f}), "
            "whose own errors are then flagged; read a sample of the flagged records (report.html) before removing "
            "any, and try stronger features (--features minilm) or your own model's probabilities (--probs-from)")
    sys.stderr.write(f"thresher: warning: {text}\n")
    return [text]


def _read(v: Values) -> dict:
    errors = ErrorLog(v.pool.on_error)
    extra = (v.label_field,) + ((v.split_field,) if v.split_field else ())
    table = v.pool.read_all(errors, extra)
    splits = None
    if v.split_field:
        splits = np.asarray(table.column(v.split_field).to_pylist(), dtype=object)
        if len(splits) and all(s is None for s in splits):
            raise ConfigError(f"no record has a value in the split field {v.split_field!r}")
    raw = table.column(v.label_field).to_pylist()
    classes = audit_classes(raw, v.classes, v.label_field)
    given = class_indices(raw, table.column("id").to_pylist(), classes, v.label_field)
    return {"ids": table.column("id").combine_chunks(), "texts": table.column("text").combine_chunks(),
            "given": given, "classes": classes, "errors": errors, "splits": splits}


def _featurize(v: Values) -> dict:
    if v.probs_from and not v.outlier_k and not v.dynamics:
        return {"x": None}
    kind = "hashed" if v.probs_from or v.features == "tfidf" else v.features
    chunks = [(kind, v.texts.slice(i, FEATURE_CHUNK)) for i in range(0, len(v.texts), FEATURE_CHUNK)]
    parts = list(v.engine.map(featurize, chunks))
    if not parts:
        return {"x": None}
    if hasattr(parts[0], "tocsr"):
        from scipy import sparse

        x = sparse.vstack(parts).tocsr()
        return {"x": idf_weighted(x) if v.features == "tfidf" and not v.probs_from else x}
    return {"x": np.vstack(parts)}


def idf_weighted(x, reference=None):
    """Hashed log-tf rows reweighted by the smoothed inverse document frequency of ``reference`` (the pool; default
    ``x`` itself), log((1 + n) / (1 + df)) + 1 (scikit-learn's), then scaled back to unit length: words every
    record has count for less."""
    from scipy import sparse

    reference = x if reference is None else reference
    df = np.bincount(reference.indices, minlength=reference.shape[1])
    weighted = (x @ sparse.diags(np.log((1 + reference.shape[0]) / (1 + df)) + 1)).tocsr()
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    return (sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ weighted).tocsr()


def featurize(kind: str, texts: pa.Array):
    """The cross-validated model's features for ``texts`` (run on a worker, one chunk at a time)."""
    from thresher.label.end_model import EndModel, EndModelConfig

    return EndModel(EndModelConfig(features=kind)).features(texts)


def train_test_features(kind: str, train: pa.Array, test: pa.Array) -> tuple:
    """Feature rows of a training pool and a test set for the experiments' classifier (``kind`` from
    :data:`FEATURES`; ``tfidf`` weighs both by the pool's IDF): sparse CSR or dense, unit-length rows."""
    base = "hashed" if kind == "tfidf" else kind
    x, x_test = featurize(base, train), featurize(base, test)
    if hasattr(x, "tocsr"):
        x, x_test = x.tocsr(), x_test.tocsr()
    if kind == "tfidf":
        x, x_test = idf_weighted(x), idf_weighted(x_test, reference=x)
    return x, x_test


def _probabilities(v: Values) -> dict:
    labelled = v.given >= 0
    k = len(v.classes)
    if v.probs_from:
        return {"probs": read_probs(v.probs_from, v.ids, v.classes), "fold": np.full(len(v.given), -1)}
    if labelled.sum() < v.cv.folds:
        raise ConfigError(f"{v.cv.folds}-fold cross-validation needs at least {v.cv.folds} labelled records; "
                          f"the pool has {int(labelled.sum())} with a value in {v.label_field!r}")
    rows = np.flatnonzero(labelled)
    x = v.x
    probs = np.zeros((len(v.given), k))
    fold = np.full(len(v.given), -1)
    unlabelled = x[np.flatnonzero(~labelled)] if (~labelled).any() else None
    probs[rows], extra, fold[rows] = cross_val_probs(x[rows], v.given[rows], k, v.cv, seed=v.seed,
                                                     unlabelled=unlabelled, map_fn=v.engine.map)
    if extra is not None:
        probs[~labelled] = extra
    return {"probs": probs, "fold": fold}


def _judge(v: Values) -> dict:
    labelled = v.given >= 0
    y, p = v.given[labelled], v.probs[labelled]
    issues = np.zeros(len(v.given), dtype=bool)
    scores = np.full(len(v.given), np.nan)
    if len(y):
        issues[labelled] = find_label_issues(y, p, v.filter_by)
        scores[labelled] = label_quality(y, p, v.quality)
    joint = confident_joint(y, p) if len(y) else confident_joint(np.zeros(0, int), np.zeros((0, len(v.classes))))
    outliers = knn_outlier_scores(v.x, v.outlier_k, map_fn=v.engine.map) if v.outlier_k and v.x is not None \
        else None
    duplicates = None
    if v.duplicate_threshold is not None:
        from thresher.audit.duplicates import duplicate_links

        duplicates = duplicate_links(v.texts, v.given, v.splits, v.engine, v.duplicate_threshold)
    return {"issues": issues, "quality_scores": scores, "suggested": v.probs.argmax(axis=1), "joint": joint,
            "outliers": outliers, "duplicates": duplicates}


def _dynamics(v: Values) -> dict:
    if not v.dynamics:
        return {"dynamics_scores": {}}
    from thresher.audit.dynamics import training_dynamics

    labelled = np.flatnonzero(v.given >= 0)
    scores = training_dynamics(v.x[labelled], v.given[labelled], len(v.classes), v.dynamics_config, v.seed,
                               v.engine.map)
    wanted = {"el2n": ("el2n",), "grand": ("grand",), "forgetting": ("forgetting_events",), "aum": ("aum",),
              "cartography": ("carto_confidence", "carto_variability", "carto_correctness", "carto_region")}
    out = {}
    for name in v.dynamics:
        for column in wanted[name]:
            full = np.full(len(v.given), np.nan)
            full[labelled] = scores[column]
            out[column] = full
    return {"dynamics_scores": out}


READ = Stage("read", GLOBAL, "every record's id, text, given label and split (the classes: given, or the labels "
             "seen)", _read, ("pool", "label_field", "split_field", "classes"),
             ("ids", "texts", "given", "classes", "errors", "splits"))
FEATURIZE = Stage("featurize", MAP, "features for the cross-validated model, outlier scores and training dynamics, "
                  "in chunks on the workers", _featurize,
                  ("texts", "features", "probs_from", "outlier_k", "dynamics", "engine"), ("x",))
PROBABILITIES = Stage("probabilities", GLOBAL, "out-of-sample class probabilities: stratified k-fold softmax "
                      "regression, folds fitted on the workers (or read with --probs-from)", _probabilities,
                      ("x", "given", "classes", "cv", "probs_from", "ids", "seed", "label_field", "engine"),
                      ("probs", "fold"))
JUDGE = Stage("judge", GLOBAL, "label quality, confident-learning label issues, suggested labels, outlier scores, "
              "near-duplicates (label conflicts, cross-split leakage)", _judge,
              ("given", "probs", "filter_by", "quality", "classes", "x", "outlier_k", "texts", "splits",
               "duplicate_threshold", "engine"),
              ("issues", "quality_scores", "suggested", "joint", "outliers", "duplicates"))
DYNAMICS = Stage("dynamics", GLOBAL, "optional: training-dynamics scores of the labelled records from seeded SGD "
                 "runs, one per worker", _dynamics, ("x", "given", "classes", "dynamics", "dynamics_config", "seed",
                                                     "engine"), ("dynamics_scores",))
AUDIT_PLAN = Plan("audit", ("pool", "label_field", "split_field", "classes", "features", "cv", "probs_from",
                            "filter_by", "quality", "outlier_k", "duplicate_threshold", "dynamics", "dynamics_config",
                            "seed", "engine"),
                  (READ, FEATURIZE, PROBABILITIES, JUDGE, DYNAMICS))


def audit_classes(raw: list, classes: Sequence[str] | None, field: str) -> list[str]:
    """The class names in index order: ``classes`` as given, else every label seen, sorted (numerals by value)."""
    if classes is not None:
        classes = [str(c) for c in classes]
        if len(set(classes)) != len(classes):
            raise ConfigError(f"classes repeat a name: {classes}")
    else:
        seen = {v for v in raw if v is not None}
        if not seen:
            raise ConfigError(f"no record has a value in {field!r}; give the field holding the labels with "
                              "--label-field")
        numeric = all(re.fullmatch(r"-?\d+", s) for s in seen)
        classes = sorted(seen, key=int) if numeric else sorted(seen)
    if len(classes) < 2:
        raise ConfigError(f"an audit needs at least 2 classes, got {classes}")
    prob_columns(classes)  # clashing column names are an error now, not after the work
    return classes


def read_probs(source: str | os.PathLike, ids: pa.Array, classes: Sequence[str]) -> np.ndarray:
    """Out-of-sample probabilities by id from a run directory's scores or a table file with ``id`` and
    ``prob_<class>`` columns; rows are renormalised to sum to 1, and every record needs one."""
    source = Path(source)
    if source.is_dir():
        table = Run(source).scores()
    else:
        from thresher.io.table_file import read_table_file

        table = read_table_file(source, "probabilities")
    columns = prob_columns(classes)
    missing = [c for c in ["id", *columns] if c not in table.column_names]
    if missing:
        raise ConfigError(f"{source}: probabilities need columns id and {', '.join(columns)}; missing "
                          f"{', '.join(missing)}")
    row_of = {str(i): r for r, i in enumerate(table.column("id").to_pylist())}
    values = np.column_stack([np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)
                              for c in columns])
    rows = np.empty(len(ids), dtype=np.int64)
    for r, record_id in enumerate(ids.to_pylist()):
        if record_id not in row_of:
            raise ConfigError(f"{source} has no probabilities for record {record_id!r}")
        rows[r] = row_of[record_id]
    probs = values[rows]
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ConfigError(f"{source}: probabilities must be finite and non-negative")
    sums = probs.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise ConfigError(f"{source}: a record's probabilities sum to 0")
    return probs / sums


def _scores_table(v: Values, classes: Sequence[str]) -> pa.Table:
    labelled = v.given >= 0
    names = np.asarray(classes, dtype=object)
    cols = {"id": v.ids, "label": pa.array(v.given, pa.int32()),
            "label_name": pa.array(names[np.where(labelled, v.given, 0)], pa.large_string(), mask=~labelled),
            "suggested_label": pa.array(v.suggested, pa.int32()),
            "suggested_label_name": pa.array(names[v.suggested], pa.large_string()),
            "label_quality": pa.array(v.quality_scores, pa.float64(), mask=~labelled),
            "is_label_issue": pa.array(v.issues, pa.bool_())}
    if v.outliers is not None:
        cols["outlier_score"] = pa.array(v.outliers, pa.float64())
    if v.duplicates is not None:
        import pyarrow.compute as pc

        partner = v.duplicates.partner
        cols["near_duplicate_of"] = pc.if_else(pa.array(partner >= 0), v.ids.take(pa.array(np.maximum(partner, 0))),
                                               pa.scalar(None, v.ids.type))
        cols["label_conflict"] = pa.array(v.duplicates.conflict, pa.bool_())
        if v.splits is not None:
            cols["cross_split_duplicate"] = pa.array(v.duplicates.cross_split, pa.bool_())
    cols["uncertainty"] = pa.array(uncertainty(v.probs), pa.float64())  # which unlabelled records to label next
    for j, col in enumerate(prob_columns(classes)):
        cols[col] = pa.array(v.probs[:, j], pa.float64())
    for column, values in v.dynamics_scores.items():
        missing = np.isnan(values)
        if column == "carto_region":
            from thresher.audit.dynamics import CARTO_REGIONS

            names = np.asarray(CARTO_REGIONS, dtype=object)[np.where(missing, 0, values).astype(int)]
            cols[column] = pa.array(names, pa.large_string(), mask=missing)
        else:
            cols[column] = pa.array(values, pa.float64(), mask=missing)
    cols["fold"] = pa.array(v.fold, pa.int32())
    cols["n_words"] = pa.array(whitespace_token_counts(v.texts))
    return pa.table(cols)


def _examples(v: Values, rows: np.ndarray, key: np.ndarray, limit: int = EXAMPLES) -> list[dict]:
    """The ``limit`` rows with the lowest ``key``: id, given and suggested label, quality and a text excerpt."""
    rows = rows[np.argsort(key[rows], kind="stable")[:limit]]
    out = []
    for r in rows:
        text = " ".join(str(v.texts[int(r)].as_py()).split())
        out.append({"id": v.ids[int(r)].as_py(), "label": v.classes[v.given[r]] if v.given[r] >= 0 else None,
                    "suggested": v.classes[v.suggested[r]], "label_quality": _round(v.quality_scores[r]),
                    "outlier_score": _round(v.outliers[r]) if v.outliers is not None else None,
                    "text": text[:300] + ("\u2026" if len(text) > 300 else "")})
    return out


def _round(x: float) -> float | None:
    return None if np.isnan(x) else round(float(x), 6)
