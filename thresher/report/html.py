"""``report.html``: one self-contained page per run directory (inline CSS and SVG, no scripts, no network).

Sections appear only when the run has their data: run summary and record accounting, score histograms with the
selection's cut, composition against a random sample, kept and dropped examples per score decile, duplicate
removal, and for an evaluation directory the method-vs-baseline comparison tables and budget curves.
The same run directory always gives the same bytes (no clock, fixed plot ids).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import numpy as np

from thresher.errors import ConfigError
from thresher.report import data, plots
from thresher.report.blocks import comparison_table as _comparison_table
from thresher.report.blocks import num as _num
from thresher.report.blocks import section as _section
from thresher.report.blocks import table as _table

EXCERPT_CHARS = 300
OPEN_HISTOGRAMS = 4  # shown open; the rest sit in a collapsed <details>
MAX_DEDUP_EXAMPLES = 10

CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg2: #f6f8fa; --blue: #2f6db5; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 1.2rem 1.5rem 3rem; }
h1 { font-size: 1.5rem; margin: 0.2rem 0 0.6rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 0.6rem; padding-bottom: 0.25rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1.2rem 0 0.4rem; }
p.note, .muted { color: var(--muted); font-size: 0.88rem; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.85em; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 1rem; margin: 0; }
dl.summary dt { color: var(--muted); } dl.summary dd { margin: 0; overflow-wrap: anywhere; }
.table-wrap { max-height: 32rem; overflow: auto; border: 1px solid var(--line); border-radius: 6px; margin: 0.4rem 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.88rem; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { position: sticky; top: 0; background: var(--bg2); z-index: 1; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 0.8rem 1.2rem; }
figure { margin: 0; } svg.plot { width: 100%; height: auto; display: block; }
details { margin: 0.6rem 0; } summary { cursor: pointer; color: var(--blue); font-weight: 600; }
.badge { display: inline-block; padding: 0 0.45rem; border-radius: 0.7rem; font-size: 0.78rem; font-weight: 600;
         color: #fff; white-space: nowrap; }
.better { background: #1a7f37; } .worse { background: #cf222e; } .inconclusive { background: #6e7781; }
.baseline { background: #d1d9e0; color: var(--fg); }
.ok { color: #1a7f37; font-weight: 600; } .bad { color: #cf222e; font-weight: 600; }
.excerpt { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.84rem; margin: 0.2rem 0 0.5rem;
           padding: 0.3rem 0.5rem; background: var(--bg2); border-left: 3px solid var(--line); }
.excerpt.kept { border-left-color: var(--blue); }
.cell-delta { display: block; font-size: 0.8rem; color: var(--muted); white-space: nowrap; }
.table-wrap.compact { display: inline-block; max-width: 100%; min-width: 26rem; }
.table-wrap.flow { max-height: none; overflow: visible; }
.split { display: grid; grid-template-columns: minmax(340px, 1fr) auto; gap: 1.2rem; align-items: start; }
@media (max-width: 900px) { .split { grid-template-columns: 1fr; } }
table.examples th:nth-child(5), table.examples th:nth-child(6) { width: 36%; }
"""


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``report.html`` for the run directory ``run_dir`` (or to ``out``) and return its path."""
    run_dir = Path(run_dir)
    page = build_report(run_dir)
    path = Path(out) if out is not None else run_dir / "report.html"
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {path}: the folder {path.parent} does not exist")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def report_after_job(run_dir: str | os.PathLike, enabled: bool = True) -> Path | None:
    """The jobs' hook: write the report, but never let a report problem lose a finished run (warn instead)."""
    if not enabled:
        return None
    try:
        return write_report(run_dir)
    except Exception as e:  # noqa: BLE001 - the run is already written; the report is a convenience
        print(f"warning: could not write {Path(run_dir) / 'report.html'}: {type(e).__name__}: {e} "
              f"(the run itself is complete; retry with: thresher report {run_dir})", file=sys.stderr)
        return None


def build_report(run_dir: Path) -> str:
    """The report page as a string."""
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise ConfigError(f"{run_dir} is not a thresher run directory (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{manifest_path} is not valid JSON ({e}); the run directory is damaged") from None
    job = manifest.get("job") or "select"
    sections = [_header(run_dir, manifest, job), _counts(manifest)]
    if job == "evaluate active":
        from thresher.report.active import active_section

        sections.append(active_section(run_dir, manifest))
    elif job == "evaluate":
        sections.append(_evaluation(run_dir, manifest))
        sections.append(_evaluated_selections(run_dir))
    elif job == "mix":
        sections += [_mixture(run_dir), _timings(manifest)]
    elif job in ("evalset", "evalset check"):
        from thresher.report.evalset import evalset_sections

        sections = [_header(run_dir, manifest, job), *evalset_sections(run_dir, manifest)]
    else:
        scores = data.load_scores(run_dir, manifest)
        sections += [_metrics(manifest), _histograms(scores, manifest), _composition(manifest)]
        if job == "label":
            sections.append(_labelling(manifest))
        if job == "audit":
            from thresher.report.audit import audit_section

            sections.append(audit_section(manifest))
        if job == "dedup" and scores is not None:
            sections.append(_dedup(manifest, scores))
        elif scores is not None:
            sections.append(_examples(manifest, scores))
        sections.append(_embedding(manifest))
        sections.append(_timings(manifest))
    title = f"thresher {job} report: {run_dir.resolve().name}"
    body = "\n".join(s for s in sections if s)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n"
            f"</main>\n</body>\n</html>\n")


# ---------------------------------------------------------------------------------------------------- helpers


def _excerpt(text: str | None, kept: bool) -> str:
    if text is None:
        return '<div class="excerpt muted">(text not available: the pool was not found)</div>'
    short = " ".join(text.split())
    if len(short) > EXCERPT_CHARS:
        short = short[: EXCERPT_CHARS - 1] + "\u2026"
    return f'<div class="excerpt{" kept" if kept else ""}">{escape(short)}</div>'


# ---------------------------------------------------------------------------------------------------- sections


def _header(run_dir: Path, manifest: dict, job: str) -> str:
    cfg = manifest.get("config") or {}
    sel = manifest.get("selection") or {}
    inputs = manifest.get("inputs") or {}
    items: list[tuple[str, str]] = [("job", job), ("run directory", str(run_dir.resolve()))]
    method = manifest.get("method") or cfg.get("method")
    for key, value in (("experiment", manifest.get("experiment")), ("method", method),
                       ("selector", sel.get("selector")), ("score", sel.get("score")),
                       ("where", sel.get("where")), ("budget", sel.get("budget")),
                       ("records budget", sel.get("records_budget")), ("seed", manifest.get("seed", cfg.get("seed")))):
        if value is not None and not isinstance(value, dict):
            items.append((key, str(value)))
    if manifest.get("pipeline"):
        items.append(("pipeline", " \u2192 ".join(_stage_label(s) for s in manifest["pipeline"])))
    for name in ("pool", "target"):
        info = inputs.get(name)
        if isinstance(info, dict) and info.get("paths"):
            items.append((name, ", ".join(map(str, info["paths"]))))
        elif isinstance(info, str | list):
            items.append((name, ", ".join(map(str, info)) if isinstance(info, list) else info))
    if manifest.get("command"):
        items.append(("command", " ".join(map(str, manifest["command"]))))
    if manifest.get("created_unix"):
        created = datetime.fromtimestamp(int(manifest["created_unix"]), UTC).strftime("%Y-%m-%d %H:%M UTC")
        items.append(("created", created))
    version = manifest.get("thresher_version") or (manifest.get("versions") or {}).get("thresher")
    if version:
        items.append(("thresher", str(version)))
    dl = "\n".join(f"<dt>{escape(k)}</dt><dd>{'<code>' if k in ('command', 'where') else ''}{escape(v)}"
                   f"{'</code>' if k in ('command', 'where') else ''}</dd>" for k, v in items)
    return (f'<header id="summary">\n<h1>thresher {escape(job)} report: {escape(run_dir.resolve().name)}</h1>\n'
            f'<dl class="summary">\n{dl}\n</dl>\n</header>')


def _stage_label(stage: dict) -> str:
    kind = stage.get("stage", "?")
    if kind == "score":
        return str(stage.get("scorer"))
    if kind == "filter":
        return f"filter({stage.get('where')})"
    if kind == "select":
        return f"select {stage.get('selector')} {stage.get('budget') or ''}".strip()
    return kind


def _counts(manifest: dict) -> str:
    c = manifest.get("counts") or {}
    if not c:
        return ""
    rows: list[list[str]] = []
    labels = [("input_records", "read"), ("scored", "scored"), ("embedded", "embedded"), ("selected", "selected"
              if manifest.get("job") != "dedup" else "kept"), ("not_selected", "not selected"), ("kept", "kept"),
              ("labelled", "labelled"), ("abstained", "abstained (no LF voted)"), ("evaluated", "evaluated"),
              ("unlabelled", "unlabelled (not used)"), ("heldout", "held-out records"),
              ("heldout_failed", "held-out records that failed to read")]
    for key, label in labels:
        if isinstance(c.get(key), int) and not (manifest.get("job") == "dedup" and key == "not_selected"):
            rows.append([escape(label), _num(c[key])])
    for reason, n in (c.get("filtered") or {}).items():
        rows.append([f"filtered: {escape(str(reason))}", _num(n)])
    if isinstance(c.get("failed"), int):
        rows.append(["failed to read", _num(c["failed"])])
        for reason, n in ((c.get("pool_failed") or {}).get("by_reason") or {}).items():
            rows.append([f"&nbsp;&nbsp;{escape(str(reason))}", _num(n)])
    if (c.get("target") or {}).get("records") is not None:
        rows.append(["target records", _num(c["target"]["records"])])
    accounted = ""
    if "all_accounted_for" in c:
        accounted = ('<p class="ok">every input record is accounted for</p>' if c["all_accounted_for"] else
                     '<p class="bad">ACCOUNTING MISMATCH: the counts do not add up to the records read</p>')
    return _section("counts", "Records", _table(["", "records"], rows, {1}, wrap="compact") + accounted)


def _metrics(manifest: dict) -> str:
    m = manifest.get("metrics") or {}
    parts = []
    if "kl_reduction" in m:
        rows = [[escape(k), _num(m.get(v))] for k, v in (
            ("KL(target || selection)", "kl_target_selected"), ("KL(target || random, same size and seed)",
                                                                "kl_target_random"),
            ("KL reduction (random - selection; higher is better)", "kl_reduction"),
            ("KL(target || pool)", "kl_target_pool")) if v in m]
        parts.append(_table(["hashed n-gram distributions", "value"], rows, {1}, wrap="compact"))
    if "selected_words" in m:
        parts.append(f'<p class="note">selected {_num(m.get("selected_records"))} records, '
                     f'{_num(m["selected_words"])} words'
                     + (f', {_num(m.get("selected_tokens"))} {escape(str(m["token_column"]))}'
                        if m.get("token_column", "n_words") != "n_words" else "") + "</p>")
    rules = {k: v for k, v in (m.get("rules") or {}).items() if "passed" in v}
    scored = (manifest.get("counts") or {}).get("scored") or 0
    if rules:
        rows = [[escape(family), _num(r["passed"]), f"{r['passed'] / max(scored, 1):.1%}",
                 escape(", ".join(f"{k} {v:,}" for k, v in list(r.get("failed_by_rule", {}).items())[:5]))]
                for family, r in rules.items()]
        parts.append("<h3>Rule families</h3>" + _table(["family", "passed", "pass rate", "most common failing rules"],
                                                       rows, {1, 2}, wrap="compact"))
    langs = (m.get("rules") or {}).get("langid", {}).get("languages")
    if langs:
        parts.append('<p class="note">languages: ' + escape(", ".join(
            f"{k} {v / max(scored, 1):.1%}" for k, v in list(langs.items())[:10])) + "</p>")
    fit_rows = []
    for name, report in (m.get("fit") or {}).items():
        folds = {k: v for k, v in report.items() if isinstance(v, dict) and "heldout" in v} \
            if isinstance(report, dict) else {}
        if isinstance(report, dict) and "heldout" in report:
            folds = {"": report}
        for fold, r in folds.items():
            held = r["heldout"]
            fit_rows.append([escape(f"{name} {fold}".strip()), _num(held.get("accuracy")), _num(held.get("auc")),
                             _num(held.get("records"))])
    if fit_rows:
        parts.append("<h3>Fitted scorers (held-out)</h3>"
                     + _table(["scorer", "accuracy", "AUC", "records"], fit_rows, {1, 2, 3}, wrap="compact"))
    return _section("metrics", "Metrics", "\n".join(parts)) if parts else ""


def _histograms(scores: data.ScoreData | None, manifest: dict) -> str:
    if scores is None or not scores.columns:
        return ""
    sel = manifest.get("selection") or {}
    job = manifest.get("job") or "select"
    figures = []
    for i, (column, values) in enumerate(scores.columns.items()):
        finite = np.isfinite(values)
        if not finite.any():
            continue
        cut, cut_label = None, ""
        if scores.selected is not None and job != "dedup":
            chosen, other = values[scores.selected & finite], values[~scores.selected & ~scores.filtered & finite]
            labels = ("selected", "not selected")
            if column == sel.get("score") and sel.get("selector") in ("topk", "threshold") and len(chosen):
                cut, cut_label = float(chosen.min()), "cut: lowest selected"
        elif scores.selected is not None:
            chosen, other = values[scores.selected & finite], values[~scores.selected & finite]
            labels = ("kept", "dropped")
        else:
            chosen, other = values[~scores.filtered & finite], values[scores.filtered & finite]
            labels = ("kept", "filtered") if scores.filtered.any() else ("records", "")
        svg = plots.histogram(f"hist-{i}-{column}", column, chosen, other, cut, cut_label, labels)
        figures.append(f"<figure>{svg}</figure>")
    if not figures:
        return ""
    note = ""
    if scores.selected is not None and job != "dedup":
        n_filtered = int((scores.filtered & ~scores.selected).sum())
        note = ('<p class="note">Selected records (blue) against the eligible records not selected (grey), each as a '
                "share of its own set"
                + (f"; the {_num(n_filtered)} filtered records are in neither. " if n_filtered else ". ")
                + ("The dashed line is the lowest selected score, the cut of a top-k or threshold selection."
                   if sel.get("selector") in ("topk", "threshold") else
                   f"Selector {escape(str(sel.get('selector')))} samples or diversifies, so there is no single cut "
                   "on the score.") + "</p>")
    content = note + f'<div class="grid">{"".join(figures[:OPEN_HISTOGRAMS])}</div>'
    if len(figures) > OPEN_HISTOGRAMS:
        content += (f"<details><summary>{len(figures) - OPEN_HISTOGRAMS} more score columns</summary>"
                    f'<div class="grid">{"".join(figures[OPEN_HISTOGRAMS:])}</div></details>')
    if scores.not_plotted:
        content += (f'<p class="note">Not plotted ({len(scores.not_plotted)} more numeric columns): '
                    f'{escape(", ".join(scores.not_plotted))}</p>')
    return _section("scores", "Score distributions", content)


def _labelling(manifest: dict) -> str:
    """Weak supervision: class balance and its source, dev metrics, and the LF analysis table."""
    analysis = manifest.get("analysis") or {}
    classes = manifest.get("classes") or []
    parts = []
    balance = manifest.get("class_balance") or {}
    if balance.get("values"):
        rows = [[escape(str(c)), f"{v:.1%}", _num((manifest.get("counts") or {}).get("by_class", {}).get(c))]
                for c, v in zip(classes, balance["values"])]
        parts.append(f'<p class="note">label model {escape(str((manifest.get("config") or {}).get("model")))}; '
                     f'class balance source: <b>{escape(str(balance.get("source")))}</b></p>')
        check = balance.get("fit_check")
        if check:
            rows = [row + [f"{em:.1%}", f"{votes:.1%}"] for row, em, votes in
                    zip(rows, check["em_class_balance"], check["vote_class_balance"])]
            parts.append(f'<p class="note">fit check: χ² per cell {check["misfit"]:.2f} (threshold '
                         f'{check["misfit_threshold"]:g}): {escape(check["verdict"])}</p>')
            if check.get("warning"):
                parts.append(f'<p class="note"><b>warning:</b> {escape(check["warning"])}</p>')
        headers = ["class", "class balance", "records labelled"] + (["EM estimate", "majority vote"] if check else [])
        parts.append(_table(headers, rows, set(range(1, len(headers))), wrap="compact"))
    dev = (manifest.get("label_metrics") or manifest.get("metrics") or {}).get("dev")
    if isinstance(dev, dict) and dev:
        keys = ["accuracy", "macro_f1", "coverage", "n_abstain"]
        rows = [[escape(str(name))] + [_num(m.get(k)) for k in keys] for name, m in dev.items() if isinstance(m, dict)]
        if rows:
            parts.append("<h3>On the dev set (all records; abstains count as wrong)</h3>")
            parts.append(_table(["model", *keys], rows, {1, 2, 3, 4}, wrap="compact"))
    per_lf = analysis.get("per_lf") or []
    if per_lf:
        keys = [k for k in ("polarity", "coverage", "overlaps", "conflicts", "emp_accuracy", "learned_accuracy")
                if any(k in r for r in per_lf)]
        def value(r: dict, k: str) -> str:
            if k == "polarity":  # class indices -> names
                return escape(", ".join(str(classes[c]) if c < len(classes) else str(c) for c in r.get(k) or []))
            return _num(r.get(k))

        rows = [[escape(str(r.get("lf", "")))] + [value(r, k) for k in keys] for r in per_lf]
        parts.append(f'<p class="note">{_num(analysis.get("lfs"))} labelling functions over '
                     f'{_num(analysis.get("records"))} records: coverage {analysis.get("coverage", 0):.1%}, '
                     f'overlap {analysis.get("overlap", 0):.1%}, conflict {analysis.get("conflict", 0):.1%}</p>')
        parts.append(_table(["LF", *keys], rows, set(range(2, len(keys) + 1)), wrap="flow"))
    pairs = analysis.get("correlated_pairs") or []
    if pairs:
        rows = [[escape(" / ".join(p["lfs"])), escape(p["kind"]), _num(p["correlation"]), _num(p["co_covered"])]
                for p in pairs]
        parts.append("<h3>Duplicate or highly correlated LFs (they distort accuracy estimates)</h3>")
        parts.append(_table(["LFs", "kind", "correlation", "both vote"], rows, {2, 3}, wrap="compact"))
    return _section("labelling", "Labelling functions and label model", "\n".join(parts)) if parts else ""


def _composition(manifest: dict) -> str:
    comp = (manifest.get("metrics") or {}).get("composition")
    if not comp:
        return ""
    groups = [str(r["group"]) for r in comp]
    series = {"pool": [r.get("pool_share", 0) for r in comp], "selected": [r.get("selected_share", 0) for r in comp]}
    if any("random_share" in r for r in comp):
        series["random"] = [r.get("random_share", 0) for r in comp]
    svg = plots.composition_bars("composition", groups, series)
    rows = [[escape(str(r["group"])), _num(r.get("pool")), f"{r.get('pool_share', 0):.1%}", _num(r.get("selected")),
             f"{r.get('selected_share', 0):.1%}", _num(r.get("random")), f"{r.get('random_share', 0):.1%}"]
            for r in comp]
    table = _table(["group", "pool", "pool share", "selected", "selected share", "random", "random share"], rows,
                   {1, 2, 3, 4, 5, 6}, wrap="compact")
    note = ('<p class="note">The group column is only reported, never used to select. The random sample has the '
            "same size and seed as the selection.</p>")
    return _section("composition", "Composition by group: pool, selection, random", note +
                    f'<div class="split"><figure>{svg}</figure><div>{table}</div></div>')


def _mixture(run_dir: Path) -> str:
    """A mix run: the weights (beside the natural shares), how well the regressor predicted the proxy runs out of
    fold, and an online method's weights step by step."""
    import yaml

    mixture = yaml.safe_load((run_dir / "mixture.yaml").read_text(encoding="utf-8"))
    weights = mixture["weights"]
    groups = sorted(weights, key=lambda g: -weights[g])
    natural = (mixture.get("natural") or {}).get("weights") or {}
    expected = mixture.get("expected_tokens") or {}
    series = {mixture["method"]: [weights[g] for g in groups]}
    if natural:
        series["natural"] = [natural.get(g, 0.0) for g in groups]
    figures = [plots.composition_bars("mixture-weights", groups, series, xlabel="weight (%)")]
    rows = [[escape(str(g)), f"{weights[g]:.1%}", f"{natural[g]:.1%}" if g in natural else "",
             f"{expected[g]:,}" if g in expected else ""] for g in groups]
    table = _table(["group", "weight", "natural", "expected tokens"], rows, {1, 2, 3}, wrap="compact")
    notes = [f"method <b>{escape(str(mixture['method']))}</b>"]
    cv = mixture.get("cross_validation")
    if cv:
        notes.append(f"regressor {escape(str(mixture.get('regressor')))}: {cv['folds']}-fold Spearman "
                     f"{cv['spearman']:.3f}, RMSE {cv['rmse']:.4g}")
    if (run_dir / "cross_validation.csv").is_file():
        import csv

        cv_rows = list(csv.DictReader((run_dir / "cross_validation.csv").read_text().splitlines()))
        actual = np.array([float(r["objective"]) for r in cv_rows])
        predicted = np.array([float(r["predicted"]) for r in cv_rows])
        figures.append(plots.predicted_vs_actual("mixture-cv", actual, predicted, str(mixture.get("objective"))))
    if (run_dir / "trajectory.parquet").is_file():
        import pyarrow.parquet as pq

        steps = pq.read_table(run_dir / "trajectory.parquet").to_pydict()
        figures.append(plots.weight_trajectory("mixture-trajectory", np.array(steps["step"]),
                                               {g: np.array(steps[f"weight:{g}"]) for g in groups}))
    body = (f'<p class="note">{"; ".join(notes)}.</p><div class="split"><figure>{figures[0]}</figure>'
            f"<div>{table}</div></div>")
    if len(figures) > 1:  # half a row each, as the weights' figure
        body += '<div class="grid">' + "".join(f"<figure>{f}</figure>" for f in figures[1:]) + "</div>"
    return _section("mixture", "Mixture weights", body)


def _examples(manifest: dict, scores: data.ScoreData) -> str:
    column = scores.ranking
    if column is None or column not in scores.columns:
        return ""
    kept = scores.selected if scores.selected is not None else ~scores.filtered
    kept_word, dropped_word = ("selected", "not selected") if scores.selected is not None else ("kept", "filtered")
    split = scores.selected is not None or bool(scores.filtered.any())
    parts = data.deciles(scores.columns[column], kept, per_side=2 if split else 3)
    if not parts:
        return ""
    rows_needed = [r for d in parts for r in d.kept_examples + d.dropped_examples]
    ids = scores.ids.take(np.asarray(rows_needed, dtype=np.int64)).to_pylist() if rows_needed else []
    id_of = dict(zip(rows_needed, ids))
    try:
        texts = data.lookup_texts(manifest, ids)
    except Exception:  # noqa: BLE001 - a moved or changed pool: show the ids without texts
        texts = {}

    def cell(rows: list[int], is_kept: bool) -> str:
        if not rows:
            return '<span class="muted">none</span>'
        return "".join(f'<div class="mono muted">{escape(str(id_of[r]))}</div>'
                       f"{_excerpt(texts.get(id_of[r]), is_kept)}" for r in rows)

    if split:
        table_rows = [[str(d.number), f"{_num(d.low)} \u2013 {_num(d.high)}", _num(d.records),
                       f"{d.kept / d.records:.1%}", cell(d.kept_examples, True), cell(d.dropped_examples, False)]
                      for d in reversed(parts)]
        table = _table(["decile", f"{column} range", "records", f"{kept_word}", f"{kept_word} examples",
                        f"{dropped_word} examples"], table_rows, {0, 1, 2, 3}, cls="examples", wrap="flow")
    else:  # nothing selected or filtered: one column of examples
        table_rows = [[str(d.number), f"{_num(d.low)} \u2013 {_num(d.high)}", _num(d.records),
                       cell(d.kept_examples, True)] for d in reversed(parts)]
        table = _table(["decile", f"{column} range", "records", "examples"], table_rows, {0, 1, 2}, wrap="flow")
    note = (f'<p class="note">Records ranked by <code>{escape(column)}</code> and cut into ten equal-count groups, '
            f"highest first; examples are spread evenly through each group (excerpts of at most {EXCERPT_CHARS} "
            "characters).</p>")
    title = f"Examples {kept_word} and {dropped_word}, per score decile" if split else "Examples per score decile"
    return _section("examples", title,
                    f"<details open><summary>{len(ids)} examples</summary>{note}{table}</details>")


def _dedup(manifest: dict, scores: data.ScoreData) -> str:
    m = manifest.get("metrics") or {}
    parts = []
    for kind in ("exact", "minhash", "semantic", "reference"):
        stats = m.get(kind)
        if isinstance(stats, dict) and stats:
            rows = [[escape(k.replace("_", " ")), _num(v)] for k, v in stats.items()
                    if isinstance(v, int | float | str | bool)]
            parts.append(f"<h3>{escape(kind)}</h3>" + _table(["statistic", "value"], rows, {1}, wrap="compact"))
    reasons = scores.extra.get("dup_reason")
    if reasons is not None and scores.selected is not None:
        dropped = np.flatnonzero(~scores.selected)[:MAX_DEDUP_EXAMPLES]
        pairs = []
        for r in dropped:
            reason = reasons[int(r)].as_py() or ""
            kind, _, original = reason.partition("_of:")
            pairs.append((str(scores.ids[int(r)].as_py()), kind, original))
        try:
            texts = data.lookup_texts(manifest, [p[0] for p in pairs] + [p[2] for p in pairs if p[2]])
        except Exception:  # noqa: BLE001 - the pool moved: ids and reasons still help
            texts = {}
        rows = [[f'<span class="mono">{escape(i)}</span>{_excerpt(texts.get(i), False)}', escape(kind),
                 f'<span class="mono">{escape(o)}</span>{_excerpt(texts.get(o), True) if o else ""}']
                for i, kind, o in pairs]
        if rows:
            parts.append(f"<h3>Dropped records (first {len(rows)}) and the copy that was kept</h3>"
                         + _table(["dropped", "reason", "kept copy"], rows))
    return _section("dedup", "Duplicates", "\n".join(parts)) if parts else ""


def _embedding(manifest: dict) -> str:
    info = manifest.get("embedding")
    if not info:
        return ""
    rows = [[escape(k), escape(json.dumps(v) if isinstance(v, dict) else str(v))] for k, v in info.items()]
    return _section("embedding", "Embeddings", _table(["", "value"], rows, wrap="compact"))


def _timings(manifest: dict) -> str:
    t = manifest.get("timings") or {}
    rows = [[escape(k), f"{v:.2f}"] for k, v in t.items() if isinstance(v, int | float)]
    if not rows:
        return ""
    return _section("timings", "Timings", f"<details><summary>seconds per stage</summary>"
                    f"{_table(['stage', 'seconds'], rows, {1}, wrap='compact')}</details>")


# ---------------------------------------------------------------------------------------------------- evaluation


def _evaluated_selections(run_dir: Path) -> str:
    """What each method selected (first seed): group composition and record lengths, per budget."""
    path = run_dir / "evaluation.json"
    if not path.is_file():
        return ""
    info = json.loads(path.read_text(encoding="utf-8")).get("selections") or {}
    methods = list(info)
    budgets = list(dict.fromkeys(b for m in methods for b in info[m]))
    parts = []
    for budget in budgets:
        cells = {m: info[m][budget] for m in methods if budget in info[m]}
        groups = sorted({g for c in cells.values() for g in (c.get("composition") or {})})
        if groups:
            rows = []
            for g in groups:
                shares = [(c.get("composition") or {}).get(g, 0) / max(c["records"], 1) for c in cells.values()]
                rows.append([escape(g)] + [f"{v:.1%}" for v in shares])
            parts.append(f"<h3>{escape(budget)}: share of each group in the selection (first seed)</h3>")
            parts.append(_table(["group", *cells], rows, set(range(1, len(cells) + 1)), wrap="compact"))
        rows = [[escape(m), _num(c["records"]), _num(c["words"])] +
                [_num(c["words_per_record"][q]) for q in ("p5", "median", "mean", "p95")] for m, c in cells.items()]
        parts.append(f"<h3>{escape(budget)}: lengths (words per record)</h3>")
        parts.append(_table(["method", "records", "words", "p5", "median", "mean", "p95"], rows,
                            set(range(1, 7)), wrap="compact"))
    if not parts:
        return ""
    return _section("selections", "What each method selected",
                    "<details open><summary>composition and lengths per budget</summary>" + "\n".join(parts) +
                    "</details>")


def _evaluation(run_dir: Path, manifest: dict) -> str:
    path = run_dir / "results.csv"
    if not path.is_file():
        return _section("comparison", "Comparison with the baseline", '<p class="bad">results.csv is missing</p>')
    rows = data.read_results(path)
    if not rows:
        return _section("comparison", "Comparison with the baseline", '<p class="note">results.csv is empty</p>')
    baseline = Counter(r["baseline"] for r in rows if r["baseline"]).most_common(1)
    baseline_name = baseline[0][0] if baseline else None
    verdicts: dict[str, Counter] = {}
    for r in rows:
        if r["method"] != baseline_name and r["verdict"] in ("better", "worse", "inconclusive"):
            verdicts.setdefault(r["method"], Counter())[r["verdict"]] += 1
    sentences = []
    for method, v in verdicts.items():
        total = sum(v.values())
        sentences.append(f"<li><b>{escape(method)}</b> beats {escape(str(baseline_name))} on {v['better']} of "
                         f"{total} comparisons; {v['inconclusive']} inconclusive; {v['worse']} worse</li>")
    margin = float((manifest.get("config") or {}).get("margin") or 0.0)
    margin_text = "zero" if not margin else f"the margin ±{margin:g}"
    levels = sorted({r["level"] for r in rows if r["level"] is not None})
    intervals = sorted({r["interval"] for r in rows if r.get("interval")})
    seeds = sorted({int(r["n_seeds"]) for r in rows if r["n_seeds"] is not None})
    note = (f'<p class="note">{" / ".join(f"{lv:.0%}" for lv in levels) or "?"} intervals '
            f"({escape(', '.join(intervals) or 'unknown method')}), seeds per cell: "
            f"{escape(', '.join(map(str, seeds)) or '?')}. A verdict is <i>better</i> or <i>worse</i> only when the "
            f"whole interval of the difference is beyond {escape(margin_text)}; delta is oriented so that positive "
            "means better.</p>")
    head = (f"<ul class=\"verdicts\">{''.join(sentences)}</ul>" if sentences else "") + note

    by_panel: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_panel.setdefault((r["target"], r["metric"]), []).append(r)
    tables, curves = [], []
    for k, ((target, metric), panel) in enumerate(by_panel.items()):
        title = f"{metric} \u2014 target {target}"
        direction = "higher is better" if panel[0]["higher_is_better"] else "lower is better"
        tables.append(f"<h3>{escape(title)} <span class=\"muted\">({direction})</span></h3>"
                      + _comparison_table(panel, baseline_name))
        series: dict[str, list[tuple[float, float, float, float]]] = {}
        for r in panel:
            if r["budget_records"] is None or r["estimate"] is None:
                continue
            series.setdefault(r["method"], []).append(
                (r["budget_records"], r["estimate"], _nan(r["lo"]), _nan(r["hi"])))
        if series:
            svg = plots.budget_curves(f"curve-{k}", title, f"{metric} ({direction})", series, baseline_name)
            curves.append(f"<figure>{svg}</figure>")
    out = [_section("comparison", "Comparison with the baseline", head + "\n".join(tables))]
    if curves:
        out.append(_section("curves", "Metric against budget",
                            '<p class="note">Shaded bands are the intervals of each method\'s estimate; the '
                            f'baseline ({escape(str(baseline_name))}) is dashed.</p>'
                            f'<div class="grid">{"".join(curves)}</div>'))
    return "\n".join(out)


def _nan(x: float | None) -> float:
    return float("nan") if x is None else x
