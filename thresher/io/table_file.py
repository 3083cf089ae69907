"""Reading a whole small table (a leaderboard, a file of probabilities) from Parquet, CSV/TSV or JSON Lines, with
an error that names the file instead of a parser trace."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from thresher.errors import ConfigError


def read_table_file(path: str | os.PathLike, what: str = "the table") -> pa.Table:
    """The table in ``path`` (.parquet, .csv, .tsv, .jsonl/.json); ``what`` names it in errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if name.endswith((".csv", ".tsv")):
            import pyarrow.csv as pacsv

            return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter="\t" if name.endswith(".tsv")
                                                                         else ","))
        if name.endswith((".jsonl", ".json")):
            import pyarrow.json as pajson

            return pajson.read_json(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise ConfigError(f"{path}: not a readable table ({str(e).splitlines()[0]})") from None
    raise ConfigError(f"{path}: {what} must be .parquet, .csv, .tsv or .jsonl")
