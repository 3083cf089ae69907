"""RegMix with the user's own trainer as the proxy: ``thresher mix --pool ... --proxy-command "..."``.

The runs' mixtures and their records are drawn exactly as for the n-gram proxy (:mod:`thresher.mix.proxy`); then

1. ``gather_records`` (map): each engine task reads its piece of the pool again and returns only the records some
   run draws or some held-out slice holds (id, text, group), which stream to ``OUT/proxy_data/records.parquet``;
2. ``command_runs`` (map): one engine task per mixture writes the run's ``train.parquet`` (its records in draw
   order, a record drawn twice appears twice) and runs the command once, without a shell, as ``thresher evaluate``
   does (:class:`~thresher.evaluate.proxies.CommandProxy`). Its placeholders: ``{train}``, ``{heldout}`` (one
   Parquet file: every target set's records and every group's held-out slice, named in a ``set`` column:
   ``target:NAME`` and ``group:NAME``), ``{out}`` (the run's folder) and ``{seed}``. It writes
   ``{out}/metrics.json``: either ``loss:NAME`` for every target (blended here by ``--target-weights``) or the
   ``--objective`` metric (default ``loss``) as the objective; every other number is kept in ``runs.parquet``.

Then the fit and search stages are ``--from-runs``'s. Runs are engine tasks, so on Ray they spread over a cluster.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.engine.pieces import map_pieces
from thresher.engine.plan import GLOBAL, MAP, Plan, Stage, Values
from thresher.errors import ConfigError
from thresher.io.atomic import ParquetStream, write_parquet
from thresher.io.errors import ErrorLog
from thresher.mix.proxy import needed_rows, wanted_rows
from thresher.mix.runs import MixtureRuns


def take_records(batch, where, wanted: dict, group_field: str) -> pa.Table | None:
    """Engine task: the records of one batch some run or held-out slice needs (id, text, group)."""
    rows = wanted.get(where[1])
    if rows is None:
        return None
    taken = batch.take(pa.array(rows))
    return pa.table({"id": taken.column("id"), "text": taken.column("text"),
                     "group": taken.column(group_field).cast(pa.string())})


def _gather_records(v: Values) -> dict:
    needed, wanted_by_piece = wanted_rows(v)
    held_group = np.full(len(needed), -1, dtype=np.int64)  # the group whose held-out slice holds each record
    for g, rows in enumerate(v.heldout_rows):
        held_group[needed_rows(needed, rows)] = g
    data = Path(v.command["workdir"])
    data.mkdir(parents=True, exist_ok=True)
    path = data / "records.parquet"
    schema = pa.schema([("id", pa.large_string()), ("text", pa.large_string()), ("group", pa.string())])
    held, start = [], 0
    with ParquetStream(path, schema) as stream:
        for _, parts in map_pieces(v.pool, v.engine, take_records,
                                   lambda piece: (wanted_by_piece[piece.index], v.group_field),
                                   ErrorLog(v.pool.on_error), [v.group_field]):
            for part in parts:
                if part is not None:
                    stream.write(part.cast(schema))
                    # the held-out slices are kept as they stream past, not read back from the file
                    codes = held_group[start:start + part.num_rows]
                    held.append((codes[codes >= 0], part.filter(pa.array(codes >= 0))))
                    start += part.num_rows
        if not stream.started:
            stream.write(pa.table({name: pa.array([], t) for name, t in zip(schema.names, schema.types)}))
    codes = np.concatenate([c for c, _ in held]) if held else np.zeros(0, np.int64)
    order = np.argsort(codes, kind="stable")  # by group, then reading order
    taken = pa.concat_tables([t for _, t in held]).take(pa.array(order)) if held else None
    heldout = list(v.target_records)
    if taken is not None and len(order):
        names = np.array([f"group:{name}" for name in v.names], dtype=object)
        heldout.append(pa.table({"id": taken["id"], "text": taken["text"], "set": pa.array(names[codes[order]])}))
    write_parquet(pa.concat_tables([h.cast(heldout[0].schema) for h in heldout]), data / "heldout.parquet")
    return {"needed": needed, "records_path": str(path)}


def command_run(template: str, workdir: str, records_path: str, rows: np.ndarray, run: int, seed: int,
                timeout: float | None) -> tuple[dict, float]:
    """Engine task: one mixture's train.parquet (``rows`` of the gathered records, in draw order), then the
    user's command on it; its metrics and the seconds it took."""
    from thresher.evaluate.proxies import CommandProxy

    started = time.perf_counter()
    proxy = CommandProxy(template, workdir, timeout)
    train = pq.read_table(records_path).take(pa.array(rows, pa.int64()))
    heldout = pq.read_table(Path(workdir) / "heldout.parquet")
    return proxy(train, heldout, seed, tag=f"run-{run:04d}"), time.perf_counter() - started


def _target_texts(v: Values) -> dict:
    tables = []
    for target in v.targets:
        batches = list(target.dataset.iter_batches(ErrorLog(target.dataset.on_error)))
        ids = pa.concat_arrays([b.column("id").cast(pa.large_string()) for b in batches])
        texts = pa.concat_arrays([b.column("text").cast(pa.large_string()) for b in batches])
        tables.append(pa.table({"id": ids, "text": texts, "set": pa.array([f"target:{target.name}"] * len(ids))}))
    return {"target_records": tables}


def _command_runs(v: Values) -> dict:
    c = v.command
    names = [t.name for t in v.targets]
    items = ((c["template"], c["workdir"], v.records_path,
              needed_rows(v.needed, np.concatenate([d for d in run if len(d)])), r, v.seed, c["timeout"])
             for r, run in enumerate(v.draws))
    done = list(v.engine.map(command_run, items))
    results = [m for m, _ in done]
    keys = sorted({k for m in results for k, x in m.items() if isinstance(x, (int, float))})
    for r, m in enumerate(results):
        missing = [k for k in keys if not isinstance(m.get(k), (int, float))]
        if missing:
            raise ConfigError(f"proxy command: run {r} wrote no number for {', '.join(missing)} (others did)")
    per_target = [f"loss:{n}" for n in names]
    weights = np.array([t.weight for t in v.targets])
    if all(k in keys for k in per_target):
        objective = np.array([[m[k] for k in per_target] for m in results], dtype=float) @ weights
    elif c["objective"] in keys:
        objective = np.array([m[c["objective"]] for m in results], dtype=float)
    else:
        raise ConfigError(f"proxy command: metrics.json needs {c['objective']!r} (--objective) or "
                          f"{', '.join(per_target)}; it has {', '.join(keys) or 'no numbers'}")
    metrics = np.column_stack([objective, *(np.array([m[k] for m in results], dtype=float) for k in keys)])
    runs = MixtureRuns(index=[str(r) for r in range(len(v.draws))], groups=list(v.names), weights=v.mixtures,
                       metric_names=["target", *keys], metrics=metrics, mixtures_path="(proxy runs)",
                       metrics_path="(proxy runs)")
    drawn = np.array([[int(v.tokens_of[d].sum()) for d in run] for run in v.draws], dtype=np.int64)
    return {"runs": runs, "y": objective, "run_tokens": drawn, "run_seconds": [t for _, t in done],
            "vocab_size": None}


TARGET_TEXTS = Stage("target_texts", GLOBAL, "the target sets' records, for the command's held-out file", _target_texts,
                     ("targets",), ("target_records",))
GATHER_RECORDS = Stage("gather_records", MAP, "each task reads its piece again and returns the records the runs draw "
                       "or hold out, streamed to proxy_data/records.parquet; the held-out file for the command",
                       _gather_records, ("pool", "engine", "group_field", "draws", "heldout_rows", "piece_batches",
                                         "command", "target_records", "names"), ("needed", "records_path"))
COMMAND_RUNS = Stage("command_runs", MAP, "one engine task per mixture: its train.parquet, then the user's command; "
                     "the metrics it wrote", _command_runs,
                     ("engine", "names", "draws", "mixtures", "needed", "records_path", "targets", "tokens_of",
                      "command", "seed"),
                     ("runs", "y", "run_tokens", "run_seconds", "vocab_size"))


def command_plan(fit: Stage, search: Stage) -> Plan:
    """The plan of ``mix --pool --proxy-command``: the n-gram plan's sampling, the user's command per mixture."""
    from thresher.mix.proxy import INDEX, SAMPLE, TARGETS

    return Plan("mix --method regmix --proxy-command", ("pool", "group_field", "engine", "targets", "settings",
                                                         "n_runs", "seed", "regressor", "folds", "n_samples", "top_k",
                                                         "strength", "command"),
                (INDEX, TARGETS, TARGET_TEXTS, SAMPLE, GATHER_RECORDS, COMMAND_RUNS, fit, search))
