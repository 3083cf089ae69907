"""The report's figures as inline SVG strings, drawn with matplotlib (imported here only, lazily).

Every figure is rendered deterministically (fixed hash salt per figure, no date, text kept as text) so the same run
directory gives a byte-identical report, and the SVG is sized by its viewBox so it scales with the page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import numpy as np

SELECTED = "#2f6db5"
OTHER = "#c4c9d0"
CUT = "#c0392b"
PALETTE = ["#2f6db5", "#e08a1e", "#3a9a5b", "#8e5cb5", "#c0392b", "#1b9aaa", "#a6761d", "#e7298a"]
RANDOM = "#444444"


def _figure(width: float, height: float):
    """A figure not attached to pyplot: no global state, no GUI backend."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig, name: str) -> str:
    """The figure as an ``<svg>`` element: no XML prolog, no fixed size, ids unique to ``name``."""
    import matplotlib

    buf = io.StringIO()
    # A salt per figure: clip-path ids of several figures in one page must not collide.
    with matplotlib.rc_context({"svg.hashsalt": f"thresher-{name}", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)  # RDF boilerplate, useless inline
    # Drop the fixed width/height of the root element; the viewBox keeps the aspect ratio and CSS sets the width.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1', svg, count=1)
    return svg.replace("<svg", f'<svg class="plot" role="img" aria-label="{name}"', 1)


def histogram(name: str, column: str, selected: np.ndarray, other: np.ndarray, cut: float | None,
              cut_label: str, labels: tuple[str, str] = ("selected", "not selected"), bins: int = 40) -> str:
    """Histograms of ``column`` for ``selected`` and ``other`` records, overlaid, each normalised to its own size,
    with the selection's cut as a dashed line.

    The x range is the 0.5th-99.5th percentile of all values (outliers go to the edge bins) so one extreme record
    does not squash the plot; the caption says so when it clipped.
    """
    values = np.concatenate([selected, other])
    lo, hi = (np.percentile(values, [0.5, 99.5]) if len(values) else (0.0, 1.0))
    clipped = len(values) and (lo > values.min() or hi < values.max())
    if cut is not None and np.isfinite(cut):
        lo, hi = min(lo, cut), max(hi, cut)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    counts_sel, _ = np.histogram(np.clip(selected, lo, hi), edges)
    counts_other, _ = np.histogram(np.clip(other, lo, hi), edges)
    fig = _figure(5.2, 2.6)
    ax = fig.add_subplot()
    # Each set as a share of itself, overlaid: a selection of 1% of the pool stays visible next to the other 99%.
    share_other = counts_other / max(1, len(other))
    share_sel = counts_sel / max(1, len(selected))
    if len(other):
        ax.stairs(share_other, edges, fill=True, color=OTHER, label=f"{labels[1]} ({len(other):,})")
    if len(selected):
        ax.stairs(share_sel, edges, fill=True, color=SELECTED, alpha=0.35, linewidth=0)
        ax.stairs(share_sel, edges, color=SELECTED, linewidth=1.3, label=f"{labels[0]} ({len(selected):,})")
    if cut is not None and np.isfinite(cut):
        ax.axvline(cut, color=CUT, linestyle="--", linewidth=1.4, label=f"{cut_label} {cut:.4g}")
    ax.set_title(column, fontsize=10, loc="left")
    ax.set_xlabel(column + ("  (x clipped to 0.5-99.5 percentiles)" if clipped else ""), fontsize=8)
    ax.set_ylabel("share of each set", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, frameon=False, loc="best")
    return to_svg(fig, name)


def composition_bars(name: str, groups: Sequence[str], series: dict[str, Sequence[float]],
                     xlabel: str = "share of records (%)") -> str:
    """Grouped horizontal bars: the share of each group in the pool, the selection and the random sample (or any
    shares per group, such as a mixture's weights)."""
    n = len(groups)
    fig = _figure(4.8, max(2.2, 0.14 * n * max(1, len(series)) + 0.9))
    ax = fig.add_subplot()
    height = 0.8 / max(1, len(series))
    y = np.arange(n)
    colours = {"pool": OTHER, "natural": OTHER, "selected": SELECTED, "random": PALETTE[1]}
    for k, (label, shares) in enumerate(series.items()):
        ax.barh(y + (k - (len(series) - 1) / 2) * height, np.asarray(shares) * 100, height,
                label=label, color=colours.get(label, PALETTE[k % len(PALETTE)]), linewidth=0)
    ax.set_yticks(y, [str(g)[:24] for g in groups], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return to_svg(fig, name)


def predicted_vs_actual(name: str, actual: np.ndarray, predicted: np.ndarray, label: str) -> str:
    """Each proxy run's objective against the regressor's out-of-fold prediction, with the diagonal."""
    fig = _figure(3.6, 3.2)
    ax = fig.add_subplot()
    ax.scatter(actual, predicted, s=14, color=SELECTED, linewidth=0)
    lo, hi = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], color=OTHER, linewidth=1, linestyle="--")
    ax.set_xlabel(f"{label} (proxy run)", fontsize=8)
    ax.set_ylabel("predicted, out of fold", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return to_svg(fig, name)


def weight_trajectory(name: str, steps: np.ndarray, series: dict[str, np.ndarray]) -> str:
    """An online method's weight per group at every step."""
    fig = _figure(5.6, 3.0)
    ax = fig.add_subplot()
    for k, (group, weights) in enumerate(series.items()):
        ax.plot(steps, np.asarray(weights) * 100, color=PALETTE[k % len(PALETTE)], linewidth=1.5,
                linestyle="-" if k < len(PALETTE) else "--", label=str(group)[:24])
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("weight (%)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, frameon=False, loc="best", ncol=2)
    return to_svg(fig, name)


def budget_curves(name: str, title: str, ylabel: str, curves: dict[str, list[tuple[float, float, float, float]]],
                  baseline: str | None, xlabel: str = "budget (records)", log_x: bool = True) -> str:
    """Metric against budget (records, log x unless ``log_x`` is False): one line per method with a shaded lo-hi
    band; the baseline dashed.

    ``curves``: method -> [(budget_records, estimate, lo, hi)], NaN for a missing interval end.
    """
    fig = _figure(5.6, 3.0)
    ax = fig.add_subplot()
    xs_all = [p[0] for pts in curves.values() for p in pts]
    k = 0
    for method, points in curves.items():
        points = sorted(points)
        x = np.array([p[0] for p in points], dtype=float)
        est, lo, hi = (np.array([p[i] for p in points], dtype=float) for i in (1, 2, 3))
        is_base = method == baseline
        colour = RANDOM if is_base else PALETTE[k % len(PALETTE)]
        k += not is_base
        ax.plot(x, est, linestyle="--" if is_base else "-", marker="o", markersize=3.5, color=colour, label=method,
                linewidth=1.5)
        band = np.isfinite(lo) & np.isfinite(hi)
        if band.any():
            ax.fill_between(x[band], lo[band], hi[band], color=colour, alpha=0.12 if is_base else 0.2, linewidth=0)
    if log_x and xs_all and min(xs_all) > 0 and len(set(xs_all)) > 1:
        ax.set_xscale("log")
        ax.minorticks_off()
    if 0 < len(set(xs_all)) <= 12:  # label the budgets themselves, not powers of ten
        ticks = sorted(set(xs_all))
        ax.set_xticks(ticks, [f"{x:,.0f}" for x in ticks])
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, frameon=False, loc="best")
    return to_svg(fig, name)
