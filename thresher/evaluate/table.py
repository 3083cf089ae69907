"""Plain-text view of an evaluation's results: one block per target and metric, methods x budgets."""

from __future__ import annotations

import math

_MARK = {"better": "better", "worse": "WORSE", "inconclusive": "~", "baseline": ""}


def _num(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.4f}"


def format_cell(row: dict) -> str:
    """``estimate [lo, hi]`` and, against the baseline, the signed improvement and the verdict."""
    text = f"{_num(row['estimate'])} [{_num(row['lo'])}, {_num(row['hi'])}]"
    if row["verdict"] != "baseline":
        text += f" {row['delta']:+.4g} {_MARK[row['verdict']]}"
    return text


def format_results(rows: list[dict], margin: float = 0.0) -> str:
    """The table ``thresher evaluate`` prints; positive improvements are always better, whatever the metric."""
    lines: list[str] = []
    baseline = next((r["baseline"] for r in rows if r.get("baseline")), "random")
    blocks: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        blocks.setdefault((r["target"], r["metric"]), []).append(r)
    for (target, metric), block in blocks.items():
        budgets = list(dict.fromkeys(r["budget"] for r in block))
        methods = list(dict.fromkeys(r["method"] for r in block))
        cells = {(r["method"], r["budget"]): format_cell(r) for r in block}
        sizes = {r["budget"]: r["budget_records"] for r in block}
        direction = "higher" if block[0]["higher_is_better"] else "lower"
        level = block[0]["level"]
        lines.append(f"{target} · {metric} ({direction} is better; {level:.0%} intervals; "
                     f"improvement over {baseline}, then verdict)")
        width = max(len(m) for m in methods) + 2
        cols = [max(len(f"{b} ({sizes[b]:,})"), *(len(cells.get((m, b), "")) for m in methods)) + 2
                for b in budgets]
        lines.append("method".ljust(width) + "".join(f"{b} ({sizes[b]:,})".ljust(w) for b, w in zip(budgets, cols)))
        for m in methods:
            lines.append(m.ljust(width) + "".join(cells.get((m, b), "").ljust(w) for b, w in zip(budgets, cols)))
        lines.append("")
    counts = {"better": 0, "worse": 0, "inconclusive": 0}
    for r in rows:
        if r["verdict"] in counts:
            counts[r["verdict"]] += 1
    lines.append(f"verdicts vs {baseline}: {counts['better']} better, {counts['worse']} worse, "
                 f"{counts['inconclusive']} inconclusive (better/worse only when the whole interval of the "
                 f"improvement is beyond {'0' if not margin else f'the margin ±{margin:g}'})")
    return "\n".join(lines)
