"""Does curating labelled data help? Train the same classifier on a curated subset of an audited pool and on random
subsets of the same size, and measure both on a labelled test set, with seeds and intervals.

Two experiments on a ``thresher audit`` run (its scores say what each method keeps):

* ``pruning``: keep a fraction of the pool by a score (the hardest by EL2N, as in "Data Diet", the easiest, the
  largest area under the margin, the most variable under cartography, the best label quality, ...) or at random
  (``random``; ``stratified``: random within each given label, in proportion). Random and stratified draws change
  with the seed; a score's choice does not, so its interval reflects the spread of the random draws it is paired
  with.
* ``label-errors``: drop the records the audit flagged (``is_label_issue``) against dropping as many at random.

The classifier is thresher's softmax regression on hashed uni+bigrams (the audit's), trained on the kept records'
given labels. Each method is paired with random per seed; the improvement's interval decides the verdict
(:func:`thresher.evaluate.intervals.compare_to_baseline`): a win is claimed only when the whole interval clears
``margin``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError

#: method -> (score column, keep "high" or "low" values); random and stratified draw instead.
PRUNE_METHODS: dict[str, tuple[str, str] | None] = {
    "random": None, "stratified": None,
    "el2n": ("el2n", "high"), "easy": ("el2n", "low"), "grand": ("grand", "high"), "aum": ("aum", "high"),
    "forgetting": ("forgetting_events", "high"), "ambiguous": ("carto_variability", "high"),
    "confident": ("carto_confidence", "high"), "label_quality": ("label_quality", "high"),
}
EXPERIMENTS = ("pruning", "label-errors")
METRICS = ("accuracy", "macro_f1")


@dataclass(frozen=True)
class CurationConfig:
    """experiment: pruning | label-errors. methods: names from :data:`PRUNE_METHODS` (pruning). fractions: shares
    of the pool kept (pruning). seeds: paired runs. l2: the classifier's ridge penalty."""

    experiment: str = "pruning"
    methods: tuple[str, ...] = ("el2n", "easy", "aum", "stratified")
    fractions: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    seeds: int = 10  # paired runs: with 10 or more the interval is a BCa bootstrap; 5 never gives a verdict at 95%
    seed: int = 0
    l2: float = 1e-4
    level: float = 0.95
    margin: float = 0.0
    n_boot: int = 2000

    def __post_init__(self) -> None:
        if self.experiment not in EXPERIMENTS:
            raise ConfigError(f"experiment must be one of {', '.join(EXPERIMENTS)}, got {self.experiment!r}")
        unknown = [m for m in self.methods if m not in PRUNE_METHODS]
        if unknown:
            raise ConfigError(f"unknown pruning method(s) {', '.join(unknown)}; choose from {', '.join(PRUNE_METHODS)}")
        if any(not 0 < f <= 1 for f in self.fractions) or not self.fractions:
            raise ConfigError(f"fractions kept must be in (0, 1], got {self.fractions}")
        if self.seeds < 2:
            raise ConfigError(f"seeds must be >= 2 for an interval, got {self.seeds}")


def parse_fraction(text: object) -> float:
    """``50%`` or ``0.5`` as 0.5 (a share of the pool kept); anything else is an error naming it."""
    text = str(text).strip()
    try:
        return float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigError(f"a share kept is a percentage or a fraction (50% or 0.5), got {text!r}") from None


def keep_rows(method: str, n_keep: int, scores: dict[str, np.ndarray], labels: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """The rows ``method`` keeps: ``n_keep`` of them, by its score (ties by row) or drawn with ``rng``."""
    n = len(labels)
    if method == "random":
        return np.sort(rng.choice(n, n_keep, replace=False))
    if method == "stratified":
        return stratified_sample(labels, n_keep, rng)
    column, direction = PRUNE_METHODS[method]
    if column not in scores:
        raise ConfigError(f"pruning method {method!r} needs the audit column {column!r}; run thresher audit with "
                          f"--dynamics all (or the score it comes from)")
    values = np.asarray(scores[column], dtype=np.float64)
    key = -values if direction == "high" else values
    return np.sort(np.argsort(np.where(np.isnan(key), np.inf, key), kind="stable")[:n_keep])


def stratified_sample(labels: np.ndarray, n_keep: int, rng: np.random.Generator) -> np.ndarray:
    """``n_keep`` rows drawn at random within each label, in proportion to the label's share (largest remainders
    round up)."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n_keep / len(labels)
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[:n_keep - take.sum()]] += 1
    rows = [rng.choice(np.flatnonzero(labels == c), t, replace=False) for c, t in zip(classes, take)]
    return np.sort(np.concatenate(rows))


def run_curation(audit_run: str | os.PathLike, heldout, out: str | os.PathLike, config: CurationConfig | None = None,
                 label_field: str = "label", workers: int | None = None, command: list[str] | None = None,
                 report: bool = True):
    """Run ``config.experiment`` on the audited pool of ``audit_run`` against the labelled ``heldout`` Dataset;
    writes ``results.csv`` (method x kept x metric: estimate, interval, improvement over random, verdict; the
    columns of ``thresher evaluate``'s), ``per_seed.csv``, ``evaluation.json``, ``manifest.json`` and
    ``report.html`` into ``out``. Returns the result rows."""
    from thresher.engine import make_engine
    from thresher.io.atomic import write_json
    from thresher.io.provenance import dataset_info, reopen_dataset
    from thresher.jobs.audit import audit_classes, train_test_features
    from thresher.jobs.label import class_indices
    from thresher.run import Run

    config = config or CurationConfig()
    t_start = time.perf_counter()
    audit = Run(audit_run)
    if audit.manifest.get("job") != "audit":
        raise ConfigError(f"{audit.path} is not a thresher audit run (give the directory thresher audit wrote)")
    classes = audit.manifest["classes"]
    scores_table = audit.scores()
    given = np.asarray(scores_table.column("label").to_numpy(zero_copy_only=False), dtype=np.int64)
    labelled = given >= 0
    scores = {c: np.asarray(scores_table.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)[labelled]
              for c in {c for spec in PRUNE_METHODS.values() if spec for c in spec[:1]} | {"is_label_issue"}
              if c in scores_table.column_names}
    pool = reopen_dataset(audit.manifest["inputs"]["pool"])
    test = read_labelled(heldout, label_field)
    y_test = class_indices(test[label_field], test["id"], audit_classes(test[label_field], classes, label_field),
                           label_field)
    if (y_test < 0).any():
        raise ConfigError(f"every held-out record needs a label in {label_field!r}")
    x_pool, x_test = train_test_features("hashed", _texts(pool, scores_table.column("id")), test["text"])
    x_pool, y_pool = x_pool[np.flatnonzero(labelled)], given[labelled]
    plans = _plans(config, y_pool, scores)
    with make_engine(workers) as engine:
        measured = list(engine.map(_train_and_test, [(x_pool, y_pool, rows, x_test, y_test, len(classes), config.l2)
                                                     for _, _, _, rows in plans]))
    per_seed = [{"method": m, "kept": k, "seed": s, "records": len(rows), **metrics}
                for (m, k, s, rows), metrics in zip(plans, measured)]
    rows = _result_rows(per_seed, config, len(y_pool))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "results.csv", rows)
    write_csv(out / "per_seed.csv", per_seed)
    settings = {"experiment": config.experiment, "methods": list(config.methods), "fractions": list(config.fractions),
                "seeds": config.seeds, "seed": config.seed, "l2": config.l2, "level": config.level,
                "margin": config.margin}
    seconds = time.perf_counter() - t_start
    write_json({"job": "evaluate curation", "command": command, "config": settings,
                "audit_run": str(audit.path.resolve()), "classes": classes, "pool_records": int(len(y_pool)),
                "heldout_records": int(len(y_test)), "rows": rows, "seconds": round(seconds, 2)},
               out / "evaluation.json")
    write_experiment_manifest(
        out, config.experiment, settings, {"audit_run": str(audit.path.resolve()),
                                           "pool": audit.manifest["inputs"]["pool"], "heldout": dataset_info(heldout)},
        {"input_records": len(given), "evaluated": int(labelled.sum()), "unlabelled": int((~labelled).sum()),
         "heldout": len(y_test), "heldout_failed": test["failed"]["total"], "heldout_errors": test["failed"]},
        command, seconds, {"results": "results.csv", "per_seed": "per_seed.csv", "evaluation": "evaluation.json"},
        report)
    return rows


def _plans(config: CurationConfig, labels: np.ndarray, scores: dict) -> list[tuple[str, str, int, np.ndarray]]:
    """(method, kept label, seed, rows) for every training run; random first, as every method's baseline."""
    n = len(labels)
    plans = []
    if config.experiment == "pruning":
        methods = ["random", *[m for m in config.methods if m != "random"]]
        for fraction in config.fractions:
            n_keep = max(int(round(fraction * n)), 1)
            for method in methods:
                for s in range(config.seeds):
                    rng = np.random.default_rng([config.seed, s, int(fraction * 1000)])
                    plans.append((method, f"{fraction:.0%}", s, keep_rows(method, n_keep, scores, labels, rng)))
        return plans
    if "is_label_issue" not in scores:
        raise ConfigError("the audit run has no is_label_issue column")
    flagged = scores["is_label_issue"] > 0
    kept = np.flatnonzero(~flagged)
    label = f"drop {int(flagged.sum())}"
    for s in range(config.seeds):
        rng = np.random.default_rng([config.seed, s])
        plans.append(("random", label, s, np.sort(rng.choice(n, len(kept), replace=False))))
    for s in range(config.seeds):
        plans.append(("drop_flagged", label, s, kept))
    return plans


def _train_and_test(x, y: np.ndarray, rows: np.ndarray, x_test, y_test: np.ndarray, k: int, l2: float) -> dict:
    """Test accuracy and macro-F1 of softmax regression trained on ``rows`` of (x, y)."""
    from thresher.evaluate.proxies import fit_classifier
    from thresher.label.metrics import label_metrics

    model = fit_classifier(x[rows], y[rows], k, l2, 300)
    m = label_metrics(y_test, np.asarray(x_test @ model.coef + model.intercept).argmax(axis=1), k)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


def _result_rows(per_seed: list[dict], config: CurationConfig, n_pool: int) -> list[dict]:
    """One row per method x kept x metric, paired with random at the same kept size by seed."""
    from thresher.evaluate.intervals import bootstrap_ci, compare_to_baseline

    rows = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in per_seed:
        groups.setdefault((r["method"], r["kept"]), []).append(r)
    for (method, kept), runs in groups.items():
        base = sorted(groups[("random", kept)], key=lambda r: r["seed"])
        runs = sorted(runs, key=lambda r: r["seed"])
        for metric in METRICS:
            values = np.array([r[metric] for r in runs])
            ci = bootstrap_ci(values, np.mean, level=config.level, n_boot=config.n_boot, seed=config.seed) \
                if np.ptp(values) > 0 else None
            row = {"target": f"{config.experiment} (test set)", "metric": metric, "method": method, "budget": kept,
                   "budget_records": runs[0]["records"], "pool_records": n_pool, "estimate": float(values.mean()),
                   "lo": float(ci.low) if ci else float(values.mean()),
                   "hi": float(ci.high) if ci else float(values.mean()), "higher_is_better": True,
                   "level": config.level, "baseline": "random", "n_seeds": len(values)}
            if method == "random":
                row.update(delta=None, delta_lo=None, delta_hi=None, verdict="baseline")
            else:
                c = compare_to_baseline(values, [r[metric] for r in base], level=config.level, seed=config.seed,
                                        margin=config.margin, n_boot=config.n_boot)
                row.update(delta=c["estimate"], delta_lo=c["low"], delta_hi=c["high"], verdict=c["verdict"],
                           interval=c["method"])
            rows.append(row)
    return rows


def _texts(pool, ids: pa.ChunkedArray) -> pa.Array:
    """The pool's texts in the audit's order (ids must match: the pool must be the data that was audited)."""
    from thresher.io.errors import ErrorLog

    table = pool.read_all(ErrorLog("skip"))
    if table.num_rows != len(ids) or not table.column("id").equals(ids):
        raise ConfigError("the audited pool changed since the audit (its records or ids differ); audit it again")
    return table.column("text").combine_chunks()


def read_labelled(ds, label_field: str, what: str = "held-out set") -> dict:
    """ids and labels (strings, None where missing) and texts (an Arrow array, for the featurisers) of a Dataset,
    read whole; ``failed``: what could not be read (with ``on_error="skip"``), for the manifest's accounting."""
    from thresher.io.errors import ErrorLog

    errors = ErrorLog(ds.on_error)
    t = ds.read_all(errors, (label_field,))
    if t.num_rows == 0:
        raise ConfigError(f"the {what} is empty")
    return {"id": t.column("id").to_pylist(), "text": t.column("text").combine_chunks(),
            label_field: t.column(label_field).to_pylist(), "failed": errors.to_dict()}


def write_experiment_manifest(out: Path, experiment: str, config: dict, inputs: dict, counts: dict,
                              command: list[str] | None, seconds: float, outputs: dict, report: bool) -> None:
    """``manifest.json`` of a curation or active-learning experiment (every record read is used or counted as
    failed), then ``report.html`` unless ``report`` is False."""
    from thresher.io.atomic import write_json
    from thresher.io.provenance import versions
    from thresher.report.html import report_after_job

    write_json({"job": "evaluate active" if experiment == "active" else "evaluate", "experiment": experiment,
                "command": command, "created_unix": int(time.time()), "config": config, "inputs": inputs,
                "versions": versions(), "counts": {**counts, "all_accounted_for": sum(
                    counts.get(k, 0) for k in ("evaluated", "unlabelled", "failed")) == counts["input_records"]},
                "timings": {"total": round(seconds, 2)}, "outputs": outputs}, out / "manifest.json")
    report_after_job(out, report)


def write_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` as a CSV with every key any row has as a column."""
    import csv

    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
