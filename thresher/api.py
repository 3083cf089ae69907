"""The Python API, mirroring the CLI verbs: each function runs one job and returns the :class:`Run` it wrote."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from thresher.features.hashed_ngrams import HashedNgramConfig
from thresher.io.dataset import Dataset, read
from thresher.jobs.select import SelectConfig, run_selection
from thresher.run import Run
from thresher.scorers.importance import ImportanceConfig

PathsOrDataset = Dataset | str | os.PathLike | Iterable[str | os.PathLike]


def _dataset(x: PathsOrDataset) -> Dataset:
    return x if isinstance(x, Dataset) else read(x)


def select(pool: PathsOrDataset, *, target: PathsOrDataset | None = None, out: str | os.PathLike,
           method: str = "dsir", selector: str | None = None, budget: str | int | float | None = "5%",
           seed: int = 0, temperature: float | None = None, threshold: float | None = None,
           min_tokens: int | str = "auto",
           format: str = "parquet", group_field: str | None = "domain", workers: int | None = None,
           num_buckets: int = 10_000, ngrams: int = 2, tokenizer: str = "wordpunct",
           length_norm: str = "none", smoothing: float = 1.0, shrink: float = 20.0,
           cache_dir: str | os.PathLike | None = None, progress: bool = True, report: bool = True,
           mixture: str | os.PathLike | dict[str, float] | None = None,
           selector_params: dict | None = None) -> Run:
    """Select records of ``pool`` that resemble ``target`` under ``budget``; returns the :class:`Run`.

    ``budget``: a count (5000), a fraction ("5%", 0.05) or tokens ("2M tokens", whitespace tokens).
    ``selector``: gumbel (importance resampling, default for dsir), topk, threshold, random, or ``match``: the set
    whose n-gram distribution is closest to the target's (``selector_params={"quality_weight": 0}`` leaves DSIR's
    importance out of it; see :class:`thresher.selectors.match.KLMatch`).
    ``mixture``: a ``thresher mix`` mixture.yaml (or ``{group: weight}``) to draw under a token budget, each
    ``group_field`` group's weight x the budget, at random inside the group (no target needed).
    ``report``: write ``report.html`` into the run directory.
    See ``thresher select --help`` for every parameter.
    """
    params: dict = dict(selector_params or {})
    if mixture is not None:
        from thresher.selectors.mixture import read_mixture

        params = {**params, "weights": dict(mixture) if isinstance(mixture, dict) else read_mixture(mixture)}
        selector = "mixture"
        method = "random" if target is None else method
    config = SelectConfig(
        method=method, selector=selector, selector_params=params,
        budget=None if budget is None else str(budget) if not isinstance(budget, float) else budget, seed=seed,
        temperature=temperature, threshold=threshold,
        min_tokens=min_tokens, group_field=group_field, output_format=format, workers=workers,
        features=HashedNgramConfig(num_buckets=num_buckets, ngrams=ngrams, tokenizer=tokenizer),
        importance=ImportanceConfig(smoothing=smoothing, length_norm=length_norm, shrink=shrink))
    return run_selection(_dataset(pool), _dataset(target) if target is not None else None, out, config,
                         cache_dir=cache_dir, progress=progress, report=report)


def score(pool: PathsOrDataset, scorers: list, *, out: str | os.PathLike, target: PathsOrDataset | None = None,
          seed: int = 0, pool_sample: int = 10_000, workers: int | None = None, progress: bool = True,
          report: bool = True) -> Run:
    """Side-car scores for every record (``thresher score``): ``scorers`` are names or ``Score`` stages."""
    from thresher.pipeline import run_scoring

    return run_scoring(_dataset(pool), scorers, out, target=_dataset(target) if target is not None else None,
                       workers=workers, progress=progress, seed=seed, pool_sample=pool_sample, report=report)


def embed(pool: PathsOrDataset, *, out: str | os.PathLike, backend: str = "static", dtype: str = "float16",
          workers: int | None = None, progress: bool = True, report: bool = True) -> Run:
    """Cached embeddings of every record (``thresher embed``); ``Run.embeddings()`` reads them."""
    from thresher.jobs.embed import run_embedding

    return run_embedding(_dataset(pool), out, backend=backend, dtype=dtype, workers=workers, progress=progress,
                         report=report)


def deduplicate(pool: PathsOrDataset, *, out: str | os.PathLike, method: str | None = None, threshold: float = 0.7,
          keep: str = "first", embeddings: str | os.PathLike | None = None, format: str = "parquet",
          workers: int | None = None, report: bool = True, against: PathsOrDataset | list | None = None,
          ngram: int | None = None, min_overlap: float = 0.0) -> Run:
    """Drop exact / near / semantic duplicates (``thresher dedup``; ``method`` default ``both``); kept records in
    ``selected/``. With ``against`` (reference sets: a path, a Dataset, or a list of them), drop instead the pool
    records sharing an ``ngram``-word n-gram (``method="ngram"``, the default; 13 words) or their normalised text
    (``"exact"``) with a reference record, or near-duplicates of one (``"minhash"``, Jaccard >= ``threshold``);
    ``min_overlap``: the share of a record's n-grams that must match."""
    from dataclasses import replace

    from thresher.dedup import MinHashConfig
    from thresher.dedup.semantic import SemanticConfig
    from thresher.jobs.dedup import NORMALIZE, run_dedup

    if against is not None:
        from thresher.dedup.reference import reference_config
        from thresher.jobs.decontaminate import run_decontamination

        references = against if isinstance(against, list) else [against]
        config = reference_config(method, ngram, min_overlap, minhash=MinHashConfig(threshold=threshold))
        return run_decontamination(_dataset(pool), [_dataset(r) for r in references], out, config,
                                   output_format=format, report=report, workers=workers)
    method = method or "both"

    return run_dedup(_dataset(pool), out, method=method, exact=replace(NORMALIZE["lower"], keep=keep),
                     minhash=MinHashConfig(threshold=threshold, keep=keep), output_format=format,
                     semantic=SemanticConfig(keep=keep), embeddings=embeddings, report=report, workers=workers)


def evaluate(pool: PathsOrDataset, *, out: str | os.PathLike, heldout: PathsOrDataset | None = None,
             target: PathsOrDataset | None = None, methods: str | list[str] = "dsir,random,stratified",
             budgets: str | list[str] = ("1%", "5%", "20%"), seeds: int = 5, proxy=None,
             workers: int | None = None, progress: bool = True, report: bool = True, **options):
    """Compare selection methods with random at equal budgets (``thresher evaluate``); returns an Evaluation.

    ``options`` are :class:`thresher.evaluate.harness.EvaluateConfig` fields (label_column, metrics, level, ...).
    ``proxy(train, heldout, seed) -> {metric: value or per-heldout-record values}`` trains your own model.
    """
    from thresher.evaluate.harness import EvaluateConfig, run_evaluation

    config = EvaluateConfig(methods=methods, budgets=list(budgets) if not isinstance(budgets, str) else budgets,
                            seeds=seeds, **options)
    return run_evaluation(_dataset(pool), _dataset(heldout) if heldout is not None else None, out,
                          target=_dataset(target) if target is not None else None, config=config, proxy=proxy,
                          workers=workers, progress=progress, report=report)


def label(pool: PathsOrDataset, lfs, *, out: str | os.PathLike, classes: list[str] | None = None,
          model: str | None = None, model_params: dict | None = None, dev: PathsOrDataset | None = None,
          label_field: str = "label", dev_where: str | None = None, class_balance: str | list[float] = "estimate",
          end_model: str | None = None,
          scores_from: str | os.PathLike | None = None, seed: int = 0, workers: int | None = None,
          progress: bool = True, report: bool = True, lf_timeout: float | None = None) -> Run:
    """Weak supervision (``thresher label``): apply LFs (a .py/.yaml file, or a list of ``@th.lf`` functions with
    ``classes``), fit a label model, write ``label``/``label_confidence``/``prob_<class>`` side-car scores.
    ``dev_where="split == 'dev'"`` takes the dev records from a file that also holds others (the bundled sets)."""
    from thresher.jobs.label import run_labeling

    return run_labeling(_dataset(pool), lfs, out, classes=classes, model=model, model_params=model_params,
                        dev=_dataset(dev) if dev is not None else None, label_field=label_field,
                        dev_where=dev_where, class_balance=class_balance, end_model=end_model,
                        scores_from=scores_from, seed=seed,
                        workers=workers, progress=progress, report=report, lf_timeout=lf_timeout)


def audit(pool: PathsOrDataset, *, out: str | os.PathLike, label_field: str = "label",
          classes: list[str] | None = None, features: str = "hashed", folds: int = 5, l2: float = 1e-4,
          filter_by: str = "prune_by_noise_rate", quality: str = "self_confidence",
          probs_from: str | os.PathLike | None = None, outlier_k: int = 10, split_field: str | None = None,
          duplicate_threshold: float | None = 0.7, dynamics: str | list[str] | None = None,
          dynamics_params: dict | None = None, seed: int = 0, workers: int | None = None, progress: bool = True,
          report: bool = True) -> Run:
    """Audit labels (``thresher audit``): cross-validated probabilities, then ``is_label_issue`` (confident
    learning), ``label_quality``, ``suggested_label``, ``outlier_score``, ``near_duplicate_of`` and
    ``label_conflict`` per record as side-car scores; ``split_field`` finds train/test leakage; ``dynamics``
    (``"el2n,aum"`` or ``"all"``) adds training-dynamics scores."""
    from thresher.jobs.audit import run_audit

    return run_audit(_dataset(pool), out, label_field=label_field, classes=classes, features=features, folds=folds,
                     l2=l2, filter_by=filter_by, quality=quality, probs_from=probs_from, outlier_k=outlier_k,
                     split_field=split_field, duplicate_threshold=duplicate_threshold, dynamics=dynamics,
                     dynamics_params=dynamics_params, seed=seed, workers=workers, progress=progress, report=report)


def evaluate_curation(audit_run: str | os.PathLike | Run, heldout: PathsOrDataset, *, out: str | os.PathLike,
                      experiment: str = "pruning", methods: list[str] | None = None,
                      fractions: list[float] | None = None, seeds: int = 10, seed: int = 0, label_field: str = "label",
                      level: float = 0.95, margin: float = 0.0, workers: int | None = None,
                      report: bool = True) -> list[dict]:
    """Labelled-data curation against random (``thresher evaluate --experiment``): ``pruning`` keeps ``fractions``
    of an audited pool by each method's score, ``label-errors`` drops the audit's flagged records; a classifier
    trained on each is tested on ``heldout``. Returns the result rows (also in ``out/results.csv``; with
    ``report``, ``out/report.html``)."""
    from thresher.evaluate.curation import CurationConfig, run_curation

    options = {k: tuple(v) for k, v in (("methods", methods), ("fractions", fractions)) if v is not None}
    config = CurationConfig(experiment=experiment, seeds=seeds, seed=seed, level=level, margin=margin, **options)
    path = audit_run.path if isinstance(audit_run, Run) else audit_run
    return run_curation(path, _dataset(heldout), out, config, label_field=label_field, workers=workers,
                        report=report)


def evaluate_active(pool: PathsOrDataset, heldout: PathsOrDataset, *, out: str | os.PathLike,
                    strategies: list[str] | None = None, start: int = 100, batch: int = 100, max_labels: int = 2000,
                    seeds: int = 10, seed: int = 0, label_field: str = "label", features: str | None = None,
                    workers: int | None = None, report: bool = True) -> list[dict]:
    """Simulated active learning (``thresher evaluate --experiment active``) on a labelled ``pool``: learning
    curves of each acquisition strategy vs random on ``heldout``; returns per-strategy results (area under the
    curve vs random, final accuracy, labels needed to reach random's final accuracy). ``features``: the
    classifier's (hashed, tfidf, static, minilm; default :class:`~thresher.evaluate.active.ActiveConfig`'s)."""
    from thresher.evaluate.active import ActiveConfig, run_active

    options: dict = {"strategies": tuple(strategies)} if strategies is not None else {}
    if features is not None:
        options["features"] = features
    config = ActiveConfig(start=start, batch=batch, max_labels=max_labels, seeds=seeds, seed=seed, **options)
    return run_active(_dataset(pool), _dataset(heldout), out, config, label_field=label_field, workers=workers,
                      report=report)


def generate_lfs(dev: PathsOrDataset, *, out: str | os.PathLike, label_field: str = "label",
                 dev_where: str | None = None, classes: list[str] | None = None, like: str | os.PathLike | None = None,
                 method: str | list[str] = "keywords", sample: int | None = None, seed: int = 0,
                 params: dict | None = None, descriptions: dict[str, str] | None = None, backend: str = "static",
                 prompt: str | None = None, answers: dict[str, list[str]] | None = None, lm: str = "smollm2",
                 chat: bool = False):
    """LFs that write themselves (``thresher generate-lfs``): keyword (``method="keywords"``), nearest-centroid
    (``"centroid"``), zero-shot (``"zero-shot"``, with ``descriptions``) and prompted-LM (``"prompt"``, with
    ``prompt``, ``answers`` per class and the causal LM ``lm``) LFs from labelled ``dev`` records, written as an
    ordinary .yaml LF file, each with its dev precision and coverage. ``like``: an LF file whose classes the new one
    takes, to merge with it (``th.label(pool, [like, out], ...)``)."""
    from thresher.jobs.generate_lfs import generate_lfs as run_generation

    return run_generation(_dataset(dev), out, label_field=label_field, dev_where=dev_where, classes=classes,
                          like=like, method=method, sample=sample, seed=seed, params=params,
                          descriptions=descriptions, backend=backend, prompt=prompt, answers=answers, lm=lm,
                          chat=chat)


def reselect(run: Run | str | os.PathLike, out: str | os.PathLike | None = None, **changes: object) -> Run:
    """Select again from a run's scores (``thresher select --from-run``) with other budget, seed, selector,
    temperature, threshold, min_tokens, score, where, token_column, embeddings, labels, selector_params or
    output_format; writes to ``out``, or in place. Nothing is featurized or scored again."""
    from thresher.jobs.select import reselect as reselect_run

    return reselect_run(run.path if isinstance(run, Run) else run, out=out, **changes)


def compare(run: Run | str | os.PathLike, *others: Run | str | os.PathLike, out: str | os.PathLike,
            heldout: PathsOrDataset | None = None, seeds: int = 5, report: bool = True, **options: object):
    """A selection (and ``others`` of the same pool) against random and stratified selections of the same size,
    measured on ``heldout`` (default: half of the run's target); returns the Evaluation written to ``out``.

    ``options`` are :class:`thresher.evaluate.harness.EvaluateConfig` fields (label_column, metrics, level...).
    """
    from thresher.evaluate.harness import EvaluateConfig, compare_runs

    config = EvaluateConfig(methods=["random", "stratified"], seeds=seeds, **options)
    heldout_data = _dataset(heldout) if heldout is not None else None
    return compare_runs([run, *others], heldout_data, out, config=config, report=report)


def mix_from_runs(mixtures: str | os.PathLike, metrics: str | os.PathLike, objective: str, *,
                  out: str | os.PathLike, regressor: str = "gp", predict: str | os.PathLike | None = None,
                  seed: int = 0, **options: object) -> Run:
    """RegMix from runs already done (``thresher mix --from-runs``): fit ``regressor`` (gp, lightgbm, mixing_law)
    from the mixtures CSV to the metrics CSV's ``objective`` column, search the simplex for the lowest prediction,
    write ``out/mixture.yaml`` (and ``out/predictions.csv`` for ``predict``). ``options``: folds, n_samples,
    top_k, strength, budget."""
    from thresher.mix.job import run_mix_from_runs

    return run_mix_from_runs(mixtures, metrics, objective, out, regressor=regressor, predict=predict, seed=seed,
                             **options)


def mix(pool: PathsOrDataset, *, out: str | os.PathLike, method: str = "regmix",
        target: PathsOrDataset | list[PathsOrDataset] | None = None, target_weights: list[float] | None = None,
        group_field: str = "domain", budget: str | int | float | None = None, seed: int = 0,
        workers: int | None = None, **options: object) -> Run:
    """Mixture weights over ``pool``'s ``group_field`` values (``thresher mix --pool``): ``method="regmix"`` trains
    n-gram proxies on sampled mixtures, measures them on ``target`` (one dataset, or a list blended by
    ``target_weights``), fits and searches; ``method="doremi"`` (no target) trains a reference and a Group DRO
    n-gram proxy online; a baseline method (proportional, uniform, temperature, unimax) needs no target.
    ``options``: runs, proxy_tokens, proxy, regressor, order, max_epochs, folds, n_samples, top_k, strength for
    regmix; proxy_tokens, steps, eta, smoothing, order, max_epochs for doremi; tau, max_epochs for the baselines."""
    from thresher.errors import ConfigError
    from thresher.mix.job import run_mix_baseline, run_mix_doremi, run_mix_online, run_mix_regmix

    if method == "doremi":
        if target is not None:
            raise ConfigError("doremi needs no target: it minimises the worst group's excess loss")
        return run_mix_doremi(_dataset(pool), out, group_field=group_field, budget=budget, seed=seed,
                              workers=workers, **options)
    targets = [] if target is None else target if isinstance(target, list) else [target]
    if method in ("aioli", "skillit"):
        return run_mix_online(_dataset(pool), [_dataset(t) for t in targets], out, method=method,
                              group_field=group_field, target_weights=target_weights, budget=budget, seed=seed,
                              workers=workers, **options)
    if method not in ("regmix", "mixing_laws"):
        return run_mix_baseline(_dataset(pool), out, method=method, group_field=group_field, budget=budget,
                                workers=workers, **options)
    return run_mix_regmix(_dataset(pool), [_dataset(t) for t in targets], out, group_field=group_field,
                          target_weights=target_weights, budget=budget, seed=seed, workers=workers, method=method,
                          **options)


def mixture_weights(method: str, tokens: dict[str, float], *, tau: float | None = None,
                    budget: str | float | None = None, max_epochs: float = 1.0) -> dict[str, float]:
    """Baseline mixture weights from tokens per group: proportional, uniform, temperature (``tau``: p ∝ share^(1/τ))
    or unimax (``budget`` tokens, at most ``max_epochs`` passes over any group); a dict group -> weight."""
    from thresher.mix.baselines import baseline_weights
    from thresher.mix.job import parse_token_budget

    weights = baseline_weights(method, list(tokens.values()), tau=tau, max_epochs=max_epochs,
                               budget=parse_token_budget(budget) if isinstance(budget, str) else budget)
    return dict(zip(tokens, weights.tolist()))


def evalset(scores: str | os.PathLike, *, budget: int, out: str | os.PathLike, method: str = "difficulty",
            seed: int = 0, items: str | os.PathLike | None = None, label_field: str | None = None,
            **fields: str) -> Path:
    """Choose ``budget`` evaluation items from seen systems' ``scores`` (``thresher evalset``): writes
    ``out/selected/ids.txt`` and what ``evalset_estimate`` needs; returns ``out``. ``method``: ``METHOD`` or
    ``METHOD+ESTIMATOR`` (say ``random+control``). ``fields``: item_field, system_field, score_field of the table."""
    from thresher.evalset.job import run_evalset

    return run_evalset(scores, out, budget=budget, method=method, seed=seed, items=items, label_field=label_field,
                       **fields)


def evalset_estimate(run: str | os.PathLike, scores: str | os.PathLike, *, out: str | os.PathLike,
                     level: float | None = None, **fields: str) -> list[dict]:
    """New systems' estimated full-set scores with intervals, from their ``scores`` on an evalset ``run``'s items
    (``thresher evalset estimate``); rows of ``out/estimates.csv``."""
    from thresher.evalset.job import run_estimate

    return run_estimate(run, scores, out, level=level, **fields)


def evalset_check(scores: str | os.PathLike, *, out: str | os.PathLike, methods=("random", "difficulty"),
                  budgets=(25, 50, 100), splits: int = 100, seed: int = 0, level: float = 0.95,
                  items: str | os.PathLike | None = None, label_field: str | None = None, **fields: str) -> list[dict]:
    """Evalset methods against random over seen/new splits of the systems in a full ``scores`` table
    (``thresher evalset --check``); rows of ``out/results.csv``."""
    from thresher.evalset.check import CheckConfig
    from thresher.evalset.job import run_evalset_check

    return run_evalset_check(scores, out, config=CheckConfig(tuple(methods), tuple(budgets), splits, seed, level),
                             items=items, label_field=label_field, **fields)
