"""A :class:`Run` is a run directory opened for reading: manifest, side-car scores, selected ids and records.

It only reads (and renders its report): the jobs that write runs build on it, never the other way round, so new
selections from a run's scores are ``th.reselect(run, ...)`` and comparisons ``th.compare(run, ...)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thresher.errors import ConfigError


class Run:
    """A finished run directory (``manifest.json``, ``scores/``, ``selected/``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.is_file():
            raise ConfigError(f"{self.path} is not a thresher run directory (no manifest.json)")
        self.manifest: dict = json.loads(manifest.read_text())

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics", {})

    @property
    def counts(self) -> dict:
        return self.manifest.get("counts", {})

    def scores(self) -> pa.Table:
        """The side-car score table: id, score columns, lengths and group, one row per scored record."""
        return pq.read_table(self.path / "scores" / "scores.parquet")

    def selected_ids(self) -> list[str]:
        """Selected ids, best (or first drawn) first."""
        return (self.path / "selected" / "ids.txt").read_text(encoding="utf-8").splitlines()

    def selected_records(self) -> pa.Table:
        """The selected records with all their original fields (not available with ``format='ids'``)."""
        files = self.manifest["outputs"]["records"]
        if not files:
            raise ConfigError(f"{self.path}: records were not written (format 'ids'); use selected_ids()")
        if files[0].endswith(".parquet"):
            return pa.concat_tables([pq.read_table(self.path / f) for f in files], promote_options="permissive")
        import pyarrow.json as pajson

        return pajson.read_json(self.path / files[0])

    def embeddings(self) -> tuple[list[str], np.ndarray]:
        """Ids and the float32 embedding matrix of an embed run (rows in the ids' order)."""
        return self.embedding_ids().to_pylist(), self.embedding_store().matrix()

    def embedding_ids(self) -> pa.Array:
        """The ids of an embed run's rows, in order."""
        self.embedding_store()  # says so if this is not an embed run
        return pq.read_table(self.path / "embeddings" / "ids.parquet")["id"].combine_chunks()

    def embedding_store(self):
        """The complete embedding store an embed run wrote (:class:`~thresher.embeddings.EmbeddingStore`)."""
        info = self.manifest.get("embedding")
        if not info:
            raise ConfigError(f"{self.path} is not an embed run (thresher embed)")
        from thresher.embeddings import EmbeddingStore

        return EmbeddingStore.open(info["store"])

    def report(self, out: str | os.PathLike | None = None) -> Path:
        """Write ``report.html`` (or ``out``): summary, score histograms, composition, examples; returns its path."""
        from thresher.report.html import write_report

        return write_report(self.path, out)

    def summary(self) -> str:
        """A short human-readable table of counts, metrics and composition, then notes on how the inputs were read."""
        from thresher.report.summary import summarize

        return "\n".join([summarize(self.manifest, self.path), *input_notes(self.manifest)])

    def __getattr__(self, name: str) -> object:
        if name in ("reselect", "compare"):  # they were methods before Run became a pure reader
            raise AttributeError(f"Run is a reader of a run directory; use th.{name}(run, ...) instead of "
                                 f"run.{name}(...)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        c = self.counts
        if self.manifest.get("job") == "label":
            return f"Run({str(self.path)!r}, labelled={c.get('labelled')}, abstained={c.get('abstained')})"
        return f"Run({str(self.path)!r}, selected={c.get('selected')}, scored={c.get('scored')})"


def input_notes(manifest: dict) -> list[str]:
    """One line per input that had files skipped for their type, or ids renamed (from the manifest's inputs)."""
    notes = []
    for role, info in (manifest.get("inputs") or {}).items():
        if not isinstance(info, dict):
            continue
        skipped = (info.get("unsupported_files") or {}).get("count") or 0
        if skipped:
            paths = info["unsupported_files"]["paths"]
            notes.append(f"note: {role}: {skipped:,} file(s) in the input folders were not read (unsupported type), "
                         f"e.g. {', '.join(paths[:3])}; all are listed in manifest.json")
        renamed = (info.get("renamed_ids") or {}).get("count") or 0
        if renamed:
            notes.append(f"note: {role}: {renamed:,} record(s) had an id used before and were renamed ID#k "
                         "(--duplicate-ids rename); examples in manifest.json")
    return notes
