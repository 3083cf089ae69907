"""LF analysis: what each labelling function covers, where it overlaps and conflicts, how accurate it is on a dev
set, and which LFs duplicate or closely track each other (they double-count one signal and corrupt the label
model's accuracy estimates).

Definitions follow snorkel's ``LFAnalysis``: coverage = fraction of records the LF votes on; overlaps = fraction
where it votes and at least one other LF votes; conflicts = fraction where it votes and another LF votes a
different class. Empirical accuracy is on the dev records the LF covers. Pair correlation is the largest phi
(Pearson) correlation between "LF i votes class c" and "LF j votes class c" over the classes both vote for.
"""

from __future__ import annotations

import numpy as np

from thresher.label.matrix import LabelMatrix
from thresher.label.models.base import onehot

#: Pairs at or above this correlation are flagged as highly correlated.
CORRELATION_THRESHOLD = 0.9


def lf_summary(L: LabelMatrix, y_dev: np.ndarray | None = None, L_dev: LabelMatrix | None = None) -> list[dict]:
    """Per LF: polarity, coverage, overlaps, conflicts; with ``L_dev``/``y_dev`` also dev coverage, correct,
    incorrect, empirical accuracy and the confusion matrix (rows = true class, columns = vote)."""
    n, m, k = L.n_records, L.n_lfs, L.n_classes
    rows, lfs, classes = L.coo()
    per_row = L.n_votes()
    class_counts = np.zeros((n, k), dtype=np.int64)  # votes per record and class, over all LFs
    np.add.at(class_counts, (rows, classes), 1)
    others = per_row[rows] - 1
    disagree = per_row[rows] - class_counts[rows, classes]
    out = []
    for j in range(m):
        mine = lfs == j
        polarity = sorted(int(c) for c in np.unique(classes[mine]))
        out.append({"lf": L.lf_names[j], "polarity": polarity,
                    "coverage": float(mine.sum() / n) if n else 0.0,
                    "overlaps": float((others[mine] > 0).sum() / n) if n else 0.0,
                    "conflicts": float((disagree[mine] > 0).sum() / n) if n else 0.0})
    if L_dev is not None and y_dev is not None:
        y_dev = np.asarray(y_dev)
        r, f, c = L_dev.coo()
        for j, row in enumerate(out):
            mine = f == j
            truth, vote = y_dev[r[mine]], c[mine]
            confusion = np.zeros((k, k), dtype=np.int64)
            np.add.at(confusion, (truth, vote), 1)
            correct = int((truth == vote).sum())
            row.update({"dev_coverage": float(mine.sum() / max(L_dev.n_records, 1)), "correct": correct,
                        "incorrect": int(mine.sum()) - correct,
                        "emp_accuracy": float(correct / mine.sum()) if mine.any() else None,
                        "confusion": confusion.tolist()})
    return out


def lf_correlations(L: LabelMatrix, threshold: float = CORRELATION_THRESHOLD) -> list[dict]:
    """LF pairs whose votes are identical (``duplicate``) or whose same-class votes correlate at or above
    ``threshold`` (``correlated``), strongest first."""
    n, m, k = L.n_records, L.n_lfs, L.n_classes
    if n == 0 or m < 2:
        return []
    B = onehot(L)
    gram = (B.T @ B).toarray()
    s = np.diag(gram).copy()
    var = s * (n - s)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (n * gram - np.outer(s, s)) / np.sqrt(np.outer(var, var))
    corr = np.nan_to_num(corr, nan=0.0)
    votes = L.votes.tocsc()
    covered = (votes > 0).astype(np.int64)
    co_covered = (covered.T @ covered).toarray()
    pairs = []
    for i in range(m):
        for j in range(i + 1, m):
            block = corr[i * k:(i + 1) * k, j * k:(j + 1) * k].diagonal()
            both = (s[i * k:(i + 1) * k] > 0) & (s[j * k:(j + 1) * k] > 0)
            if not both.any():
                continue
            best = float(block[both].max())
            identical = (votes[:, i] != votes[:, j]).nnz == 0
            if identical or best >= threshold:
                pairs.append({"lfs": [L.lf_names[i], L.lf_names[j]], "correlation": round(best, 4),
                              "co_covered": int(co_covered[i, j]), "kind": "duplicate" if identical else "correlated"})
    return sorted(pairs, key=lambda p: (-p["correlation"], p["lfs"]))


def analyse(L: LabelMatrix, y_dev: np.ndarray | None = None, L_dev: LabelMatrix | None = None,
            lf_accuracies: np.ndarray | None = None, threshold: float = CORRELATION_THRESHOLD) -> dict:
    """Everything above plus totals, as one JSON-able dict (for the manifest and :func:`format_analysis`)."""
    per_row = L.n_votes()
    summary = lf_summary(L, y_dev, L_dev)
    if lf_accuracies is not None:
        for row, acc in zip(summary, np.asarray(lf_accuracies, dtype=float)):
            row["learned_accuracy"] = float(acc)
    rows, _, classes = L.coo()
    distinct = np.zeros(L.n_records, dtype=np.int64)
    if len(rows):
        pairs = np.unique(np.stack([rows, classes]), axis=1)
        np.add.at(distinct, pairs[0], 1)
    n = max(L.n_records, 1)
    return {"records": L.n_records, "lfs": L.n_lfs,
            "coverage": float((per_row > 0).sum() / n), "overlap": float((per_row > 1).sum() / n),
            "conflict": float((distinct > 1).sum() / n), "mean_votes": float(per_row.mean()) if L.n_records else 0.0,
            "per_lf": summary, "correlated_pairs": lf_correlations(L, threshold)}


def format_analysis(report: dict, classes: list[str] | None = None) -> str:
    """The analysis as a fixed-width text table (one row per LF), then flagged pairs."""
    per_lf = report["per_lf"]
    dev = any("emp_accuracy" in r for r in per_lf)
    learned = any("learned_accuracy" in r for r in per_lf)
    width = max([len(r["lf"]) for r in per_lf] + [2])
    head = f"{'lf':<{width}}  {'polarity':<18} {'cover':>6} {'overlap':>7} {'conflict':>8}"
    head += f" {'dev_n':>5} {'emp_acc':>7}" if dev else ""
    head += f" {'learned':>7}" if learned else ""
    lines = [f"LFs: {report['lfs']} | records {report['records']:,} | covered {report['coverage']:.1%} | "
             f"overlap {report['overlap']:.1%} | conflict {report['conflict']:.1%} | "
             f"votes/record {report['mean_votes']:.2f}", head]
    for r in per_lf:
        names = [classes[c] if classes else str(c) for c in r["polarity"]]
        polarity = ",".join(names) or "-"
        polarity = polarity if len(polarity) <= 18 else polarity[:17] + "…"
        line = f"{r['lf']:<{width}}  {polarity:<18} {r['coverage']:6.1%} {r['overlaps']:7.1%} {r['conflicts']:8.1%}"
        if dev:
            acc = r.get("emp_accuracy")
            line += f" {r.get('correct', 0) + r.get('incorrect', 0):5d} {'-' if acc is None else f'{acc:.3f}':>7}"
        if learned:
            line += f" {r['learned_accuracy']:7.3f}"
        lines.append(line)
    for p in report.get("correlated_pairs", []):
        lines.append(f"warning: LFs {p['lfs'][0]} and {p['lfs'][1]} are {p['kind']} (phi {p['correlation']:.2f} on "
                     f"{p['co_covered']:,} co-covered records): they count one signal twice; drop or merge one")
    return "\n".join(lines)
