"""The report section of ``thresher evaluate --experiment active``: learning curves per acquisition strategy with
their intervals, and each strategy against random (area under the curve, labels to reach random's final
accuracy)."""

from __future__ import annotations

import csv
from html import escape
from pathlib import Path

from thresher.report import plots
from thresher.report.blocks import num, section, table


def active_section(run_dir: Path, manifest: dict) -> str:
    """Test accuracy against labels for every strategy (random dashed), and the per-strategy summary table."""
    cfg = manifest.get("config") or {}
    with (run_dir / "curves.csv").open(newline="", encoding="utf-8") as f:
        points = list(csv.DictReader(f))
    with (run_dir / "results.csv").open(newline="", encoding="utf-8") as f:
        results = list(csv.DictReader(f))
    curves: dict[str, list[tuple[float, float, float, float]]] = {}
    for p in points:
        curves.setdefault(p["strategy"], []).append((float(p["labels"]), float(p["accuracy"]), float(p["lo"]),
                                                     float(p["hi"])))
    svg = plots.budget_curves("active-curves", "test accuracy against labels", "test accuracy", curves, "random",
                              xlabel="labelled records", log_x=False)
    rows = []
    for r in results:
        delta = (f"{float(r['auc_delta']):+.4f} [{float(r['auc_delta_lo']):+.4f}, {float(r['auc_delta_hi']):+.4f}]"
                 if r.get("auc_delta") else "")
        verdict = r.get("verdict") or ("baseline" if r["strategy"] == "random" else "")
        badge = f' <span class="badge {escape(verdict)}">{escape(verdict)}</span>' if verdict else ""
        reach = (f"{int(r['labels_to_random_final']):,} ({float(r['share_of_labels']):.0%})"
                 if r.get("labels_to_random_final") else "not reached")
        rows.append([f"<b>{escape(r['strategy'])}</b>", num(float(r["auc"])), escape(delta) + badge,
                     num(float(r["final_accuracy"])), num(float(r["final_macro_f1"])), reach])
    note = (f'<p class="note">From {num(cfg.get("start"))} random labels, {num(cfg.get("batch"))} more per round to '
            f'{num(cfg.get("max_labels"))}, {num(cfg.get("seeds"))} seeds sharing their starting set; classifier: '
            f'softmax regression on {escape(str(cfg.get("features", "hashed")))} features. AUC is the mean test '
            "accuracy over the rounds, compared with random's paired by seed; shaded bands are 95% intervals of "
            "the mean accuracy.</p>")
    return section("active", "Active learning against random", note + f"<figure>{svg}</figure>" + table(
        ["strategy", "AUC", "AUC vs random [95%]", "final accuracy", "final macro-F1",
         "labels to reach random's final"], rows, {1, 3, 4, 5}, wrap="compact"))
