"""The targeted selection job: featurize pool and target, score every pool record, select under a budget, measure
the selection against a random one of the same size, and write the run directory.

Scoring and selection are separate stages: :func:`reselect` re-runs only selection (another budget, seed or
selector) from a run directory's side-car scores, without reading features again except for the metrics.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from thresher._version import __version__
from thresher.embeddings.store import store_blocks
from thresher.engine import make_engine
from thresher.engine.plan import GLOBAL, MAP, Plan, Stage, Values, stage_seconds
from thresher.errors import ConfigError
from thresher.evaluate.distribution import composition, kl_divergence, kl_reduction
from thresher.features.hashed_ngrams import HashedNgramConfig
from thresher.features.store import FeatureStore
from thresher.io.atomic import ParquetStream, write_json
from thresher.io.columns import as_float
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.pieces import Batcher
from thresher.io.provenance import dataset_info, reopen_dataset, versions
from thresher.io.writers import FORMATS, write_selection
from thresher.jobs.featurize import (
    featurize_in_memory,
    featurize_pool,
    masked_counts,
    piece_rows,
    rows_matrix,
    score_shard,
    store_for,
)
from thresher.jobs.rundir import claims_run_dir
from thresher.jobs.select_parts import (
    GROUP_SELECTORS,
    PART_ROWS,
    Chosen,
    Rule,
    checked_rule,
    choose,
    count_parts,
    draw_baseline,
    resolve,
    resolve_budget,
    runs_over_parts,
    score_parts,
)
from thresher.report.html import report_after_job
from thresher.run import Run
from thresher.scorers.importance import ImportanceConfig, ImportanceScorer
from thresher.scorers.registry import primary_column
from thresher.selectors import Budget, make_selector
from thresher.selectors.anchored import ANCHORED, make_anchored, target_rows
from thresher.selectors.diversity import (
    DIVERSITY_SELECTORS,
    make_diversity_selector,
    normalize_rows,
    reads_blocks,
    run_diversity_selector,
)
from thresher.selectors.eligibility import eligibility, resolve_min_tokens
from thresher.selectors.match import MATCH_FEATURES, KLMatch
from thresher.selectors.setwise import TARGETED
from thresher.selectors.where import WhereExpression

#: dsir: score toward a target here. random: no scores. scores: rank by a column of an existing run's scores
#: (``--from-run`` a ``thresher score`` or ``thresher run`` directory, with ``--score``).
METHODS = ("dsir", "random", "scores")
DEFAULT_SELECTOR = {"dsir": "gumbel", "random": "random", "scores": "topk"}


@dataclass
class SelectConfig:
    """Everything that decides a selection besides the input data. Saved whole in the manifest."""

    method: str = "dsir"
    selector: str | None = None
    budget: str | None = "5%"
    seed: int = 0
    temperature: float | None = None
    threshold: float | None = None
    min_tokens: int | str = "auto"
    score: str | None = None
    where: str | None = None
    token_column: str = "n_words"
    embeddings: str | None = None  # an embed run (thresher embed) for kcenter, facility, clusters
    labels: str | None = None  # a score column with a group label per record, for quotas and quadmix
    selector_params: dict = field(default_factory=dict)  # e.g. {"k_neighbors": 32, "allocation": "equal"}
    group_field: str | None = "domain"
    output_format: str = "parquet"
    workers: int | None = None
    features: HashedNgramConfig = field(default_factory=HashedNgramConfig)
    importance: ImportanceConfig = field(default_factory=ImportanceConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        self.selector = self.selector or DEFAULT_SELECTOR[self.method]
        if self.method == "random" and self.selector not in ("random", "mixture"):
            raise ConfigError(f"method 'random' has no scores, so selector {self.selector!r} cannot rank them; "
                              "use --selector random or --method dsir")
        if self.selector == "match":
            KLMatch.from_params(self.selector_params)
        elif self.selector in ANCHORED:
            make_anchored(self.selector, self.selector_params)
            if not self.embeddings:
                raise ConfigError(f"selector {self.selector!r} works on embeddings: give --embeddings (a thresher "
                                  "embed run of the pool)")
        elif self.selector in DIVERSITY_SELECTORS:
            make_diversity_selector(self.selector, seed=self.seed, **self.selector_params)
        else:
            if self.selector_params:
                raise ConfigError(f"selector {self.selector!r} takes no --selector-param; it has --temperature "
                                  "and --threshold")
            make_selector(self.selector, temperature=self.temperature, threshold=self.threshold)
        if not (self.selector == "threshold" and self.budget is None):
            Budget.parse(self.budget)
        if self.output_format not in FORMATS:
            raise ConfigError(f"unknown format {self.output_format!r}; choose from {', '.join(FORMATS)}")
        if self.min_tokens != "auto" and not (isinstance(self.min_tokens, int) and self.min_tokens >= 0):
            raise ConfigError(f"min_tokens must be 'auto' or an integer >= 0, got {self.min_tokens!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.where is not None:
            WhereExpression(self.where)  # parses it: a syntax error surfaces before any work

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SelectConfig:
        d = dict(d)
        d["features"] = HashedNgramConfig(**d.get("features", {}))
        d["importance"] = ImportanceConfig(**d.get("importance", {}))
        return cls(**d)


@dataclass
class Selection:
    """What the select stage decided: chosen and baseline rows (positions in the scores table, best first), what
    the measure and write stages need of them, and how many records were eligible and why the others were not."""

    chosen: np.ndarray
    baseline: np.ndarray
    found: Chosen
    n: int
    n_eligible: int
    filtered: dict[str, int]
    min_tokens: int
    budget: Budget | None
    score_column: str | None


def _featurize_target(v: Values) -> dict:
    if v.target is None:
        return {"target_counts": None, "target_tokens": None, "target_info": None}
    counts, tokens, errors = featurize_in_memory(v.target, v.config.features)
    fit_dir = v.out / "fit"
    fit_dir.mkdir(exist_ok=True)
    np.save(fit_dir / "target_counts.npy", counts)  # re-selections measure KL and lengths with these
    np.save(fit_dir / "target_tokens.npy", tokens)
    return {"target_counts": counts, "target_tokens": tokens,
            "target_info": {"records": int(len(tokens)), "failed": errors}}


def _featurize_pool(v: Values) -> dict:
    index = featurize_pool(v.pool, v.store, v.engine, v.config.group_field, v.progress)
    (v.out / "fit").mkdir(exist_ok=True)
    np.save(v.out / "fit" / "pool_counts.npy", index.counts)
    return {"index": index, "shard_sizes": index.shard_sizes}


def _fit(v: Values) -> dict:
    if v.config.method != "dsir":
        return {"scorer": None}
    target_ngrams = sum(np.maximum(v.target_tokens - j, 0) for j in range(v.config.features.ngrams))
    return {"scorer": ImportanceScorer(v.config.importance).fit(v.target_counts, v.index.counts, target_ngrams)}


#: Rows per row group of the side-car scores: the select stage's tasks read them in parts of whole row groups.
SCORE_ROW_GROUP = PART_ROWS // 4


def _score(v: Values) -> dict:
    """Each task scores one feature shard and returns its side-car rows; they stream to disk in reading order, so
    the main process holds a shard's rows at a time, never the table."""
    shards = range(len(v.index.shard_sizes))
    (v.out / "scores").mkdir(exist_ok=True)
    path = v.out / "scores" / "scores.parquet"
    rows = Batcher(SCORE_ROW_GROUP)  # row groups of a fixed size, whatever the shards' sizes
    with ParquetStream(path) as stream:
        for table in v.engine.map(score_shard, ((v.scorer, v.store, v.index, i) for i in shards)):
            for batch in rows.add(table):
                stream.write(batch)
        for batch in rows.flush():
            stream.write(batch)
    return {"scores_path": path}


FEATURIZE_TARGET = Stage("featurize_target", MAP, "hashed n-gram counts of the target (in the driver: targets are "
                         "small)", _featurize_target, ("target", "config", "out"),
                         ("target_counts", "target_tokens", "target_info"))
FEATURIZE_POOL = Stage("featurize_pool", MAP, "hashed n-gram features of every pool shard, cached per shard with "
                       "completion markers", _featurize_pool, ("pool", "store", "engine", "config", "progress", "out"),
                       ("index", "shard_sizes"))
FIT = Stage("fit", GLOBAL, "DSIR importance weights from the target's and the pool's summed n-gram counts", _fit,
            ("config", "target_counts", "target_tokens", "index"), ("scorer",))
SCORE = Stage("score", MAP, "log importance weight of every record, per feature shard; side-car scores.parquet",
              _score, ("scorer", "store", "index", "engine", "out"), ("scores_path",))


@claims_run_dir("out")
def run_selection(pool: Dataset, target: Dataset | None, out: str | os.PathLike, config: SelectConfig | None = None,
                  cache_dir: str | os.PathLike | None = None, progress: bool = True,
                  command: list[str] | None = None, report: bool = True) -> Run:
    """Score ``pool`` toward ``target`` and select under the budget; write and return the run directory
    (with ``report.html`` unless ``report=False``)."""
    config = config or SelectConfig()
    if config.method == "scores":
        raise ConfigError("method 'scores' ranks the scores of an existing run: use --from-run DIR --score COLUMN")
    if config.method == "dsir" and target is None:
        raise ConfigError("method 'dsir' needs a target: give --target PATH (a sample of the text you want)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = _feature_space(config)
    store = store_for(pool, config.features, Path(cache_dir) if cache_dir else out / "cache", config.group_field)
    with make_engine(config.workers) as engine:
        v = SELECT_PLAN.run(pool=pool, target=target, out=out, config=config, store=store, engine=engine,
                            progress=progress)
        manifest = {
            "thresher_version": __version__,
            "created_unix": int(time.time()),
            "command": command,
            "inputs": {"pool": dataset_info(pool), "target": dataset_info(target) if target is not None else None},
            "feature_store": str(store.root.resolve()),
            "engine": engine.describe(),
            "versions": versions(),
            "counts": {"pool_failed": v.index.errors, "target": v.target_info},
        }
        return _finish(v, manifest, report)


@claims_run_dir("out", "run_dir")
def reselect(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, progress: bool = True,
             command: list[str] | None = None, report: bool = True, **overrides: object) -> Run:
    """Select again from a run's scores with other budget/seed/selector/...; no re-featurizing or re-scoring."""
    src = Run(run_dir)
    allowed = {"selector", "budget", "seed", "temperature", "threshold", "min_tokens", "output_format", "score",
               "where", "workers", "token_column", "embeddings", "labels", "selector_params"}
    bad = set(overrides) - allowed
    if bad:
        raise ConfigError(f"cannot change {', '.join(sorted(bad))} when re-selecting; they change the scores. "
                          "Run a new selection instead")
    job = src.manifest.get("job", "select")
    if job not in ("select", "score", "run", "label", "audit"):
        raise ConfigError(f"{src.path} is a {job} run; --from-run takes a select, score, label, audit or run "
                          "directory")
    # A score-only run (thresher score, label, audit) has no selection config yet: rank its columns, top-k by
    # default.
    base = src.manifest.get("config") if job not in ("score", "label", "audit") else None
    base = base or {"method": "scores", "min_tokens": 0}
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "selector" in changes and changes["selector"] != base.get("selector"):
        # Parameters of the old selector do not carry over to another selector; a threshold without a budget
        # keeps every record at or above it (as a new selection with --selector threshold does).
        base = {**base, "temperature": None, "threshold": None}
        if changes["selector"] == "threshold":
            base["budget"] = None
    config = SelectConfig.from_dict({**base, **changes})
    out = Path(out) if out is not None else src.path
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() != src.path.resolve():
        for sub in ("scores", "fit"):
            if (src.path / sub).is_dir():
                shutil.copytree(src.path / sub, out / sub, dirs_exist_ok=True)
    manifest = {k: v for k, v in src.manifest.items() if k not in ("selection", "outputs")}
    manifest.update(command=command, created_unix=int(time.time()), reselected_from=str(src.path.resolve()),
                    timings={}, stages=[])
    inputs = src.manifest["inputs"]["pool"]
    pool = reopen_dataset(inputs)
    if config.output_format != "ids":
        # The selected records are read again from the pool: it must be the data that was scored.
        changed = [now["path"] for now, then in zip(pool.describe(), inputs["files"])
                   if now["fingerprint"] != then["fingerprint"]]
        if changed:
            raise ConfigError(f"the pool changed since {src.path} was scored ({', '.join(changed)}); "
                              "run a new selection, or re-select with --format ids")
    store = FeatureStore(Path(src.manifest["feature_store"]), config.features) \
        if src.manifest.get("feature_store") else None
    if store is not None and not store.is_complete():
        store = None  # the cache was deleted: selection works, the KL metrics are skipped
    target_path = src.path / "fit" / "target_counts.npy"
    target_counts = np.load(target_path) if target_path.exists() else None
    with make_engine(config.workers) as engine:
        v = RESELECT_PLAN.run(pool=pool, scores_path=out / "scores" / "scores.parquet", store=store,
                              target_counts=target_counts, target=None,
                              shard_sizes=np.asarray(store.meta()["shard_sizes"]) if store else None,
                              config=config, out=out, engine=engine)
        return _finish(v, manifest, report)


def _feature_space(config: SelectConfig) -> SelectConfig:
    """A new matching selection works in its own n-gram space (:data:`MATCH_FEATURES`), unless features were set:
    the default space is the one ``thresher evaluate`` measures KL in. (Re-selecting keeps the run's features.)"""
    if config.selector == "match" and config.features == HashedNgramConfig():
        config = SelectConfig.from_dict({**config.to_dict(), "features": asdict(MATCH_FEATURES)})
    return config


def _with_filter_hint(filtered: dict[str, int], min_tokens: int, fn, *args):
    """``fn(*args)``; a budget larger than the eligible records also says how many filters removed, and how to
    let more through."""
    try:
        return fn(*args)
    except ConfigError as e:
        if "eligible" not in str(e) or not any(filtered.values()):
            raise
        removed = ", ".join(f"{k} {v:,}" for k, v in filtered.items() if v)
        fixes = [f"--min-tokens below {min_tokens} (0 keeps every length)" if filtered.get("too_short") else None,
                 "a looser --where" if filtered.get("where") else None]
        hint = f"; or let more records through: {' or '.join(f for f in fixes if f)}" if any(fixes) else ""
        raise ConfigError(f"{e}; filtered out: {removed}{hint}") from None


def select_from_pipeline(out: Path, pool: Dataset, target: Dataset | None, stage, seed: int,
                         group_field: str | None, workers: int | None, progress: bool = True,
                         report: bool = True) -> Run:
    """The select stage of a pipeline run: rank the run's scores, then measure as a targeted selection does."""
    config = SelectConfig(method="scores", selector=stage.selector, score=stage.score, budget=stage.budget,
                          seed=seed, temperature=stage.temperature, threshold=stage.threshold,
                          min_tokens=stage.min_tokens, group_field=group_field, output_format=stage.output_format,
                          token_column=stage.token_column, embeddings=stage.embeddings, labels=stage.labels,
                          selector_params=stage.params, workers=workers)
    config = _feature_space(config)
    run = Run(out)
    manifest = dict(run.manifest)
    with make_engine(workers) as engine:
        if target is None:
            v = RESELECT_PLAN.run(pool=pool, scores_path=out / "scores" / "scores.parquet", store=None,
                                  shard_sizes=None, target_counts=None, target=None, config=config, out=out,
                                  engine=engine)
        else:  # the evidence: KL toward the target of the selection vs a random sample, on hashed n-grams
            store = store_for(pool, config.features, out / "cache", group_field)
            manifest["feature_store"] = str(store.root.resolve())
            v = PIPELINE_SELECT_PLAN.run(pool=pool, target=target, scores_path=out / "scores" / "scores.parquet",
                                         store=store, config=config, out=out, engine=engine, progress=progress)
        return _finish(v, manifest, report)


def _select(v: Values) -> dict:
    config, out, path = v.config, v.out, str(v.scores_path)
    schema = pq.read_schema(path)
    min_tokens = resolve_min_tokens(config.min_tokens, out / "fit" / "target_tokens.npy")
    diverse = config.selector in DIVERSITY_SELECTORS or config.selector in TARGETED
    column = None
    needs_scores = bool(config.score) if diverse else \
        make_selector(config.selector, temperature=config.temperature, threshold=config.threshold).needs_scores
    if config.selector == "match" and not config.score and "dsir" in schema.names:
        needs_scores = True  # matching weighs DSIR's importance as its quality score unless --score names another
    if needs_scores:
        column = primary_column(config.score or "dsir", schema.names)
        kind = schema.field(column).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
            raise ConfigError(f"--score {column!r} holds {kind} values, not numbers; rank by a numeric column "
                              "(filter on text columns with --where)")
    over_parts = runs_over_parts(config.selector, config.budget)
    by_group = over_parts and config.selector in GROUP_SELECTORS
    labels = config.labels or _DEFAULT_LABELS.get(config.selector)
    if by_group and not labels:
        raise ConfigError("selector 'quotas' needs a group label per record: name its column with --labels")
    rule = checked_rule(schema, Rule(config.selector, config.temperature, config.threshold, column,
                                     config.token_column, config.where, min_tokens, config.budget, config.seed,
                                     has_group=False, labels=labels if by_group else None,
                                     params=dict(config.selector_params) if by_group else {}))
    parts = score_parts(path)
    counts = count_parts(parts, rule, v.engine)
    budget = resolve_budget(config.budget, counts.n)

    def hint(fn, *args):
        return _with_filter_hint(counts.filtered, min_tokens, fn, *args)

    if over_parts:
        # each part's candidates, merged exactly: noise is keyed by pool position, so a record's draw depends
        # neither on what the filters removed nor on how the table was cut (thresher.selectors.sharded)
        chosen = hint(choose, parts, rule, v.engine, counts, budget)
    elif config.selector == "match":
        chosen = hint(_match, pq.read_table(path), config, rule, budget, v)
    elif config.selector in ANCHORED:
        chosen = hint(_anchored, pq.read_table(path), config, rule, budget, v)
    else:
        chosen = _diverse(pq.read_table(path), config, rule, budget, v.engine)
    baseline = draw_baseline(parts, rule, v.engine, counts, budget, len(chosen))
    found = resolve(parts, rule, v.engine, chosen, baseline)
    return {"selection": Selection(chosen, baseline, found, counts.n, counts.eligible.n, counts.filtered, min_tokens,
                                   budget, column)}


def _eligible_rows(scores: pa.Table, config: SelectConfig, rule: Rule, budget: Budget | None) -> np.ndarray:
    """Positions a set-level selector toward a target may choose (filters, --where, the length floor)."""
    if budget is None:
        raise ConfigError(f"selector {config.selector!r} needs a budget (--budget)")
    eligible, _ = eligibility(scores, config.where, rule.min_tokens, config.budget, config.token_column)
    rows = np.flatnonzero(eligible)
    if not len(rows):
        raise ConfigError("no eligible records to select from")
    return rows


def _anchored(scores: pa.Table, config: SelectConfig, rule: Rule, budget: Budget | None, v: Values) -> np.ndarray:
    """Positions chosen by target coverage or mean matching on the --embeddings run's vectors; the target is
    embedded here with that run's back-end (the same model, so the two are comparable)."""
    from thresher.embeddings import make_backend

    if v.target is None:
        raise ConfigError(f"selector {config.selector!r} covers a target: select with --target (a re-selection "
                          "has no target texts; run a new selection)")
    rows = _eligible_rows(scores, config, rule, budget)
    embed = Run(config.embeddings)
    pool = normalize_rows(embed.embedding_store().matrix()[_embedding_positions(config.embeddings, scores["id"],
                                                                                   rows)])
    info = embed.manifest["embedding"]
    texts = v.target.read_all(ErrorLog(v.target.on_error))["text"].to_pylist()
    texts = [texts[i] for i in target_rows(len(texts), len(rows))]  # sampled before embedding, as cover would
    target = np.asarray(make_backend(info["backend"], **info.get("params", {})).encode(texts), dtype=np.float32)
    quality = _quality(scores, config, rule, rows)
    order = make_anchored(config.selector, config.selector_params).select(
        pool, target, budget, n_tokens=as_float(scores[config.token_column])[rows], quality=quality)
    return rows[order]


def _quality(scores: pa.Table, config: SelectConfig, rule: Rule, rows: np.ndarray) -> np.ndarray | None:
    """The quality a targeted selector weighs (the --score column, or DSIR's for match), at the eligible rows; a
    quality_weight given with no column to weigh is an error, not ignored."""
    if rule.score:
        return as_float(scores[rule.score])[rows]
    if float(config.selector_params.get("quality_weight", 0)) > 0:
        raise ConfigError(f"selector {config.selector!r}: quality_weight needs a quality score: name a score "
                          "column with --score")
    return None


def _match(scores: pa.Table, config: SelectConfig, rule: Rule, budget: Budget | None, v: Values) -> np.ndarray:
    """Positions chosen by distribution matching (:class:`~thresher.selectors.match.KLMatch`): the eligible records'
    n-gram counts, read from the feature store, matched to the target's; the score column, if any, as quality."""
    if v.target_counts is None or v.store is None:
        raise ConfigError("selector 'match' matches a target's n-gram distribution: select with --target (or "
                          "re-select from a run that had one, whose feature cache still exists)")
    rows = _eligible_rows(scores, config, rule, budget)
    counts = rows_matrix(v.store, v.shard_sizes, rows, v.engine)
    quality = _quality(scores, config, rule, rows)
    order = KLMatch.from_params(config.selector_params).select(
        counts, v.target_counts, budget, n_tokens=as_float(scores[config.token_column])[rows], quality=quality)
    return rows[order]


#: The group column a selector reads when --labels is not given: a mixture's groups are the pool's --group-field.
_DEFAULT_LABELS = {"mixture": "group"}


def _diverse(scores: pa.Table, config: SelectConfig, rule: Rule, budget: Budget | None, engine) -> np.ndarray:
    """Positions chosen by a set-level selector (k-center, facility location, clusters, quadmix), which look at
    every eligible record at once: the whole score table is read here. A
    selector that reads row blocks (clusters: k-means passes on the engine) gets the embed run's shards, in the
    store's row order, never the matrix."""
    eligible, _ = eligibility(scores, config.where, rule.min_tokens, config.budget, config.token_column)
    elig_idx = np.flatnonzero(eligible)
    selector = make_diversity_selector(config.selector, seed=config.seed, **config.selector_params)
    label_column = config.labels or _DEFAULT_LABELS.get(config.selector)
    embeddings = None
    if config.embeddings:
        positions = _embedding_positions(config.embeddings, scores["id"], elig_idx)
        if reads_blocks(config.selector):
            in_store_order = np.argsort(positions, kind="stable")
            elig_idx, positions = elig_idx[in_store_order], positions[in_store_order]
            embeddings = store_blocks(Run(config.embeddings).embedding_store(), positions)
        else:
            embeddings = normalize_rows(Run(config.embeddings).embedding_store().matrix()[positions])
    order = run_diversity_selector(
        selector, budget, scores=as_float(scores[rule.score])[elig_idx] if rule.score else None,
        n_tokens=as_float(scores[config.token_column])[elig_idx], embeddings=embeddings,
        labels=_labels_for(scores, label_column, elig_idx) if label_column else None, engine=engine)
    return elig_idx[order]


def _measure(v: Values) -> dict:
    sel, found = v.selection, v.selection.found
    metrics: dict = {"selected_records": int(len(sel.chosen)), "selected_words": found.words,
                     "selected_tokens": int(found.tokens), "token_column": v.config.token_column,
                     "random_records": int(len(sel.baseline))}
    if v.target_counts is not None and v.store is not None and len(sel.chosen):
        sel_counts, rand_counts = masked_counts(v.store, v.shard_sizes, [np.sort(sel.chosen), np.sort(sel.baseline)],
                                                v.engine)
        metrics.update(kl_reduction(v.target_counts, sel_counts, rand_counts))
        metrics["kl_target_pool"] = kl_divergence(v.target_counts, np.load(v.out / "fit" / "pool_counts.npy"))
        if v.config.selector == "match":
            features = v.store.config
            metrics["kl_note"] = (f"measured in the feature space the selection optimised ({features.num_buckets:,} "
                                  f"buckets, hash seed {features.seed}): not comparable with other runs' KL; "
                                  "thresher evaluate measures every method in one other space")
    if found.groups is not None:
        metrics["composition"] = composition(*found.groups, sel.n, len(sel.chosen), len(sel.baseline))
    return {"metrics": metrics}


def _write(v: Values) -> dict:
    sel = v.selection
    return {"written": write_selection(v.pool, sel.found.ids, v.out, v.config.output_format, sel.chosen, v.engine,
                                       piece_rows(v.store, v.shard_sizes))}


SELECT = Stage("select", GLOBAL, "filters and the selector's candidates per part of the side-car scores (tasks), "
               "merged exactly under the budget; a random baseline of the same size; ids of both", _select,
               ("scores_path", "config", "engine", "out", "store", "shard_sizes", "target_counts", "target"),
               ("selection",))
MEASURE = Stage("measure", MAP, "KL toward the target of selection vs baseline (masked n-gram counts per feature "
                "shard) and composition by group", _measure,
                ("selection", "store", "shard_sizes", "target_counts", "engine", "config", "out"),
                ("metrics",))
WRITE = Stage("write", MAP, "the selected records: each task reads a run of the pool's pieces and writes its part "
              "of selected/", _write, ("pool", "selection", "config", "out", "engine", "store", "shard_sizes"),
              ("written",))

SELECT_PLAN = Plan("select", ("pool", "target", "out", "config", "store", "engine", "progress"),
                   (FEATURIZE_TARGET, FEATURIZE_POOL, FIT, SCORE, SELECT, MEASURE, WRITE))
RESELECT_PLAN = Plan("reselect", ("pool", "scores_path", "store", "shard_sizes", "target_counts", "target", "config",
                                  "out", "engine"), (SELECT, MEASURE, WRITE))
PIPELINE_SELECT_PLAN = Plan("pipeline select", ("pool", "target", "scores_path", "store", "config", "out", "engine",
                                                "progress"),
                            (FEATURIZE_TARGET, FEATURIZE_POOL, SELECT, MEASURE, WRITE))


def _finish(v: Values, manifest: dict, report: bool) -> Run:
    """Counts, selection and outputs into the manifest (scoring-time metrics and stages kept), then the report."""
    config, sel, n = v.config, v.selection, v.selection.n
    # Scoring-time metrics (rule pass rates, fitted scorers' held-out reports) stay; selection metrics are new.
    metrics = {k: val for k, val in manifest.get("metrics", {}).items() if k in ("rules", "fit", "dedup")}
    failed = manifest["counts"]["pool_failed"]["total"]
    counts = {
        **{k: val for k, val in manifest["counts"].items() if k != "kept"},  # "kept" was the scoring pass's count
        "input_records": int(n + failed),
        "scored": int(n),
        "selected": int(len(sel.chosen)),
        "not_selected": int(sel.n_eligible - len(sel.chosen)),
        "filtered": sel.filtered,
        "failed": int(failed),
    }
    accounted = counts["selected"] + counts["not_selected"] + sum(counts["filtered"].values()) + counts["failed"]
    counts["all_accounted_for"] = accounted == counts["input_records"]
    manifest.update(
        config=config.to_dict(), seed=config.seed, counts=counts, metrics=metrics | v.metrics,
        selection={"selector": config.selector, "score": sel.score_column, "where": config.where,
                   "budget": config.budget, "records_budget": str(sel.budget) if sel.budget else None,
                   "min_tokens": sel.min_tokens, "order": "selected/ids.txt lists ids best (or first drawn) first"},
        outputs={"scores": "scores/scores.parquet", "ids": "selected/ids.txt",
                 "records": [f"selected/{f}" for f in v.written["files"]], "records_written": v.written["rows"]},
    )
    if manifest.get("job") == "score":
        manifest["job"] = "select"  # a selection made from a score-only run is now a selection run
    ran = {s["name"] for s in v.stages}  # a pipeline run whose scores were reused ran its select stages again
    manifest["stages"] = [*(s for s in manifest.get("stages", []) if s["name"] not in ran), *v.stages]
    manifest["timings"] = {**manifest.get("timings", {}), **stage_seconds(v.stages)}
    write_json(manifest, v.out / "manifest.json")
    report_after_job(v.out, report)  # after the manifest, which it reads; a failure only warns
    return Run(v.out)


def _embedding_positions(run_dir: str, ids: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """The embed run's row of each of ``rows`` (positions in the scores table), looked up by id."""
    wanted = ids.take(pa.array(rows)).combine_chunks()
    found = pc.index_in(wanted, value_set=Run(run_dir).embedding_ids().cast(wanted.type))
    if found.null_count:
        missing = wanted.filter(found.is_null())
        raise ConfigError(f"{len(missing):,} records have no embedding in {run_dir} (e.g. {missing[0].as_py()!r}); "
                          "embed the same pool with thresher embed")
    return found.to_numpy().astype(np.int64)


def _labels_for(scores: pa.Table, column: str, rows: np.ndarray) -> np.ndarray:
    """A group label per selected-from record, from a score column (e.g. group, lang, a cluster id)."""
    if column not in scores.column_names:
        raise ConfigError(f"no label column {column!r} in the scores; available: {', '.join(scores.column_names)}")
    values = scores[column].take(pa.array(rows)).to_pylist()
    return np.array(["(none)" if v is None else str(v) for v in values], dtype=object)


__all__ = ["SELECT_PLAN", "SelectConfig", "run_selection", "reselect"]
