"""LFs that write themselves vs simply training on the labels (issue 16): at 50/100/200/500 labelled records.

    python bench/bench_label_generate.py [--tasks bbc_news,...] [--sizes 50,100,200,500] [--seeds 0,1,2]

For every task of bench_label_real.py, size n and seed: n records drawn at random from the train split are the
labelled dev set, the rest of train is the unlabelled pool, the test split scores everything (accuracy over all test
records; a label model's abstain counts as wrong, the end model never abstains). Compared, at the same n:

* **dev only**: the end model (softmax regression on hashed uni+bigrams) trained on the n labels alone, its L2
  penalty chosen by 3-fold cross-validation on them (the honest baseline: what a practitioner does with n labels);
* **generated**: keyword LFs (``generate_keyword_lfs``) and a nearest-centroid LF on static embeddings
  (``generate_centroid_lf``) from the n labels, defaults throughout, the default label model on the pool, and the
  end model trained on its probabilistic labels of the covered pool records;
* **hand**: the same with the hand-written LFs of examples/label/ only, on the whole train split (they need no
  labels, so it does not depend on n);
* **hand + generated**: both LF sets together;
* **hand + generated + dev**: that end model trained on the pool's probabilistic labels and the n gold labels.

Results: bench/results/label_generate.{md,json}. Means over seeds; the markdown also counts the tasks on which each
pipeline beats dev-only at each n.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_label_real import ROOT, TASKS, task_file  # noqa: E402

SIZES = (50, 100, 200, 500)
SEEDS = (0,)
L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2)
FOLDS = 3
PIPELINES = ("dev only", "generated LM", "generated", "hand", "hand + generated", "hand + generated + dev")


def cv_l2(x, y: np.ndarray, k: int, seed: int) -> float:
    """The L2 penalty of the grid with the best cross-validated accuracy (FOLDS folds) on the labelled records."""
    from thresher.label.end_model import EndModel, EndModelConfig

    folds = np.random.default_rng(seed).permutation(len(y)) % FOLDS
    best, best_acc = L2_GRID[0], -1.0
    for l2 in L2_GRID:
        right = 0
        for f in range(FOLDS):
            train, held = folds != f, folds == f
            if len(np.unique(y[train])) < 2:
                continue
            model = EndModel(EndModelConfig(l2=l2)).fit_features(x[train], np.eye(k)[y[train]])
            right += int((model.predict_proba_features(x[held]).argmax(axis=1) == y[held]).sum())
        if right > best_acc:
            best, best_acc = l2, right
    return best


def generated_matrix(lfs, texts: pa.Array, embeddings: np.ndarray, classes: list[str]):
    """Votes of generated LFs on ``texts`` as a label matrix: keyword LFs as regex matches, prototype LFs on the
    texts' embeddings computed once per task."""
    from thresher.label import LabelMatrix
    from thresher.label.lfs import PrototypeLF

    dense = np.full((len(texts), max(len(lfs), 1)), -1, dtype=np.int32)
    for j, g in enumerate(lfs):
        if isinstance(g.lf, PrototypeLF):
            dense[:, j] = g.lf.decide(g.lf.similarities_to(embeddings), g.lf.class_indices(classes))
        else:
            dense[g.lf.matches(texts), j] = classes.index(g.label)
    return LabelMatrix.from_dense(dense, len(classes), [g.lf.name for g in lfs] or ["none"])


def side_by_side(a, b):
    """Two label matrices over the same records as one (the LFs of both)."""
    import scipy.sparse as sp

    from thresher.label import LabelMatrix

    return LabelMatrix(sp.hstack([a.votes, b.votes]).tocsr(), a.n_classes, a.lf_names + b.lf_names)


def ws_accuracy(L_pool, L_test, x_pool, x_test, y_test, k: int, extra=None) -> tuple[float, float]:
    """(label model accuracy on test, end model accuracy on test) of the default pipeline on these votes;
    ``extra``: (features, one-hot labels) added to the end model's training rows."""
    import scipy.sparse as sp

    from thresher.label import make_label_model
    from thresher.label.end_model import EndModel

    covered = L_pool.n_votes() > 0
    if not covered.any():
        return 0.0, float("nan")
    model = make_label_model().fit(L_pool)
    lm_acc = float((model.predict(L_test, abstain="abstain") == y_test).mean())
    x, probs = x_pool[covered], model.predict_proba(L_pool)[covered]
    if extra is not None:
        x, probs = sp.vstack([x, extra[0]]).tocsr(), np.vstack([probs, extra[1]])
    end = EndModel().fit_features(x, probs)
    return lm_acc, float((end.predict_proba_features(x_test).argmax(axis=1) == y_test).mean())


def run_task(task: str, data: Path, built: Path, sizes, seeds, keyword_params: dict | None = None) -> dict:
    import thresher as th
    from thresher.embeddings import make_backend
    from thresher.errors import ConfigError
    from thresher.io.errors import ErrorLog
    from thresher.label.apply import apply_lfs
    from thresher.label.end_model import EndModel, EndModelConfig
    from thresher.label.generate import generate_centroid_lf, generate_keyword_lfs
    from thresher.label.lf_files import load_lfs

    hand = load_lfs(ROOT / "examples" / "label" / TASKS[task])
    classes, k = hand.classes, len(hand.classes)
    table = pq.read_table(task_file(task, data, built))
    is_train = np.asarray(pc.equal(table["split"], "train").to_numpy(zero_copy_only=False))
    parts = {"train": table.filter(pa.array(is_train)), "test": table.filter(pa.array(~is_train))}
    texts = {name: t["text"].combine_chunks() for name, t in parts.items()}
    y = {name: np.array([classes.index(v) for v in t["label"].to_pylist()]) for name, t in parts.items()}
    featurizer = EndModel()
    x = {name: featurizer.features(texts[name]) for name in parts}
    emb = {name: np.asarray(make_backend("static").encode(texts[name].to_pylist()), dtype=np.float64)
           for name in parts}
    L_hand = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, t in parts.items():
            pq.write_table(t, Path(tmp) / f"{name}.parquet")
            L_hand[name] = apply_lfs(th.read(Path(tmp) / f"{name}.parquet"), hand, ErrorLog("raise"),
                                     workers=1).matrix
    # the hand-written LFs alone need no labels: once per task, on the whole train split as the pool
    _, hand_only = ws_accuracy(L_hand["train"], L_hand["test"], x["train"], x["test"], y["test"], k)
    rows = []
    for n in sizes:
        for seed in seeds:
            t0 = time.perf_counter()
            rng = np.random.default_rng(seed * 7919 + n)
            labelled = np.sort(rng.choice(len(y["train"]), min(n, len(y["train"]) - 1), replace=False))
            pool = np.setdiff1d(np.arange(len(y["train"])), labelled)
            y_dev = y["train"][labelled]
            row = {"n": n, "seed": seed}
            l2 = cv_l2(x["train"][labelled], y_dev, k, seed)
            dev_only = EndModel(EndModelConfig(l2=l2)).fit_features(x["train"][labelled], np.eye(k)[y_dev])
            row["dev only"] = float((dev_only.predict_proba_features(x["test"]).argmax(axis=1) == y["test"]).mean())
            row["dev only l2"] = l2
            dev_texts = texts["train"].take(pa.array(labelled)).to_pylist()
            gen = generate_keyword_lfs(dev_texts, y_dev, classes, **(keyword_params or {}))
            with contextlib.suppress(ConfigError):  # no better than the majority class on dev: not written
                gen.append(generate_centroid_lf(dev_texts, y_dev, classes))
            row["generated LFs"] = len(gen)
            L_gen = {name: generated_matrix(gen, texts[name], emb[name], classes) for name in parts}
            sets = {"generated": L_gen,
                    "hand + generated": {name: side_by_side(L_hand[name], L_gen[name]) for name in parts}}
            row["hand"] = hand_only
            for label, L in sets.items():
                lm, end = ws_accuracy(L["train"].rows(pool), L["test"], x["train"][pool], x["test"], y["test"], k)
                row[label] = end
                if label == "generated":
                    row["generated LM"] = lm
            extra = (x["train"][labelled], np.eye(k)[y_dev])
            _, row["hand + generated + dev"] = ws_accuracy(sets["hand + generated"]["train"].rows(pool),
                                                           sets["hand + generated"]["test"], x["train"][pool],
                                                           x["test"], y["test"], k, extra)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            print(task, row, flush=True)
            rows.append(row)
    return {"task": task, "classes": classes, "records": {"train": len(y["train"]), "test": len(y["test"])},
            "hand_lfs": len(hand), "rows": rows}


def summarise(results: list[dict], sizes) -> dict:
    """Mean accuracy over seeds per task, size and pipeline, and per size how many tasks beat dev-only."""
    table, wins = {}, {}
    for r in results:
        for n in sizes:
            rows = [row for row in r["rows"] if row["n"] == n]
            table[(r["task"], n)] = {p: float(np.nanmean([row[p] for row in rows])) for p in PIPELINES}
            table[(r["task"], n)]["generated LFs"] = float(np.mean([row["generated LFs"] for row in rows]))
    for n in sizes:
        wins[n] = {p: sum(table[(r["task"], n)][p] > table[(r["task"], n)]["dev only"] for r in results)
                   for p in PIPELINES[1:]}
    return {"table": table, "wins": wins}


def to_markdown(results: list[dict], sizes, seeds, meta: dict) -> str:
    s = summarise(results, sizes)
    lines = ["# Generated LFs vs training on the labels (bench/bench_label_generate.py)", "",
             f"`python bench/bench_label_generate.py` on {meta['platform']}, {meta['date']}; seeds {list(seeds)}, "
             "means over seeds. Test accuracy over all test records (a label model's abstain counts as wrong). "
             "`dev only`: end model on the n labels (L2 by 3-fold CV). The other columns are end models trained on "
             "the default label model's labels of the pool (the train split minus the n labelled records); "
             "`generated LM`: that label model itself on generated LFs.", "",
             "| task | n | LFs generated | " + " | ".join(PIPELINES) + " |",
             "|---|---:|---:|" + "---:|" * len(PIPELINES)]
    for r in results:
        for n in sizes:
            cell = s["table"][(r["task"], n)]
            best = max(PIPELINES, key=lambda p: cell[p])
            lines.append(f"| {r['task']} | {n} | {cell['generated LFs']:.0f} | "
                         + " | ".join(f"**{cell[p]:.3f}**" if p == best else f"{cell[p]:.3f}" for p in PIPELINES)
                         + " |")
    lines += ["", "Tasks (of " + str(len(results)) + ") on which each pipeline beats dev only:", "",
              "| n | " + " | ".join(PIPELINES[1:]) + " |", "|---:|" + "---:|" * (len(PIPELINES) - 1)]
    for n in sizes:
        lines.append(f"| {n} | " + " | ".join(str(s["wins"][n][p]) for p in PIPELINES[1:]) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "labeled"))
    parser.add_argument("--built", default=str(Path.home() / ".cache" / "thresher" / "labeled"))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--processes", type=int, default=2, help="Tasks run in parallel.")
    parser.add_argument("--keyword-param", action="append", default=[], metavar="KEY=VALUE",
                        help="A generate_keyword_lfs setting (repeat), e.g. z=1.96; results go to "
                             "label_generate_<settings>.{md,json} instead of label_generate.{md,json}.")
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    keyword_params = {k: float(v) if "." in v else int(v) for k, _, v in (p.partition("=") for p in args.keyword_param)}
    jobs = [(t, Path(args.data), Path(args.built), sizes, seeds, keyword_params) for t in args.tasks.split(",")]
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:  # tasks are independent
        results = pool.starmap(run_task, jobs)
    meta = {"platform": platform.platform(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    out = ROOT / "bench" / "results"
    stem = "label_generate" + "".join(f"_{k}{v:g}" for k, v in keyword_params.items())
    meta["keyword_params"] = keyword_params
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "tasks": results}, indent=2) + "\n")
    text = to_markdown(results, sizes, seeds, meta)
    (out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
