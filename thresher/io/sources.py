"""Turn user-given paths (files, globs, directories, Hugging Face ``save_to_disk`` folders) into input files.

Expansion is sorted, so the same paths always give the same files in the same order: record order, derived ids
and therefore selections are stable across runs and machines.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import xxhash

from thresher.errors import ConfigError

COMPRESSIONS = (".gz", ".zst", ".bz2", ".xz")
FORMAT_BY_SUFFIX = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".arrow": "arrow",
    ".txt": "txt",
}


@dataclass(frozen=True)
class InputFile:
    """One file to read: its path, its format, and the name used in derived ids and messages."""

    path: str
    format: str
    name: str

    def describe(self) -> dict:
        """Path, format, size and a content fingerprint, for the run manifest."""
        size = os.path.getsize(self.path)
        return {"path": self.path, "name": self.name, "format": self.format, "bytes": size,
                "fingerprint": file_fingerprint(self.path)}


def detect_format(path: str) -> str | None:
    """Format of a file from its name (``docs.jsonl.gz`` -> ``jsonl``), or None when unsupported."""
    name = path.lower()
    for comp in COMPRESSIONS:
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    return FORMAT_BY_SUFFIX.get(os.path.splitext(name)[1])


def _hf_arrow_files(directory: Path) -> list[Path] | None:
    """Arrow files of a ``datasets.Dataset.save_to_disk`` folder, in shard order; None if it is not one."""
    state = directory / "state.json"
    if state.is_file():
        files = json.loads(state.read_text())["_data_files"]
        return [directory / f["filename"] for f in files]
    if (directory / "dataset_dict.json").is_file():
        splits = json.loads((directory / "dataset_dict.json").read_text()).get("splits", [])
        raise ConfigError(
            f"{directory} is a DatasetDict; give one split's folder, e.g. {directory / splits[0]}"
            if splits else f"{directory} is an empty DatasetDict"
        )
    return None


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[InputFile]:
    """Expand files, globs and directories into a sorted, de-duplicated list of :class:`InputFile`."""
    return expand_paths_reporting(paths)[0]


def expand_paths_reporting(paths: Iterable[str | os.PathLike]) -> tuple[list[InputFile], list[str]]:
    """:func:`expand_paths`, plus the files inside given folders that were left out for an unsupported type.

    A file named explicitly (or by a glob) with an unsupported type is an error; in a folder it is skipped, and
    the caller reports it (the manifest lists such files, the CLI says how many there were).
    """
    found: list[Path] = []
    skipped: list[str] = []
    for raw in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        raw = os.fspath(raw)
        matches = sorted(glob.glob(raw, recursive=True)) if glob.has_magic(raw) else [raw]
        if not matches:
            raise ConfigError(f"no file matches {raw!r}")
        for m in matches:
            p = Path(m)
            if p.is_dir():
                hf = _hf_arrow_files(p)
                if hf is not None:
                    found.extend(hf)
                    continue
                # thresher's own run directories (an --out inside the input folder) are outputs, not input
                runs = [r.parent for r in p.rglob(".thresher.lock")]
                inside = sorted(q for q in p.rglob("*") if q.is_file() and not any(r in q.parents for r in runs))
                found.extend(q for q in inside if detect_format(str(q)) is not None)
                skipped.extend(str(q) for q in inside if detect_format(str(q)) is None)
            elif p.exists():
                found.append(p)
            else:
                raise ConfigError(f"input not found: {raw}")
    seen: set[str] = set()
    files: list[Path] = []
    for p in found:
        key = str(p.resolve())
        if key not in seen:
            seen.add(key)
            files.append(p)
    if not files:
        more = f" ({len(skipped)} files of unsupported types, e.g. {skipped[0]})" if skipped else ""
        raise ConfigError(f"no readable input files in {paths}{more}")
    names = _short_names(files)
    out = []
    for p, name in zip(files, names):
        fmt = detect_format(str(p))
        if fmt is None:
            raise ConfigError(f"{p}: unsupported file type (supported: {', '.join(sorted(FORMAT_BY_SUFFIX))},"
                              f" optionally compressed with {', '.join(COMPRESSIONS)})")
        out.append(InputFile(str(p), fmt, name))
    return out, sorted(set(skipped))


def _short_names(files: list[Path]) -> list[str]:
    """Names relative to the files' common folder: unique, short, and stable wherever the data lives."""
    resolved = [str(p.resolve()) for p in files]
    if len(resolved) == 1:
        return [files[0].name]
    common = os.path.commonpath([os.path.dirname(r) for r in resolved])
    return [os.path.relpath(r, common) for r in resolved]


def file_fingerprint(path: str, block: int = 1 << 20) -> str:
    """xxh3-128 of the file's size and content (whole file up to 64 MiB; beyond, 64 evenly spaced 1 MiB blocks).

    Cheap enough to run on every input at every run, and it changes whenever the data does in practice.
    """
    size = os.path.getsize(path)
    h = xxhash.xxh3_128()
    h.update(str(size).encode())
    with open(path, "rb") as f:
        if size <= 64 * block:
            while chunk := f.read(block):
                h.update(chunk)
        else:
            for i in range(64):
                f.seek((size - block) * i // 63)
                h.update(f.read(block))
    return h.hexdigest()
