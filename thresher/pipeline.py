"""A :class:`Pipeline` of stages: score, filter, score, ..., select. Runnable from Python and from YAML recipes.

Stages run in order on every batch: a ``Score`` stage adds its scorer's columns, a ``Filter`` stage drops the records
its expression rejects, so later (often costlier) scorers only see what earlier filters kept; their columns are null
for filtered records, and ``filtered_by`` names the filter that dropped each one. Scorers that learn from reference
data are fitted before the pass, on the target and on a seeded random sample of the pool that went through the
earlier stages (so a classifier after a language filter learns against the filtered pool, as DCLM does).
One optional ``Select`` stage, last, ranks by a score column under a budget; the selection is measured against a
random sample of the same size (KL reduction toward the target, composition by group).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher._version import __version__
from thresher.dedup.decisions import Decisions
from thresher.dedup.spill import remove_stale_spills
from thresher.engine import Engine, make_engine
from thresher.engine.pieces import map_pieces
from thresher.engine.plan import GLOBAL, MAP, Plan, Values, stage_seconds
from thresher.engine.plan import Stage as PlanStage  # a step of the job's plan; Stage here is a pipeline's own step
from thresher.errors import ConfigError
from thresher.features.lengths import whitespace_token_counts
from thresher.io.atomic import ParquetStream, write_json
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.pieces import Batcher
from thresher.io.provenance import dataset_fingerprint, dataset_info, versions
from thresher.io.sampling import sample_texts
from thresher.jobs.dedup import METHODS, NORMALIZE, find_duplicates
from thresher.jobs.rundir import claims_run_dir
from thresher.jobs.select import select_from_pipeline
from thresher.progress import Progress, known_rows
from thresher.run import Run
from thresher.scorers.registry import SCORERS, References, get_spec
from thresher.selectors.where import WhereExpression

_PROBE = "The quick brown fox jumps over the lazy dog. It was not amused, and said so at length."


@dataclass(frozen=True)
class Score:
    """Add the columns of the registered scorer ``scorer`` built with ``params``."""

    scorer: str
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        get_spec(self.scorer).build(self.params)  # validates name and parameters without fitting

    @property
    def label(self) -> str:
        return self.scorer


@dataclass(frozen=True)
class Filter:
    """Keep the records for which ``where`` (a safe expression over earlier columns) is true."""

    where: str

    def __post_init__(self) -> None:
        WhereExpression(self.where)

    @property
    def label(self) -> str:
        return f"filter: {self.where}"


@dataclass(frozen=True)
class Select:
    """Rank the kept records by ``score`` (a column or scorer name) and take ``budget`` with ``selector``."""

    selector: str = "topk"
    score: str | None = None
    budget: str | None = None  # default: 5%, or no cap for threshold (as thresher select does)
    temperature: float | None = None
    threshold: float | None = None
    min_tokens: int = 0
    token_column: str = "n_words"  # what a token budget counts (n_tiktoken after the tokens scorer)
    embeddings: str | None = None  # an embed run of the pool: kcenter, facility, clusters
    labels: str | None = None  # a column with a group per record: quotas, quadmix
    params: dict = field(default_factory=dict)  # the diversity selector's parameters
    output_format: str = "parquet"

    def __post_init__(self) -> None:
        if self.budget is None and self.selector != "threshold":
            object.__setattr__(self, "budget", "5%")


@dataclass(frozen=True)
class Dedup:
    """Drop exact / near / semantic duplicates before anything else runs (see ``thresher dedup``); the dropped
    records are counted as filtered by ``dedup`` and get a ``dup_reason``. Must be the first stage."""

    method: str = "both"
    threshold: float = 0.7  # minhash: Jaccard of word n-gram sets
    ngram: int | None = None  # words per shingle (minhash, default 5) or per n-gram (against, ngram: default 13)
    normalize: str = "lower"  # exact: none, whitespace, lower, punct, nfkc
    keep: str = "first"  # first or longest (highest needs scores, which do not exist yet at this stage)
    embeddings: str | None = None  # semantic: an embed run of the pool
    similarity: float = 0.95  # semantic: cosine threshold
    against: tuple[str, ...] | None = None  # reference sets: drop pool records repeating their text (ngram, exact,
    # minhash)
    min_overlap: float = 0.0  # against, ngram: the share of a record's n-grams that must be in the reference

    def __post_init__(self) -> None:
        if self.against is not None:
            object.__setattr__(self, "against", (self.against,) if isinstance(self.against, str)
                               else tuple(map(str, self.against)))
        self.configs()  # validates

    @property
    def label(self) -> str:
        return "dedup"

    def references(self, pool: Dataset) -> list[Dataset]:
        """The ``against`` sets, read as the pool is (fields, error policy, batch size)."""
        opts = {k: getattr(pool, k) for k in ("text_field", "id_field", "on_error", "batch_size")}
        return [Dataset([p], **opts) for p in self.against or ()]

    def configs(self) -> dict:
        """The dedup job's arguments for this stage."""
        from dataclasses import replace

        from thresher.dedup import MinHashConfig
        from thresher.dedup.semantic import SemanticConfig

        if self.against:
            from thresher.dedup.reference import reference_config

            if self.method == "both":
                raise ConfigError("a dedup stage with 'against' matches by ngram, exact or minhash (say which), not "
                                  "'both'")
            return {"reference": reference_config(self.method, self.ngram, self.min_overlap, NORMALIZE[self.normalize],
                                                  MinHashConfig(threshold=self.threshold))}
        if self.method == "ngram" or self.min_overlap:
            raise ConfigError("a dedup stage by ngram (or with min_overlap) matches reference sets: give 'against'")
        if self.method not in METHODS:
            raise ConfigError(f"unknown dedup method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.keep not in ("first", "longest"):
            raise ConfigError(f"a dedup stage keeps 'first' or 'longest', got {self.keep!r}")
        if self.normalize not in NORMALIZE:
            raise ConfigError(f"unknown normalize {self.normalize!r}; choose from {', '.join(NORMALIZE)}")
        if self.method == "semantic" and not self.embeddings:
            raise ConfigError("a semantic dedup stage needs embeddings (an embed run of the pool)")
        return {"method": self.method, "exact": replace(NORMALIZE[self.normalize], keep=self.keep),
                "minhash": MinHashConfig(threshold=self.threshold, ngram=self.ngram or 5, keep=self.keep),
                "semantic": SemanticConfig(threshold=self.similarity, keep=self.keep), "embeddings": self.embeddings}


Stage = Dedup | Score | Filter | Select


@dataclass
class _Fitted:
    """What a worker needs per stage: the fitted scorer or the filter text (both picklable)."""

    kind: str
    label: str
    scorer: object | None = None
    where: str | None = None


class Pipeline:
    """An ordered list of stages; ``run`` streams a pool through them and writes a run directory."""

    def __init__(self, stages: list[Stage]):
        stages = list(stages)
        if not stages:
            raise ConfigError("a pipeline needs at least one stage")
        for i, stage in enumerate(stages):
            if not isinstance(stage, (Dedup, Score, Filter, Select)):
                raise ConfigError(f"stage {i + 1} is a {type(stage).__name__}, not a Dedup, Score, Filter or Select")
            if isinstance(stage, Dedup) and i != 0:
                raise ConfigError(f"stage {i + 1}: dedup looks at the whole pool at once; make it the first stage")
            if isinstance(stage, Select) and i != len(stages) - 1:
                raise ConfigError(f"stage {i + 1}: select must be the last stage")
        if not any(isinstance(s, Score) for s in stages):
            raise ConfigError("a pipeline needs at least one score stage")
        labels = [s.label for s in stages if isinstance(s, Score)]
        repeated = sorted({x for x in labels if labels.count(x) > 1})
        if repeated:
            raise ConfigError(f"scorer(s) {', '.join(repeated)} appear twice: their columns would collide")
        self.stages = stages

    @property
    def select(self) -> Select | None:
        return self.stages[-1] if isinstance(self.stages[-1], Select) else None

    def describe(self) -> list[dict]:
        return [{"stage": type(s).__name__.lower(), **asdict(s)} for s in self.stages]

    @claims_run_dir("out")
    def run(self, pool: Dataset, out: str | os.PathLike, target: Dataset | None = None, *, seed: int = 0,
            pool_sample: int = 10_000, group_field: str | None = "domain", workers: int | None = None,
            progress: bool = True, command: list[str] | None = None, recipe: dict | None = None,
            report: bool = True) -> Run:
        """Fit, score and filter every record of ``pool``; select if the last stage is a Select. Writes
        ``report.html`` unless ``report=False``."""
        out = Path(out)
        (out / "scores").mkdir(parents=True, exist_ok=True)
        key = self.fingerprint(pool, target, seed, pool_sample, group_field)
        if self._scores_cached(out, key):
            manifest = Run(out).manifest
            manifest["scores_reused"] = True  # same inputs and stages: only the selection runs again
            manifest["command"] = command
            write_json(manifest, out / "manifest.json")
            return self._select(out, pool, target, seed, group_field, workers, progress, report)
        with make_engine(workers) as engine:
            v = SCORE_PLAN.run(pipeline=self, pool=pool, target=target, out=out, seed=seed, pool_sample=pool_sample,
                               group_field=group_field, engine=engine, progress=progress)
        stats, refs = v.stats, v.refs
        failed = stats.pop("failed")
        n = stats.pop("records")
        manifest = {
            "command": command, "created_unix": int(time.time()), "job": "run" if self.select else "score",
            "fingerprint": key,
            "pipeline": self.describe(), "recipe": recipe, "seed": seed, "pool_sample": pool_sample,
            "inputs": {"pool": dataset_info(pool), "target": dataset_info(target) if target is not None else None},
            "versions": versions(), "engine": stats.pop("engine"),
            "counts": {"input_records": n + failed["total"], "scored": n, "failed": failed["total"],
                       "pool_failed": failed,
                       "target": {"records": len(refs.target)} if refs.target is not None else None,
                       "filtered": stats["filtered"], "kept": n - sum(stats["filtered"].values())},
            "metrics": {"rules": stats["rules"], "fit": v.fit_reports,
                        **({"dedup": v.dedup_stats} if v.dedup_stats else {})},
            "timings": stage_seconds(v.stages), "stages": v.stages,
            "outputs": {"scores": "scores/scores.parquet", "records": []},
        }
        write_json(manifest, out / "manifest.json")
        return self._select(out, pool, target, seed, group_field, workers, progress, report)

    def fingerprint(self, pool: Dataset, target: Dataset | None, seed: int, pool_sample: int,
                    group_field: str | None) -> str:
        """What the scores depend on: the score and filter stages, the inputs' contents, seed and sample size."""
        stages = [d for d in self.describe() if d["stage"] != "select"]
        # Whether a selection follows is part of the key: a score-only run must not inherit a previous selection.
        first = self.stages[0]
        against = [dataset_fingerprint(ds) for ds in first.references(pool)] if isinstance(first, Dedup) else None
        key = {"stages": stages, "selects": self.select is not None, "seed": seed, "pool_sample": pool_sample,
               "group_field": group_field, **({"against": against} if against else {}),
               "target": dataset_fingerprint(target) if target is not None else None, "thresher": __version__}
        return dataset_fingerprint(pool, pipeline=key)

    @staticmethod
    def _scores_cached(out: Path, key: str) -> bool:
        """A finished run in ``out`` scored the same inputs with the same stages: its scores can be reused."""
        manifest = out / "manifest.json"
        if not (manifest.is_file() and (out / "scores" / "scores.parquet").is_file()):
            return False
        import json

        return json.loads(manifest.read_text()).get("fingerprint") == key

    def _select(self, out: Path, pool: Dataset, target: Dataset | None, seed: int, group_field: str | None,
                workers: int | None, progress: bool, report: bool = True) -> Run:
        if self.select is None:
            if (out / "selected").exists():  # left by an earlier run with a selection into this folder
                import shutil

                shutil.rmtree(out / "selected")
            from thresher.report.html import report_after_job

            report_after_job(out, report)
            return Run(out)
        return select_from_pipeline(out, pool, target, self.select, seed=seed, group_field=group_field,
                                    workers=workers, progress=progress, report=report)

    def _fit(self, refs: References, out: Path) -> tuple[list[_Fitted], dict]:
        """Fit every scorer in stage order; filters before a scorer also filter the pool sample it learns from."""
        fitted: list[_Fitted] = []
        reports: dict = {}
        sample = refs.pool_sample
        for i, stage in enumerate(self.stages):
            if isinstance(stage, Score):
                spec = get_spec(stage.scorer)
                scorer = spec.fit_scorer(spec.build(stage.params), References(refs.target, sample))
                fitted.append(_Fitted("score", stage.label, scorer=scorer))
                if hasattr(scorer, "report_"):
                    reports[stage.label] = scorer.report_
                if spec.needs and hasattr(scorer, "save"):
                    scorer.save(out / "fit" / stage.label)
            elif isinstance(stage, Filter):
                fitted.append(_Fitted("filter", stage.label, where=stage.where))
                later = any(isinstance(s, Score) and get_spec(s.scorer).needs for s in self.stages[i + 1:])
                if sample is not None and later:
                    cols = apply_stages(fitted, sample)
                    keep = np.asarray(cols["filtered_by"].is_null().to_numpy(zero_copy_only=False), dtype=bool)
                    sample = sample.filter(pa.array(keep))
                    reports.setdefault("pool_sample_after_filters", {})[stage.label] = int(keep.sum())
        return fitted, reports

    @staticmethod
    def _schema(fitted: list[_Fitted], group_field: str | None, dedup: bool = False) -> pa.Schema:
        """Every output column and its type, from the scorers' output on one probe text (filters off)."""
        probe = apply_stages([f for f in fitted if f.kind == "score"], pa.array([_PROBE], pa.large_string()),
                             (np.ones(1, dtype=bool), pa.nulls(1, pa.large_string())) if dedup else None)
        fields = [pa.field("id", pa.large_string())] + [pa.field(k, v.type) for k, v in probe.items()]
        return pa.schema(fields + ([pa.field("group", pa.string())] if group_field else []))

    def _score_pool(self, pool: Dataset, fitted: list[_Fitted], path: Path, group_field: str | None,
                    engine: Engine, progress: bool, dedup: Decisions | None = None) -> dict:
        """Score and filter every record where the engine runs (each task reads its own piece of the pool) and
        write the side-car table in reading order, in row groups of the batch size as a sequential read makes."""
        errors = ErrorLog(pool.on_error)
        extra = [group_field] if group_field else []
        args = (fitted, group_field, pool.batch_size, None)
        if dedup is not None:
            args = _dedup_args(pool, engine, fitted, group_field, dedup)
        schema = self._schema(fitted, group_field, dedup is not None)
        out = Batcher(pool.batch_size)  # the table's row groups are a sequential read's batches, whatever the pieces
        n = 0
        filtered: Counter = Counter()
        rule_reasons: dict[str, Counter] = {}
        rule_passed: Counter = Counter()
        languages: Counter = Counter()
        has_groups = False
        bar = Progress("score", total=known_rows(pool), enabled=progress)

        with ParquetStream(path, schema) as stream:
            for ids, parts in map_pieces(pool, engine, score_part, args, errors, extra, bar):
                start = 0
                for cols, group in parts:
                    rows = len(cols["filtered_by"])
                    table = pa.table({"id": ids.slice(start, rows), **cols})
                    start += rows
                    if group_field:
                        table = table.append_column("group", group.cast(pa.string()))
                        has_groups |= group.null_count < len(group)
                    for f in schema:  # columns of scorers that saw no record of this batch (all filtered)
                        if f.name not in table.column_names:
                            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
                    for batch in out.add(table.select(schema.names).cast(schema)):
                        stream.write(batch)
                    filtered.update(x for x in cols["filtered_by"].to_pylist() if x is not None)
                    for name, values in cols.items():
                        family = name[: -len("_reason")]
                        if name.endswith("_reason") and f"{family}_pass" in cols:
                            reasons = (r for r in values.to_pylist() if r is not None)
                            rule_reasons.setdefault(family, Counter()).update(reasons)
                            passed = pa.compute.sum(cols[f"{family}_pass"].cast(pa.int64())).as_py()
                            rule_passed[family] += int(passed or 0)
                    if "lang" in cols:
                        languages.update(x for x in cols["lang"].to_pylist() if x is not None)
                    n += table.num_rows
            for batch in out.flush():
                stream.write(batch)
            bar.close()
            if not stream.started:
                raise ConfigError(f"the pool has no usable records ({', '.join(pool.paths)})")
            engine_info = engine.describe()
        if group_field and not has_groups:
            pq.write_table(pq.read_table(path).drop_columns(["group"]), path, compression="zstd")
        rules = {family: {"passed": rule_passed[family], "failed_by_rule": dict(reasons.most_common())}
                 for family, reasons in rule_reasons.items()}
        if languages:
            rules["langid"] = {"languages": dict(languages.most_common())}
        return {"records": n, "failed": errors.to_dict(), "filtered": dict(filtered), "rules": rules,
                "engine": engine_info}


def score_part(batch: pa.RecordBatch, where: tuple[int, int], fitted: list[_Fitted], group_field: str | None,
               batch_size: int, dedup: tuple[np.ndarray, pa.Array] | None) -> tuple[dict[str, pa.Array], pa.Array]:
    """Worker task: every stage on one batch of a piece (``dedup``: the piece's decisions, of which this batch's
    start at its part number times the batch size); the columns, and the group column if asked for."""
    if dedup is not None:
        start = where[1] * batch_size
        dedup = (dedup[0][start: start + batch.num_rows], dedup[1].slice(start, batch.num_rows))
    return apply_stages(fitted, batch.column("text"), dedup), batch.column(group_field) if group_field else None


def _piece_rows(batch: pa.RecordBatch, where: tuple[int, int]) -> int:
    """Worker task: a batch's record count (the first pass of a score pass after dedup)."""
    return batch.num_rows


def _dedup_args(pool: Dataset, engine: Engine, fitted: list[_Fitted], group_field: str | None,
                dedup: Decisions):
    """The score task's arguments for each piece, with the piece's slice of the dedup decisions.

    The decisions are indexed by reading position, and where a piece starts is known only once the pieces before
    it are counted: a first pass over the pieces counts their usable records (reading ids and texts, shipping
    nothing but counts), so each task then gets only its own slice, whatever the pool's size."""
    starts = [0]
    for _, rows in map_pieces(pool, engine, _piece_rows, (), ErrorLog(pool.on_error), combine=sum):
        starts.append(starts[-1] + rows)
    if starts[-1] != len(dedup):
        raise AssertionError(f"the pool has {starts[-1]} usable records, the dedup stage decided on {len(dedup)}")

    def args(piece) -> tuple:
        a, b = starts[piece.index], starts[piece.index + 1]
        return fitted, group_field, pool.batch_size, dedup.keep_and_reasons(a, b)  # the piece's rows only

    return args


def apply_stages(fitted: list[_Fitted], text: pa.Array | pa.ChunkedArray,
                 dedup: tuple[np.ndarray, pa.Array] | None = None) -> dict[str, pa.Array]:
    """Worker task: every stage on one batch. Later scorers see only rows earlier filters kept (null elsewhere).

    ``dedup``: this batch's slice of a dedup stage's decisions (kept?, reason), made over the whole pool first.
    """
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    n = len(text)
    cols: dict[str, pa.Array] = {"n_words": pa.array(whitespace_token_counts(text))}
    active = np.ones(n, dtype=bool)
    filtered_by = np.full(n, None, dtype=object)
    if dedup is not None:
        cols["dup_reason"] = dedup[1].cast(pa.large_string())
        filtered_by[~dedup[0]] = "dedup"
        active &= dedup[0]
    for stage in fitted:
        if not active.any():
            break
        if stage.kind == "score":
            sub = text if active.all() else text.filter(pa.array(active))
            for name, values in stage.scorer.score(sub).items():
                if name == "n_words":
                    continue  # the pipeline's own, for every record (a scorer after a filter would leave gaps)
                cols[name] = _spread(_to_arrow(values), active)
        else:
            passed = WhereExpression(stage.where).mask(pa.table(cols))
            dropped = active & ~passed
            filtered_by[dropped] = stage.label
            active &= passed
    # Columns of scorers that never ran on this batch (every row filtered) still exist, as nulls.
    cols["filtered_by"] = pa.array(filtered_by, type=pa.string())
    return cols


def _to_arrow(values: np.ndarray | pa.Array) -> pa.Array:
    arr = values if isinstance(values, pa.Array) else pa.array(values)
    return arr.cast(pa.string()) if pa.types.is_null(arr.type) else arr


def _spread(values: pa.Array, active: np.ndarray) -> pa.Array:
    """Place values computed for the active rows at their positions, with nulls for the others."""
    if active.all():
        return values
    positions = np.cumsum(active) - 1
    return values.take(pa.array(positions, mask=~active))


def _read_texts(dataset: Dataset) -> pa.Array:
    errors = ErrorLog(dataset.on_error)
    parts = [b.column("text") for b in dataset.iter_batches(errors)]
    if not parts:
        raise ConfigError(f"the target has no usable records ({', '.join(dataset.paths)})")
    return pa.concat_arrays(parts)



def _sample(v: Values) -> dict:
    refs = References(target=_read_texts(v.target) if v.target is not None else None)
    if any(isinstance(s, Score) and "pool_sample" in get_spec(s.scorer).needs for s in v.pipeline.stages):
        if v.pool_sample < 2:
            raise ConfigError(f"pool_sample must be >= 2, got {v.pool_sample}")
        refs.pool_sample = sample_texts(v.pool, v.pool_sample, v.seed)["text"].combine_chunks()
    return {"refs": refs}


def _dedup(v: Values) -> dict:
    first = v.pipeline.stages[0]
    if not isinstance(first, Dedup):
        return {"dedup": None, "dedup_stats": None}
    # the run folder (shared by a Ray cluster's nodes, and locked by this run) holds MinHash's spill; any found there
    # already are from crashed runs
    remove_stale_spills(v.out)
    if first.against:
        from thresher.dedup.reference import find_contaminated

        found = find_contaminated(v.pool, first.references(v.pool), first.configs()["reference"], v.engine,
                                  ErrorLog("skip"))
        return {"dedup": found, "dedup_stats": {"reference": found.stats()}}
    decisions, results, _ = find_duplicates(v.pool, ErrorLog("skip"), **first.configs(), spill_dir=v.out,
                                            engine=v.engine)
    return {"dedup": decisions,
            "dedup_stats": {kind: r.stats for kind, r in results.items()}}


def _fit_scorers(v: Values) -> dict:
    fitted, reports = v.pipeline._fit(v.refs, v.out)
    return {"fitted": fitted, "fit_reports": reports}


def _score(v: Values) -> dict:
    return {"stats": v.pipeline._score_pool(v.pool, v.fitted, v.out / "scores" / "scores.parquet", v.group_field,
                                            v.engine, v.progress, v.dedup)}


SAMPLE = PlanStage("sample", GLOBAL, "the target's texts and a seeded random sample of the pool, for scorers that "
                   "learn", _sample, ("pipeline", "pool", "target", "pool_sample", "seed"), ("refs",))
DEDUP = PlanStage("dedup", GLOBAL, "optional first stage: exact / MinHash duplicate clusters over the whole pool",
                  _dedup, ("pipeline", "pool", "engine", "out"), ("dedup", "dedup_stats"))
FIT_SCORERS = PlanStage("fit", GLOBAL, "every scorer that learns, fitted in stage order on the references",
                        _fit_scorers, ("pipeline", "refs", "out"), ("fitted", "fit_reports"))
SCORE = PlanStage("score", MAP, "score and filter stages over every record batch; side-car scores.parquet", _score,
                  ("pipeline", "pool", "fitted", "out", "group_field", "engine", "progress", "dedup"), ("stats",))
SCORE_PLAN = Plan("score", ("pipeline", "pool", "target", "out", "seed", "pool_sample", "group_field", "engine",
                            "progress"), (SAMPLE, DEDUP, FIT_SCORERS, SCORE))


def run_scoring(pool: Dataset, scorers: list[str] | list[Score], out: str | os.PathLike,
                target: Dataset | None = None, workers: int | None = None, progress: bool = True,
                command: list[str] | None = None, seed: int = 0, pool_sample: int = 10_000,
                group_field: str | None = "domain", report: bool = True) -> Run:
    """The score job (``thresher score``): a pipeline of score stages only, over every record of ``pool``.

    ``scorers`` are names or :class:`Score` stages with parameters. Nothing is selected; ``scores/scores.parquet``
    keeps every signal by id, so thresholds and selections change later without recomputing.
    """
    if not scorers:
        raise ConfigError(f"no scorer given; choose from {', '.join(SCORERS)}")
    stages = [s if isinstance(s, Score) else Score(s) for s in scorers]
    return Pipeline(stages).run(pool, out, target, seed=seed, pool_sample=pool_sample, group_field=group_field,
                                workers=workers, progress=progress, command=command, report=report)
