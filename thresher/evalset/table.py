"""The scores of systems on items, read from a long table (``item, system, score``) or a wide one (an item column and
one numeric column per system), in Parquet, CSV or JSONL; every problem names the file and the row."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from thresher.errors import ConfigError
from thresher.io.table_file import read_table_file


@dataclass(frozen=True)
class ScoreTable:
    """``scores[i, s]``: system ``systems[s]``'s score on item ``items[i]`` (correctness 0/1 or any metric)."""

    items: tuple[str, ...]
    systems: tuple[str, ...]
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.scores.shape != (len(self.items), len(self.systems)):
            raise ConfigError(f"scores have shape {self.scores.shape} for {len(self.items)} items and "
                              f"{len(self.systems)} systems")

    def full_means(self) -> np.ndarray:
        """Each system's score on the full set: the mean over items."""
        return self.scores.mean(axis=0)

    def take_systems(self, columns: np.ndarray) -> ScoreTable:
        return ScoreTable(self.items, tuple(self.systems[c] for c in columns), self.scores[:, columns])

    def to_long(self) -> pa.Table:
        """``item, system, score``, one row per cell, items then systems in order."""
        n_items, n_systems = self.scores.shape
        return pa.table({"item": np.repeat(np.array(self.items, dtype=object), n_systems),
                         "system": np.tile(np.array(self.systems, dtype=object), n_items),
                         "score": self.scores.ravel()})


def _numbers(table: pa.Table, column: str, path: Path) -> np.ndarray:
    """A column as float64; a value that is not a number names its row (1-based, after the header)."""
    col = table[column]
    if pa.types.is_boolean(col.type) or pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        values = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    else:
        text = col.cast(pa.string())
        values = np.full(len(text), np.nan)
        for row, value in enumerate(text.to_pylist()):
            try:
                values[row] = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{path}: row {row + 1}: {column} {value!r} is not a number") from None
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise ConfigError(f"{path}: row {bad[0] + 1}: {column} is missing or not finite ({len(bad)} such rows)")
    return values


def read_scores(path: str | os.PathLike, item_field: str = "item", system_field: str = "system",
                score_field: str = "score") -> ScoreTable:
    """A scores table from a long file (columns ``item_field, system_field, score_field``) or a wide one (an
    ``item_field`` column and one numeric column per system). Every item needs a score from every system, once."""
    path = Path(path)
    table = read_table_file(path, "scores")
    if item_field not in table.column_names:
        raise ConfigError(f"{path}: no {item_field!r} column (columns: {', '.join(table.column_names)})")
    items = [str(v) for v in table[item_field].cast(pa.string()).to_pylist()]
    if system_field in table.column_names and score_field in table.column_names:
        return _from_long(path, items, [str(v) for v in table[system_field].cast(pa.string()).to_pylist()],
                          _numbers(table, score_field, path))
    systems = [c for c in table.column_names if c != item_field]
    if not systems:
        raise ConfigError(f"{path}: no system columns; give a long table ({item_field}, {system_field}, "
                          f"{score_field}) or one column per system")
    if len(set(items)) != len(items):
        first = next(i for i, v in enumerate(items) if items.index(v) != i)
        raise ConfigError(f"{path}: row {first + 1}: item {items[first]!r} appears twice")
    return ScoreTable(tuple(items), tuple(systems), np.column_stack([_numbers(table, c, path) for c in systems]))


def _from_long(path: Path, items: list[str], systems: list[str], scores: np.ndarray) -> ScoreTable:
    item_index: dict[str, int] = {}
    system_index: dict[str, int] = {}
    i = np.array([item_index.setdefault(v, len(item_index)) for v in items], dtype=np.int64)
    s = np.array([system_index.setdefault(v, len(system_index)) for v in systems], dtype=np.int64)
    item_names, system_names = tuple(item_index), tuple(system_index)
    cell = i * len(system_names) + s
    seen = np.zeros(len(item_names) * len(system_names), dtype=np.int64)
    np.add.at(seen, cell, 1)
    if (seen > 1).any():
        row = int(np.setdiff1d(np.arange(len(cell)), np.unique(cell, return_index=True)[1])[0])  # a repeat
        raise ConfigError(f"{path}: row {row + 1}: item {items[row]!r} and system {systems[row]!r} have two scores")
    if (seen == 0).any():
        missing = int(np.flatnonzero(seen == 0)[0])
        raise ConfigError(f"{path}: no score of system {system_names[missing % len(system_names)]!r} on item "
                          f"{item_names[missing // len(system_names)]!r} ({int((seen == 0).sum())} cells missing); "
                          "every system needs a score on every item")
    grid = np.zeros(len(item_names) * len(system_names))
    grid[cell] = scores
    return ScoreTable(item_names, system_names, grid.reshape(len(item_names), len(system_names)))


def _item_column(path: str | os.PathLike, items: tuple[str, ...], item_field: str, column: str) -> pa.Array:
    """``column`` of an items file, in the order of ``items`` (every scored item must have a row)."""
    path = Path(path)
    table = read_table_file(path, "scores")
    for name in (item_field, column):
        if name not in table.column_names:
            raise ConfigError(f"{path}: no {name!r} column (columns: {', '.join(table.column_names)})")
    found = pc.index_in(pa.array(list(items)), value_set=table[item_field].cast(pa.string()))
    if found.null_count:
        missing = pa.array(list(items)).filter(found.is_null())
        raise ConfigError(f"{path}: {found.null_count} scored items have no row here (e.g. {missing[0].as_py()!r})")
    return table[column].take(found)


def read_item_labels(path: str | os.PathLike, items: tuple[str, ...], item_field: str, label_field: str
                     ) -> np.ndarray:
    """The ``label_field`` of each item (for stratified selection), from an items file with ``item_field``."""
    labels = _item_column(path, items, item_field, label_field).cast(pa.string())
    return np.array(["(none)" if v is None else v for v in labels.to_pylist()], dtype=object)


def read_item_costs(path: str | os.PathLike, items: tuple[str, ...], item_field: str, cost_field: str
                    ) -> np.ndarray:
    """The ``cost_field`` of each item (what scoring it costs: minutes, tokens, money), positive and finite."""
    column = _item_column(path, items, item_field, cost_field)
    try:
        costs = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ConfigError(f"{path}: {cost_field!r} must be numeric, got {column.type}") from None
    bad = np.flatnonzero(~(np.isfinite(costs) & (costs > 0)))
    if len(bad):
        raise ConfigError(f"{path}: item {items[bad[0]]!r} has cost {costs[bad[0]]!r}; every cost must be a positive "
                          f"number ({len(bad)} are not)")
    return costs
