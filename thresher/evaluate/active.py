"""Active learning, simulated on a labelled pool: which records to send to annotators next, and whether choosing
beats labelling at random.

From ``start`` labelled records (a seeded random draw), each round trains softmax regression (on hashed uni+bigrams,
IDF-weighted ones, or embeddings: ``features``) on the labels so far, scores the unlabelled records, acquires
``batch`` more (their labels are revealed from the pool), and measures test accuracy and macro-F1; until
``max_labels``. Strategies:

* ``random``: the baseline;
* ``entropy``, ``margin`` (smallest gap between the two likeliest classes), ``least_confidence``: uncertainty
  sampling;
* ``coreset``: greedy k-center on the feature rows (cosine distance), the unlabelled record farthest from every
  labelled or already chosen one, next (Sener & Savarese);
* ``badge``: k-means++ seeding on gradient embeddings ``(p - onehot(predicted)) ⊗ x`` (Ash et al.): uncertain and
  diverse at once.

A record is acquired at most once (the labelled set only grows). Every strategy shares the seed's starting set, so
curves are paired by seed; the area under each curve (mean accuracy over the rounds) and the labels each strategy
needs to reach random's final accuracy summarise them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thresher.audit.acquisition import UNCERTAINTY, uncertainty
from thresher.errors import ConfigError, ThresherError
from thresher.softmax import softmax

STRATEGIES = ("random", "entropy", "margin", "least_confidence", "coreset", "badge")


@dataclass(frozen=True)
class ActiveConfig:
    """strategies: from :data:`STRATEGIES`. start, batch, max_labels: labels at the start, per round, at the end.
    seeds: paired runs. l2: the classifier's ridge penalty. features: the classifier's features (hashed, tfidf,
    static, minilm: as ``thresher audit --features``)."""

    strategies: tuple[str, ...] = ("random", "margin", "entropy", "least_confidence", "coreset", "badge")
    start: int = 100
    batch: int = 100
    max_labels: int = 2000
    seeds: int = 10  # paired by seed: with 10 or more the AUC interval is a BCa bootstrap
    seed: int = 0
    l2: float = 1e-4
    features: str = "hashed"

    def __post_init__(self) -> None:
        from thresher.jobs.audit import FEATURES

        if self.features not in FEATURES:
            raise ConfigError(f"features must be one of {', '.join(FEATURES)}, got {self.features!r}")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise ConfigError(f"unknown acquisition strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
        if not (1 <= self.start <= self.max_labels and self.batch >= 1):
            raise ConfigError("active learning needs 1 <= start <= max_labels and batch >= 1")
        if self.seeds < 1:
            raise ConfigError("seeds must be >= 1")


def acquire(strategy: str, probs: np.ndarray, x, labelled: np.ndarray, candidates: np.ndarray, n: int,
            rng: np.random.Generator) -> np.ndarray:
    """``n`` rows of ``candidates`` (unlabelled) to label next. ``probs``: the current model's class probabilities
    of the candidates; ``x``: feature rows of every record (unit length); ``labelled``: rows already labelled."""
    n = min(n, len(candidates))
    if strategy == "random":
        return rng.choice(candidates, n, replace=False)
    if strategy in UNCERTAINTY:
        return candidates[np.argsort(-uncertainty(probs, strategy), kind="stable")[:n]]
    if strategy == "coreset":
        return _k_center(x, labelled, candidates, n)
    if strategy == "badge":
        return _badge(x, probs, candidates, n, rng)
    raise ConfigError(f"unknown acquisition strategy {strategy!r}")


def _similarity(x, rows: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Cosine similarities (unit-length rows) of ``rows`` to each of ``to``: len(rows) x len(to)."""
    s = x[rows] @ x[to].T
    return np.asarray(s.todense() if hasattr(s, "todense") else s)


def _k_center(x, labelled: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
    """Greedy k-center: repeatedly the candidate farthest (cosine) from every labelled or chosen record."""
    distance = np.full(len(candidates), np.inf)
    for start in range(0, len(labelled), 512):
        sims = _similarity(x, candidates, labelled[start:start + 512])
        distance = np.minimum(distance, 1 - sims.max(axis=1))
    chosen = []
    for _ in range(n):
        i = int(np.argmax(distance))
        chosen.append(i)
        distance = np.minimum(distance, 1 - _similarity(x, candidates, candidates[[i]])[:, 0])
        distance[i] = -np.inf
    return candidates[chosen]


def _badge(x, probs: np.ndarray, candidates: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on gradient embeddings g = (p - onehot(argmax p)) ⊗ x, without forming them:
    |g_i - g_j|^2 = |g_i|^2 + |g_j|^2 - 2 (x_i . x_j)(e_i . e_j), e = p - onehot(argmax p)."""
    e = probs.copy()
    e[np.arange(len(e)), e.argmax(axis=1)] -= 1.0
    norm2 = (e * e).sum(axis=1)  # x rows have unit length
    first = int(np.argmax(norm2))
    chosen = [first]
    d2 = _badge_distance(x, e, norm2, candidates, first)
    for _ in range(n - 1):
        d2[chosen] = 0.0
        total = d2.sum()
        if total <= 0:
            rest = np.setdiff1d(np.arange(len(candidates)), chosen)
            chosen.extend(rng.choice(rest, n - len(chosen), replace=False).tolist())
            break
        i = int(rng.choice(len(candidates), p=d2 / total))
        chosen.append(i)
        d2 = np.minimum(d2, _badge_distance(x, e, norm2, candidates, i))
    return candidates[chosen]


def _badge_distance(x, e: np.ndarray, norm2: np.ndarray, candidates: np.ndarray, center: int) -> np.ndarray:
    sims = _similarity(x, candidates, candidates[[center]])[:, 0]
    return np.maximum(norm2 + norm2[center] - 2 * sims * (e @ e[center]), 0.0)


def learning_curve(x, y: np.ndarray, x_test, y_test: np.ndarray, n_classes: int, strategy: str,
                   config: ActiveConfig, seed: int) -> list[dict]:
    """One strategy's curve for one seed: labels, test accuracy and macro-F1 per round (one worker task)."""
    from thresher.evaluate.proxies import fit_classifier
    from thresher.label.metrics import label_metrics

    n = len(y)
    rng = np.random.default_rng([config.seed, seed])
    labelled = np.sort(rng.choice(n, min(config.start, n), replace=False))  # shared by every strategy of the seed
    pick = np.random.default_rng([config.seed, seed, STRATEGIES.index(strategy)])
    curve = []
    model = None
    while True:
        model = fit_classifier(x[labelled], y[labelled], n_classes, config.l2, 300, init=model)  # warm: set grows
        w, b = model.coef, model.intercept
        m = label_metrics(y_test, np.asarray(x_test @ w + b).argmax(axis=1), n_classes)
        curve.append({"labels": len(labelled), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
        if len(labelled) >= min(config.max_labels, n):
            return curve
        candidates = np.setdiff1d(np.arange(n), labelled)
        probs = softmax(np.asarray(x[candidates] @ w + b))
        take = min(config.batch, config.max_labels - len(labelled))
        new = acquire(strategy, probs, x, labelled, candidates, take, pick)
        if len(np.intersect1d(new, labelled)) or len(np.unique(new)) != len(new):
            raise ThresherError(f"{strategy} acquired a record twice")  # guards the invariant the docs promise
        labelled = np.sort(np.concatenate([labelled, new]))


def run_active(pool, heldout, out, config: ActiveConfig | None = None, label_field: str = "label",
               workers: int | None = None, command: list[str] | None = None, report: bool = True) -> list[dict]:
    """Simulate active learning on the labelled ``pool`` (Dataset), tested on ``heldout``; writes ``curves.csv``
    (strategy x labels: mean test accuracy and macro-F1 over seeds with 95% bootstrap intervals), ``per_seed.csv``,
    ``results.csv`` (per strategy: area under the accuracy curve vs random's, paired by seed; final accuracy; the
    labels needed to reach random's final accuracy), ``evaluation.json``, ``manifest.json`` and ``report.html``.
    Returns the results rows."""
    import time
    from pathlib import Path

    from thresher.engine import make_engine
    from thresher.evaluate.curation import read_labelled, write_csv, write_experiment_manifest
    from thresher.evaluate.intervals import bootstrap_ci, compare_to_baseline
    from thresher.io.atomic import write_json
    from thresher.io.provenance import dataset_info
    from thresher.jobs.audit import audit_classes, train_test_features
    from thresher.jobs.label import class_indices

    config = config or ActiveConfig()
    t_start = time.perf_counter()
    train = read_labelled(pool, label_field, "pool")
    test = read_labelled(heldout, label_field)
    classes = audit_classes(train[label_field], None, label_field)
    y = class_indices(train[label_field], train["id"], classes, label_field)
    y_test = class_indices(test[label_field], test["id"], classes, label_field)
    if (y < 0).any() or (y_test < 0).any():
        raise ConfigError(f"every pool and held-out record needs a label in {label_field!r} (the pool is the oracle)")
    x, x_test = train_test_features(config.features, train["text"], test["text"])
    strategies = ["random", *[s for s in config.strategies if s != "random"]]
    items = [(x, y, x_test, y_test, len(classes), s, config, seed) for s in strategies for seed in range(config.seeds)]
    with make_engine(workers) as engine:
        curves = list(engine.map(learning_curve, items))
    per_seed = [{"strategy": item[5], "seed": item[7], **point} for item, curve in zip(items, curves)
                for point in curve]
    by = {(item[5], item[7]): curve for item, curve in zip(items, curves)}
    labels = [p["labels"] for p in curves[0]]
    curve_rows, results = [], []
    target = float(np.mean([by[("random", s)][-1]["accuracy"] for s in range(config.seeds)]))
    for strategy in strategies:
        acc = np.array([[p["accuracy"] for p in by[(strategy, s)]] for s in range(config.seeds)])
        f1 = np.array([[p["macro_f1"] for p in by[(strategy, s)]] for s in range(config.seeds)])
        for j, n_labels in enumerate(labels):
            ci = bootstrap_ci(acc[:, j], level=0.95, seed=config.seed) if config.seeds > 1 and np.ptp(acc[:, j]) \
                else None
            curve_rows.append({"strategy": strategy, "labels": n_labels, "accuracy": float(acc[:, j].mean()),
                               "lo": float(ci.low) if ci else float(acc[:, j].mean()),
                               "hi": float(ci.high) if ci else float(acc[:, j].mean()),
                               "macro_f1": float(f1[:, j].mean())})
        mean_curve = acc.mean(axis=0)
        reached = np.flatnonzero(mean_curve >= target)
        row = {"strategy": strategy, "auc": float(acc.mean()), "final_accuracy": float(mean_curve[-1]),
               "final_macro_f1": float(f1[:, -1].mean()), "random_final_accuracy": target,
               "labels_to_random_final": int(labels[reached[0]]) if len(reached) else None,
               "share_of_labels": float(labels[reached[0]] / labels[-1]) if len(reached) else None}
        if strategy != "random" and config.seeds > 1:
            base = np.array([[p["accuracy"] for p in by[("random", s)]] for s in range(config.seeds)]).mean(axis=1)
            c = compare_to_baseline(acc.mean(axis=1), base, seed=config.seed)
            row.update(auc_delta=c["estimate"], auc_delta_lo=c["low"], auc_delta_hi=c["high"], verdict=c["verdict"],
                       interval=c["method"])
        results.append(row)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "curves.csv", curve_rows)
    write_csv(out / "per_seed.csv", per_seed)
    write_csv(out / "results.csv", results)
    settings = {"strategies": strategies, "start": config.start, "batch": config.batch,
                "max_labels": config.max_labels, "seeds": config.seeds, "seed": config.seed, "l2": config.l2,
                "features": config.features}
    seconds = time.perf_counter() - t_start
    write_json({"job": "evaluate active", "command": command, "config": settings, "classes": classes,
                "pool_records": len(y), "heldout_records": len(y_test), "results": results, "curves": curve_rows,
                "seconds": round(seconds, 2)}, out / "evaluation.json")
    write_experiment_manifest(
        out, "active", settings, {"pool": dataset_info(pool), "heldout": dataset_info(heldout)},
        {"input_records": len(y) + train["failed"]["total"], "evaluated": len(y), "failed": train["failed"]["total"],
         "pool_failed": train["failed"], "heldout": len(y_test), "heldout_failed": test["failed"]["total"],
         "heldout_errors": test["failed"]}, command, seconds,
        {"curves": "curves.csv", "per_seed": "per_seed.csv", "results": "results.csv",
         "evaluation": "evaluation.json"}, report)
    return results

