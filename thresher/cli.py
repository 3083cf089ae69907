"""Command-line interface: thin wrappers that parse options, build a job and print its summary."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import click

from thresher._version import __version__
from thresher.errors import ConfigError, ThresherError

SELECT_EXAMPLES = """
\b
Examples:
  # 5% of the pool most like the target, by DSIR importance resampling
  thresher select --pool pool.parquet --target wiki_sample.jsonl --budget 5% --out runs/wiki
\b
  # a token budget, top-k instead of sampling, JSONL output
  thresher select --pool 'data/*.jsonl.gz' --target t.jsonl --selector topk \\
      --budget "2M tokens" --format jsonl --out runs/wiki2m
\b
  # the set whose n-gram distribution is closest to the target's, not the top records one by one
  thresher select --pool pool.parquet --target wiki_sample.jsonl --selector match --budget 5% --out runs/wm
\b
  # re-select from the saved scores with another budget and seed (no re-scoring)
  thresher select --from-run runs/wiki --budget 10000 --seed 3 --out runs/wiki10k
\b
  # select from a `thresher score` run: filter on its columns, rank by one of them
  thresher select --from-run runs/scored --where "gopher_pass and lang == 'en'" \\
      --score classifier --selector topk --budget 5% --out runs/top
\b
  # skip (and count) malformed records instead of stopping at the first
  thresher select --pool dirty.jsonl --target t.jsonl --on-error skip --out runs/x
"""


class _Terminated(BaseException):
    """SIGTERM (sent by ``timeout``, Slurm, Kubernetes) raised where the main process is, so that worker pools
    shut down and temporary files are removed on the way out, as for Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise _Terminated


def _describe_os_error(e: OSError) -> str:
    """An OSError as one line: what failed, on which file, and what it means for the run."""
    if e.errno is None and "written" in str(e):  # numpy's short write: the disk filled up under it
        what = f"a write was cut short ({e}): is the disk full?"
    else:
        what = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "") + \
            (f" ({type(e).__name__}, errno {e.errno})" if e.errno is not None else "")
    return f"{what}; the run did not finish and its directory has no new manifest.json"


def _handle_errors(fn: Callable) -> Callable:
    """Turn user errors into one line on stderr and exit code 2, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return fn(*args, **kwargs)
        except ThresherError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except BrokenPipeError:  # stdout closed early (| head): the job itself finished
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except OSError as e:  # disk full, read-only or vanished folders: one line, and no manifest was written
            click.echo(f"error: {_describe_os_error(e)}", err=True)
            sys.exit(2)
        except _Terminated:
            click.echo("error: terminated (SIGTERM) before the command finished; a run directory without "
                       "manifest.json is incomplete, and the same command resumes from the cached shards", err=True)
            sys.exit(128 + signal.SIGTERM)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="thresher")
def main() -> None:
    """thresher: choose which records to train on, label, and evaluate on.

    \b
    Start with:  thresher demo
    Then:        thresher select --help
    """


def _reading_options(fn: Callable) -> Callable:
    """The options every pool-reading job shares: fields, error policy, batch size, workers, output style."""
    options = [
        click.option("--text-field", default="text", show_default=True, help="Field holding the text."),
        click.option("--id-field", default="id", show_default=True,
                     help="Field holding a unique id; if absent, ids are <file>:<line or row>."),
        click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True,
                     help="Malformed records: stop with an error naming file and line, or skip and count them."),
        click.option("--batch-size", type=int, default=4096, show_default=True, help="Records per batch."),
        click.option("--workers", type=int, default=None, help="Processes. [default: all cores]"),
        click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors."),
        click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return _duplicate_ids_option(fn)


def _duplicate_ids_option(fn: Callable) -> Callable:
    """``--duplicate-ids``: what every Dataset the command opens does with a repeated record id."""

    @functools.wraps(fn)
    def wrapper(*args, duplicate_ids: str, **kwargs):
        from thresher.io.dataset import duplicate_ids_default

        with duplicate_ids_default(duplicate_ids):
            return fn(*args, **kwargs)

    return click.option("--duplicate-ids", type=click.Choice(["error", "rename"]), default="error",
                        show_default=True,
                        help="A record id seen before: stop with an error naming both places, or keep the record "
                             "as ID#2 (ID#3, ...: the first suffix no earlier record uses).")(wrapper)


def _engine_options(fn: Callable) -> Callable:
    """``--engine local|ray`` and ``--ray-address``: where the job's map stages run (same results either way)."""
    from thresher.engine import ENGINES

    @functools.wraps(fn)
    def wrapper(*args, engine_name: str = "local", ray_address: str | None = None, **kwargs):
        from thresher.engine import engine

        with engine(engine_name, ray_address):
            return fn(*args, **kwargs)

    wrapper = click.option("--ray-address", default=None, metavar="ADDRESS",
                           help="Ray cluster to use: auto (a running cluster), ray://host:10001, or host:port. "
                                "[default: start a local one]")(wrapper)
    return click.option("--engine", "engine_name", type=click.Choice(ENGINES), default="local", show_default=True,
                        help="Run the map stages in local worker processes or as Ray tasks (pip install "
                             "'thresher[ray]'); outputs are identical.")(wrapper)


def _report_option(fn: Callable) -> Callable:
    """``--report/--no-report``: every job that writes a run directory also writes its report.html."""
    return click.option("--report/--no-report", "report", default=True, show_default=True,
                        help="Write OUT/report.html (plots, composition, examples; see `thresher report`).")(fn)


def _print_result(run, as_json: bool, quiet: bool, report: bool = False) -> None:
    if as_json:
        click.echo(json.dumps({"run": str(run.path), "counts": run.counts, "metrics": run.metrics,
                               "timings": run.manifest.get("timings")}, default=str))
    elif not quiet:
        click.echo(run.summary())
        click.echo(f"\nrun directory: {run.path}")
        _print_report_path(run.path, report)


def _print_report_path(path: Path, report: bool) -> None:
    """Every job that writes a report says where it is (a report that failed only warned, so check it exists)."""
    if report and (Path(path) / "report.html").is_file():
        click.echo(f"report: {Path(path) / 'report.html'}")


def _key_values(items: tuple[str, ...]) -> dict:
    """KEY=VALUE options as a dict, values parsed as YAML scalars (32, 0.5, true, equal)."""
    from thresher.errors import ConfigError
    from thresher.yaml_loading import parse_value

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}")
        out[key] = parse_value(value, key)
    return out


def _class_text(item: str) -> tuple[str, str]:
    """A CLASS=TEXT option as (class, text)."""
    from thresher.errors import ConfigError

    label, eq, text = item.partition("=")
    if not eq or not label or not text.strip():
        raise ConfigError(f"expected CLASS=TEXT, got {item!r}")
    return label, text


def _class_answers(items: Sequence[str]) -> dict[str, list[str]] | None:
    """Repeated CLASS=WORD options as class -> words (None when none were given)."""
    answers: dict[str, list[str]] = {}
    for label, word in map(_class_text, items):
        answers.setdefault(label, []).append(word)
    return answers or None


def _min_tokens(value: str) -> int | str:
    from thresher.errors import ConfigError

    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--min-tokens takes a whole number or 'auto', got {value!r}") from None


@main.command(epilog=SELECT_EXAMPLES)
@click.option("--pool", "pool", multiple=True, metavar="PATH",
              help="Pool files, globs or folders (repeat for several). JSONL(.gz/.zst/.bz2/.xz), Parquet, CSV/TSV, "
                   ".txt folders, Arrow / HF save_to_disk folders.")
@click.option("--target", "target", multiple=True, metavar="PATH", help="A sample of the text you want more of.")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory to write.")
@click.option("--from-run", type=click.Path(exists=True, file_okay=False),
              help="Re-select from this run's scores (no re-featurizing); without --out the new selection replaces "
                   "this run's own.")
@click.option("--method", type=click.Choice(["dsir", "random"]), default=None, show_default="dsir",
              help="How to score pool records.")
@click.option("--selector", type=click.Choice(["gumbel", "topk", "random", "threshold", "match", "cover", "mmd",
                                               "kcenter", "facility", "clusters", "quotas", "quadmix", "mixture"]),
              default=None,
              help="How to select from scores. [default: gumbel for dsir, random for random; with --from-run, the "
                   "run's own selector for a select or run directory, topk for a score or label run]. "
                   "match: the set whose n-gram distribution is closest to the target's (greedy KL, with DSIR's "
                   "or --score's values as quality; --selector-param quality_weight=0 ignores them); "
                   "cover (each target record covered by its nearest selected records) and mmd (the selection's "
                   "mean embedding matched to the target's) need --target and --embeddings; "
                   "kcenter, facility, clusters need --embeddings; quotas, quadmix need --labels; mixture: see "
                   "--mixture.")
@click.option("--mixture", "mixture", default=None, type=click.Path(exists=True, dir_okay=False),
              metavar="MIXTURE.yaml",
              help="Draw this mixture (thresher mix's mixture.yaml): each --group-field group's weight x the token "
                   "--budget, at random inside the group (or by --score with --selector-param within=score).")
@click.option("--embeddings", default=None, type=click.Path(exists=True, file_okay=False),
              help="An embed run (thresher embed) of the same pool, for cover, mmd, kcenter, facility and clusters.")
@click.option("--labels", default=None, metavar="COLUMN",
              help="Score column with a group per record (group, lang, ...) for quotas and quadmix.")
@click.option("--selector-param", "selector_params", multiple=True, metavar="KEY=VALUE",
              help="A diversity selector parameter, e.g. k_neighbors=32, allocation=equal, within=score.")
@click.option("--budget", default=None, show_default="5%",
              help="Records (5000, 10k), a fraction (5%, 0.05) or tokens ('2M tokens'); a cap for threshold.")
@click.option("--seed", type=int, default=None, show_default="0", help="Random seed.")
@click.option("--temperature", type=float, default=None, help="gumbel: sample with exp(score / temperature).")
@click.option("--threshold", type=float, default=None, help="threshold: keep records with score >= this.")
@click.option("--score", "score_column", default=None, metavar="COLUMN|SCORER",
              help="The score column to rank by (or a scorer name for its main column). [default: dsir]")
@click.option("--where", default=None, metavar="EXPR",
              help="Keep only records where EXPR holds, e.g. \"gopher_pass and lang == 'en' and n_words >= 50\" "
                   "(parsed safely; columns, literals, comparisons, and/or/not, in [...]).")
@click.option("--token-column", default=None, show_default="n_words", metavar="COLUMN",
              help="What a token budget counts: n_words (whitespace) or, after the tokens scorer, n_tiktoken.")
@click.option("--min-tokens", default=None, show_default="auto", metavar="N|auto",
              help="Filter records with fewer tokens (of --tokenizer); counted as filtered. auto: half the target's "
                   "5th-percentile length; 100 reproduces DSIR's min_example_length; 0 keeps everything.")
@click.option("--format", "output_format", type=click.Choice(["parquet", "jsonl", "jsonl.gz", "ids"]),
              default=None, show_default="parquet", help="How to write the selected records.")
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@click.option("--id-field", default="id", show_default=True,
              help="Field holding a unique id; if absent, ids are <file>:<line or row>.")
@click.option("--group-field", default="domain", show_default=True,
              help="Optional pool field to report composition by (never used for selection).")
@click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True,
              help="Malformed records: stop with an error naming file and line, or skip and count them.")
@click.option("--batch-size", type=int, default=4096, show_default=True, help="Records per batch.")
@click.option("--workers", type=int, default=None, help="Processes for featurizing. [default: all cores]")
@click.option("--num-buckets", type=int, default=10_000, show_default=True, help="Hashed n-gram buckets.")
@click.option("--ngrams", type=int, default=2, show_default=True, help="Highest n-gram order.")
@click.option("--tokenizer", type=click.Choice(["wordpunct", "whitespace"]), default="wordpunct",
              show_default=True)
@click.option("--length-norm", type=click.Choice(["none", "ref", "mean"]), default="none", show_default=True,
              help="none: DSIR's log importance weight (a sum over n-grams); ref: mean log-ratio per n-gram x the "
                   "target's median length (length-independent); mean: per n-gram.")
@click.option("--shrink", type=float, default=20.0, show_default=True,
              help="ref/mean: shrink short records' scores toward the pool average with this many pseudo-n-grams.")
@click.option("--smoothing", type=float, default=1.0, show_default=True, help="Additive smoothing per bucket.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where to cache features. [default: OUT/cache]")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary.")
@_duplicate_ids_option
@_report_option
@_handle_errors
@_engine_options
def select(pool, target, out, from_run, method, selector, mixture, embeddings, labels, selector_params, budget, seed,
           temperature, threshold, score_column, where, token_column, min_tokens,
           output_format, text_field, id_field, group_field, on_error, batch_size, workers, num_buckets, ngrams,
           tokenizer, length_norm, shrink, smoothing, cache_dir, quiet, as_json, report) -> None:
    """Select the pool records most like the target, under a budget, and write a run directory."""
    from thresher.errors import ConfigError

    command = ["thresher", *sys.argv[1:]]
    selector_params = _key_values(selector_params)
    if mixture:
        from thresher.selectors.mixture import read_mixture

        if selector not in (None, "mixture"):
            raise ConfigError(f"--mixture draws a mixture; it does not combine with --selector {selector}")
        selector, selector_params = "mixture", {**selector_params, "weights": read_mixture(mixture)}
        method = method or ("random" if not target and not from_run else None)
    if from_run:
        if pool or target or method:
            raise ConfigError("--from-run re-uses that run's pool, target and scores; do not give --pool, "
                              "--target or --method with it")
        from thresher.jobs.select import reselect

        if out is None and not quiet:
            click.echo(f"no --out: the new selection replaces the one in {from_run}", err=True)
        run = reselect(from_run, out=out, progress=not quiet, command=command, selector=selector,
                       budget=budget, seed=seed, temperature=temperature, threshold=threshold,
                       min_tokens=_min_tokens(min_tokens) if min_tokens is not None else None,
                       output_format=output_format, score=score_column, where=where, workers=workers,
                       token_column=token_column, embeddings=embeddings, labels=labels,
                       selector_params=selector_params or None, report=report)
        _print_result(run, as_json, quiet, report)
        return
    if not pool:
        raise ConfigError("give --pool PATH (or --from-run DIR)")
    if not out:
        raise ConfigError("give --out DIR for the run directory")
    from thresher.features.hashed_ngrams import HashedNgramConfig
    from thresher.io.dataset import Dataset
    from thresher.jobs.select import SelectConfig, run_selection
    from thresher.scorers.importance import ImportanceConfig

    method = method or "dsir"
    config = SelectConfig(
        method=method, selector=selector,
        budget=budget if budget is not None else (None if selector == "threshold" else "5%"),
        seed=seed or 0, temperature=temperature, threshold=threshold, score=score_column, where=where,
        token_column=token_column or "n_words", embeddings=embeddings, labels=labels,
        selector_params=selector_params,
        min_tokens=_min_tokens(min_tokens) if min_tokens is not None else "auto",
        group_field=group_field or None, output_format=output_format or "parquet", workers=workers,
        features=HashedNgramConfig(num_buckets=num_buckets, ngrams=ngrams, tokenizer=tokenizer),
        importance=ImportanceConfig(smoothing=smoothing, length_norm=length_norm, shrink=shrink))
    opts = dict(text_field=text_field, id_field=id_field, on_error=on_error, batch_size=batch_size)
    pool_ds = Dataset(list(pool), **opts)
    target_ds = Dataset(list(target), **opts) if target else None
    run = run_selection(pool_ds, target_ds, out, config, cache_dir=cache_dir, progress=not quiet and not as_json,
                        command=command, report=report)
    _print_result(run, as_json, quiet, report)


@main.command(epilog="""
\b
Examples:
  thresher score --pool 'crawl/*.jsonl.gz' --scorers gopher,c4,fineweb --out runs/crawl-rules
  thresher score --pool pool.parquet --target wiki.jsonl --scorers gopher,langid,classifier,tokens \\
      --param classifier.l2=0.001 --out runs/scored
  thresher select --from-run runs/scored --where "gopher_pass and lang == 'en'" --score classifier --budget 5%
""")
@click.option("--pool", "pool", multiple=True, required=True, metavar="PATH", help="Files, globs or folders.")
@click.option("--target", "target", multiple=True, metavar="PATH",
              help="Target sample, for scorers that learn from it (dsir, classifier, similarity, ngram, color).")
@click.option("--scorers", default="gopher,c4,fineweb", show_default=True,
              help="Comma-separated scorer names; `thresher scorers` lists them with their parameters.")
@click.option("--param", "params", multiple=True, metavar="SCORER.KEY=VALUE",
              help="A scorer parameter, e.g. classifier.l2=0.001 or gopher.min_words=30 (repeat for several).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory to write.")
@click.option("--pool-sample", type=int, default=10_000, show_default=True,
              help="Pool records drawn (seeded) as negatives/background for scorers that need them.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--group-field", default="domain", show_default=True,
              help="Optional pool field kept as the 'group' column, for composition reports.")
@click.option("--label-field", default=None, metavar="FIELD",
              help="For the training-dynamics scores (el2n, grand, forgetting, aum, cartography): the field holding "
                   "each record's label; they come from SGD runs on the labelled pool (thresher audit --dynamics, "
                   "with its label-quality columns). [default: label]")
@_reading_options
@_report_option
@_handle_errors
@_engine_options
def score(pool, target, scorers, params, out, pool_sample, seed, group_field, label_field, text_field, id_field,
          on_error, batch_size, workers, quiet, as_json, report) -> None:
    """Score every record; write side-car score columns by id (no selection).

    Rule families add their numeric signals plus <family>_pass and <family>_reason (the first failing rule);
    learned scorers are fitted on --target and a seeded pool sample first, and saved under OUT/fit/. Training-
    dynamics scores of a labelled pool (el2n, grand, forgetting, aum, cartography) are scored on their own.
    """
    from thresher.io.dataset import Dataset
    from thresher.pipeline import Score, run_scoring
    from thresher.scorers.registry import TRAINING_DYNAMICS

    names = [s.strip() for s in scorers.split(",") if s.strip()]
    opts = dict(text_field=text_field, id_field=id_field, on_error=on_error, batch_size=batch_size)
    dynamics = [n for n in names if n in TRAINING_DYNAMICS]
    if dynamics:
        return _score_dynamics(names, dynamics, params, Dataset(list(pool), **opts), out, label_field, seed,
                               workers, quiet, as_json, report)
    if label_field:
        raise ConfigError("--label-field is for the training-dynamics scorers (el2n, grand, forgetting, aum, "
                          "cartography)")
    stages = [Score(name, _scorer_params(params, name, names)) for name in names]
    run = run_scoring(Dataset(list(pool), **opts), stages, out,
                      target=Dataset(list(target), **opts) if target else None, workers=workers,
                      progress=not quiet and not as_json, command=["thresher", *sys.argv[1:]], seed=seed,
                      pool_sample=pool_sample, group_field=group_field or None, report=report)
    if as_json:
        click.echo(json.dumps({"run": str(run.path), "counts": run.counts, "metrics": run.metrics}, default=str))
    elif not quiet:
        click.echo(run.summary())
        _print_report_path(run.path, report)


def _score_dynamics(names, dynamics, params, pool, out, label_field, seed, workers, quiet, as_json, report) -> None:
    """``thresher score --scorers el2n,...``: the audit job with those training dynamics (they need the labels and
    SGD runs over the whole pool, so they are not per-record scorers); ``--param el2n.epochs=5`` sets the runs."""
    from thresher.jobs.audit import run_audit

    if len(dynamics) != len(names):
        others = ", ".join(n for n in names if n not in dynamics)
        raise ConfigError(f"training-dynamics scores ({', '.join(dynamics)}) train on the whole labelled pool: score "
                          f"them on their own, not with {others} (run thresher score again for those)")
    settings: dict = {}
    for name in dynamics:
        settings.update(_scorer_params(params, name, names))
    run = run_audit(pool, out, label_field=label_field or "label", dynamics=dynamics, dynamics_params=settings,
                    outlier_k=0, duplicate_threshold=None, seed=seed, workers=workers,
                    progress=not quiet and not as_json, command=["thresher", *sys.argv[1:]], report=report)
    _print_result(run, as_json, quiet, report)


def _scorer_params(params: tuple[str, ...], name: str, names: list[str]) -> dict:
    """The ``--param scorer.key=value`` entries for one scorer, values parsed as YAML scalars (1e-3, true, x)."""
    from thresher.errors import ConfigError
    from thresher.yaml_loading import parse_value

    out = {}
    for p in params:
        key, eq, value = p.partition("=")
        scorer, dot, param = key.partition(".")
        if not eq or not dot or not param:
            raise ConfigError(f"--param takes SCORER.KEY=VALUE, got {p!r}")
        if scorer not in names:
            raise ConfigError(f"--param {p!r} names scorer {scorer!r}, which is not in --scorers")
        if scorer == name:
            out[param] = parse_value(value, f"--param {key}")
    return out


@main.command(epilog="""
\b
Examples:
  thresher embed --pool pool.parquet --backend static --out runs/emb
  thresher embed --pool 'docs/*.jsonl' --backend minilm --dtype float32 --workers 2 --out runs/emb-minilm
""")
@click.option("--pool", "pool", multiple=True, required=True, metavar="PATH", help="Files, globs or folders.")
@click.option("--backend", type=click.Choice(["static", "minilm"]), default="static", show_default=True,
              help="static: model2vec distilled from MiniLM (fast); minilm: all-MiniLM-L6-v2 (slow on CPU).")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory to write.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Where the embedding shards live (shared across runs). [default: OUT/cache]")
@_reading_options
@_report_option
@_handle_errors
@_engine_options
def embed(pool, backend, dtype, out, cache_dir, text_field, id_field, on_error, batch_size, workers, quiet,
          as_json, report) -> None:
    """Embed every record (cached on disk, resumable) for similarity scores and diversity selection."""
    from thresher.io.dataset import Dataset
    from thresher.jobs.embed import run_embedding

    ds = Dataset(list(pool), text_field=text_field, id_field=id_field, on_error=on_error, batch_size=batch_size)
    run = run_embedding(ds, out, backend=backend, dtype=dtype, workers=workers, cache_dir=cache_dir,
                        progress=not quiet and not as_json, command=["thresher", *sys.argv[1:]], report=report)
    info = run.manifest["embedding"]
    if as_json:
        click.echo(json.dumps({"run": str(run.path), "counts": run.counts, "embedding": info,
                               "timings": run.manifest["timings"]}))
    elif not quiet:
        click.echo(f"embedded {run.counts['embedded']:,} records with {info['backend']} ({info['dim']} dims, "
                   f"{info['dtype']}) in {run.manifest['timings']['embed']:.1f}s\ncache: {info['store']}")
        from thresher.run import input_notes

        for note in input_notes(run.manifest):
            click.echo(note)
        click.echo(f"run directory: {run.path}")
        _print_report_path(run.path, report)


@main.command(epilog="""
\b
Examples:
  thresher dedup --pool 'crawl/*.jsonl.gz' --out runs/dedup                 # exact, then MinHash LSH at J >= 0.7
  thresher dedup --pool docs.parquet --method minhash --threshold 0.8 --keep longest --out runs/d8
  thresher dedup --pool docs.parquet --keep highest --score-from runs/scored --score classifier --out runs/dq
  thresher dedup --pool docs.parquet --method semantic --embeddings runs/emb --similarity 0.9 --out runs/sem
\b
  # decontamination: drop pool records sharing a 13-word n-gram with a test set (the test set is only read)
  thresher dedup --pool 'crawl/*.parquet' --against test_sets/ --out runs/decon
  thresher dedup --pool docs.parquet --against test.jsonl --method exact --out runs/decon-exact
  thresher dedup --pool docs.parquet --against test.jsonl --method minhash --threshold 0.8 --out runs/decon-near
""")
@click.option("--pool", "pool", multiple=True, required=True, metavar="PATH", help="Files, globs or folders.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory to write.")
@click.option("--method", type=click.Choice(["both", "exact", "minhash", "semantic", "ngram"]), default=None,
              help="exact: same normalised text; minhash: near-duplicates by MinHash LSH; both: exact reasons win; "
                   "semantic: SemDeDup on --embeddings; with --against, ngram (shared word n-grams, as GPT-3's "
                   "13-gram decontamination), exact or minhash (near-duplicates of reference records, Jaccard >= "
                   "--threshold). [default: both; with --against, ngram]")
@click.option("--against", "against", multiple=True, metavar="PATH",
              help="Reference sets (files, globs or folders; e.g. test sets): drop pool records that repeat their "
                   "text; the references are only read.")
@click.option("--min-overlap", type=float, default=0.0, show_default=True,
              help="--against with ngram: the share of a record's n-grams that must be in the reference (0: any).")
@click.option("--embeddings", type=click.Path(exists=True, file_okay=False), default=None,
              help="semantic: an embed run of this pool (thresher embed).")
@click.option("--similarity", type=float, default=0.95, show_default=True,
              help="semantic: cosine similarity at or above which two records are duplicates.")
@click.option("--clusters", type=int, default=None, help="semantic: k-means clusters. [default: n / 1000]")
@click.option("--normalize", type=click.Choice(["none", "whitespace", "lower", "punct", "nfkc"]),
              default="lower", show_default=True, help="Exact dedup: how texts are normalised before hashing.")
@click.option("--threshold", type=float, default=0.7, show_default=True, help="Jaccard of word-5-gram sets.")
@click.option("--ngram", type=int, default=None,
              help="Words per shingle (minhash) or n-gram (ngram). [default: 5 for minhash, 13 for ngram]")
@click.option("--num-perm", type=int, default=128, show_default=True, help="MinHash permutations available.")
@click.option("--bands", type=int, default=None, help="LSH bands (with --rows). [default: optimal for threshold]")
@click.option("--rows", type=int, default=None, help="Rows per band.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check each candidate pair's true Jaccard (removes LSH false positives).")
@click.option("--keep", type=click.Choice(["first", "longest", "highest"]), default="first", show_default=True,
              help="Which record of a cluster stays.")
@click.option("--score-from", type=click.Path(exists=True, file_okay=False), default=None,
              help="keep highest: a run (e.g. thresher score) whose --score column ranks duplicates.")
@click.option("--score", "score_column", default=None, help="keep highest: the score column.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--format", "output_format", type=click.Choice(["parquet", "jsonl", "jsonl.gz", "ids"]),
              default="parquet", show_default=True, help="How to write the kept records.")
@_reading_options
@_report_option
@_handle_errors
@_engine_options
def dedup(pool, out, method, against, min_overlap, embeddings, similarity, clusters, normalize, threshold, ngram,
          num_perm, bands, rows, verify, keep, score_from, score_column, seed, output_format, text_field, id_field,
          on_error, batch_size, workers, quiet, as_json, report) -> None:
    """Drop exact and near-duplicate records; keep one per cluster and record why the others went. With --against,
    drop the pool records that repeat text of reference sets instead (decontamination)."""
    from dataclasses import replace

    from thresher.dedup import MinHashConfig
    from thresher.dedup.semantic import SemanticConfig
    from thresher.errors import ConfigError
    from thresher.io.dataset import Dataset
    from thresher.jobs.dedup import NORMALIZE, run_dedup, scores_by_id

    opts = dict(text_field=text_field, id_field=id_field, on_error=on_error, batch_size=batch_size)
    ds = Dataset(list(pool), **opts)
    if against:
        from thresher.dedup.reference import reference_config
        from thresher.jobs.decontaminate import run_decontamination

        config = reference_config(method, ngram, min_overlap, NORMALIZE[normalize],
                                  MinHashConfig(threshold=threshold, num_perm=num_perm, bands=bands, rows=rows,
                                                verify=verify, seed=seed))
        run = run_decontamination(ds, [Dataset([p], **opts) for p in against], out, config,
                                  output_format=output_format, command=["thresher", *sys.argv[1:]], report=report,
                                  workers=workers)
        return _print_result(run, as_json, quiet, report)
    if method == "ngram" or min_overlap:
        raise ConfigError("--method ngram and --min-overlap match the pool against reference sets: give --against")
    method, ngram = method or "both", ngram or 5
    if (keep == "highest") != bool(score_from and score_column):
        raise ConfigError("--keep highest needs --score-from RUN and --score COLUMN (and they need --keep highest)")
    scores = scores_by_id(ds, score_from, score_column) if keep == "highest" else None
    minhash = MinHashConfig(threshold=threshold, ngram=ngram, num_perm=num_perm, bands=bands, rows=rows,
                            verify=verify, keep=keep, seed=seed)
    semantic = SemanticConfig(threshold=similarity, n_clusters=clusters, keep=keep, seed=seed)
    run = run_dedup(ds, out, method=method, exact=replace(NORMALIZE[normalize], keep=keep), minhash=minhash,
                    scores=scores, output_format=output_format, command=["thresher", *sys.argv[1:]],
                    semantic=semantic, embeddings=embeddings, report=report, workers=workers)
    _print_result(run, as_json, quiet, report)


EVALUATE_EXAMPLES = """
\b
Examples:
  # DSIR and the classifier vs random and stratified, 3 budgets x 5 seeds, measured on a held-out target sample
  thresher evaluate --pool pool.parquet --target news.target.parquet --heldout news.heldout.parquet \\
      --methods dsir,classifier,random,stratified --budgets 1%,5%,20% --seeds 5 --label-column domain --out runs/ev
\b
  # no held-out file: half of the target (by id hash) is held out
  thresher evaluate --pool pool.parquet --target t.jsonl --methods dsir,classifier:gumbel --out runs/ev2
\b
  # your own training script per selection and seed; it writes {out}/metrics.json
  thresher evaluate --pool pool.parquet --target t.jsonl --heldout h.jsonl --metrics kl \\
      --proxy-command "python train.py --train {train} --eval {heldout} --out {out} --seed {seed}" --out runs/ev3
\b
  # labelled data: does pruning by EL2N beat random at 30-90% kept? does dropping flagged labels help?
  thresher audit --pool train.parquet --dynamics all --out runs/audit
  thresher evaluate --experiment pruning --from-run runs/audit --heldout test.parquet --seeds 10 --out runs/prune
  thresher evaluate --experiment label-errors --from-run runs/audit --heldout test.parquet --out runs/drop
  thresher evaluate --experiment active --pool train.parquet --heldout test.parquet --methods random,margin,badge \\
      --start-labels 100 --batch-labels 100 --max-labels 2000 --out runs/al
"""


@main.command(epilog=EVALUATE_EXAMPLES)
@click.option("--pool", "pool", multiple=True, metavar="PATH", help="Files, globs or folders (required, except with "
              "--experiment).")
@click.option("--target", "target", multiple=True, metavar="PATH", help="Target sample the methods fit on.")
@click.option("--heldout", "heldout", multiple=True, metavar="PATH",
              help="Separate target sample every metric is measured on. [default: half of --target, by id hash]")
@click.option("--methods", default="dsir,random,stratified", show_default=True,
              help="Comma-separated: a scorer (dsir, classifier, similarity, ...), optionally :SELECTOR (topk, "
                   "gumbel, random), random, stratified, or a mixture at a token budget: mixture:PATH (a thresher "
                   "mix mixture.yaml) or mixture:proportional|uniform|unimax|temperature=TAU over --group-field. "
                   "random is always included.")
@click.option("--baseline", default="random", show_default=True,
              help="The method every other is compared with (e.g. mixture:proportional).")
@click.option("--budgets", default="1%,5%,20%", show_default=True, help="Comma-separated budgets.")
@click.option("--seeds", type=int, default=5, show_default=True, help="Seeds per method and budget.")
@click.option("--seed", type=int, default=0, show_default=True, help="First seed (also fitting and bootstrap).")
@click.option("--metrics", default=None,
              help="Comma-separated from kl (reported as kl_to_heldout), precision, coverage (coverage_distance), "
                   "lm (heldout_perplexity, also per held-out group, and target_loss), classify (proxy_accuracy, "
                   "proxy_macro_f1); either name works. "
                   "[default: all the inputs allow]")
@click.option("--label-column", default=None, metavar="COLUMN",
              help="Labels used only for evaluation: precision, and the classification proxy.")
@click.option("--positive", default=None, metavar="LABEL",
              help="The on-target label for precision. [default: the held-out sample's most common label]")
@click.option("--group-field", default="domain", show_default=True,
              help="Pool field for the stratified baseline and composition; in the held-out sample, the groups "
                   "measured one by one (heldout_perplexity[GROUP]).")
@click.option("--heldout-weights", default=None, metavar="GROUP=W,...",
              help="A blended target: weights over the held-out sample's groups (e.g. news=0.5,wikipedia=0.5), "
                   "reported as target_loss, the weighted mean of each group's cross-entropy (nats per token).")
@click.option("--min-tokens", default="auto", show_default=True, metavar="N|auto",
              help="Length floor for scoring methods, as in thresher select.")
@click.option("--level", type=float, default=0.95, show_default=True, help="Interval level.")
@click.option("--margin", type=float, default=0.0, show_default=True,
              help="Smallest improvement worth calling a win (in the metric's units).")
@click.option("--n-boot", type=int, default=1000, show_default=True, help="Bootstrap replicates.")
@click.option("--embedding-backend", type=click.Choice(["static", "minilm"]), default="static", show_default=True)
@click.option("--lm-order", type=int, default=3, show_default=True, help="n-gram LM proxy order.")
@click.option("--param", "params", multiple=True, metavar="SCORER.KEY=VALUE", help="A scorer parameter.")
@click.option("--pool-sample", type=int, default=10_000, show_default=True,
              help="Pool records drawn (seeded) as negatives/background for scorers that need them.")
@click.option("--target-name", default=None, help="Name of the target in results.csv. [default: file name]")
@click.option("--proxy-command", default=None, metavar="CMD",
              help="Training command per selection and seed, with {train} {heldout} {out} {seed}.")
@click.option("--proxy-timeout", type=float, default=None, help="Seconds per proxy command.")
@click.option("--experiment", type=click.Choice(["pruning", "label-errors", "active"]), default=None,
              help="Labelled data instead, tested on --heldout (labels in --label-column, default label). pruning: "
                   "train on what each of --methods (el2n, easy, grand, aum, forgetting, ambiguous, confident, "
                   "label_quality, stratified [default: el2n,easy,aum,stratified]) keeps of an audited pool "
                   "(--from-run, a thresher audit run) at --budgets [default: 30%,50%,70%,90%]; label-errors: drop "
                   "the flagged records vs as many at random; active: simulate active learning on the labelled "
                   "--pool with --methods (random, margin, entropy, least_confidence, coreset, badge) from "
                   "--start-labels, --batch-labels per round, to --max-labels.")
@click.option("--start-labels", type=click.IntRange(min=1), default=100, show_default=True,
              help="active: labelled records at the start (seeded random).")
@click.option("--batch-labels", type=click.IntRange(min=1), default=100, show_default=True,
              help="active: records acquired per round.")
@click.option("--max-labels", type=click.IntRange(min=1), default=2000, show_default=True,
              help="active: labels at the end of the curve.")
@click.option("--from-run", type=click.Path(exists=True, file_okay=False), default=None,
              help="With --experiment: the thresher audit run of the labelled pool.")
@click.option("--features", type=click.Choice(["hashed", "tfidf", "static", "minilm"]), default=None,
              help="active: the classifier's features (as thresher audit --features). [default: hashed]")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory to write.")
@_report_option
@_reading_options
@_handle_errors
@_engine_options
@click.pass_context
def evaluate(ctx, pool, target, heldout, methods, baseline, budgets, seeds, seed, metrics, label_column, positive,
             group_field, heldout_weights, min_tokens, level, margin, n_boot, embedding_backend, lm_order, params,
             pool_sample, target_name, proxy_command, proxy_timeout, experiment, start_labels, batch_labels,
             max_labels, from_run, features, out, report, text_field, id_field, on_error, batch_size, workers, quiet,
             as_json) -> None:
    """Compare selection methods with random and stratified selection at equal budgets, with intervals.

    Writes OUT/results.csv (one row per method x budget x metric: estimate, interval, improvement over random,
    verdict), per_seed.csv, selections.parquet, evaluation.json and report.html. A method is called better or
    worse only when the whole interval of its improvement clears --margin; otherwise inconclusive.
    """
    from thresher.evaluate.harness import EvaluateConfig, run_evaluation
    from thresher.io.dataset import Dataset

    if experiment == "active":
        return _active_experiment(ctx, pool, heldout, methods, seeds, seed, label_column, start_labels,
                                  batch_labels, max_labels, features, out, report, text_field, id_field, on_error,
                                  batch_size, workers, quiet, as_json)
    if features:
        raise ConfigError("--features is for --experiment active (pruning uses the audit run's features)")
    if experiment:
        return _curation_experiment(ctx, experiment, from_run, pool, heldout, methods, budgets, seeds, seed,
                                    label_column, level, margin, n_boot, out, report, text_field, id_field, on_error,
                                    batch_size, workers, quiet, as_json)
    if not pool:
        raise ConfigError("give --pool PATH (or --experiment with --from-run for labelled data)")
    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    scorer_names = [m.split(":")[0] for m in method_list]
    scorer_params = {name: _scorer_params(params, name, scorer_names) for name in scorer_names}
    config = EvaluateConfig(
        methods=method_list, budgets=budgets, seeds=seeds, seed=seed, metrics=metrics, label_column=label_column,
        positive=positive, group_field=group_field or None, min_tokens=_min_tokens(min_tokens), level=level,
        margin=margin, n_boot=n_boot, embedding_backend=embedding_backend, lm_order=lm_order,
        pool_sample=pool_sample, scorer_params={k: v for k, v in scorer_params.items() if v},
        target_name=target_name, proxy_command=proxy_command, proxy_timeout=proxy_timeout, baseline=baseline,
        heldout_weights=heldout_weights)
    opts = dict(text_field=text_field, id_field=id_field, on_error=on_error, batch_size=batch_size)
    result = run_evaluation(
        Dataset(list(pool), **opts), Dataset(list(heldout), **opts) if heldout else None, out,
        target=Dataset(list(target), **opts) if target else None, config=config, workers=workers,
        progress=not quiet and not as_json, command=["thresher", *sys.argv[1:]], report=report)
    if as_json:
        click.echo(json.dumps({"out": str(result.path), "results": result.rows}, default=str))
    elif not quiet:
        click.echo(result.summary())
        click.echo(f"\nresults: {result.path / 'results.csv'}")
        _print_report_path(result.path, report)


def _curation_experiment(ctx, experiment, from_run, pool, heldout, methods, budgets, seeds, seed, label_column,
                         level, margin, n_boot, out, report, text_field, id_field, on_error, batch_size, workers,
                         quiet, as_json) -> None:
    """``thresher evaluate --experiment``: pruning or label-error removal on an audit run, against random."""
    from click.core import ParameterSource

    from thresher.evaluate.curation import CurationConfig, parse_fraction, run_curation
    from thresher.evaluate.table import format_results
    from thresher.io.dataset import Dataset

    if not from_run or not heldout:
        raise ConfigError("--experiment needs --from-run (a thresher audit run) and --heldout (a labelled test set)")
    if pool:
        raise ConfigError("--experiment reads the audited pool from --from-run; do not give --pool")
    given = {name: ctx.get_parameter_source(name) != ParameterSource.DEFAULT for name in ("methods", "budgets",
                                                                                         "seeds")}
    options = {} if given["seeds"] else {"seeds": CurationConfig.seeds}  # 10: 5 seeds never give a verdict at 95%
    if given["methods"]:
        options["methods"] = tuple(m.strip() for m in methods.split(",") if m.strip() and m.strip() != "random")
    if given["budgets"]:
        options["fractions"] = tuple(parse_fraction(b) for b in budgets.split(",") if b.strip())
    config = CurationConfig(experiment=experiment, seed=seed, level=level, margin=margin, n_boot=n_boot,
                            **({"seeds": seeds} | options))
    opts = dict(text_field=text_field, id_field=id_field, on_error=on_error, batch_size=batch_size)
    rows = run_curation(from_run, Dataset(list(heldout), **opts), out, config, label_field=label_column or "label",
                        workers=workers, command=["thresher", *sys.argv[1:]], report=report)
    if as_json:
        click.echo(json.dumps({"out": str(out), "results": rows}, default=str))
    elif not quiet:
        click.echo(format_results(rows, margin))
        click.echo(f"\nresults: {Path(out) / 'results.csv'}")
        _print_report_path(Path(out), report)


def _active_experiment(ctx, pool, heldout, methods, seeds, seed, label_column, start_labels, batch_labels,
                       max_labels, features, out, report, text_field, id_field, on_error, batch_size, workers, quiet,
                       as_json) -> None:
    """``thresher evaluate --experiment active``: acquisition strategies against random, as learning curves."""
    from click.core import ParameterSource

    from thresher.evaluate.active import ActiveConfig, run_active
    from thresher.io.dataset import Dataset
    from thresher.report.summary import format_active

    if not pool or not heldout:
        raise ConfigError("--experiment active needs --pool (labelled: the simulated annotator) and --heldout")
    options = {"features": features} if features else {}
    if ctx.get_parameter_source("methods") != ParameterSource.DEFAULT:
        options["strategies"] = tuple(m.strip() for m in methods.split(",") if m.strip())
    config = ActiveConfig(start=start_labels, batch=batch_labels, max_labels=max_labels, seed=seed,
                          seeds=seeds if ctx.get_parameter_source("seeds") != ParameterSource.DEFAULT
                          else ActiveConfig.seeds, **options)
    opts = dict(text_field=text_field, id_field=id_field, on_error=on_error, batch_size=batch_size)
    results = run_active(Dataset(list(pool), **opts), Dataset(list(heldout), **opts), out, config,
                         label_field=label_column or "label", workers=workers, command=["thresher", *sys.argv[1:]],
                         report=report)
    if as_json:
        click.echo(json.dumps({"out": str(out), "results": results}, default=str))
    elif not quiet:
        click.echo(format_active(results))
        click.echo(f"\ncurves: {Path(out) / 'curves.csv'}; results: {Path(out) / 'results.csv'}")
        _print_report_path(Path(out), report)


@main.command(name="scorers")
def list_scorers() -> None:
    """List the scorers, what they need to fit, their main column, and their parameters."""
    from thresher.scorers.registry import SCORERS

    for spec in SCORERS.values():
        needs = f" needs: {', '.join(spec.needs)}." if spec.needs else ""
        extra = f" extra: thresher[{spec.extra}]." if spec.extra else ""
        click.echo(f"{spec.name:<11} {spec.description}. main column: {spec.primary}.{needs}{extra}")
        click.echo(f"{'':<11} parameters: {', '.join(spec.defaults()) or '-'}")


@main.command(epilog="""
\b
Example recipe (rules -> language filter -> classifier -> score-as-logits sampling):
  pool: pool.parquet
  target: target.jsonl
  out: runs/quality
  steps:
    - score: gopher
    - score: langid
    - filter: "gopher_pass and lang == 'en'"
    - score: classifier
    - select: gumbel
      score: classifier
      temperature: 1.0
      budget: 5%

\b
Choosing evaluation items (a scores table instead of a pool; estimate and check are optional):
  scores: leaderboard.parquet
  out: runs/evalset
  steps:
    - evalset: difficulty
      budget: 100
    - estimate: new_systems.parquet
    - check: [random, difficulty, irt]
      budgets: [25, 50, 100]
""")
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory (overrides the recipe).")
@click.option("--workers", type=int, default=None, help="Processes (overrides the recipe).")
@click.option("--quiet", "-q", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@_report_option
@_handle_errors
@_engine_options
def run(recipe, out, workers, quiet, as_json, report) -> None:
    """Run a YAML recipe: score, filter and select stages in order (or label, or evalset), into one run directory."""
    from thresher.recipe import Recipe

    result = Recipe.load(recipe).run(out=out, workers=workers, progress=not quiet and not as_json,
                                     command=["thresher", *sys.argv[1:]], report=report)
    if not quiet and not as_json and result.manifest.get("job") != "label":
        from thresher.report.summary import stage_lines

        lines = stage_lines(result.manifest)  # what each score and filter stage did, as thresher score prints it
        if lines:
            click.echo("\n".join(["stages:", *(f"  {line}" for line in lines), ""]))
    _print_result(result, as_json, quiet, report)


@main.command(epilog="""
\b
Examples:
  thresher report runs/wiki                      # (re)writes runs/wiki/report.html
  thresher report runs/eval --open               # an evaluate directory: comparison tables and budget curves
  thresher report runs/wiki --out /tmp/wiki.html
""")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Where to write the page. [default: RUN_DIR/report.html]")
@click.option("--open/--no-open", "open_browser", default=False, show_default=True,
              help="Open the report in the default web browser.")
@_handle_errors
def report(run_dir, out, open_browser) -> None:
    """Write a self-contained HTML report of a run directory (any job, or an evaluate directory).

    Opens offline (inline CSS and SVG plots, no scripts): run summary and record accounting, score histograms
    with the selection's cut, composition by group, kept and dropped examples per score decile, and for
    evaluations the comparison with the baseline and the budget curves.
    """
    from thresher.report.html import write_report

    path = write_report(run_dir, out)
    click.echo(str(path))
    if open_browser:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


@main.command(epilog="""
\b
Examples:
  thresher label --pool pool.parquet --lfs lfs.yaml --out runs/topics
  thresher label --pool pool.parquet --lfs lfs.py --model dawid_skene --dev dev.parquet --end-model hashed \\
      --out runs/topics
  thresher select --from-run runs/topics --where "label_name == 'sport' and label_confidence > 0.9" \\
      --score label_confidence --selector topk --budget 1000 --out runs/sport
\b
LF files: .yaml (classes: [...], lfs: [{name, label, keywords | regex | column + threshold + op}])
or .py (functions decorated with @thresher.lf returning a class name/index or None, and CLASSES = [...]).
""")
@click.option("--pool", "pool", multiple=True, required=True, metavar="PATH", help="Files, globs or folders.")
@click.option("--lfs", "lfs", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="LF file: .py or .yaml. Repeat to merge files with the same classes (hand-written + generated).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory to write.")
@click.option("--model", default=None,
              help="Label model: class_conditional, majority_vote, weighted_majority_vote, dawid_skene, metal, "
                   "triplet. [default: class_conditional]")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A label-model parameter (repeat).")
@click.option("--dev", "dev", multiple=True, metavar="PATH",
              help="Records with true labels: LF accuracies, dev metrics, class balance from dev.")
@click.option("--dev-where", default=None, metavar="EXPR",
              help="Use only the dev records where EXPR holds (fields read as strings), e.g. \"split == 'dev'\" "
                   "for the bundled labelled sets, whose split column marks the dev rows.")
@click.option("--label-field", default="label", show_default=True, help="Dev field with the true class.")
@click.option("--class-balance", default="estimate", show_default=True,
              help="estimate (from the votes), uniform, dev, or proportions such as 0.7,0.3.")
@click.option("--end-model", type=click.Choice(["none", "hashed", "static"]), default="none", show_default=True,
              help="Train a classifier on the probabilistic labels (hashed n-grams or static embeddings).")
@click.option("--scores-from", type=click.Path(exists=True, file_okay=False), default=None,
              help="A run whose score columns score LFs (column + threshold) may read.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lf-timeout", type=click.FloatRange(min=0), default=60.0, show_default=True, metavar="SECONDS",
              help="Time each LF may take on one batch; a slower LF fails (with --on-error skip: counted abstains). "
                   "0 = no limit.")
@_report_option
@_reading_options
@_handle_errors
@_engine_options
def label(pool, lfs, out, model, params, dev, dev_where, label_field, class_balance, end_model, scores_from, seed,
          lf_timeout, report, text_field, id_field, on_error, batch_size, workers, quiet, as_json) -> None:
    """Weak supervision: apply labelling functions, fit a label model, write labels as side-car scores.

    Writes label, label_name, label_confidence and prob_<class> per record (scores/scores.parquet), the sparse
    label matrix (labels/matrix.npz), and an LF analysis; every record is counted as labelled, abstained or failed.
    """
    from thresher.io.dataset import Dataset
    from thresher.jobs.label import run_labeling

    opts = dict(text_field=text_field, id_field=id_field, on_error=on_error, batch_size=batch_size)
    run = run_labeling(Dataset(list(pool), **opts), list(lfs), out, model=model, model_params=_key_values(params),
                       dev=Dataset(list(dev), **opts) if dev else None, label_field=label_field,
                       dev_where=dev_where, class_balance=class_balance, end_model=end_model, scores_from=scores_from,
                       seed=seed, workers=workers, progress=not quiet and not as_json,
                       command=["thresher", *sys.argv[1:]], report=report, lf_timeout=lf_timeout)
    if as_json:
        click.echo(json.dumps({"run": str(run.path), "counts": run.counts, "metrics": run.metrics,
                               "class_balance": run.manifest["class_balance"], "timings": run.manifest["timings"]},
                              default=str))
    elif not quiet:
        click.echo(run.summary())
        click.echo(f"\nrun directory: {run.path}")
        _print_report_path(run.path, report)


@main.command(epilog="""
\b
Examples:
  thresher audit --pool data.parquet --label-field label --out runs/audit
  thresher audit --pool data.parquet --features minilm --filter-by both --out runs/audit
  thresher audit --pool data.parquet --probs-from my_cv_probs.parquet --out runs/audit
  thresher audit --pool data.parquet --dynamics all --dynamics-param epochs=20 --out runs/audit
  thresher select --from-run runs/audit --score el2n --selector topk --budget 50% --out runs/hardest-half
  thresher select --from-run runs/audit --where "not is_label_issue" --selector threshold \\
      --score label_quality --threshold 0 --out runs/clean
\b
Flagged records are never dropped here: they are columns (is_label_issue, label_quality, suggested_label,
outlier_score) and counts; removing them is an explicit selection, as above.
""")
@click.option("--pool", "pool", multiple=True, required=True, metavar="PATH", help="Files, globs or folders.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory to write.")
@click.option("--label-field", default="label", show_default=True, help="Field holding each record's given label.")
@click.option("--classes", default=None, metavar="A,B,...",
              help="Class names in index order. [default: the labels seen, sorted]")
@click.option("--features", type=click.Choice(["hashed", "tfidf", "static", "minilm"]), default="hashed",
              show_default=True, help="What the cross-validated classifier reads: hashed uni+bigrams (log-tf), the "
                                      "same weighted by IDF, static or MiniLM embeddings.")
@click.option("--folds", type=click.IntRange(2, 50), default=5, show_default=True, help="k of k-fold.")
@click.option("--l2", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="Ridge penalty of the classifier, per record.")
@click.option("--probs-from", type=click.Path(exists=True), default=None,
              help="Out-of-sample probabilities to use instead: a run directory or a table with id and prob_<class>.")
@click.option("--filter-by", type=click.Choice(["prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                                                "predicted_neq_given"]),
              default="prune_by_noise_rate", show_default=True, help="The confident-learning rule that flags issues.")
@click.option("--quality", type=click.Choice(["self_confidence", "normalized_margin", "confidence_weighted_entropy"]),
              default="self_confidence", show_default=True, help="The label_quality score.")
@click.option("--outlier-k", type=click.IntRange(min=0), default=10, show_default=True,
              help="Neighbours for outlier_score (0: none).")
@click.option("--split-field", default=None, metavar="FIELD",
              help="Field naming each record's split (train/test/...): near-duplicates across splits are leakage.")
@click.option("--duplicate-threshold", type=click.FloatRange(0, 1, max_open=True), default=0.7, show_default=True,
              help="Jaccard of word 5-gram sets for near_duplicate_of and label_conflict (0: no duplicate search).")
@click.option("--dynamics", default=None, metavar="SCORES",
              help="Training-dynamics scores to add: el2n, grand, forgetting, aum, cartography (comma-separated) or "
                   "all.")
@click.option("--dynamics-param", "dynamics_params", multiple=True, metavar="KEY=VALUE",
              help="epochs, seeds, score_epoch, batch_size, lr or l2 of the training-dynamics runs (repeat).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the folds and the SGD runs.")
@_report_option
@_reading_options
@_handle_errors
@_engine_options
def audit(pool, out, label_field, classes, features, folds, l2, probs_from, filter_by, quality, outlier_k,
          split_field, duplicate_threshold, dynamics, dynamics_params, seed, report, text_field, id_field, on_error,
          batch_size, workers, quiet, as_json) -> None:
    """Audit a labelled pool: which labels look wrong, what they should be, and which records are outliers.

    Cross-validated class probabilities (every record scored by a model that never saw it), then confident
    learning (cleanlab's method) writes is_label_issue, label_quality, suggested_label, outlier_score,
    near_duplicate_of and label_conflict per record (scores/scores.parquet), and the estimated noise matrix and
    per-class counts (manifest.json, report.html).
    """
    from thresher.io.dataset import Dataset
    from thresher.jobs.audit import run_audit

    run = run_audit(Dataset(list(pool), text_field=text_field, id_field=id_field, on_error=on_error,
                            batch_size=batch_size), out, label_field=label_field,
                    classes=[c.strip() for c in classes.split(",")] if classes else None, features=features,
                    folds=folds, l2=l2, probs_from=probs_from, filter_by=filter_by, quality=quality,
                    outlier_k=outlier_k, split_field=split_field, duplicate_threshold=duplicate_threshold or None,
                    dynamics=dynamics, dynamics_params=_key_values(dynamics_params), seed=seed, workers=workers,
                    progress=not quiet and not as_json,
                    command=["thresher", *sys.argv[1:]], report=report)
    _print_result(run, as_json, quiet, report)


@main.command(name="generate-lfs", epilog="""
\b
Examples:
  # keyword LFs from 100 labelled records, then label the pool with them and the hand-written ones
  thresher generate-lfs --dev dev.parquet --sample 100 --like lfs.yaml --out generated.yaml
  thresher label --pool pool.parquet --lfs lfs.yaml --lfs generated.yaml --out runs/labels
""")
@click.option("--dev", "dev", multiple=True, required=True, metavar="PATH", help="Records with true labels.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="The .yaml LF file to write.")
@click.option("--label-field", default="label", show_default=True, help="Dev field with the true class.")
@click.option("--dev-where", default=None, metavar="EXPR",
              help="Use only the dev records where EXPR holds (fields read as strings).")
@click.option("--classes", default=None, metavar="A,B,...", help="Class names in order [default: sorted labels].")
@click.option("--like", type=click.Path(exists=True, dir_okay=False), default=None,
              help="An LF file whose classes to use, so the two merge (thresher label --lfs A --lfs B).")
@click.option("--method", "methods", type=click.Choice(["keywords", "centroid", "zero-shot", "prompt"]),
              multiple=True, default=("keywords",), show_default=True,
              help="Repeat to combine. keywords: Snuba-style word n-grams kept for dev precision, picked for "
                   "coverage; centroid: nearest class centroid in embedding space; zero-shot: nearest class "
                   "description (--describe); prompt: a local causal LM asked --prompt, answering --answer "
                   "words.")
@click.option("--describe", "describe", multiple=True, metavar="CLASS=TEXT",
              help="A class's description for --method zero-shot (repeat) [default: the class name].")
@click.option("--backend", type=click.Choice(["static", "minilm"]), default="static", show_default=True,
              help="Sentence embeddings for centroid and zero-shot LFs.")
@click.option("--prompt", default=None, metavar="TEXT",
              help="For --method prompt: the text the LM continues, with {text} where the record goes and optionally "
                   "{choices} (the first answers, 'a, b or c') [default: '{text}\\n\\nThis text is about'].")
@click.option("--answer", "answers", multiple=True, metavar="CLASS=WORD",
              help="For --method prompt: an answer meaning CLASS (repeat; several per class allowed); a class "
                   "without one is answered by its name, as written and capitalised.")
@click.option("--lm", default="smollm2", show_default=True, metavar="MODEL",
              help="For --method prompt: 'smollm2', a Hugging Face model folder or a .gguf file.")
@click.option("--chat/--no-chat", default=False, show_default=True,
              help="For --method prompt: send the prompt as a chat turn (a question to an instruction-tuned model) "
                   "or as plain text the answer continues.")
@click.option("--sample", type=click.IntRange(min=1), default=None, help="Use a seeded sample of this many records.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Generator setting (repeat): max_n, min_count, lift, z, max_per_class, min_new.")
@click.option("--text-field", default="text", show_default=True, help="Field holding the text.")
@click.option("--id-field", default="id", show_default=True,
              help="Field holding a unique id; if absent, ids are <file>:<line or row>.")
@click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True,
              help="Malformed records: stop with an error naming file and line, or skip and count them.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON summary.")
@_duplicate_ids_option
@_handle_errors
def generate_lfs(dev, out, label_field, dev_where, classes, like, methods, describe, backend, prompt, answers, lm,
                 chat, sample, seed, params, text_field, id_field, on_error, quiet, as_json) -> None:
    """Write LFs from a few labelled records (keywords, nearest centroid, zero-shot, a prompted LM), each with its dev
    precision and coverage, into a .yaml LF file."""
    from thresher.io.dataset import Dataset
    from thresher.jobs.generate_lfs import generate_lfs as run_generation

    opts = dict(text_field=text_field, id_field=id_field, on_error=on_error)
    result = run_generation(Dataset(list(dev), **opts), out, label_field=label_field, dev_where=dev_where,
                            classes=classes.split(",") if classes else None, like=like, method=list(methods),
                            sample=sample, seed=seed, params=_key_values(params),
                            descriptions=dict(_class_text(d) for d in describe), backend=backend,
                            prompt=prompt, answers=_class_answers(answers), lm=lm, chat=chat)
    if as_json:
        lfs = [{**g.lf.describe(), "dev_precision": g.precision, "dev_coverage": g.coverage} for g in result.lfs]
        click.echo(json.dumps({"path": str(result.path), "classes": result.classes, "n_dev": result.n_dev,
                               "lfs": lfs, "refused": result.refused}))
    elif not quiet:
        click.echo(result.summary())


@main.command(epilog="""
\b
Examples:
  # RegMix from runs already done (its published format: index + one weight per group; index + one metric each)
  thresher mix --from-runs train_mixture_1m.csv --metrics train_pile_loss_1m.csv \\
      --objective metric/the_pile_pile_cc_val_loss --out runs/mix
\b
  # RegMix's own regressor, and predictions for other mixtures
  thresher mix --from-runs mixtures.csv --metrics losses.csv --objective target_loss --regressor lightgbm \\
      --predict candidates.csv --out runs/mix_lgbm
\b
  # baselines over a pool's domains: UniMax (at most 2 epochs per domain) and temperature sampling
  thresher mix --pool pool.parquet --group-field domain --method unimax --budget "50M tokens" --max-epochs 2 \\
      --out runs/unimax
  thresher mix --pool pool.parquet --method temperature --tau 3 --budget "50M tokens" --out runs/tau3
\b
  # RegMix end to end: 32 n-gram proxies on 2M tokens each, toward a blend of two targets
  thresher mix --pool pool.parquet --group-field domain --target news.jsonl --target wiki.jsonl \\
      --target-weights 0.5,0.5 --method regmix --proxy ngram --runs 32 --proxy-tokens "2M tokens" \\
      --budget "50M tokens" --out runs/regmix
""")
@click.option("--from-runs", "from_runs", type=click.Path(dir_okay=False), default=None, metavar="MIXTURES.csv",
              help="Mixtures of proxy runs already trained: an index column, then one weight per group.")
@click.option("--metrics", type=click.Path(dir_okay=False), default=None, metavar="METRICS.csv",
              help="With --from-runs: their results, an index column, then one column per metric.")
@click.option("--objective", default=None, metavar="COLUMN", help="With --from-runs: the metrics column to minimise.")
@click.option("--regressor", type=click.Choice(["gp", "lightgbm", "mixing_law"]), default="gp", show_default=True,
              help="gp: Gaussian process, hyper-parameters by marginal likelihood; lightgbm: RegMix's trees "
                   "(thresher[mix]); mixing_law: c + k*exp(t.r).")
@click.option("--predict", type=click.Path(dir_okay=False), default=None, metavar="MIXTURES.csv",
              help="Other mixtures (same format) whose objective to predict into OUT/predictions.csv.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Cross-validation folds for the regressor's diagnostics.")
@click.option("--samples", "n_samples", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Mixtures sampled in the search (a Dirichlet around --prior).")
@click.option("--top-k", type=click.IntRange(min=1), default=100, show_default=True,
              help="The best predicted samples averaged into the answer.")
@click.option("--prior", type=click.Path(dir_okay=False), default=None, metavar="PRIOR.csv",
              help="One row in the mixtures format: the natural token share (or count) per group, which the search "
                   "samples around as RegMix does. [default: the runs' mean mixture]")
@click.option("--pool", "pool", multiple=True, metavar="PATH",
              help="Instead of --from-runs: files, globs or folders whose tokens per group a baseline --method uses.")
@click.option("--method", type=click.Choice(["regmix", "mixing_laws", "aioli", "skillit", "doremi", "proportional",
                                            "uniform", "temperature", "unimax"]),
              default=None, help="regmix (with --from-runs or --pool and --target), mixing_laws (over --pool and "
                                 "--target: one exponential law per target, their blend minimised), aioli / skillit "
                                 "(over --pool and --target: online, group interactions from sweeps), doremi (over "
                                 "--pool, no target: the smallest worst-group excess loss), or a baseline over "
                                 "--pool. [default: regmix]")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="doremi, aioli, skillit: online steps of --proxy-tokens / steps tokens each. "
                   "[default: 20 for doremi, 10 for aioli and skillit]")
@click.option("--eta", type=float, default=1.0, show_default=True,
              help="doremi, aioli, skillit: step size of the exponentiated-gradient update (doremi: on the excess "
                   "loss in nats; aioli, skillit: on the gain scaled to at most 1).")
@click.option("--group-field", default="domain", show_default=True, help="With --pool: the field naming the group.")
@click.option("--target", "target", multiple=True, metavar="PATH",
              help="regmix over --pool: what the mixture should be good at (repeat for several target sets).")
@click.option("--target-weights", default=None, metavar="W1,W2,...",
              help="regmix: the targets' weights in the objective (normalised). [default: equal]")
@click.option("--proxy", type=click.Choice(["ngram", "tiny_lm"]), default="ngram", show_default=True,
              help="The proxy trained per mixture (regmix, mixing_laws) or online (doremi, aioli, skillit): ngram "
                   "(a Kneser-Ney n-gram LM: seconds on a CPU) or tiny_lm (a small transformer, ~10 s a run on one "
                   "thread; needs torch).")
@click.option("--tiny-lm", "tiny_lm", multiple=True, metavar="KEY=VALUE",
              help="--proxy tiny_lm: its size and schedule (vocab_size, dim, layers, heads, context, steps, batch, "
                   "lr).")
@click.option("--proxy-command", default=None, metavar="COMMAND",
              help="regmix/mixing_laws over --pool: your trainer per mixture instead of the n-gram proxy, run without "
                   "a shell with {train} (Parquet: id, text, group), {heldout} (Parquet: id, text, set = target:NAME "
                   "or group:NAME), {out}, {seed}; it writes {out}/metrics.json with loss:NAME per target or the "
                   "--objective metric [default: loss].")
@click.option("--proxy-timeout", type=float, default=None, help="Seconds one --proxy-command run may take.")
@click.option("--runs", "n_runs", type=int, default=16, show_default=True,
              help="regmix over --pool: proxy runs (mixtures sampled as RegMix does, the natural one first).")
@click.option("--proxy-tokens", default="2M tokens", show_default=True,
              help="regmix over --pool: whitespace tokens each proxy trains on.")
@click.option("--tau", type=float, default=None, help="temperature: p ∝ share^(1/tau); 1 = proportional.")
@click.option("--max-epochs", type=float, default=1.0, show_default=True,
              help="unimax: at most this many passes over any group's tokens; regmix: over a group's records at "
                   "the proxy budget.")
@click.option("--text-field", default="text", show_default=True, help="With --pool: the field holding the text.")
@click.option("--on-error", type=click.Choice(["raise", "skip"]), default="raise", show_default=True,
              help="With --pool: malformed records stop the run (naming file and line) or are skipped and counted.")
@click.option("--budget", default=None, help="A token budget (e.g. '50M tokens'): expected tokens per group.")
@click.option("--workers", type=int, default=None,
              help="With --pool: processes reading the pool and training proxies. [default: all cores]")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run directory to write.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True, help="Print the mixture as JSON.")
@_report_option
@_handle_errors
@_engine_options
def mix(from_runs, metrics, objective, regressor, predict, seed, folds, n_samples, top_k, prior, pool, method,
        steps, eta, group_field, target, target_weights, proxy, tiny_lm, proxy_command, proxy_timeout, n_runs,
        proxy_tokens, tau, max_epochs, text_field, on_error, budget, workers, out, quiet, as_json, report) -> None:
    """Find domain weights: RegMix from proxy runs (--from-runs), or a baseline over a pool's groups (--pool).

    --from-runs fits a regressor from mixtures to an objective and searches the simplex for the lowest prediction;
    writes OUT/mixture.yaml (weight per group, regressor, objective, seed, cross-validated Spearman and RMSE),
    OUT/manifest.json and, with --predict, OUT/predictions.csv (index, predicted). --pool with --method
    proportional, uniform, temperature (--tau) or unimax (--budget, --max-epochs) counts whitespace tokens per
    --group-field value and writes the weights, and with --budget the expected tokens and epochs per group.
    --pool with --method regmix and --target trains --runs n-gram proxies on --proxy-tokens each (held-out
    cross-entropy on the targets and per group into OUT/runs.parquet), then fits and searches as --from-runs does.
    --pool with --method doremi trains a reference n-gram LM on the natural mixture, then a Group DRO one whose
    weights follow each group's excess loss for --steps steps; the averaged weights, and OUT/trajectory.parquet.
    """
    import yaml

    from thresher.errors import ConfigError
    from thresher.mix.job import run_mix_baseline, run_mix_from_runs

    command = ["thresher", *sys.argv[1:]]
    if bool(from_runs) == bool(pool):
        raise ConfigError("give either --from-runs (with --metrics and --objective) or --pool (with --method)")
    if proxy_command and (from_runs or method not in ("regmix", "mixing_laws")):
        raise ConfigError("--proxy-command trains your proxy on each sampled mixture: give it with --pool, --target "
                          "and --method regmix or mixing_laws")
    if from_runs:
        if method not in (None, "regmix"):
            raise ConfigError(f"--method {method} works over a --pool; --from-runs fits RegMix")
        if not metrics or not objective:
            raise ConfigError("--from-runs needs --metrics METRICS.csv and --objective COLUMN")
        result = run_mix_from_runs(from_runs, metrics, objective, out, regressor=regressor, predict=predict,
                                   seed=seed, folds=folds, n_samples=n_samples, top_k=top_k, budget=budget,
                                   prior=prior, command=command, report=report)
    elif method == "doremi":
        from thresher.io.dataset import Dataset
        from thresher.mix.job import run_mix_doremi

        if target:
            raise ConfigError("doremi needs no --target: it minimises the worst group's excess loss over a "
                              "reference on the natural mixture (use --method regmix to aim at a target)")
        result = run_mix_doremi(Dataset(list(pool), text_field=text_field, on_error=on_error), out,
                                group_field=group_field, proxy_tokens=proxy_tokens, budget=budget,
                                steps=steps or 20, eta=eta, seed=seed, max_epochs=max_epochs, proxy=proxy,
                                tiny_lm=_key_values(tiny_lm), workers=workers, command=command, report=report)
    elif method in ("aioli", "skillit"):
        from thresher.io.dataset import Dataset
        from thresher.mix.job import run_mix_online

        weights = _number_list(target_weights, "--target-weights") if target_weights else None
        result = run_mix_online(Dataset(list(pool), text_field=text_field, on_error=on_error),
                                [Dataset([t], text_field=text_field) for t in target], out, method=method,
                                group_field=group_field, target_weights=weights, proxy_tokens=proxy_tokens,
                                budget=budget, steps=steps or 10, eta=eta, seed=seed, max_epochs=max_epochs,
                                proxy=proxy, tiny_lm=_key_values(tiny_lm), workers=workers, command=command,
                                report=report)
    elif method in ("regmix", "mixing_laws"):
        from thresher.io.dataset import Dataset
        from thresher.mix.job import run_mix_regmix

        weights = _number_list(target_weights, "--target-weights") if target_weights else None
        result = run_mix_regmix(Dataset(list(pool), text_field=text_field, on_error=on_error),
                                [Dataset([t], text_field=text_field) for t in target], out, group_field=group_field,
                                target_weights=weights, proxy=proxy, runs=n_runs, proxy_tokens=proxy_tokens,
                                budget=budget, regressor=regressor, seed=seed, folds=folds, n_samples=n_samples,
                                top_k=top_k, max_epochs=max_epochs, workers=workers, command=command, method=method,
                                proxy_command=proxy_command, objective=objective or "loss",
                                proxy_timeout=proxy_timeout, tiny_lm=_key_values(tiny_lm), report=report)
    else:
        if method is None:
            raise ConfigError("--pool needs --method: regmix, mixing_laws, aioli or skillit (with --target), doremi, "
                              "or a baseline: proportional, uniform, temperature, unimax")
        from thresher.io.dataset import Dataset

        result = run_mix_baseline(Dataset(list(pool), text_field=text_field, on_error=on_error), out,
                                  method=method, group_field=group_field, budget=budget, tau=tau,
                                  max_epochs=max_epochs, workers=workers, command=command, report=report)
    if as_json:
        click.echo(json.dumps(yaml.safe_load((result.path / "mixture.yaml").read_text(encoding="utf-8"))))
    elif not quiet:
        click.echo(result.summary())
        click.echo(f"\nrun directory: {result.path}")
        _print_report_path(result.path, report)


def _number_list(text: str, option: str, kind: type = float) -> list:
    """Comma-separated numbers, e.g. '0.5,0.5' (``kind=int``: whole numbers); a clear error names the option."""
    from thresher.errors import ConfigError

    try:
        return [kind(x) for x in text.split(",") if x.strip() or kind is float]
    except ValueError:
        example = "0.5,0.5" if kind is float else "25,50"
        raise ConfigError(f"{option}: comma-separated numbers such as {example}, got {text!r}") from None


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Run directory. [default: a temporary folder]")
@click.option("--target", type=click.Choice(["news", "tech_docs"]), default="news", show_default=True,
              help="Which bundled target sample to select toward.")
@click.option("--budget", default="5%", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=None, help="Processes. [default: all cores]")
@_handle_errors
@_engine_options
def demo(out, target, budget, seed, workers) -> None:
    """Select from the bundled multi-domain sample toward a bundled target, and compare with random.

    \b
    Examples:
      thresher demo
      thresher demo --target tech_docs --budget 10% --out runs/demo
    """
    from thresher.demo import run_demo

    click.echo(run_demo(out=Path(out) if out else None, target=target, budget=budget, seed=seed, workers=workers))


def _table_options(fn: Callable) -> Callable:
    """How a scores table names its columns (long: item, system, score; wide: item plus one column per system)."""
    for option in reversed([
        click.option("--item-field", default="item", show_default=True, help="The item id column."),
        click.option("--system-field", default="system", show_default=True, help="Long tables: the system column."),
        click.option("--score-field", default="score", show_default=True, help="Long tables: the score column."),
    ]):
        fn = option(fn)
    return fn


@main.group(invoke_without_command=True, epilog="""
\b
Examples:
  thresher evalset --scores seen.parquet --budget 50 --out runs/es
  thresher evalset estimate --from-run runs/es --scores new.parquet --out runs/es-new
  thresher evalset --check --scores full.parquet --methods random,difficulty,random+control,irt --out runs/es-check
""")
@click.option("--scores", type=click.Path(dir_okay=False), default=None,
              help="Seen systems' scores on every item: long (item, system, score) or wide (item, one column per "
                   "system); Parquet, CSV or JSONL.")
@click.option("--budget", type=float, default=None, help="Items to choose (a total cost with --cost-field).")
@click.option("--method", type=click.Choice(["random", "stratified", "difficulty", "anchor", "irt", "active",
                                           "variance", "consistency", "diffdisc", "auto"]),
              default="difficulty", show_default=True,
              help="difficulty: random within strata of the seen systems' mean score, Neyman-allocated; anchor: "
                   "k-medoids on the seen systems' scores; irt: random items, a 2PL IRT model of the seen systems; "
                   "active: drawn in proportion to the seen systems' expected loss, LURE-weighted; variance, "
                   "consistency, diffdisc: subset2evaluate's top items; auto: difficulty or consistency, by a check on "
                   "the seen systems; stratified: by --label-field (a label or a cluster).")
@click.option("--estimator", type=click.Choice(["mean", "control", "irt", "p-irt", "gp-irt"]), default=None,
              help="control: the seen systems as control variates; mean: the weighted mean; irt, p-irt, gp-irt: "
                   "tinyBenchmarks' [default: control for difficulty and subset2evaluate's selectors, p-irt for "
                   "irt, else mean].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--items", type=click.Path(dir_okay=False), default=None,
              help="Items file with --label-field and/or --cost-field (an item column as the scores').")
@click.option("--label-field", default=None, help="The items' label column (stratified).")
@click.option("--cost-field", default=None,
              help="The items' cost column: --budget (and --budgets) become total costs, met in expectation.")
@click.option("--level", type=float, default=0.95, show_default=True, help="Interval level.")
@click.option("--check", is_flag=True, help="Compare --methods with random over seen/new splits of the systems.")
@click.option("--methods", default=None,
              help="--check: comma-separated METHOD or METHOD+ESTIMATOR [default: random, difficulty, random+control, "
                   "and stratified with --label-field: the fast ones; anchor, irt and gp-irt refit on every split].")
@click.option("--budgets", default="25,50,100", show_default=True, help="--check: comma-separated budgets.")
@click.option("--splits", type=int, default=100, show_default=True, help="--check: seen/new splits.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Directory to write.")
@_table_options
@_report_option
@click.pass_context
@_handle_errors
def evalset(ctx, scores, budget, method, estimator, seed, items, label_field, cost_field, level, check, methods,
            budgets, splits, out, item_field, system_field, score_field, report) -> None:
    """Choose the few evaluation items that estimate (and rank) systems like the full set.

    Writes OUT/selected/ids.txt (the items to score new systems on), OUT/subset.parquet (item, weight), what the
    estimator needs and OUT/calibration.json; `thresher evalset estimate` then estimates new systems from their
    scores on those items.
    With --check, compares --methods with random over --splits seen/new splits of the systems (Kendall tau, MAE,
    interval coverage, verdicts) into OUT/results.csv.
    """
    if ctx.invoked_subcommand is not None:
        return
    from thresher.errors import ConfigError
    from thresher.evalset.job import format_check, run_evalset, run_evalset_check

    if not scores or not out:
        raise ConfigError("give --scores and --out (and --budget, or --check)")
    fields = dict(item_field=item_field, system_field=system_field, score_field=score_field, items=items,
                  label_field=label_field, cost_field=cost_field)
    command = ["thresher", *sys.argv[1:]]
    if check:
        from thresher.evalset.check import CheckConfig
        from thresher.evalset.methods import COST_METHODS

        if methods is None:
            names = ["random", "difficulty", "random+control"] + (["stratified"] if label_field else [])
            names = [m for m in names if m.partition("+")[0] in COST_METHODS] if cost_field else names
        else:
            names = [m.strip() for m in methods.split(",") if m.strip()]
        budget_values = _number_list(budgets, "--budgets", float if cost_field else int)
        config = CheckConfig(tuple(names), tuple(budget_values), splits, seed, level)
        rows = run_evalset_check(scores, out, config=config, command=command, report=report, **fields)
        click.echo(format_check(rows))
        click.echo(f"\nresults: {Path(out) / 'results.csv'}")
        _print_report_path(Path(out), report)
        return
    if budget is None:
        raise ConfigError("give --budget (items to choose), or --check")
    if not cost_field:
        if not float(budget).is_integer():
            raise ConfigError(f"--budget is a number of items, got {budget:g} (a cost needs --cost-field)")
        budget = int(budget)
    spec = f"{method}+{estimator}" if estimator else method
    path = run_evalset(scores, out, budget=budget, method=spec, seed=seed, level=level, command=command, report=report,
                       **fields)
    from thresher.report.summary import format_evalset_summary

    click.echo(format_evalset_summary(json.loads((path / "manifest.json").read_text(encoding="utf-8")), path))
    _print_report_path(path, report)


@evalset.command(name="estimate")
@click.option("--from-run", "from_run", type=click.Path(file_okay=False), required=True,
              help="A thresher evalset run directory.")
@click.option("--scores", type=click.Path(dir_okay=False), required=True,
              help="New systems' scores on (at least) the chosen items.")
@click.option("--level", type=float, default=None, help="Interval level [default: the run's].")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory to write.")
@_table_options
@_handle_errors
def evalset_estimate(from_run, scores, level, out, item_field, system_field, score_field) -> None:
    """Estimate new systems' full-set scores (with intervals) from their scores on a run's chosen items; writes
    OUT/estimates.csv (system, estimate, lo, hi, rank)."""
    from thresher.evalset.job import run_estimate

    rows = run_estimate(from_run, scores, out, level=level, item_field=item_field, system_field=system_field,
                        score_field=score_field)
    width = max(len(r["system"]) for r in rows)
    for r in sorted(rows, key=lambda r: r["rank"]):
        click.echo(f"{r['rank']:>3}  {r['system']:<{width}}  {r['estimate']:.4f}  [{r['lo']:.4f}, {r['hi']:.4f}]")
    click.echo(f"\nestimates: {Path(out) / 'estimates.csv'}")


if __name__ == "__main__":  # pragma: no cover
    main()
