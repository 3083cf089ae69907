"""Pieces every job's manifest.json records: what was read and with which software."""

from __future__ import annotations

import json
import platform
import sys

import xxhash

from thresher._version import __version__
from thresher.io.dataset import Dataset


def dataset_info(ds: Dataset) -> dict:
    """Paths, per-file sizes and fingerprints, and the reading options: enough to read the same records again."""
    return {"paths": ds.paths, "resolved_paths": [_resolved(p) for p in ds.paths], "files": ds.describe(),
            "text_field": ds.text_field, "id_field": ds.id_field, "on_error": ds.on_error,
            "batch_size": ds.batch_size, "duplicate_ids": ds.duplicate_ids,
            "renamed_ids": {"count": ds.renamed_ids, "examples": ds.rename_examples},
            "unsupported_files": {"count": len(ds.unsupported_files), "paths": ds.unsupported_files[:50]}}


def reopen_dataset(info: dict, **overrides: object) -> Dataset:
    """The Dataset a manifest's input entry describes, read the same way; by absolute paths when the manifest has
    them, so a run can be reopened from any working folder (``overrides``: reading options to change)."""
    options = {"text_field": info["text_field"], "id_field": info["id_field"], "on_error": info["on_error"],
               "batch_size": info["batch_size"], "duplicate_ids": info.get("duplicate_ids", "error"), **overrides}
    return Dataset(info.get("resolved_paths") or info["paths"], **options)


def _resolved(path: str) -> str:
    """An absolute path (globs stay globs), so a run can be reopened from any working folder."""
    import os

    return path if "://" in path else os.path.abspath(path)


def dataset_fingerprint(ds: Dataset, **extra: object) -> str:
    """A key that changes whenever the records read, or their split into batches, could change (for caches)."""
    key = {"files": [(f["path"], f["bytes"], f["fingerprint"]) for f in ds.describe()],
           "text_field": ds.text_field, "id_field": ds.id_field, "on_error": ds.on_error,
           "batch_size": ds.batch_size, **extra}
    if ds.duplicate_ids != "error":  # renamed ids are other records' keys; unique-id pools keep their old key
        key["duplicate_ids"] = ds.duplicate_ids
    return xxhash.xxh3_64_hexdigest(json.dumps(key, sort_keys=True).encode())


def versions() -> dict:
    """Python, platform and the versions of the libraries that decide the results."""
    import numpy
    import pyarrow
    import xxhash

    return {"python": sys.version.split()[0], "platform": platform.platform(), "numpy": numpy.__version__,
            "pyarrow": pyarrow.__version__, "xxhash": xxhash.VERSION, "thresher": __version__}
