"""The score job: stream a pool through rule-based scorers and write their columns as side-car scores by id.

Nothing is selected here; ``scores/scores.parquet`` keeps every signal so thresholds can be changed later without
recomputing, and the manifest counts how many records each rule family passes and why the others fail.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from thresher.engine.local import LocalEngine
from thresher.errors import ConfigError
from thresher.io.atomic import atomic_path, write_json
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.jobs.manifest import dataset_info, versions
from thresher.run import Run
from thresher.scorers.gopher import GopherScorer
from thresher.scorers.langid import LangIdScorer
from thresher.scorers.rules import RuleFamilyScorer
from thresher.scorers.web_rules import C4Scorer, FineWebScorer

RULE_SCORERS: dict[str, type[RuleFamilyScorer]] = {"gopher": GopherScorer, "c4": C4Scorer, "fineweb": FineWebScorer}
#: Every scorer that needs no reference data: the rule families and language identification.
SCORERS: dict[str, type] = {**RULE_SCORERS, "langid": LangIdScorer}


def _score_batch(names: list[str], text: pa.Array) -> dict[str, np.ndarray]:
    """Worker task: every named scorer's columns for one batch."""
    out: dict[str, np.ndarray] = {}
    for name in names:
        out.update(SCORERS[name]().score(text))
    return out


def run_scoring(pool: Dataset, scorers: list[str], out: str | os.PathLike, workers: int | None = None,
                progress: bool = True, command: list[str] | None = None) -> Run:
    """Score every record of ``pool`` with ``scorers`` and write a run directory with side-car scores."""
    unknown = [s for s in scorers if s not in SCORERS]
    if unknown or not scorers:
        raise ConfigError(f"unknown scorer(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(SCORERS)}")
    out = Path(out)
    (out / "scores").mkdir(parents=True, exist_ok=True)
    errors = ErrorLog(pool.on_error)
    t0 = time.perf_counter()
    ids: list[pa.Array] = []
    n = 0
    reasons: dict[str, Counter] = {s: Counter() for s in scorers if s in RULE_SCORERS}
    languages: Counter = Counter()
    writer: pq.ParquetWriter | None = None

    def items():
        for batch in pool.iter_batches(errors):
            ids.append(batch.column("id"))
            yield scorers, batch.column("text")

    bar = tqdm(unit="rec", desc="score", disable=not progress or None, leave=False)
    with LocalEngine(workers) as engine, atomic_path(out / "scores" / "scores.parquet") as tmp:
        for k, cols in enumerate(engine.map(_score_batch, items())):
            table = pa.table({"id": ids[k], **{c: pa.array(v) for c, v in cols.items()}})
            writer = writer or pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table)
            for s, counter in reasons.items():
                counter.update(r for r in cols[f"{s}_reason"] if r is not None)
            if "lang" in cols:
                languages.update(cols["lang"])
            n += table.num_rows
            bar.update(table.num_rows)
        bar.close()
        if writer is None:
            raise ConfigError(f"the pool has no usable records ({', '.join(pool.paths)})")
        writer.close()
        engine_info = engine.describe()
    failed = errors.to_dict()
    summary = {s: {"passed": n - sum(c.values()), "failed_by_rule": dict(c.most_common())} for s, c in reasons.items()}
    if "langid" in scorers:
        summary["langid"] = {"languages": dict(languages.most_common())}
    manifest = {
        "command": command, "created_unix": int(time.time()), "job": "score", "scorers": scorers,
        "inputs": {"pool": dataset_info(pool)}, "versions": versions(), "engine": engine_info,
        "counts": {"input_records": n + failed["total"], "scored": n, "failed": failed["total"],
                   "pool_failed": failed},
        "metrics": {"rules": summary}, "timings": {"score": round(time.perf_counter() - t0, 4)},
        "outputs": {"scores": "scores/scores.parquet", "records": []},
    }
    write_json(manifest, out / "manifest.json")
    return Run(out)


def format_rule_summary(run: Run) -> str:
    """Pass rates and the most common failing rules, per family."""
    n = run.counts["scored"]
    lines = [f"records: {run.counts['input_records']:,} read, {n:,} scored, {run.counts['failed']:,} failed"]
    for family, s in run.metrics["rules"].items():
        if "languages" in s:
            top = ", ".join(f"{lang} {c / max(n, 1):.1%}" for lang, c in list(s["languages"].items())[:6])
            lines.append(f"{'langid':<8} {top}")
            continue
        top = ", ".join(f"{r} {c:,}" for r, c in list(s["failed_by_rule"].items())[:4])
        lines.append(f"{family:<8} pass {s['passed'] / max(n, 1):6.1%}   fails: {top or '-'}")
    lines.append(f"scores: {run.path / 'scores' / 'scores.parquet'}")
    return "\n".join(lines)
