"""YAML recipes: a pipeline and its inputs in one file, validated with errors that name the line.

Example (``thresher run recipe.yaml``)::

    pool: data/pool.parquet          # a path, a list of paths/globs, or {path, text_field, id_field, on_error}
    target: data/target.jsonl        # optional; scorers such as classifier and dsir need it
    out: runs/quality
    seed: 0
    steps:
      - score: gopher
      - score: langid
      - filter: "gopher_pass and lang == 'en'"
      - score: classifier
        l2: 0.0001                   # any other key is a parameter of the scorer
      - select: gumbel               # topk | gumbel | random | threshold
        score: classifier            # a column, or a scorer name meaning its main column
        temperature: 1.0
        budget: 5%

A recipe may instead start with a ``label`` step (weak supervision, see ``thresher label``), followed only by
filter steps and one select step, which then read the label columns::

    steps:
      - label: lfs.yaml                # LF file, .yaml or .py (or a list of them, merged)
        model: dawid_skene             # optional: model, dev, dev_where, label_field, class_balance, end_model, params
        dev: dev.parquet
      - filter: "label_name == 'sport'"
      - select: topk
        score: label_confidence
        budget: 1000

A recipe that chooses evaluation items (see ``thresher evalset``) names a scores table instead of a pool, an
``evalset`` step, and optionally an ``estimate`` step (new systems' scores on the chosen items, estimated into
OUT/estimate) and a ``check`` step (methods against random over splits of the seen systems, into OUT/check)::

    scores: leaderboard.parquet        # seen systems' scores: long (item, system, score) or wide
    out: runs/evalset
    steps:
      - evalset: difficulty            # random | stratified | difficulty | anchor | irt | active
        budget: 100
        estimator: control             # optional: mean | control | p-irt | gp-irt
      - estimate: new_systems.parquet
      - check: [random, difficulty, irt]
        budgets: [25, 50, 100]
        splits: 100

A recipe may also start with an ``audit`` step (see ``thresher audit``), with the same filters and select after
it, which then read the audit columns (``is_label_issue``, ``label_quality``, ``suggested_label``, ...)::

    steps:
      - audit: label                   # the field holding the given labels
        features: hashed               # optional: classes, features, folds, l2, filter_by, quality, probs_from,
                                       #           outlier_k, split_field, duplicate_threshold, dynamics,
                                       #           dynamics_params
      - filter: "not is_label_issue"
      - select: threshold              # every record left (no budget: no cap)
        score: label_quality
        threshold: 0

An audit step may also be followed by ``evaluate`` steps: does pruning by a training-dynamics score, or dropping
the flagged labels, beat random (see ``thresher evaluate --experiment``)? Each writes OUT/<experiment>::

      - evaluate: pruning              # pruning | label-errors
        heldout: test.parquet          # labelled test set
        methods: [el2n, easy, aum]     # optional: methods, budgets, seeds, level, margin, label_field
        budgets: [50%, 70%]

A recipe whose only step is ``evaluate: active`` simulates active learning on the labelled pool::

    steps:
      - evaluate: active
        heldout: test.parquet
        methods: [random, margin, badge] # optional: methods, start_labels, batch_labels, max_labels, seeds,
                                         #           features, label_field

Relative paths are relative to the recipe's folder.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from thresher.errors import ConfigError
from thresher.io.dataset import Dataset
from thresher.pipeline import Dedup, Filter, Pipeline, Score, Select
from thresher.run import Run
from thresher.yaml_loading import LineDict, load_yaml

_TOP_KEYS = {"pool", "target", "out", "seed", "workers", "pool_sample", "group_field", "steps", "scores"}
_DATASET_KEYS = {"path", "text_field", "id_field", "on_error", "batch_size", "duplicate_ids"}
_SELECT_KEYS = {f.name for f in dataclasses.fields(Select)} - {"selector"}
_LABEL_KEYS = {"label", "model", "params", "dev", "dev_where", "label_field", "class_balance", "end_model",
               "scores_from"}
_AUDIT_KEYS = {"audit", "classes", "features", "folds", "l2", "filter_by", "quality", "probs_from", "outlier_k",
               "split_field", "duplicate_threshold", "dynamics", "dynamics_params"}
_EXPERIMENT_KEYS = {"evaluate", "heldout", "methods", "seeds", "label_field"}
_CURATION_KEYS = _EXPERIMENT_KEYS | {"budgets", "level", "margin"}
_ACTIVE_KEYS = _EXPERIMENT_KEYS | {"start_labels", "batch_labels", "max_labels", "features"}
_TABLE_KEYS = {"item_field", "system_field", "score_field"}
_EVALSET_KEYS = {"evalset", "budget", "estimator", "items", "label_field", "cost_field", "level"} | _TABLE_KEYS
_EVALSET_FOLLOW = {"estimate": {"estimate", "level"} | _TABLE_KEYS,
                   "check": {"check", "budgets", "splits", "level", "items", "label_field"}}


class Recipe:
    """A parsed, validated recipe: the pipeline, the datasets and the run options."""

    def __init__(self, data: dict, source: str = "<recipe>", base: Path | None = None):
        self.source = source
        self.base = base or Path.cwd()
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: a recipe is a mapping with pool, out and steps")
        self._check_keys(data, _TOP_KEYS, "recipe")
        self.evalset: list[dict] | None = None
        if _first_kind(data.get("steps")) == "evalset":
            self._evalset_recipe(data)
            return
        if "scores" in data:
            raise ConfigError(f"{self._where(data, 'scores')}: 'scores' belongs to a recipe whose first step is "
                              "evalset")
        for key in ("pool", "steps"):
            if key not in data:
                raise ConfigError(f"{source}: the recipe needs '{key}'")
        self.raw = _plain(data)
        self.pool = self._dataset(data["pool"], "pool", data.get("__line__"))
        self.target = self._dataset(data["target"], "target", data.get("__line__")) if data.get("target") else None
        self.out = self._path(data["out"]) if data.get("out") else None
        self.options = {k: data[k] for k in ("seed", "workers", "pool_sample", "group_field") if k in data}
        self._check_options(data)
        steps = data["steps"]
        if not isinstance(steps, list) or not steps:
            raise ConfigError(f"{self._where(data)}: 'steps' must be a non-empty list")
        #: A first step that is its own job (label or audit), its arguments, and the filters and select after it.
        self.first_job: tuple[str, dict] | None = None
        self.after_job: list[Filter | Select] = []
        #: After an audit step: the curation experiments (pruning, label-errors), each into OUT/<experiment>.
        self.experiments: list[dict] = []
        kind = _first_kind(steps)
        if kind == "evaluate":
            self.first_job = ("active", self._experiment_step(steps[0], "active"))
            if len(steps) > 1:
                raise ConfigError(f"{self._where(steps[1])}: an 'evaluate: active' recipe has that one step")
            self.pipeline = None
            return
        if kind in ("label", "audit"):
            self.first_job = (kind, self._label_step(steps[0]) if kind == "label" else self._audit_step(steps[0]))
            rest = list(enumerate(steps[1:], start=1))
            if kind == "audit":
                self.experiments = [self._experiment_step(step, "curation") for _, step in rest
                                    if _first_kind([step]) == "evaluate"]
                rest = [(i, step) for i, step in rest if _first_kind([step]) != "evaluate"]
            self.after_job = [self._stage(step, i) for i, step in rest]
            kinds = [type(s) for s in self.after_job]
            # filters only act through the select that follows them, so filters without a select are refused
            if any(k not in (Filter, Select) for k in kinds) or kinds.count(Select) > 1 or (
                    kinds and kinds[-1] is not Select):
                raise ConfigError(f"{self._where(steps[0])}: after {'a label' if kind == 'label' else 'an audit'} "
                                  f"step come only filter steps and one final select step (they read the {kind} "
                                  "columns)")
            self.pipeline = None
            return
        stages = [self._stage(step, i) for i, step in enumerate(steps)]
        try:
            self.pipeline = Pipeline(stages)
        except ConfigError as e:
            raise ConfigError(f"{self._where(data)}: {e}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recipe:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"recipe {path} does not exist")
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
        return cls(data, source=str(path), base=path.parent)

    def run(self, out: str | os.PathLike | None = None, workers: int | None = None, progress: bool = True,
            command: list[str] | None = None, report: bool = True) -> Run:
        """Run the recipe's pipeline; ``out``/``workers`` override the recipe's; ``report``: write report.html."""
        out = out or self.out
        if out is None:
            raise ConfigError(f"{self.source}: give 'out' in the recipe or --out")
        options = dict(self.options)
        if workers is not None:
            options["workers"] = workers
        if self.first_job is not None:
            return self._run_first_job(Path(out), options, progress, command, report)
        if self.evalset is not None:
            return self._run_evalset(Path(out), command, report)
        return self.pipeline.run(self.pool, out, self.target, progress=progress, command=command,
                                 recipe=self.raw, report=report, **options)

    def _evalset_recipe(self, data: dict) -> None:
        """An evalset recipe: ``scores`` and the evalset step, then at most one estimate and one check step."""
        if "scores" not in data:
            raise ConfigError(f"{self._where(data)}: an evalset recipe needs 'scores' (the seen systems' table)")
        extra = sorted(set(data) & {"pool", "target", "workers", "pool_sample", "group_field"})
        if extra:
            raise ConfigError(f"{self._where(data)}: an evalset recipe has no {', '.join(extra)}")
        self._check_options(data)
        self.out = self._path(data["out"]) if data.get("out") else None
        self.raw, self.first_job, self.pipeline = _plain(data), None, None
        first, *rest = data["steps"]
        self._check_keys(first, _EVALSET_KEYS, "evalset step")
        if "budget" not in first:
            raise ConfigError(f"{self._where(first)}: the evalset step needs 'budget' (items to choose)")
        steps = [first]
        for step in rest:
            kind = _first_kind([step])
            if kind not in _EVALSET_FOLLOW or kind in [_first_kind([s]) for s in steps]:
                raise ConfigError(f"{self._where(step) if isinstance(step, dict) else self.source}: after an evalset "
                                  "step come at most one 'estimate' and one 'check' step")
            self._check_keys(step, _EVALSET_FOLLOW[kind], f"{kind} step")
            steps.append(step)
        self.evalset = [_plain(s) for s in steps]
        self.options = {"seed": data.get("seed", 0), "scores": str(self._path(data["scores"]))}

    def _run_evalset(self, out: Path, command: list[str] | None, report: bool = True) -> Run:
        """Choose the items, then estimate new systems from them and check methods against random, if asked; the
        report (written last) shows all three."""
        from thresher.evalset.check import CheckConfig
        from thresher.evalset.job import run_estimate, run_evalset, run_evalset_check

        first, *rest = self.evalset
        seed, scores = self.options["seed"], self.options["scores"]
        table = {k: first[k] for k in _TABLE_KEYS if k in first}
        method = str(first["evalset"]) + (f"+{first['estimator']}" if first.get("estimator") else "")
        items = str(self._path(first["items"])) if first.get("items") else None
        run_evalset(scores, out, budget=first["budget"], method=method, seed=seed, items=items,
                    label_field=first.get("label_field"), cost_field=first.get("cost_field"),
                    level=first.get("level", 0.95), command=command, report=False, **table)
        for step in rest:
            if "estimate" in step:
                run_estimate(out, self._path(step["estimate"]), out / "estimate", level=step.get("level"),
                             **{k: step[k] for k in _TABLE_KEYS if k in step})
            else:
                methods = step["check"] if isinstance(step["check"], list) else str(step["check"]).split(",")
                config = CheckConfig(tuple(map(str, methods)), tuple(step.get("budgets", (25, 50, 100))),
                                     step.get("splits", 100), seed, step.get("level", 0.95))
                check_items = step.get("items") or first.get("items")
                run_evalset_check(scores, out / "check", config=config,
                                  items=str(self._path(check_items)) if check_items else None,
                                  label_field=step.get("label_field") or first.get("label_field"),
                                  cost_field=first.get("cost_field"), command=command, report=report, **table)
        from thresher.report.html import report_after_job

        report_after_job(out, report)
        return Run(out)

    def _label_step(self, step: dict) -> dict:
        """The label step's arguments for :func:`thresher.jobs.label.run_labeling`, paths resolved."""
        self._check_keys(step, _LABEL_KEYS, "label step")
        args = {k: v for k, v in _plain(step).items() if k != "label"}
        files = step["label"] if isinstance(step["label"], list) else [step["label"]]
        args["lfs"] = [str(self._path(f)) for f in files]  # several files merge (hand-written + generated)
        for path in args["lfs"]:
            if not Path(path).is_file():
                raise ConfigError(f"{self._where(step)}: LF file {path} does not exist")
        if "params" in args:
            args["model_params"] = args.pop("params")
        if args.get("dev"):
            args["dev"] = self._dataset(step["dev"], "dev", step.get("__line__"))
        if args.get("scores_from"):
            args["scores_from"] = str(self._path(args["scores_from"]))
        return args

    def _audit_step(self, step: dict) -> dict:
        """The audit step's arguments for :func:`thresher.jobs.audit.run_audit`, paths resolved."""
        self._check_keys(step, _AUDIT_KEYS, "audit step")
        args = {k: v for k, v in _plain(step).items() if k != "audit"}
        args["label_field"] = str(step["audit"])
        if args.get("probs_from"):
            args["probs_from"] = str(self._path(args["probs_from"]))
        if isinstance(args.get("classes"), str):
            args["classes"] = [c.strip() for c in args["classes"].split(",")]
        return args

    def _experiment_step(self, step: dict, kind: str) -> dict:
        """An ``evaluate`` step's experiment and options: ``active`` first in its recipe, ``pruning`` or
        ``label-errors`` after an audit step; checked now, with the step's line."""
        from thresher.evaluate.active import ActiveConfig
        from thresher.evaluate.curation import EXPERIMENTS, CurationConfig, parse_fraction

        experiment = str(step.get("evaluate"))
        allowed = ("active",) if kind == "active" else EXPERIMENTS
        if experiment not in allowed:
            raise ConfigError(f"{self._where(step)}: " + (
                "a recipe's first evaluate step is 'evaluate: active' (pruning and label-errors follow an audit "
                "step)" if kind == "active" else f"after an audit step, evaluate is one of {', '.join(EXPERIMENTS)}"))
        self._check_keys(step, _ACTIVE_KEYS if kind == "active" else _CURATION_KEYS, f"evaluate {experiment} step")
        if not step.get("heldout"):
            raise ConfigError(f"{self._where(step)}: the evaluate step needs 'heldout' (a labelled test set)")
        args = _plain(step)
        options = {"seeds": args["seeds"]} if "seeds" in args else {}
        methods = args.get("methods")
        if methods is not None:
            methods = tuple(str(m).strip() for m in (methods if isinstance(methods, list) else str(methods).split(",")))
        try:
            if kind == "active":
                names = {"start_labels": "start", "batch_labels": "batch", "max_labels": "max_labels",
                         "features": "features"}
                config = ActiveConfig(**options, **{names[k]: args[k] for k in names if k in args},
                                      **({"strategies": methods} if methods else {}))
            else:
                budgets = args.get("budgets")
                if budgets is not None:
                    budgets = tuple(parse_fraction(b) for b in (budgets if isinstance(budgets, list)
                                                           else str(budgets).split(",")))
                config = CurationConfig(experiment=experiment, **options,
                                        **({"methods": tuple(m for m in methods if m != "random")} if methods else {}),
                                        **({"fractions": budgets} if budgets else {}),
                                        **{k: args[k] for k in ("level", "margin") if k in args})
        except (ConfigError, TypeError) as e:
            raise ConfigError(f"{self._where(step)}: {e}") from None
        return {"config": config, "heldout": self._dataset(step["heldout"], "heldout", step.get("__line__")),
                "label_field": str(args.get("label_field", "label"))}

    def _run_first_job(self, out: Path, options: dict, progress: bool, command: list[str] | None,
                       report: bool = True) -> Run:
        """The label or audit job, then the audit's experiments (each into OUT/<experiment>), the filters (as one
        --where) and the selection on its columns; the recipe's seed drives them all, and ``report`` decides
        whether report.html is written (once per directory, after its last step). Or the active-learning
        simulation alone."""
        from thresher.jobs.select import reselect

        kind, args = self.first_job
        seed = options.get("seed", 0)
        if kind == "active":
            from thresher.evaluate.active import run_active

            run_active(self.pool, args["heldout"], out, dataclasses.replace(args["config"], seed=seed),
                       label_field=args["label_field"], workers=options.get("workers"), command=command,
                       report=report)
            return Run(out)
        if kind == "label":
            from thresher.jobs.label import run_labeling as job
        else:
            from thresher.jobs.audit import run_audit as job
        select = next((s for s in self.after_job if isinstance(s, Select)), None)
        run = job(self.pool, out=out, seed=seed, workers=options.get("workers"), progress=progress,
                  command=command, report=report and select is None, **args)
        for experiment in self.experiments:  # on the audit's columns, before a select re-writes the manifest
            from thresher.evaluate.curation import run_curation

            config = dataclasses.replace(experiment["config"], seed=seed)
            run_curation(out, experiment["heldout"], out / config.experiment, config,
                         label_field=experiment["label_field"], workers=options.get("workers"), command=command,
                         report=report)
        if select is None:
            return run
        filters = [f"({s.where})" for s in self.after_job if isinstance(s, Filter)]
        return reselect(out, progress=progress, command=command, report=report, seed=seed,
                        selector=select.selector, score=select.score,
                        budget=select.budget, temperature=select.temperature, threshold=select.threshold,
                        min_tokens=select.min_tokens, token_column=select.token_column, where=" and ".join(filters)
                        or None, embeddings=select.embeddings, labels=select.labels, selector_params=select.params,
                        output_format=select.output_format, workers=options.get("workers"))

    def _stage(self, step: object, i: int) -> Dedup | Score | Filter | Select:
        if not isinstance(step, dict):
            raise ConfigError(f"{self.source}: step {i + 1} must be a mapping such as '- score: gopher'")
        # The step's first key says what it is ('select: topk' may also carry a 'score:' column to rank by).
        kind = next((k for k in step if k != "__line__"), None)
        if kind not in ("dedup", "score", "filter", "select", "mix"):
            raise ConfigError(f"{self._where(step)}: a step starts with dedup, score, filter, select or mix (or "
                              f"label, audit or evaluate: active, as the first step; evaluate: pruning after an "
                              f"audit); got {kind or 'nothing'}")
        params = {k: v for k, v in step.items() if k not in (kind, "__line__")}
        try:
            if kind == "mix":  # draw a mixture: a select step with the mixture selector and these weights
                step = {"select": "mixture", **params, "params": {**params.get("params", {}),
                                                                  "weights": self._mixture(step)},
                        "__line__": step.get("__line__")}
                params = {k: v for k, v in step.items() if k not in ("select", "__line__")}
            if kind == "score":
                return Score(str(step["score"]), _plain(params))
            if kind == "dedup":
                if params.get("embeddings"):
                    params["embeddings"] = str(self._path(params["embeddings"]))
                if params.get("against"):
                    against = params["against"] if isinstance(params["against"], list) else [params["against"]]
                    params["against"] = tuple(str(self._path(x)) for x in against)
                unknown = sorted(set(params) - {f.name for f in dataclasses.fields(Dedup)} - {"method"})
                if unknown:
                    raise ConfigError(f"unknown key(s) {', '.join(unknown)} in dedup step")
                return Dedup(method=str(step["dedup"]), **params)
            if kind == "filter":
                self._check_keys(step, {"filter"}, "filter step")
                return Filter(str(step["filter"]))
            self._check_keys(step, _SELECT_KEYS | {"select"}, "select step")
            if "budget" in params:
                params["budget"] = str(params["budget"])
            if params.get("embeddings"):
                params["embeddings"] = str(self._path(params["embeddings"]))
            if isinstance(params.get("params"), dict):  # the selector's parameters, without YAML's line markers
                params["params"] = _plain(params["params"])
            stage = Select(selector=str(step["select"]), **params)
            from thresher.jobs.select import SelectConfig

            SelectConfig(method="scores", selector=stage.selector, budget=stage.budget, temperature=stage.temperature,
                         threshold=stage.threshold, selector_params=stage.params,
                         embeddings=stage.embeddings)  # validates the select step
            return stage
        except ConfigError as e:
            where = self._where(step)
            raise ConfigError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None

    def _mixture(self, step: dict) -> dict[str, float]:
        """A mix step's weights: a ``thresher mix`` mixture.yaml (a path, relative to the recipe) or a mapping."""
        spec = step["mix"]
        if isinstance(spec, dict):
            return {str(g): w for g, w in _plain(spec).items()}
        from thresher.selectors.mixture import read_mixture

        return read_mixture(self._path(spec))

    def _dataset(self, spec: object, name: str, line: int | None) -> Dataset:
        if isinstance(spec, (str, list)):
            spec = {"path": spec, "__line__": line}
        if not isinstance(spec, dict) or "path" not in spec:
            raise ConfigError(f"{self.source}:{line}: '{name}' must be a path, a list of paths, or a mapping "
                              "with 'path'")
        self._check_keys(spec, _DATASET_KEYS, name)
        paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
        kwargs = {k: spec[k] for k in _DATASET_KEYS - {"path"} if k in spec}
        try:
            return Dataset([str(self._path(p)) for p in paths], **kwargs)
        except ConfigError as e:
            raise ConfigError(f"{self._where(spec)}: {name}: {e}") from None

    def _path(self, p: str) -> Path:
        path = Path(os.path.expanduser(str(p)))
        return path if path.is_absolute() else self.base / path

    def _check_keys(self, mapping: dict, allowed: set[str], what: str) -> None:
        unknown = sorted(set(mapping) - allowed - {"__line__"})
        if unknown:
            raise ConfigError(f"{self._where(mapping)}: unknown key(s) {', '.join(unknown)} in {what}; "
                              f"allowed: {', '.join(sorted(allowed))}")

    def _check_options(self, data: dict) -> None:
        """Top-level options are checked now, with their line, not found wrong half-way through a run."""
        counts = {"seed": 0, "workers": 0, "pool_sample": 2}  # workers 0: every core, as --workers 0
        for key, low in counts.items():
            value = data.get(key)
            if value is None and key == "workers":
                continue
            if key in data and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ConfigError(f"{self._where(data, key)}: '{key}' must be a whole number >= {low}, got {value!r}")
        group = data.get("group_field")
        if "group_field" in data and group is not None and not isinstance(group, str):
            raise ConfigError(f"{self._where(data, 'group_field')}: 'group_field' must be a column name, got {group!r}")
        if data.get("out") is not None and not isinstance(data["out"], str):
            raise ConfigError(f"{self._where(data, 'out')}: 'out' must be a path, got {data['out']!r}")
        if isinstance(data.get("out"), str) and self._path(data["out"]).is_file():
            raise ConfigError(f"{self._where(data, 'out')}: 'out' is a file, not a run directory: {data['out']}")

    def _where(self, mapping: dict, key: str | None = None) -> str:
        if isinstance(mapping, LineDict) and key is not None:
            line = mapping.line_of(key)
        else:
            line = mapping.get("__line__") if isinstance(mapping, dict) else None
        return f"{self.source}:{line}" if line else self.source


def _first_kind(steps: object) -> str | None:
    """What the first of ``steps`` is: its first key (``- evalset: difficulty`` is an evalset step)."""
    if not isinstance(steps, list) or not steps or not isinstance(steps[0], dict):
        return None
    return next((k for k in steps[0] if k != "__line__"), None)


def _plain(obj: object) -> object:
    """The parsed YAML without the line markers, for the manifest and scorer parameters."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items() if k != "__line__"}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj
