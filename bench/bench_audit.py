"""Label issues: thresher audit vs cleanlab 2.9 on real labelled text with planted noise (issue 17).

    python bench/bench_audit.py [--data ../shared/data/labeled] [--tasks bbc_news,rotten_tomatoes,brown_genre]
                                [--seeds 2] [--workers 2]

Per task, rate (10%, 30%), kind (symmetric: a flipped label goes to any other class; class-dependent: every class
flips to one other class, a seeded permutation) and seed, the labels are flipped and then:

* ``thresher audit`` runs from the CLI (a subprocess, timed start to exit): 5-fold cross-validated hashed n-gram
  softmax regression, then confident learning (default ``prune_by_noise_rate``); timed for label issues alone
  (``--outlier-k 0 --duplicate-threshold 0``, what CleanLearning does) and, on the first seed, with the defaults
  (also outlier scores and near-duplicates);
* ``cleanlab.filter.find_label_issues`` runs on thresher's own out-of-sample probabilities (the same probabilities
  for both tools: any difference is the issue finder's), timed beside thresher's finder in this process;
* cleanlab end to end as its text tutorial runs it (bench/peers/cleanlab_peer.py: TF-IDF, LogisticRegression,
  ``CleanLearning``), a subprocess timed start to exit (first seed only: it is the slow part of the run).

Precision, recall and F1 of each flagged set against the planted flips. On the clean sets (no planted noise),
the natural issues thresher flags, with a few printed for reading by eye. Results: bench/results/audit.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [(0.1, "symmetric"), (0.3, "symmetric"), (0.1, "class-dependent"), (0.3, "class-dependent")]


def plant(y: np.ndarray, k: int, rate: float, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, flipped mask): each label flipped with probability ``rate``."""
    rng = np.random.default_rng(seed)
    flipped = rng.random(len(y)) < rate
    if kind == "symmetric":
        other = (y + rng.integers(1, k, len(y))) % k
    else:
        perm = rng.permutation(k)
        target = np.empty(k, dtype=np.int64)
        target[perm] = np.roll(perm, 1)  # a cycle: no class flips to itself
        other = target[y]
    return np.where(flipped, other, y), flipped


def prf(flagged: np.ndarray, truth: np.ndarray) -> dict:
    tp = int((flagged & truth).sum())
    p = tp / max(int(flagged.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    return {"flagged": int(flagged.sum()), "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / max(p + r, 1e-12), 4)}


def run_thresher(path: Path, out: Path, workers: int, full: bool = False) -> tuple[dict, float]:
    """``thresher audit`` from the CLI, timed start to exit: label issues only (what cleanlab's CleanLearning
    does), or ``full`` (the defaults: also outlier scores and near-duplicates)."""
    extra = [] if full else ["--outlier-k", "0", "--duplicate-threshold", "0"]
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "thresher.cli", "audit", "--pool", str(path), "--out", str(out),
                           "--workers", str(workers), "--no-report", "--json", *extra], capture_output=True,
                          text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout), seconds


def run_cleanlab_peer(path: Path) -> tuple[dict, float]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "peers" / "cleanlab_peer.py"), "--data", str(path)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1]), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "labeled")
    ap.add_argument("--tasks", default="bbc_news,rotten_tomatoes,brown_genre")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    import cleanlab
    import cleanlab.filter

    from thresher.audit.confident import find_label_issues

    rows, natural = [], {}
    work = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    for task in args.tasks.split(","):
        table = pq.read_table(args.data / f"{task}.parquet", columns=["id", "text", "label"])
        classes = sorted(set(table.column("label").to_pylist()))
        y = np.array([classes.index(v) for v in table.column("label").to_pylist()])
        clean_path = work / f"{task}.parquet"
        pq.write_table(table, clean_path)
        summary, seconds = run_thresher(clean_path, work / f"{task}-clean", args.workers, full=True)
        scores = pq.read_table(work / f"{task}-clean" / "scores" / "scores.parquet")
        flagged = np.flatnonzero(scores.column("is_label_issue").to_numpy(zero_copy_only=False))
        quality = scores.column("label_quality").to_numpy()
        texts = table.column("text").to_pylist()
        natural[task] = {"records": len(y), "flagged": len(flagged), "cv_accuracy": summary["metrics"]["cv_accuracy"],
                         "seconds": round(seconds, 2),
                         "examples": [{"id": table.column("id")[int(i)].as_py(), "given": classes[y[i]],
                                       "suggested": scores.column("suggested_label_name")[int(i)].as_py(),
                                       "label_quality": round(float(quality[i]), 4),
                                       "text": " ".join(texts[i].split())[:160]}
                                      for i in flagged[np.argsort(quality[flagged])][:5]]}
        print(f"{task}: clean set, {len(flagged)} natural issues of {len(y)} ({seconds:.1f} s)", flush=True)
        for rate, kind in SETTINGS:
            for seed in range(args.seeds):
                noisy, flipped = plant(y, len(classes), rate, kind, seed)
                path = work / f"{task}-{kind}-{rate}-{seed}.parquet"
                pq.write_table(table.set_column(2, "label", pa.array([classes[i] for i in noisy])), path)
                out = work / f"{task}-{kind}-{rate}-{seed}"
                summary, t_cli = run_thresher(path, out, args.workers)
                scores = pq.read_table(out / "scores" / "scores.parquet")
                ours = scores.column("is_label_issue").to_numpy(zero_copy_only=False)
                probs = np.column_stack([scores.column(c).to_numpy() for c in scores.column_names
                                         if c.startswith("prob_")])
                t0 = time.perf_counter()
                ours_again = find_label_issues(noisy, probs)
                t_ours = time.perf_counter() - t0
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = time.perf_counter()
                    theirs = cleanlab.filter.find_label_issues(noisy, probs)
                    t_theirs = time.perf_counter() - t0
                assert np.array_equal(ours, ours_again)
                row = {"task": task, "rate": rate, "kind": kind, "seed": seed, "records": len(y),
                       "flipped": int(flipped.sum()), "cv_accuracy": summary["metrics"]["cv_accuracy"],
                       "thresher": prf(ours, flipped), "cleanlab_same_probs": prf(theirs, flipped),
                       "identical_flags": bool(np.array_equal(ours, theirs)),
                       "finder_ms": {"thresher": round(t_ours * 1000, 2), "cleanlab": round(t_theirs * 1000, 2)},
                       "cli_seconds": round(t_cli, 2)}
                if seed == 0:
                    _, row["cli_seconds_full"] = run_thresher(path, out.with_name(out.name + "-full"), args.workers,
                                                             full=True)
                    peer, t_peer = run_cleanlab_peer(path)
                    mask = np.zeros(len(y), dtype=bool)
                    mask[peer["flagged"]] = True
                    row["cleanlab_end_to_end"] = {**prf(mask, flipped), "seconds": round(t_peer, 2)}
                rows.append(row)
                e2e = row.get("cleanlab_end_to_end")
                print(f"{task} {kind} {rate:.0%} seed {seed}: thresher F1 {row['thresher']['f1']:.3f} "
                      f"cleanlab(same probs) {row['cleanlab_same_probs']['f1']:.3f} identical {row['identical_flags']}"
                      f" | CLI {t_cli:.1f} s" + (f" | cleanlab e2e F1 {e2e['f1']:.3f} {e2e['seconds']:.1f} s"
                                                  if e2e else ""), flush=True)
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "versions": {"cleanlab": cleanlab.__version__}, "workers": args.workers, "seeds": args.seeds,
              "rows": rows, "natural": natural}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (args.out / "audit.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


def markdown(result: dict) -> str:
    """Mean over seeds per setting; the end-to-end columns are the first seed's."""
    lines = ["| task | noise | thresher P / R / F1 | cleanlab, same probs, F1 | identical flags | thresher CLI s "
             "(issues only / full audit) | cleanlab e2e P / R / F1 | cleanlab e2e s | finder ms thresher / cleanlab |",
             "|---|---|---|---|---|---:|---|---:|---|"]
    keys = dict.fromkeys((r["task"], r["kind"], r["rate"]) for r in result["rows"])
    for task, kind, rate in keys:
        group = [r for r in result["rows"] if (r["task"], r["kind"], r["rate"]) == (task, kind, rate)]
        mean = {k: np.mean([r["thresher"][k] for r in group]) for k in ("precision", "recall", "f1")}
        same = np.mean([r["cleanlab_same_probs"]["f1"] for r in group])
        e2e = next((r["cleanlab_end_to_end"] for r in group if "cleanlab_end_to_end" in r), None)
        first = next(r for r in group if "cleanlab_end_to_end" in r) if e2e else group[0]
        lines.append(
            f"| {task} | {kind} {rate:.0%} | {mean['precision']:.3f} / {mean['recall']:.3f} / {mean['f1']:.3f} | "
            f"{same:.3f} | {sum(r['identical_flags'] for r in group)}/{len(group)} | {first['cli_seconds']:.1f} / "
            f"{first.get('cli_seconds_full', float('nan')):.1f} | "
            + (f"{e2e['precision']:.3f} / {e2e['recall']:.3f} / {e2e['f1']:.3f} | {e2e['seconds']:.1f} | "
               if e2e else "| | ")
            + f"{np.mean([r['finder_ms']['thresher'] for r in group]):.1f} / "
              f"{np.mean([r['finder_ms']['cleanlab'] for r in group]):.1f} |")
    lines += ["", "Natural issues on the clean sets (thresher, default settings):", ""]
    for task, n in result["natural"].items():
        lines.append(f"* {task}: {n['flagged']} of {n['records']} flagged, cross-validated accuracy "
                     f"{n['cv_accuracy']:.3f}, {n['seconds']:.1f} s end to end")
        for e in n["examples"]:
            lines.append(f"  * `{e['id']}` {e['given']} -> {e['suggested']} ({e['label_quality']:.3f}): "
                         f"{e['text'][:120]}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
