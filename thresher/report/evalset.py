"""The report sections of ``thresher evalset`` directories: what a run chose (with a recipe's estimates and
check), and a check's methods against random per budget, as evaluate's comparison tables and budget curves."""

from __future__ import annotations

import csv
from html import escape
from pathlib import Path

from thresher.report import plots
from thresher.report.blocks import comparison_table, num, section, table

#: The check's metrics as they are titled in the report, and whether higher is better (None: descriptive).
METRICS = {"kendall_tau": ("Kendall tau with the full-set scores", True),
           "spearman": ("Spearman with the full-set scores", True),
           "mae": ("mean absolute error of the estimates", False),
           "coverage": ("interval coverage", None), "interval_width": ("interval width", None),
           "cost": ("cost of the chosen items (budgets in cost)", None)}


def evalset_sections(run_dir: Path, manifest: dict) -> list[str]:
    """Sections for an evalset run (``job: evalset``) or a check directory (``job: evalset check``)."""
    if manifest.get("job") == "evalset check":
        return [check_section(run_dir / "results.csv", manifest)]
    out = [_chosen(run_dir, manifest)]
    if (run_dir / "estimate" / "estimates.csv").is_file():
        out.append(_estimates(run_dir / "estimate" / "estimates.csv"))
    if (run_dir / "check" / "results.csv").is_file():
        out.append(check_section(run_dir / "check" / "results.csv", {}))
    return out


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _chosen(run_dir: Path, manifest: dict) -> str:
    c = manifest.get("counts") or {}
    ids = (run_dir / manifest["outputs"]["ids"]).read_text(encoding="utf-8").splitlines()
    weights = {}
    if (run_dir / "subset.parquet").is_file():
        import pyarrow.parquet as pq

        t = pq.read_table(run_dir / "subset.parquet")
        weights = dict(zip(t["item"].to_pylist(), t["weight"].to_pylist()))
    half = manifest.get("half_width")
    note = (f"<p class=\"note\">{num(c.get('chosen'))} of {num(c.get('items'))} items chosen by "
            f"<b>{escape(str(manifest.get('method')))}</b> on {num(c.get('seen_systems'))} seen systems; estimator "
            f"<b>{escape(str(manifest.get('estimator', 'mean')))}</b>. A seen system estimated as if new "
            f"(cross-fitted) is off by {num(manifest.get('seen_mae'))} on average; "
            + (f"{manifest.get('level', 0.95):.0%} intervals are &plusmn;{num(half)}" if half is not None else
               "too few seen systems for a finite interval") + ".</p>")
    rows = [[str(k + 1), escape(item), num(weights.get(item))] for k, item in enumerate(ids[:50])]
    more = f'<p class="note">{len(ids) - 50:,} more in selected/ids.txt</p>' if len(ids) > 50 else ""
    return section("chosen", "Chosen items", note + table(["#", "item", "weight"], rows, {0, 2}, wrap="compact")
                    + more)


def _estimates(path: Path) -> str:
    rows = [[r["rank"], escape(r["system"]), num(_float(r["estimate"])), f"[{num(_float(r['lo']))}, "
             f"{num(_float(r['hi']))}]"] for r in sorted(_rows(path), key=lambda r: int(r["rank"]))]
    return section("estimates", "New systems, estimated from the chosen items",
                    table(["rank", "system", "estimate", "interval"], rows, {0, 2}, wrap="compact"))


def check_section(path: Path, manifest: dict) -> str:
    """Every method against random per budget: one comparison table and one budget curve per metric."""
    raw = _rows(path)
    cfg = manifest.get("config") or {}
    tables, curves = [], []
    for k, (metric, (title, higher)) in enumerate(METRICS.items()):
        panel = []
        for r in (r for r in raw if r["metric"] == metric):
            verdict = r["verdict"] if r["verdict"] in ("better", "worse", "inconclusive") else ""
            panel.append({"method": r["method"], "budget": f"{r['budget']} items",
                          "budget_records": float(r["budget"]), "estimate": _float(r["mean"]),
                          "lo": _float(r["p2_5"]), "hi": _float(r["p97_5"]), "verdict": verdict,
                          "delta": _float(r["delta_vs_random"]), "delta_lo": _float(r["delta_lo"]),
                          "delta_hi": _float(r["delta_hi"]), "p_better": _float(r["share_better"])})
        if not panel:
            continue
        direction = "" if higher is None else (" (higher is better)" if higher else " (lower is better)")
        tables.append(f"<h3>{escape(title)}<span class=\"muted\">{direction}</span></h3>"
                      + comparison_table(panel, "random", records_in_header=False))
        if higher is not None:
            series: dict[str, list[tuple[float, float, float, float]]] = {}
            for r in panel:
                series.setdefault(r["method"], []).append((r["budget_records"], r["estimate"], r["lo"], r["hi"]))
            curves.append(f"<figure>{plots.budget_curves(f'evalset-{k}', title, metric, series, 'random')}"
                          "</figure>")
    splits = cfg.get("splits")
    note = ("<p class=\"note\">Over " + (f"{splits} " if splits else "") + "random seen/new splits of the systems, "
            "each method chose items on the seen half and estimated the new half. A cell is the mean over splits "
            "[2.5th, 97.5th percentile]; delta is the mean paired difference from random (positive is better) with "
            "its interval, and a verdict is <i>better</i> or <i>worse</i> only when that interval clears zero. The "
            "splits share systems: the intervals describe this table, not other tables.</p>")
    body = note + "\n".join(tables)
    if curves:
        body += f'<div class="grid">{"".join(curves)}</div>'
    return section("check", "Methods against random", body)
