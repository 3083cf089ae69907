"""``thresher evaluate``: do these selection methods beat random at the same budget, by how much, how surely?

For every method x budget x seed the harness draws a selection from the scored pool, measures it against a
held-out sample of the target (distribution metrics and small proxy models trained on the selection), and compares
each method with the random baseline at the same budget through a two-level bootstrap over held-out items and
seeds (:mod:`thresher.evaluate.resampling`). The run directory holds:

- ``results.csv``: one row per target x method x budget x metric: estimate and interval, improvement over random
  with its interval, ``p_better`` and a verdict (``better``, ``worse``, ``inconclusive``; ``baseline`` for random);
- ``per_seed.csv``: the metric of every single selection; ``selections.parquet``: the ids each one chose;
- ``evaluation.json``: composition and lengths per method and budget; ``manifest.json``; ``report.html``;
- ``scoring/`` (the scores the methods rank by) and ``embed/`` (pool embeddings, when a metric needs them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.engine.plan import GLOBAL, MAP, Plan, Stage, Values, stage_seconds
from thresher.errors import ConfigError
from thresher.evaluate import metrics as M
from thresher.evaluate.methods import Method, budget_records, candidate_rows, draw, parse_methods
from thresher.evaluate.proxies import CommandProxy, ProxyFn, check_values, higher_is_better
from thresher.evaluate.resampling import MetricDraws, Resampler, compare
from thresher.features.lengths import whitespace_token_counts
from thresher.io.atomic import write_csv, write_json, write_parquet
from thresher.io.columns import as_float
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.io.provenance import dataset_info, reopen_dataset, versions
from thresher.jobs.rundir import claims_run_dir
from thresher.progress import Progress
from thresher.run import Run
from thresher.selectors import Budget
from thresher.selectors.anchored import ANCHORED, target_rows

RESULT_COLUMNS = ["target", "method", "budget", "budget_records", "metric", "higher_is_better", "estimate", "lo",
                  "hi", "baseline", "baseline_estimate", "delta", "delta_lo", "delta_hi", "p_better", "verdict",
                  "n_seeds", "level", "interval"]
DEFAULT_METHODS = "dsir,random,stratified"
DEFAULT_BUDGETS = ("1%", "5%", "20%")


@dataclass
class EvaluateConfig:
    """What to compare and how. ``metrics`` None means every metric the inputs allow."""

    methods: list[str] = field(default_factory=lambda: DEFAULT_METHODS.split(","))
    budgets: list[str] = field(default_factory=lambda: list(DEFAULT_BUDGETS))
    seeds: int = 5
    seed: int = 0  # base seed: scorer fitting, bootstrap; selection seeds are seed .. seed + seeds - 1
    metrics: list[str] | None = None
    label_column: str | None = None  # evaluation-only labels: precision, and the classification proxy
    positive: str | None = None  # the on-target label; default: the held-out sample's most common label
    group_field: str | None = "domain"
    min_tokens: int | str = "auto"  # length floor for scoring methods, as in `thresher select`
    level: float = 0.95
    margin: float = 0.0
    n_boot: int = 1000
    embedding_backend: str = "static"
    cache_dir: str | None = None  # where pool embeddings are cached (default: inside the output directory)
    lm_order: int = 3
    pool_sample: int = 10_000
    scorer_params: dict = field(default_factory=dict)
    target_name: str | None = None
    proxy_command: str | None = None
    proxy_timeout: float | None = None
    baseline: str = "random"  # the method every other is compared with (random, or e.g. mixture:proportional)
    heldout_weights: dict[str, float] | None = None  # a blended target: weight per held-out group -> target_loss

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            self.methods = self.methods.split(",")
        if isinstance(self.budgets, str):
            self.budgets = [b.strip() for b in self.budgets.split(",") if b.strip()]
        if isinstance(self.metrics, str):
            self.metrics = [m.strip() for m in self.metrics.split(",") if m.strip()]
        if isinstance(self.heldout_weights, str):
            self.heldout_weights = _group_weights(self.heldout_weights)
        if self.heldout_weights is not None:
            bad = {k: v for k, v in self.heldout_weights.items() if not (isinstance(v, (int, float)) and v >= 0)}
            if bad or not sum(self.heldout_weights.values()) > 0:
                raise ConfigError(f"heldout weights must be numbers >= 0 with a positive sum, got "
                                  f"{self.heldout_weights}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"seeds must be a positive integer, got {self.seeds!r}")
        if not self.budgets:
            raise ConfigError("give at least one budget")
        for b in self.budgets:
            Budget.parse(b)
        parsed = parse_methods(self.methods)
        labels = [m.label for m in parsed]
        mixtures = [m.label for m in parsed if m.selector == "mixture"]
        by_records = [b for b in self.budgets if Budget.parse(b).kind != "tokens"]
        if mixtures and by_records:
            raise ConfigError(f"method {mixtures[0]!r}: mixtures are compared at a token budget (e.g. '3M tokens'), "
                              f"not {by_records[0]}")
        if self.baseline not in labels:
            raise ConfigError(f"baseline {self.baseline!r} is not one of the methods ({', '.join(labels)})")
        if self.metrics:  # a metric's output name (kl_to_heldout) selects its family (kl), as the README says
            family_of = {name: family for family, names in M.FAMILIES.items() for name in names}
            self.metrics = list(dict.fromkeys(family_of.get(m, m) for m in self.metrics))
        unknown = sorted(set(self.metrics or ()) - set(M.FAMILIES))
        if unknown:
            raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(M.FAMILIES)} "
                              f"(or the names they are reported as: {', '.join(M.METRICS)})")
        if not 0 < self.level < 1:
            raise ConfigError(f"level must be in (0, 1), got {self.level}")
        if self.margin < 0:
            raise ConfigError(f"margin must be >= 0, got {self.margin}")
        if self.min_tokens != "auto" and (not isinstance(self.min_tokens, int) or self.min_tokens < 0):
            raise ConfigError(f"min_tokens must be 'auto' or an integer >= 0, got {self.min_tokens!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evaluation:
    """The finished comparison: the tidy rows (also in ``results.csv``) and where they were written."""

    path: Path
    rows: list[dict]

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows)

    def verdicts(self, metric: str | None = None) -> dict[tuple[str, str, str], str]:
        """(method, budget, metric) -> verdict, for every non-baseline row (of one metric if given)."""
        return {(r["method"], r["budget"], r["metric"]): r["verdict"] for r in self.rows
                if r["verdict"] != "baseline" and (metric is None or r["metric"] == metric)}

    margin: float = 0.0

    def summary(self) -> str:
        from thresher.evaluate.table import format_results

        return format_results(self.rows, self.margin)


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def lap(self, name: str, t0: float) -> None:
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t0, 4)


def _read_all(ds: Dataset, extra: list[str], errors: ErrorLog) -> pa.Table:
    table = ds.read_all(errors, extra)
    if table.num_rows == 0:
        raise ConfigError(f"no usable records in {', '.join(ds.paths)}")
    return table


def _features(text: pa.Array, config=None):
    """Records x buckets hashed n-gram counts and tokens per record; by default in the space every KL is measured in
    (DSIR's features: uni+bigrams, 10,000 buckets, hash seed 0)."""
    from scipy import sparse

    from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer

    config = config or HashedNgramConfig()
    featurizer = HashedNgramFeaturizer(config)
    mats, tokens = [], []
    for start in range(0, len(text), 8192):
        f = featurizer.transform(text.slice(start, 8192))
        mats.append(f.to_csr(config.num_buckets))
        tokens.append(f.n_tokens)
    return sparse.vstack(mats, format="csr"), np.concatenate(tokens)


def _column(table: pa.Table, name: str | None) -> np.ndarray | None:
    if not name or name not in table.column_names:
        return None
    col = table[name]
    if col.null_count == len(col):
        return None
    return np.asarray(col.cast(pa.string()).fill_null("").to_pylist(), dtype=object)


def _families(config: EvaluateConfig, has_labels: bool, heldout_classes: int) -> list[str]:
    wanted = config.metrics or list(M.FAMILIES)
    explicit = config.metrics is not None
    out = []
    for fam in wanted:
        if fam == "precision" and not has_labels:
            if explicit:
                raise ConfigError("metric 'precision' needs --label-column (labels used for evaluation only)")
            continue
        if fam == "classify" and (not has_labels or heldout_classes < 2):
            if explicit:
                raise ConfigError("metric 'classify' needs --label-column present in the pool and at least two "
                                  "classes in the held-out sample")
            continue
        out.append(fam)
    return out


def _embeddings(pool: Dataset, table: pa.Table, heldout_text: pa.Array, out: Path, backend: str,
                workers: int | None, progress: bool, cache_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    from thresher.embeddings import make_backend
    from thresher.embeddings.backends import normalise_rows
    from thresher.jobs.embed import run_embedding

    # an internal step: the evaluation's own report is the one to read
    run = run_embedding(pool, out / "embed", backend=backend, workers=workers, progress=progress,
                        cache_dir=cache_dir, report=False)
    ids, matrix = run.embeddings()
    position = pc.index_in(table["id"], value_set=pa.array(ids)).to_numpy(zero_copy_only=False)
    pool_emb = normalise_rows(np.asarray(matrix, dtype=np.float32))[position]
    held = normalise_rows(np.asarray(make_backend(backend).encode(heldout_text.to_pylist()), dtype=np.float32))
    return pool_emb, held


def _scores(pool: Dataset, target: Dataset | None, methods: list[Method], table: pa.Table, out: Path,
            config: EvaluateConfig, workers: int | None, progress: bool) -> dict[str, np.ndarray]:
    """Score the pool once with every scorer the methods need; one float array per method, in pool order."""
    from thresher.pipeline import Pipeline, Score
    from thresher.scorers.registry import primary_column

    scorers = list(dict.fromkeys(m.scorer for m in methods if m.scorer))
    columns = [m for m in methods if m.column]
    if not scorers and not columns:
        return {}
    if columns and not scorers:
        raise ConfigError("column:NAME methods rank by a column of the scores written here; add a scorer method")
    unknown = sorted(set(config.scorer_params) - set(scorers))
    if unknown:
        raise ConfigError(f"scorer parameters given for scorer(s) not evaluated: {', '.join(unknown)}")
    pipeline = Pipeline([Score(s, dict(config.scorer_params.get(s, {}))) for s in scorers])
    run = pipeline.run(pool, out / "scoring", target, seed=config.seed, pool_sample=config.pool_sample,
                       group_field=config.group_field, workers=workers, progress=progress, report=False)
    scores = run.scores()
    found = pc.index_in(table["id"], value_set=scores["id"])
    if found.null_count:
        raise ConfigError(f"{found.null_count} pool records have no scores in {run.path}")
    position = found.to_numpy(zero_copy_only=False)
    out_scores = {}
    for m in methods:
        if m.scorer is None and m.column is None:  # baselines and targeted selectors rank no scores
            continue
        name = m.column or primary_column(m.scorer, scores.column_names)
        if name not in scores.column_names:
            raise ConfigError(f"method {m.label!r}: no column {name!r} in the scores "
                              f"({', '.join(c for c in scores.column_names if c != 'id')})")
        out_scores[m.label] = as_float(scores[name])[position]
    return out_scores


def split_target(target: Dataset, out: Path, fraction: float = 0.5, seed: int = 0,
                 keep: tuple[str | None, ...] = ()) -> tuple[Dataset, Dataset]:
    """Split a target sample into a part to fit on and a held-out part to measure on, by a hash of each id.

    Used when no separate held-out sample is given: measuring on the records the scorers were fitted on would
    flatter every targeted method. Written as Parquet in ``out`` so both parts are ordinary inputs.
    """
    import xxhash

    if not 0 < fraction < 1:
        raise ConfigError(f"heldout fraction must be in (0, 1), got {fraction}")
    table = _read_all(target, [c for c in keep if c], ErrorLog(target.on_error))
    keys = np.array([xxhash.xxh3_64_intdigest(i.encode(), seed=seed) for i in table["id"].to_pylist()],
                    dtype=np.uint64)
    held = keys < np.uint64(int(fraction * 2**64))
    if held.sum() < 2 or (~held).sum() < 2:
        raise ConfigError(f"the target has {table.num_rows} records: too few to split into fit and held-out parts")
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(table.filter(pa.array(~held)), out / "target_fit.parquet")
    write_parquet(table.filter(pa.array(held)), out / "target_heldout.parquet")
    return (Dataset(str(out / "target_fit.parquet"), on_error=target.on_error),
            Dataset(str(out / "target_heldout.parquet"), on_error=target.on_error))


@dataclass
class _Prepared:
    """The in-memory view of pool and held-out sample that every selection is measured with."""

    table: pa.Table
    held_table: pa.Table
    data: M.EvalData
    families: list[str]
    classes: list[str]
    errors: ErrorLog
    held_errors: ErrorLog


def _prepare(pool: Dataset, heldout: Dataset, config: EvaluateConfig, out: Path, workers: int | None,
             progress: bool, clock: _Clock, needs_groups: bool) -> _Prepared:
    """Read pool and held-out sample, check the columns the methods and metrics need, featurize both, and embed
    them when a metric needs embeddings (checks come first, so a bad option fails before the expensive steps)."""
    t0 = time.perf_counter()
    extra = [c for c in (config.group_field, config.label_column) if c]
    errors = ErrorLog(pool.on_error)
    held_errors = ErrorLog(heldout.on_error)
    table = _read_all(pool, extra, errors)
    held_table = _read_all(heldout, extra, held_errors)
    if len(pc.unique(table["id"])) != table.num_rows:
        raise ConfigError("pool ids are not unique; evaluation matches selections by id")
    if held_table.num_rows < 2:
        raise ConfigError(f"the held-out sample has {held_table.num_rows} usable record(s); intervals need >= 2")
    clock.lap("read", t0)
    groups = _column(table, config.group_field)
    if needs_groups and groups is None:
        raise ConfigError(f"the stratified baseline needs a group column: {config.group_field!r} is not in the pool "
                          "(set --group-field, or leave stratified out of --methods)")
    labels = _column(table, config.label_column)
    held_labels = _column(held_table, config.label_column)
    if config.label_column and labels is None:
        raise ConfigError(f"--label-column {config.label_column!r} is not in the pool")
    positive = config.positive
    if labels is not None and positive is None:
        if held_labels is None:
            raise ConfigError(f"give --positive: the held-out sample has no {config.label_column!r} column to "
                              "infer the on-target label from")
        values, counts = np.unique(held_labels.astype(str), return_counts=True)
        positive = str(values[np.argmax(counts)])
    if labels is not None and positive not in set(labels.astype(str)):
        raise ConfigError(f"--positive {positive!r} is not a value of {config.label_column!r} in the pool "
                          f"(values: {', '.join(sorted(set(labels.astype(str)))[:12])})")
    classes = sorted(set(labels.astype(str))) if labels is not None else []
    heldout_classes = len(set(held_labels.astype(str))) if held_labels is not None else 0
    families = _families(config, labels is not None, heldout_classes)
    t0 = time.perf_counter()
    pool_counts, pool_tokens = _features(table["text"])
    held_counts, _ = _features(held_table["text"])
    clock.lap("featurize", t0)
    data = M.EvalData(pool_text=table["text"], pool_counts=pool_counts, n_words=whitespace_token_counts(table["text"]),
                      heldout_text=held_table["text"], heldout_counts=held_counts, groups=groups, labels=labels,
                      positive=positive, heldout_labels=held_labels, lm_order=config.lm_order, pool_tokens=pool_tokens)
    if "lm" in families or config.heldout_weights:
        data.heldout_parts, data.heldout_part_names = _heldout_parts(held_table, config)
        data.heldout_blend = config.heldout_weights
    if "lm" in families:
        t0 = time.perf_counter()
        data.lm_vocab_size = M.common_vocabulary_size(table["text"], held_table["text"], config.lm_order)
        clock.lap("featurize", t0)
    if "coverage" in families or "classify" in families:
        t0 = time.perf_counter()
        data.pool_emb, data.heldout_emb = _embeddings(pool, table, held_table["text"], out,
                                                      config.embedding_backend, workers, progress,
                                                      config.cache_dir)
        clock.lap("embed", t0)
    return _Prepared(table, held_table, data, families, classes, errors, held_errors)


def _group_weights(text: str) -> dict[str, float]:
    """``news=0.5,wikipedia=0.5`` as a dict (a weight per held-out group)."""
    out: dict[str, float] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        key, eq, value = item.rpartition("=")
        try:
            if not eq or not key:
                raise ValueError
            out[key] = float(value)
        except ValueError:
            raise ConfigError(f"heldout weights: expected GROUP=WEIGHT[,GROUP=WEIGHT...], got {item!r}") from None
    return out


def _heldout_parts(held_table: pa.Table, config: EvaluateConfig) -> tuple[np.ndarray | None, list[str] | None]:
    """The held-out sample's groups (its ``group_field``) as codes, when it has several or a blend names them:
    each is measured on its own, the bootstrap resamples within each, and ``heldout_weights`` blends them."""
    groups = _column(held_table, config.group_field)
    weights = config.heldout_weights
    if groups is None:
        if weights:
            raise ConfigError(f"--heldout-weights blends the held-out sample's groups, but it has no "
                              f"{config.group_field!r} column (set --group-field)")
        return None, None
    names, codes = np.unique(groups.astype(str), return_inverse=True)
    if weights:
        sizes = dict(zip(names, np.bincount(codes)))
        missing = [k for k, v in weights.items() if v > 0 and sizes.get(k, 0) < 2]
        if missing:
            raise ConfigError(f"--heldout-weights names {', '.join(map(repr, missing))}, which the held-out "
                              f"sample has fewer than 2 items of (its {config.group_field!r} values: "
                              f"{', '.join(f'{n} ({c})' for n, c in sizes.items())})")
    elif len(names) < 2:
        return None, None
    return codes.astype(np.int64), [str(n) for n in names]


def _length_floor(config: EvaluateConfig, target: Dataset | None) -> int:
    """The scoring methods' length floor in tokens: as `thresher select` derives it from the target."""
    if config.min_tokens != "auto":
        return int(config.min_tokens)
    if target is None:
        return 0
    from thresher.selectors.eligibility import auto_min_tokens

    return auto_min_tokens(_features(_read_all(target, [], ErrorLog(target.on_error))["text"])[1])


@claims_run_dir("out")
def run_evaluation(pool: Dataset, heldout: Dataset | None, out: str | os.PathLike, target: Dataset | None = None,
                   config: EvaluateConfig | None = None, proxy: ProxyFn | None = None, workers: int | None = None,
                   progress: bool = True, command: list[str] | None = None, report: bool = True) -> Evaluation:
    """Compare ``config.methods`` with random (and stratified) selection at ``config.budgets`` over seeds.

    ``target`` is what scoring methods fit on; ``heldout`` is a separate sample of the target that every metric
    is measured on (measuring on the fitting sample would flatter the methods). Without ``heldout``, half of the
    target (by a hash of the ids) is held out. ``proxy`` is an optional Python training function run per
    selection and seed (see :mod:`thresher.evaluate.proxies`).
    """
    config = config or EvaluateConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if heldout is None and target is None:
        raise ConfigError("give a held-out sample of the target (--heldout), or a target to split one from")
    target_name = config.target_name or _name_of(heldout if heldout is not None else target)
    if heldout is None:
        target, heldout = split_target(target, out / "split", seed=config.seed, keep=(config.label_column,))
    if target is not None and _same_files(target, heldout):
        raise ConfigError("the held-out sample is the target itself: measure on records the methods were not "
                          "fitted on (a separate --heldout, or none to hold out half of the target)")
    clock = _Clock()
    methods = parse_methods(config.methods)
    notes = []
    if any(m.selector == "stratified" for m in methods) and config.methods == DEFAULT_METHODS.split(",") \
            and not _has_column(pool, config.group_field):
        methods = [m for m in methods if m.selector != "stratified"]  # only the default asked for it
        notes.append(f"stratified baseline left out: the pool has no {config.group_field!r} column")
    v = EVALUATE_PLAN.run(pool=pool, heldout=heldout, target=target, config=config, methods=methods, out=out,
                          workers=workers, progress=progress, clock=clock, proxy=proxy,
                          needs_groups=any(m.selector in ("stratified", "mixture") for m in methods))
    inputs = {"pool": dataset_info(pool), "heldout": dataset_info(heldout),
              "target": dataset_info(target) if target is not None else None}
    return _finish(out, v, target_name, inputs, command, report,
                   {"min_tokens": v.floor, "eligible_for_scoring_methods": int(v.eligible.sum()),
                    "scoring": "scoring" if v.scores else None, "notes": notes})


def _prepare_stage(v: Values) -> dict:
    return {"prep": _prepare(v.pool, v.heldout, v.config, v.out, v.workers, v.progress, v.clock, v.needs_groups)}


def _score_stage(v: Values) -> dict:
    return {"scores": _scores(v.pool, v.target, v.methods, v.prep.table, v.out, v.config, v.workers, v.progress)}


def _draw_stage(v: Values) -> dict:
    """Every method's selection at every budget and seed; baselines included."""
    prep, config = v.prep, v.config
    floor = _length_floor(config, v.target)
    eligible = prep.data.pool_tokens >= floor
    seeds = [config.seed + s for s in range(config.seeds)]
    selections: dict[tuple[str, str], list[np.ndarray]] = {}
    budget_sizes: dict[str, int] = {}
    n_words = prep.data.n_words
    matching = _MatchInputs.of(prep.table["text"], v.target) if any(m.selector == "match" for m in v.methods) \
        else None
    anchored = _target_embeddings(v) if any(m.selector in ANCHORED for m in v.methods) else None
    for label in config.budgets:
        budget = Budget.parse(label)
        k = budget_records(budget, prep.table.num_rows, n_words)
        for m in v.methods:
            if m.selector == "match":  # deterministic: one selection serves every seed
                selections[m.label, label] = [matching.select(m, eligible, budget, k, n_words)] * len(seeds)
                continue
            if m.selector in ANCHORED:
                selections[m.label, label] = [_anchored_rows(m, *anchored, eligible, budget, k, n_words)] * len(seeds)
                continue
            selections[m.label, label] = [
                draw(m, v.scores.get(m.label), eligible, budget, k, n_words, prep.data.groups, s) for s in seeds]
        budget_sizes[label] = k  # None for token budgets: the records differ per method
    return {"selections": selections, "budget_sizes": budget_sizes, "seeds": seeds, "floor": floor,
            "eligible": eligible, "labels": [m.label for m in v.methods]}


@dataclass
class _MatchInputs:
    """What distribution matching selects with, in its own feature space (never the one KL is measured in): the
    pool's counts, the target's summed counts, and DSIR's importance of every pool record there (its quality)."""

    pool_counts: object  # scipy CSR
    target_counts: np.ndarray
    quality: np.ndarray

    @classmethod
    def of(cls, pool_text: pa.Array, target: Dataset | None) -> _MatchInputs:
        from thresher.scorers.importance import ImportanceScorer
        from thresher.selectors.match import MATCH_FEATURES

        if target is None:
            raise ConfigError("method 'match' matches the target's n-gram distribution: give --target")
        pool_counts, _ = _features(pool_text, MATCH_FEATURES)
        target_matrix, target_tokens = _features(_read_all(target, [], ErrorLog(target.on_error))["text"],
                                                 MATCH_FEATURES)
        target_counts = np.asarray(target_matrix.sum(axis=0)).ravel()
        ngrams = sum(np.maximum(target_tokens - j, 0) for j in range(MATCH_FEATURES.ngrams))
        scorer = ImportanceScorer().fit(target_counts, np.asarray(pool_counts.sum(axis=0)).ravel(), ngrams)
        return cls(pool_counts, target_counts, pool_counts @ scorer.log_ratio_)

    def select(self, method: Method, eligible: np.ndarray, budget: Budget, k: int | None,
               n_words: np.ndarray) -> np.ndarray:
        """Pool rows that ``method`` (``match[:WEIGHT]``) selects among the eligible records: deterministic."""
        from thresher.selectors.match import KLMatch

        rows, budget = candidate_rows(method, eligible, budget, k)
        params = {} if method.quality_weight is None else {"quality_weight": method.quality_weight}
        order = KLMatch(**params).select(self.pool_counts[rows], self.target_counts, budget, n_tokens=n_words[rows],
                                         quality=self.quality[rows])
        return rows[order]


def _anchored_rows(method: Method, pool_emb: np.ndarray, target_emb: np.ndarray, eligible: np.ndarray,
                   budget: Budget, k: int | None, n_words: np.ndarray) -> np.ndarray:
    """Pool rows that ``cover`` or ``mmd`` selects among the eligible records: deterministic."""
    from thresher.selectors.anchored import make_anchored

    rows, budget = candidate_rows(method, eligible, budget, k)
    order = make_anchored(method.selector, {}).select(pool_emb[rows], target_emb, budget, n_tokens=n_words[rows])
    return rows[order]


def _target_embeddings(v: Values) -> tuple[np.ndarray, np.ndarray]:
    """Pool embeddings (the ones the coverage metric uses, computed here if no metric asked for them) and the
    target's, with the same back-end."""
    from thresher.embeddings import make_backend

    if v.target is None:
        raise ConfigError("methods cover and mmd select toward the target: give --target")
    data = v.prep.data
    if data.pool_emb is None:
        data.pool_emb, data.heldout_emb = _embeddings(v.pool, v.prep.table, v.prep.held_table["text"], v.out,
                                                      v.config.embedding_backend, v.workers, v.progress,
                                                      v.config.cache_dir)
    texts = _read_all(v.target, [], ErrorLog(v.target.on_error))["text"].to_pylist()
    texts = [texts[i] for i in target_rows(len(texts), len(data.pool_emb))]  # coverage's cap, for both methods
    return data.pool_emb, np.asarray(make_backend(v.config.embedding_backend).encode(texts), dtype=np.float32)


def _measure_stage(v: Values) -> dict:
    proxy = v.proxy
    if v.config.proxy_command:
        proxy = CommandProxy(v.config.proxy_command, v.out / "proxy", v.config.proxy_timeout)
    rows, per_seed, described = _measure(v.prep, v.labels, v.budget_sizes, v.selections, v.seeds, v.config, proxy,
                                         v.clock, progress=False)
    return {"rows": rows, "per_seed": per_seed, "described": described}


PREPARE = Stage("prepare", GLOBAL, "pool and held-out sample read whole, featurized (and embedded when a metric "
                "needs it)", _prepare_stage,
                ("pool", "heldout", "config", "out", "workers", "progress", "clock", "needs_groups"), ("prep",))
SCORE = Stage("score", MAP, "each scoring method's scores over the pool (as thresher select / score compute them)",
              _score_stage, ("pool", "target", "methods", "prep", "out", "config", "workers", "progress"),
              ("scores",))
DRAW = Stage("draw", GLOBAL, "every method's selection at every budget and seed, random and stratified included",
             _draw_stage, ("prep", "config", "target", "methods", "scores", "pool", "out", "workers", "progress"),
             ("selections", "budget_sizes", "seeds", "floor", "eligible", "labels"))
MEASURE = Stage("measure", GLOBAL, "every metric (and proxy model) on every selection, intervals and verdicts vs "
                "random", _measure_stage,
                ("prep", "labels", "budget_sizes", "selections", "seeds", "config", "proxy", "clock", "out"),
                ("rows", "per_seed", "described"))
EVALUATE_PLAN = Plan("evaluate", ("pool", "heldout", "target", "config", "methods", "out", "workers", "progress",
                                  "clock", "proxy", "needs_groups"), (PREPARE, SCORE, DRAW, MEASURE))



@claims_run_dir("out")
def compare_runs(runs: list, heldout: Dataset | None, out: str | os.PathLike, target: Dataset | None = None,
                 config: EvaluateConfig | None = None, proxy: ProxyFn | None = None, workers: int | None = None,
                 progress: bool = True, report: bool = True) -> Evaluation:
    """Compare finished selection runs with random (and stratified) selections of the same sizes from their pool.

    Each run's selection is fixed (one "seed"); the baselines are drawn ``config.seeds`` times. Runs must have
    selected from the same pool (checked by its fingerprinted files). Without ``heldout``, the first run's target is
    split as in :func:`run_evaluation`.
    """
    runs = [r if isinstance(r, Run) else Run(r) for r in runs]
    if not runs:
        raise ConfigError("give at least one run to compare")
    config = config or EvaluateConfig(methods=["random", "stratified"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pools = []
    for r in runs:
        info = r.manifest.get("inputs", {}).get("pool")
        if not info or not (r.path / "selected" / "ids.txt").is_file():
            raise ConfigError(f"{r.path} has no selection to compare (run thresher select first)")
        pools.append(info)
    files = [[f["fingerprint"] for f in p["files"]] for p in pools]  # contents, however the paths were spelled
    if any(f != files[0] for f in files[1:]):
        raise ConfigError("the runs selected from different pools; compare runs of the same pool")
    info = pools[0]
    pool = reopen_dataset(info)
    if target is None and runs[0].manifest.get("inputs", {}).get("target"):
        target = reopen_dataset(runs[0].manifest["inputs"]["target"])
    target_name = config.target_name or _name_of(heldout if heldout is not None else target or pool)
    if heldout is None:
        if target is None:
            raise ConfigError("give a held-out sample of the target (heldout=...)")
        target, heldout = split_target(target, out / "split", seed=config.seed, keep=(config.label_column,))
    wants_strata = "stratified" in config.methods and _has_column(pool, config.group_field)
    v = COMPARE_PLAN.run(pool=pool, heldout=heldout, config=config, out=out, workers=workers, progress=progress,
                         clock=_Clock(), proxy=proxy, needs_groups=wants_strata, runs=runs)
    inputs = {"pool": info, "heldout": dataset_info(heldout), "runs": [str(r.path) for r in runs]}
    return _finish(out, v, target_name, inputs, None, report, {})


def _fixed_stage(v: Values) -> dict:
    """The runs' own selections (one "seed" each) and random / stratified draws of the same sizes."""
    prep, config = v.prep, v.config
    index = {i: k for k, i in enumerate(prep.table["id"].to_pylist())}
    seeds = [config.seed + s for s in range(config.seeds)]
    selections: dict[tuple[str, str], list[np.ndarray]] = {}
    budget_sizes: dict[str, int] = {}
    labels = []
    baselines = [Method.parse(m) for m in ("random", "stratified") if m == "random" or
                 (m in config.methods and v.needs_groups)]
    for r in v.runs:
        ids = r.selected_ids()
        missing = [i for i in ids if i not in index]
        if missing:
            raise ConfigError(f"{r.path}: {len(missing)} selected ids are not in the pool (e.g. {missing[0]!r})")
        rows = np.array([index[i] for i in ids], dtype=np.int64)
        label = r.path.name
        while label in labels or label in ("random", "stratified"):  # never shadow a baseline's rows
            label += "'"
        labels.append(label)
        budget = f"n={len(rows)}"
        budget_sizes[budget] = len(rows)
        selections[label, budget] = [rows]
    for budget, k in budget_sizes.items():
        for b in baselines:
            selections[b.label, budget] = [draw(b, None, np.ones(prep.table.num_rows, bool), Budget("count", k), k,
                                                prep.data.n_words, prep.data.groups, s) for s in seeds]
    return {"selections": selections, "budget_sizes": budget_sizes, "seeds": seeds,
            "labels": labels + [b.label for b in baselines]}


FIXED = Stage("draw", GLOBAL, "the runs' selections as they are, and random / stratified draws of the same sizes",
              _fixed_stage, ("prep", "config", "runs", "needs_groups"),
              ("selections", "budget_sizes", "seeds", "labels"))
COMPARE_PLAN = Plan("compare", ("pool", "heldout", "config", "out", "workers", "progress", "clock", "proxy",
                                "needs_groups", "runs"), (PREPARE, FIXED, MEASURE))


def _finish(out: Path, v: Values, target_name: str, inputs: dict, command: list[str] | None, report: bool,
            extra: dict) -> Evaluation:
    """Write the evaluation directory from what the plan's stages measured."""
    prep, config, selections, seeds = v.prep, v.config, v.selections, v.seeds
    rows, per_seed, described = v.rows, v.per_seed, v.described
    for r in rows + per_seed:
        r["target"] = target_name
    rows = [{c: r.get(c) for c in RESULT_COLUMNS} for r in rows]
    write_csv(out / "results.csv", rows, RESULT_COLUMNS)
    write_csv(out / "per_seed.csv", per_seed, ["target", "method", "budget", "seed", "metric", "value"])
    write_parquet(_selections_table(selections, seeds, prep.table["id"]), out / "selections.parquet")
    write_json({"target": target_name, "positive": prep.data.positive, "metric_families": prep.families,
                "selections": described, **extra}, out / "evaluation.json")
    failed = prep.errors.to_dict()
    held_failed = prep.held_errors.to_dict()
    n_pool = prep.table.num_rows
    n_selected = sum(len(r) for v in selections.values() for r in v)
    manifest = {
        "job": "evaluate", "command": command, "created_unix": int(time.time()), "config": config.to_dict(),
        "inputs": inputs, "versions": versions(),
        "counts": {"input_records": n_pool + failed["total"], "evaluated": n_pool, "failed": failed["total"],
                   "pool_failed": failed, "heldout": prep.held_table.num_rows,
                   "heldout_failed": held_failed["total"], "heldout_errors": held_failed,
                   "selections": sum(len(v) for v in selections.values()), "selected_rows": n_selected,
                   "all_accounted_for": None},
        "metrics": {"families": prep.families, "verdicts": _verdict_counts(rows)},
        "timings": {**stage_seconds(v.stages), **v.clock.timings},  # stages, then parts of them (metric_kl, ...)
        "stages": v.stages,
        "outputs": {"results": "results.csv", "per_seed": "per_seed.csv", "selections": "selections.parquet",
                    "evaluation": "evaluation.json"},
    }
    c = manifest["counts"]  # every record read was evaluated or counted as failed, with its file and line
    c["all_accounted_for"] = c["evaluated"] + c["failed"] == c["input_records"] and \
        c["heldout"] + c["heldout_failed"] == prep.held_table.num_rows + held_failed["total"]
    write_json(manifest, out / "manifest.json")
    from thresher.report.html import report_after_job

    report_after_job(out, report)
    return Evaluation(out, rows, config.margin)


def _same_files(a: Dataset, b: Dataset) -> bool:
    """Two inputs with the same file contents (by fingerprint), however their paths are spelled."""
    return sorted(f["fingerprint"] for f in a.describe()) == sorted(f["fingerprint"] for f in b.describe())


def _has_column(ds: Dataset, name: str | None) -> bool:
    """Whether the first batch of ``ds`` has a non-null ``name`` column (cheap: reads one batch)."""
    if not name:
        return False
    for batch in ds.iter_batches(ErrorLog("skip"), extra_columns=[name]):
        return batch.column(name).null_count < batch.num_rows
    return False


def _name_of(ds: Dataset) -> str:
    """The target's name from its file names (``news+wikipedia`` for two held-out files)."""
    names = []
    for path in ds.paths:
        name = Path(path).name
        for suffix in (".gz", ".zst", ".bz2", ".xz", ".parquet", ".jsonl", ".json", ".csv", ".tsv", ".heldout"):
            name = name.removesuffix(suffix)
        names.append(name)
    return "+".join(dict.fromkeys(n for n in names if n)) or "target"


def _measure(prep: _Prepared, labels: list[str], budget_sizes: dict[str, int], selections: dict,
             seeds: list[int], config: EvaluateConfig, proxy: Callable | None, clock: _Clock,
             progress: bool) -> tuple[list[dict], list[dict], dict]:
    """Every metric of every selection, then each method against random: the rows of results.csv."""

    data, families, classes = prep.data, prep.families, prep.classes
    table, held_table = prep.table, prep.held_table
    resampler = Resampler(data.n_items, config.n_boot, config.seed, strata=data.heldout_parts)
    weights = resampler.weights
    kl = M.HeldoutKL(data, weights) if "kl" in families else None
    k = len(classes)
    memo: dict[tuple[str, bytes], object] = {}  # deterministic methods repeat selections: measure each once

    def once(kind: str, rows: np.ndarray, fn: Callable[[], object]) -> object:
        key = (kind, rows.tobytes())
        if key not in memo:
            memo[key] = fn()
        return memo[key]

    results: dict[tuple[str, str], dict[str, MetricDraws]] = {}
    declared: dict[str, bool] = {}
    bar = Progress("evaluate", total=len(selections), unit="selections", enabled=progress)
    for stream, ((label, budget), per_seed_rows) in enumerate(selections.items()):
        got: dict[str, MetricDraws] = {}
        if kl is not None:
            t0 = time.perf_counter()
            got["kl_to_heldout"] = kl.draws(per_seed_rows)
            clock.lap("metric_kl", t0)
        if "precision" in families:
            got["precision"] = M.precision_draws(data, per_seed_rows, config.n_boot, config.seed, stream)
        if "coverage" in families:
            t0 = time.perf_counter()
            vals = [once("coverage", r, lambda r=r: M.coverage_values(data, r)) for r in per_seed_rows]
            got["coverage_distance"] = M.item_metric(vals, weights, M.mean_statistic(data.n_items), False)
            clock.lap("metric_coverage", t0)
        if "lm" in families:
            t0 = time.perf_counter()
            vals = [once("lm", r, lambda r=r: M.lm_values(data, r)) for r in per_seed_rows]
            got["heldout_perplexity"] = M.item_metric(vals, weights, M.perplexity_statistic, False)
            if data.heldout_parts is not None:
                got.update(M.heldout_part_metrics(vals, data.heldout_parts, data.heldout_part_names, weights,
                                                  data.heldout_blend))
            clock.lap("proxy_lm", t0)
        if "classify" in families:
            t0 = time.perf_counter()
            vals = [once("classify", r, lambda r=r: M.classify_values(data, r, classes)) for r in per_seed_rows]
            got["proxy_accuracy"] = M.item_metric(vals, weights, M.accuracy_statistic(k), True)
            got["proxy_macro_f1"] = M.item_metric(vals, weights, M.macro_f1_statistic(k), True)
            clock.lap("proxy_classify", t0)
        if proxy is not None:
            t0 = time.perf_counter()
            got.update(_user_proxy(proxy, table, held_table, per_seed_rows, seeds, label, budget, weights,
                                   data.n_items, declared))
            clock.lap("proxy_user", t0)
        results[label, budget] = got
        bar.update(1)
    bar.close()

    t0 = time.perf_counter()
    rows, per_seed, described = [], [], {}
    for b_i, budget in enumerate(budget_sizes):
        base = results[config.baseline, budget]
        for m_i, label in enumerate(labels):
            if (label, budget) not in results:
                continue
            got = results[label, budget]
            described.setdefault(label, {})[budget] = M.describe_selection(data, selections[label, budget][0])
            is_base = label == config.baseline
            for metric, md in got.items():
                picks = resampler.seed_picks(len(md.seed_values), stream=1000 * b_i + (0 if is_base else 1 + m_i))
                base_picks = resampler.seed_picks(len(base[metric].seed_values), stream=1000 * b_i)
                row = compare(md, None if is_base else base[metric], picks, None if is_base else base_picks,
                              config.level, config.margin)
                size = budget_sizes[budget]
                if size is None:  # a token budget: each method takes as many records as fit
                    size = int(round(np.mean([len(r) for r in selections[label, budget]])))
                rows.append({"method": label, "budget": budget, "budget_records": size,
                             "metric": metric, "baseline": None if is_base else config.baseline, **row})
                per_seed += [{"method": label, "budget": budget, "seed": s, "metric": metric, "value": v}
                             for s, v in zip(seeds, md.seed_values)]
    clock.lap("intervals", t0)
    return rows, per_seed, described


def _user_proxy(proxy: Callable, table: pa.Table, held_table: pa.Table, per_seed_rows: list[np.ndarray],
                seeds: list[int], label: str, budget: str, weights: np.ndarray, n_items: int,
                declared: dict[str, bool]) -> dict[str, MetricDraws]:
    """Run the user's proxy on each seed's selection and turn its numbers into metric replicates."""
    outputs = []
    for rows, seed in zip(per_seed_rows, seeds):
        where = f"proxy on {label} @ {budget}, seed {seed}"
        train = table.take(pa.array(rows))
        if isinstance(proxy, CommandProxy):
            tag = f"{label}_{budget}_{seed}".replace(":", "-").replace("%", "pct").replace("/", "-")
            raw = proxy(train, held_table, seed, tag=tag)
            declared.update(proxy.declared)
        else:
            raw = dict(proxy(train, held_table, seed))
            stated = raw.pop("higher_is_better", None) or {}
            if not isinstance(stated, dict):
                raise ConfigError(f"{where}: 'higher_is_better' must map metric names to true/false")
            declared.update({str(k): bool(v) for k, v in stated.items()})
        outputs.append(check_values(raw, n_items, where))
    names = list(outputs[0])
    out: dict[str, MetricDraws] = {}
    for name in names:
        values = [o.get(name) for o in outputs]
        if any(v is None for v in values):
            raise ConfigError(f"proxy metric {name!r} is missing for some seeds of {label} @ {budget}")
        hib = higher_is_better(name, declared)
        if all(isinstance(v, np.ndarray) for v in values):
            out[name] = M.item_metric(values, weights, M.mean_statistic(n_items), hib)
        elif any(isinstance(v, np.ndarray) for v in values):
            raise ConfigError(f"proxy metric {name!r} mixes per-item lists and single numbers")
        else:
            out[name] = MetricDraws(None, [float(v) for v in values], hib, "seeds")
    return out


def _selections_table(selections: dict, seeds: list[int], ids: pa.ChunkedArray) -> pa.Table:
    parts = []
    for (label, budget), per_seed_rows in selections.items():
        for seed, rows in zip(seeds, per_seed_rows):
            n = len(rows)
            parts.append(pa.table({"method": pa.array([label] * n), "budget": pa.array([budget] * n),
                                   "seed": pa.array(np.full(n, seed, dtype=np.int64)),
                                   "rank": pa.array(np.arange(n, dtype=np.int64)), "id": ids.take(pa.array(rows))}))
    return pa.concat_tables(parts).combine_chunks()


def _verdict_counts(rows: list[dict]) -> dict:
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["verdict"] == "baseline":
            continue
        c = counts.setdefault(r["method"], {"better": 0, "worse": 0, "inconclusive": 0})
        c[r["verdict"]] += 1
    return counts
