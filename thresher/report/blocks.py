"""The HTML building blocks every report section uses: numbers, tables, sections, and the comparison table of methods
against a baseline per budget (evaluate's and evalset's)."""

from __future__ import annotations

from html import escape

import numpy as np


def num(x: object, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    if isinstance(x, float | np.floating):
        if not np.isfinite(x):
            return "n/a"
        return f"{x:,.0f}" if abs(x) >= 1e5 else f"{x:.{digits}g}"
    return str(x)


def table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), cls: str = "",
           wrap: str = "") -> str:
    """A table in a scrolling box with sticky headers; cells are HTML already (escape before). ``wrap``: extra
    classes of the box (``compact`` sizes it to its content, ``flow`` lets a long table run down the page)."""
    def cell(tag: str, i: int, v: str) -> str:
        return f'<{tag} class="num">{v}</{tag}>' if i in numeric else f"<{tag}>{v}</{tag}>"

    head = "".join(cell("th", i, escape(h)) for i, h in enumerate(headers))
    body = "\n".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return (f'<div class="table-wrap {wrap}"><table{f" class={cls!r}" if cls else ""}><thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>")


def section(key: str, title: str, content: str) -> str:
    return f'<section id="{key}">\n<h2>{escape(title)}</h2>\n{content}\n</section>'


def comparison_table(panel: list[dict], baseline: str | None, records_in_header: bool = True) -> str:
    """Rows: methods (baseline first); columns: budgets by size; cells: estimate [lo, hi], delta and verdict."""
    budgets = sorted({(r["budget_records"] or 0, r["budget"]) for r in panel})
    methods = list(dict.fromkeys(r["method"] for r in panel))
    methods.sort(key=lambda m: m != baseline)  # stable: the baseline first, the rest as they came
    cells = {(r["method"], r["budget"]): r for r in panel}
    rows = []
    for method in methods:
        row = [f"<b>{escape(method)}</b>"]
        for _, label in budgets:
            r = cells.get((method, label))
            if r is None:
                row.append("")
                continue
            text = f"{num(r['estimate'])} [{num(r['lo'])}, {num(r['hi'])}]" if r["lo"] is not None \
                else num(r["estimate"])
            verdict = r["verdict"] or ""
            badge = f' <span class="badge {escape(verdict)}">{escape(verdict)}</span>' if verdict else ""
            delta = ""
            if r["delta"] is not None:
                delta = (f'<span class="cell-delta">\u0394 {r["delta"]:+.4g}'
                         + (f" [{r['delta_lo']:+.4g}, {r['delta_hi']:+.4g}]" if r["delta_lo"] is not None
                            and r["delta_hi"] is not None else "")
                         + (f", P(better) {r['p_better']:.2f}" if r["p_better"] is not None else "") + "</span>")
            row.append(f"{escape(text)}{badge}{delta}")
        rows.append(row)
    headers = ["method"] + [f"{label} ({int(n):,} records)" if n and records_in_header else str(label)
                            for n, label in budgets]
    return table(headers, rows, cls="comparison")
