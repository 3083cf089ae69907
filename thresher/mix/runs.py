"""Proxy runs someone already did, in RegMix's published format.

A mixtures CSV has an ``index`` column, then one column per group holding that run's weight; a metrics CSV has an
``index`` column, then one column per metric (lower is better, e.g. validation losses). Rows are matched by index.
Published weights are rounded (RegMix's to 3 decimals over 17 groups, so rows sum to 0.996-1.003): a row is accepted
when its weights sum to 1 within :data:`SUM_TOLERANCE` and is then renormalised to sum to exactly 1.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thresher.errors import ConfigError

#: How far a row's weights may sum from 1: 17 weights each rounded to 3 decimals can be off by 17 × 0.0005.
SUM_TOLERANCE = 0.01


@dataclass(frozen=True)
class MixtureTable:
    """One CSV in RegMix's format: run indices in file order, column names, values (rows × columns)."""

    path: str
    index: list[str]
    columns: list[str]
    values: np.ndarray
    lines: list[int]  # the CSV line number of each row (the header is line 1)


@dataclass(frozen=True)
class MixtureRuns:
    """Mixtures matched to their metrics: ``weights`` (runs × groups, rows sum to 1) and ``metrics`` (runs × metrics),
    both in the mixtures file's row order."""

    index: list[str]
    groups: list[str]
    weights: np.ndarray
    metric_names: list[str]
    metrics: np.ndarray
    mixtures_path: str
    metrics_path: str

    def objective(self, column: str) -> np.ndarray:
        """The values of metric ``column``, one per run; a clear error lists the columns there are."""
        if column not in self.metric_names:
            raise ConfigError(f"{self.metrics_path}: no column {column!r} to use as --objective; the columns are: "
                              f"{', '.join(self.metric_names)}")
        return self.metrics[:, self.metric_names.index(column)]


def read_table(path: str | os.PathLike, what: str) -> MixtureTable:
    """A CSV with an ``index`` column then numeric columns; errors name the file and the CSV line."""
    path = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise ConfigError(f"cannot read {what} file {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text CSV file") from None
    if not rows or not rows[0]:
        raise ConfigError(f"{path}: empty {what} file (expected a header: index, then one column per "
                          f"{'metric' if what == 'metrics' else 'group'})")
    header = [h.strip() for h in rows[0]]
    if header[0] != "index":
        raise ConfigError(f"{path}:1: the first column must be 'index' (RegMix's format), found {header[0]!r}")
    columns = header[1:]
    if not columns:
        raise ConfigError(f"{path}:1: no columns after 'index'")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise ConfigError(f"{path}:1: repeated column name(s): {', '.join(duplicated)}")
    index: list[str] = []
    values: list[list[float]] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue  # a blank line (e.g. at the end of the file)
        if len(row) != len(header):
            raise ConfigError(f"{path}:{line}: {len(row)} fields where the header has {len(header)}")
        key = row[0].strip()
        if key in seen:
            raise ConfigError(f"{path}:{line}: index {key} repeats the run on line {seen[key]}")
        seen[key] = line
        numbers = []
        for name, cell in zip(columns, row[1:]):
            try:
                value = float(cell)
            except ValueError:
                raise ConfigError(f"{path}:{line}: column {name} is {cell.strip()!r}, not a number") from None
            if not math.isfinite(value):
                raise ConfigError(f"{path}:{line}: column {name} is {cell.strip()}, not a finite number")
            numbers.append(value)
        index.append(key)
        values.append(numbers)
        lines.append(line)
    if not index:
        raise ConfigError(f"{path}: no rows after the header")
    return MixtureTable(path, index, columns, np.asarray(values, dtype=float), lines)


def read_mixtures(path: str | os.PathLike) -> MixtureTable:
    """A mixtures CSV, its weights checked (>= 0, summing to 1 within :data:`SUM_TOLERANCE`) and renormalised."""
    table = read_table(path, "mixtures")
    for row, line in zip(table.values, table.lines):
        negative = np.flatnonzero(row < 0)
        if negative.size:
            j = int(negative[0])
            raise ConfigError(f"{table.path}:{line}: weight of {table.columns[j]} is {row[j]:g}; weights must be >= 0")
        total = row.sum()
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise ConfigError(f"{table.path}:{line}: the weights sum to {total:.6g}, not 1 (tolerance "
                              f"{SUM_TOLERANCE:g}: rounded published weights are accepted and renormalised)")
    values = table.values / table.values.sum(axis=1, keepdims=True)
    return MixtureTable(table.path, table.index, table.columns, values, table.lines)


def read_runs(mixtures: str | os.PathLike, metrics: str | os.PathLike) -> MixtureRuns:
    """Mixtures and their metrics, matched by index; every index must be in both files."""
    mix = read_mixtures(mixtures)
    met = read_table(metrics, "metrics")
    in_metrics = dict(zip(met.index, range(len(met.index))))
    in_mixtures = set(mix.index)
    for key, line in zip(mix.index, mix.lines):
        if key not in in_metrics:
            raise ConfigError(f"{mix.path}:{line}: run index {key} has no row in the metrics file {met.path} "
                              f"({len(mix.index)} runs in the mixtures file, {len(met.index)} in the metrics file)")
    for key, line in zip(met.index, met.lines):
        if key not in in_mixtures:
            raise ConfigError(f"{met.path}:{line}: run index {key} has no row in the mixtures file {mix.path} "
                              f"({len(mix.index)} runs in the mixtures file, {len(met.index)} in the metrics file)")
    order = [in_metrics[key] for key in mix.index]
    return MixtureRuns(index=mix.index, groups=mix.columns, weights=mix.values, metric_names=met.columns,
                       metrics=met.values[order], mixtures_path=str(Path(mix.path)),
                       metrics_path=str(Path(met.path)))
