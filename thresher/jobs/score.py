"""The score job: stream a pool through scorers and write their columns as side-car scores by id.

Nothing is selected here; ``scores/scores.parquet`` keeps every signal so thresholds and selections can change
later without recomputing (``thresher select --from-run DIR --where ... --score ...``). It is a pipeline of score
stages only; the manifest counts how many records each rule family passes and why the others fail.
"""

from __future__ import annotations

import os

from thresher.errors import ConfigError
from thresher.io.dataset import Dataset
from thresher.pipeline import Pipeline, Score
from thresher.run import Run
from thresher.scorers.registry import SCORERS


def run_scoring(pool: Dataset, scorers: list[str] | list[Score], out: str | os.PathLike,
                target: Dataset | None = None, workers: int | None = None, progress: bool = True,
                command: list[str] | None = None, seed: int = 0, pool_sample: int = 10_000,
                group_field: str | None = "domain", report: bool = True) -> Run:
    """Score every record of ``pool`` with ``scorers`` (names or :class:`Score` stages with parameters)."""
    if not scorers:
        raise ConfigError(f"no scorer given; choose from {', '.join(SCORERS)}")
    stages = [s if isinstance(s, Score) else Score(s) for s in scorers]
    return Pipeline(stages).run(pool, out, target, seed=seed, pool_sample=pool_sample, group_field=group_field,
                                workers=workers, progress=progress, command=command, report=report)


def format_rule_summary(run: Run) -> str:
    """Pass rates and the most common failing rules per family, languages, and fitted scorers' held-out scores."""
    n = run.counts["scored"]
    lines = [f"records: {run.counts['input_records']:,} read, {n:,} scored, {run.counts['failed']:,} failed",
             *stage_lines(run), f"scores: {run.path / 'scores' / 'scores.parquet'}"]
    return "\n".join(lines)


def stage_lines(run: Run) -> list[str]:
    """One line per stage result: records each filter dropped, rule pass rates, languages, held-out scores of
    fitted scorers (what ``thresher score`` and ``thresher run`` print)."""
    n = run.counts.get("scored", 0)
    lines = []
    for label, dropped in run.counts.get("filtered", {}).items():
        lines.append(f"{label}: dropped {dropped:,}")
    for family, s in run.metrics.get("rules", {}).items():
        if "languages" in s:
            top = ", ".join(f"{lang} {c / max(n, 1):.1%}" for lang, c in list(s["languages"].items())[:6])
            lines.append(f"{'langid':<8} {top}")
            continue
        top = ", ".join(f"{r} {c:,}" for r, c in list(s["failed_by_rule"].items())[:4])
        lines.append(f"{family:<8} pass {s['passed'] / max(n, 1):6.1%}   fails: {top or '-'}")
    for name, report in run.metrics.get("fit", {}).items():
        folds = [report[k] for k in sorted(report) if k.startswith("fold_")] if isinstance(report, dict) else []
        for i, r in enumerate(folds or [report]):
            held = r.get("heldout") if isinstance(r, dict) else None
            if held:
                label = f"{name} (fold {i})" if folds else name
                lines.append(f"{label:<8} held-out accuracy {held['accuracy']:.3f}, AUC {held['auc']:.3f} "
                             f"({held['records']} records)")
    return lines
