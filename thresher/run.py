"""A :class:`Run` is a run directory opened for reading: manifest, side-car scores, selected ids and records."""

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
        info = self.manifest.get("embedding")
        if not info:
            raise ConfigError(f"{self.path} is not an embed run (thresher embed)")
        from thresher.embeddings import EmbeddingStore

        ids = pq.read_table(self.path / "embeddings" / "ids.parquet")["id"].to_pylist()
        return ids, EmbeddingStore.open(info["store"]).matrix()

    def reselect(self, out: str | os.PathLike | None = None, **changes: object) -> Run:
        """Select again from these scores (budget, seed, selector, temperature, threshold, min_tokens, score,
        where, token_column, embeddings, labels, selector_params, output_format); writes to ``out`` or in place."""
        from thresher.jobs.select import reselect

        return reselect(self.path, out=out, **changes)

    def compare(self, *others: Run | str | os.PathLike, heldout: str | os.PathLike | None = None,
                out: str | os.PathLike, seeds: int = 5, report: bool = True, **options: object):
        """This selection (and ``others`` of the same pool) against random and stratified selections of the same
        size, measured on ``heldout`` (default: half of the run's target); returns an Evaluation written to ``out``.

        ``options`` are :class:`thresher.evaluate.harness.EvaluateConfig` fields (label_column, metrics, level...).
        """
        from thresher.evaluate.harness import EvaluateConfig, compare_runs
        from thresher.io.dataset import read

        config = EvaluateConfig(methods=["random", "stratified"], seeds=seeds, **options)
        return compare_runs([self, *others], read(heldout) if heldout is not None else None, out, config=config,
                            report=report)

    def report(self, out: str | os.PathLike | None = None) -> Path:
        """Write ``report.html`` (or ``out``): summary, score histograms, composition, examples; returns its path."""
        from thresher.report.html import write_report

        return write_report(self.path, out)

    def summary(self) -> str:
        """A short human-readable table of counts, metrics and composition, then notes on how the inputs were read."""
        return "\n".join([self._summary_table(), *input_notes(self.manifest)])

    def _summary_table(self) -> str:
        if self.manifest.get("job") == "dedup":
            from thresher.jobs.dedup import format_dedup_summary

            return format_dedup_summary(self)
        if self.manifest.get("job") == "label" and "selection" not in self.manifest:
            from thresher.jobs.label import format_label_summary

            return format_label_summary(self)
        if self.manifest.get("job") == "score":
            from thresher.jobs.score import format_rule_summary

            return format_rule_summary(self)
        from thresher.report.summary import format_summary

        return format_summary(self.manifest)

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
