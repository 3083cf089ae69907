"""What a report reads from a run directory: only the score columns it plots, the selection, the texts of the few
example records, and an evaluation's ``results.csv``. Kept cheap so a report on a large run takes seconds."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thresher.io.columns import as_float

#: Columns that are ids, labels or cluster numbers, not scores: never plotted.
NOT_SCORES = {"id", "group", "filtered_by", "dup_cluster", "dup_exact_cluster", "dup_near_cluster", "dup_keep",
              "label", "end_label"}  # class indices: the labelling section counts them by class name
#: Record lengths: plotted after the real scores, never the default ranking for examples.
LENGTHS = ("n_words", "n_tokens", "n_ngrams", "n_tiktoken", "lm_tokens")
MAX_HISTOGRAMS = 12

#: The columns ``results.csv`` of ``thresher evaluate`` has, in order.
RESULT_COLUMNS = ("target", "method", "budget", "budget_records", "metric", "higher_is_better", "estimate", "lo", "hi",
                  "baseline", "baseline_estimate", "delta", "delta_lo", "delta_hi", "p_better", "verdict", "n_seeds",
                  "level", "interval")


def _not_eligible(path: Path, schema: pa.Schema, manifest: dict, filtered: np.ndarray) -> np.ndarray:
    """Records the selection could not choose (its --where, length floor, pipeline filters), by the select job's own
    rule; when the columns it needs are gone, only the pipeline filters (``filtered``)."""
    from thresher.errors import ThresherError
    from thresher.selectors.eligibility import eligibility
    from thresher.selectors.where import WhereExpression

    sel, config = manifest.get("selection") or {}, manifest.get("config") or {}
    where, token_column = sel.get("where"), config.get("token_column") or "n_words"
    try:
        needed = {"n_tokens" if "n_tokens" in schema.names else "n_words", token_column,
                  *(["filtered_by"] if "filtered_by" in schema.names else []),
                  *(WhereExpression(where).columns if where else [])}
        table = pq.read_table(path, columns=sorted(needed))
        eligible, _ = eligibility(table, where, int(sel.get("min_tokens") or 0), config.get("budget"), token_column)
    except (ThresherError, KeyError, pa.ArrowException):
        return filtered
    return ~eligible


@dataclass
class ScoreData:
    """The plotted score columns of a run, with who was selected (or kept) and who was filtered."""

    ids: pa.Array
    columns: dict[str, np.ndarray]  # float64 with NaN for nulls, in plotting order
    not_plotted: list[str]
    selected: np.ndarray | None  # bool per record; None when the run selected nothing (score runs)
    filtered: np.ndarray  # bool per record: dropped before selection (pipeline filter, dedup, --where, too short)
    ranking: str | None  # the column examples are split into deciles by
    extra: dict[str, pa.Array] = field(default_factory=dict)  # dup_reason etc.


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def score_columns(manifest: dict, schema: pa.Schema) -> tuple[list[str], str | None]:
    """The numeric score columns in plotting order (the selection's score, scorers' main columns, other signals,
    lengths) and the column that ranks examples."""
    numeric = [f.name for f in schema if _numeric(f.type) and f.name not in NOT_SCORES]
    first: list[str] = []
    selection_score = (manifest.get("selection") or {}).get("score")
    if selection_score in numeric:
        first.append(selection_score)
    from thresher.scorers.registry import SCORERS

    for stage in manifest.get("pipeline") or []:
        spec = SCORERS.get(stage.get("scorer") or "")
        if spec is not None and spec.primary in numeric and spec.primary not in first:
            first.append(spec.primary)
    if "dsir" in numeric and "dsir" not in first:
        first.append("dsir")
    rest = [c for c in numeric if c not in first and c not in LENGTHS]
    lengths = [c for c in numeric if c in LENGTHS and c not in first]
    ordered = first + rest + lengths
    ranking = selection_score if selection_score in numeric else next(
        (c for c in reversed(first) if c not in LENGTHS), None)
    return ordered, ranking


def load_scores(run_dir: Path, manifest: dict, max_histograms: int = MAX_HISTOGRAMS) -> ScoreData | None:
    """Read the plotted columns of ``scores/scores.parquet`` (not the others) and the selection mask."""
    path = run_dir / "scores" / "scores.parquet"
    if not path.is_file():
        return None
    schema = pq.read_schema(path)
    ordered, ranking = score_columns(manifest, schema)
    plotted = ordered[:max_histograms]
    if ranking and ranking not in plotted:
        plotted.append(ranking)
    wanted = ["id", *plotted] + [c for c in ("filtered_by", "dup_keep", "dup_reason") if c in schema.names]
    table = pq.read_table(path, columns=wanted)
    ids = table["id"].combine_chunks()
    columns = {c: as_float(table[c]) for c in plotted}
    n = table.num_rows
    filtered = (np.asarray(table["filtered_by"].is_valid().to_numpy(zero_copy_only=False), dtype=bool)
                if "filtered_by" in table.column_names else np.zeros(n, dtype=bool))
    selected = None
    if "dup_keep" in table.column_names:
        selected = np.asarray(table["dup_keep"].to_numpy(zero_copy_only=False), dtype=bool)
    elif (run_dir / "selected" / "ids.txt").is_file() and manifest.get("selection"):
        chosen = pa.array((run_dir / "selected" / "ids.txt").read_text(encoding="utf-8").splitlines(),
                          pa.large_string())
        selected = np.asarray(pc.is_in(ids.cast(pa.large_string()), value_set=chosen).to_numpy(
            zero_copy_only=False), dtype=bool)
        filtered = _not_eligible(path, schema, manifest, filtered)
    extra = {"dup_reason": table["dup_reason"].combine_chunks()} if "dup_reason" in table.column_names else {}
    return ScoreData(ids=ids, columns=columns, not_plotted=ordered[max_histograms:], selected=selected,
                     filtered=filtered, ranking=ranking, extra=extra)


@dataclass
class Decile:
    """One tenth of the ranked records: its score range, how many were kept, and a few example rows of each kind."""

    number: int  # 1 = lowest scores, 10 = highest
    low: float
    high: float
    records: int
    kept: int
    kept_examples: list[int]
    dropped_examples: list[int]


def deciles(scores: np.ndarray, kept: np.ndarray, per_side: int = 2) -> list[Decile]:
    """Split the records with a finite score into ten equal-count groups by rank; pick ``per_side`` kept and
    dropped examples from each, spread evenly through the group (deterministic: no sampling)."""
    rows = np.flatnonzero(np.isfinite(scores))
    if len(rows) == 0:
        return []
    order = rows[np.argsort(scores[rows], kind="stable")]
    out = []
    for number, part in enumerate(np.array_split(order, min(10, len(order))), start=1):
        if not len(part):
            continue
        k, d = part[kept[part]], part[~kept[part]]
        out.append(Decile(number, float(scores[part[0]]), float(scores[part[-1]]), len(part), len(k),
                          _spread(k, per_side), _spread(d, per_side)))
    return out


def _spread(rows: np.ndarray, k: int) -> list[int]:
    if len(rows) <= k:
        return [int(r) for r in rows]
    return [int(rows[int(i)]) for i in np.linspace(0, len(rows) - 1, k + 2)[1:-1].round()]


def lookup_texts(manifest: dict, ids: list[str]) -> dict[str, str]:
    """The texts of ``ids`` from the run's pool, reading until all are found. Empty if the pool is gone."""
    from thresher.io.errors import ErrorLog
    from thresher.io.provenance import reopen_dataset

    info = (manifest.get("inputs") or {}).get("pool")
    if not info or not ids:
        return {}
    wanted = pa.array(sorted(set(ids)), pa.large_string())
    found: dict[str, str] = {}
    pool = reopen_dataset(info, on_error="skip", batch_size=info.get("batch_size") or 4096)
    for batch in pool.iter_batches(ErrorLog("skip")):
        hit = pc.is_in(batch.column("id").cast(pa.large_string()), value_set=wanted)
        if pc.any(hit).as_py():
            rows = pa.Table.from_batches([batch]).filter(hit)
            found.update(zip(rows["id"].to_pylist(), rows["text"].to_pylist()))
            if len(found) >= len(wanted):
                break
    return found


def read_results(path: Path) -> list[dict]:
    """``results.csv`` of an evaluation as dicts: numbers as floats (None when empty), booleans as bools."""
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        for raw in csv.DictReader(f):
            row: dict = dict(raw)
            for key in ("budget_records", "estimate", "lo", "hi", "baseline_estimate", "delta", "delta_lo",
                        "delta_hi", "p_better", "n_seeds", "level"):
                value = (raw.get(key) or "").strip()
                row[key] = float(value) if value and value.lower() != "nan" else None
            row["higher_is_better"] = (raw.get("higher_is_better") or "").strip().lower() in ("true", "1", "yes")
            row["baseline"] = (raw.get("baseline") or "").strip() or None
            rows.append(row)
    return rows
