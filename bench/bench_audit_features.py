"""Which features should the audit's cross-validated classifier read? Hashed log-tf uni+bigrams vs the same weighted
by IDF, on the planted-noise settings of bench_audit.py (issue 17).

    python bench/bench_audit_features.py [--data ../shared/data/labeled] [--tasks bbc_news,rotten_tomatoes,brown_genre]
                                         [--seeds 1] [--features hashed,tfidf]

F1 of the flagged set (default confident learning) against the planted flips, and the out-of-sample accuracy
against the true labels, per task, noise setting, seed and features. Results: bench/results/audit_features.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_audit import SETTINGS, plant, prf  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "labeled")
    ap.add_argument("--tasks", default="bbc_news,rotten_tomatoes,brown_genre")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--features", default="hashed,tfidf")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    import thresher as th

    features = args.features.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-audit-features-"))
    lines = ["| task | noise | seed | " + " | ".join(f"{f} F1 (accuracy)" for f in features) + " |",
             "|---|---|---|" + "---|" * len(features)]
    for task in args.tasks.split(","):
        table = pq.read_table(args.data / f"{task}.parquet", columns=["id", "text", "label"])
        classes = sorted(set(table.column("label").to_pylist()))
        y = np.array([classes.index(v) for v in table.column("label").to_pylist()])
        for rate, kind in SETTINGS:
            for seed in range(args.seeds):
                noisy, flipped = plant(y, len(classes), rate, kind, seed)
                path = work / f"{task}.parquet"
                pq.write_table(table.set_column(2, "label", pa.array([classes[i] for i in noisy])), path)
                cells = []
                for f in features:
                    run = th.audit(path, out=work / f"{task}-{f}", features=f, outlier_k=0, duplicate_threshold=None,
                                   workers=args.workers, progress=False, report=False)
                    s = run.scores()
                    flags = s.column("is_label_issue").to_numpy(zero_copy_only=False)
                    acc = float((np.asarray(s.column("suggested_label").to_pylist()) == y).mean())
                    cells.append(f"{prf(flags, flipped)['f1']:.3f} ({acc:.3f})")
                lines.append(f"| {task} | {kind} {rate:.0%} | {seed} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "audit_features.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
