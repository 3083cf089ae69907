"""The ``generate-lfs`` job: read labelled dev records, write LFs from them (keywords, nearest centroid, zero-shot,
a prompted LM) into an LF file to edit.

The file is an ordinary ``.yaml`` LF file (``thresher label --lfs hand.yaml --lfs generated.yaml`` merges it with
hand-written LFs). Its header says where the LFs came from; each LF carries its precision and coverage on the dev
records -- optimistic numbers, since the LFs were chosen on those same records.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog
from thresher.jobs.label import dev_filter, dev_labels, dev_where_rows
from thresher.label.generate import (
    GeneratedLF,
    LFRefused,
    generate_centroid_lf,
    generate_keyword_lfs,
    generate_prompt_lf,
    generate_zero_shot_lf,
    write_lf_yaml,
)
from thresher.label.lf_files import load_lfs

GENERATE_METHODS = ("keywords", "centroid", "zero-shot", "prompt")


@dataclass
class GeneratedLFs:
    """What ``generate_lfs`` wrote: the file, the LFs with their dev numbers, and the dev records used."""

    path: Path
    classes: list[str]
    lfs: list[GeneratedLF]
    n_dev: int
    skipped: int
    refused: dict[str, str]  # method -> why it wrote no LF

    def summary(self) -> str:
        by_class = {c: sum(c in g.lf.voted_labels() for g in self.lfs) for c in self.classes}  # LFs voting c
        lines = [f"{len(self.lfs)} LFs from {self.n_dev:,} dev records"
                 + (f" ({self.skipped:,} unreadable records skipped)" if self.skipped else "") + ": "
                 + ", ".join(f"{c} {n}" for c, n in by_class.items())]
        lines += [f"  {g.lf.name:<40} {g.note()}" for g in self.lfs]
        lines += [f"  no {method} LF: {why}" for method, why in self.refused.items()]
        lines.append(f"LF file: {self.path}")
        return "\n".join(lines)


def generate_lfs(dev: Dataset, out: str | os.PathLike, *, label_field: str = "label", dev_where: str | None = None,
                 classes: Sequence[str] | None = None, like: str | os.PathLike | None = None,
                 method: str | Sequence[str] = "keywords", sample: int | None = None, seed: int = 0,
                 params: dict | None = None, descriptions: dict[str, str] | None = None,
                 backend: str = "static", prompt: str | None = None, answers: dict[str, list[str]] | None = None,
                 lm: str = "smollm2", chat: bool = False) -> GeneratedLFs:
    """Mine LFs from the labelled records of ``dev`` and write them to ``out`` (a .yaml file).

    ``method``: one or several of ``keywords`` (Snuba-style n-gram LFs), ``centroid`` (a nearest-centroid LF on
    sentence embeddings, ``backend``), ``zero-shot`` (an LF comparing records with ``descriptions`` of the classes,
    by default their names), ``prompt`` (the causal LM ``lm`` asked ``prompt`` about each record, ``answers`` per
    class, as a chat turn if ``chat``; see :func:`generate_prompt_lf`). ``classes``: the class names, in order
    (default: those of ``like``, an existing LF file the new one should merge with, else the distinct labels sorted).
    ``sample``: use a seeded random ``sample`` of the dev records (to see what a smaller labelling budget gives).
    ``params``: :func:`generate_keyword_lfs` settings.
    """
    methods = list(dict.fromkeys([method] if isinstance(method, str) else method))
    unknown = [m for m in methods if m not in GENERATE_METHODS]
    if unknown or not methods:
        raise ConfigError(f"unknown LF generation method {', '.join(unknown) or '(none)'}; choose from "
                          f"{', '.join(GENERATE_METHODS)}")
    out = Path(out)
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"the generated LF file is YAML: give a .yaml path, not {out}")
    if classes is not None and like is not None:
        raise ConfigError("give the classes or an LF file to take them from (like), not both")
    errors = ErrorLog(dev.on_error)
    table = _labelled_records(dev, errors, label_field, dev_where, sample, seed)
    taken: set[str] = set()
    if like is not None:
        like_set = load_lfs(like)
        classes, taken = like_set.classes, set(like_set.names)
    if classes is None:
        classes = sorted({str(v) for v in table[label_field].to_pylist() if v is not None})
        if len(classes) < 2:
            raise ConfigError(f"the dev records' {label_field!r} holds {len(classes)} class(es); LFs need two or more")
    classes = [str(c) for c in classes]
    y = dev_labels(table[label_field].combine_chunks(), table["id"].combine_chunks(), classes, label_field)
    texts = table["text"].to_pylist()
    generated: list[GeneratedLF] = []
    refused: dict[str, str] = {}
    for m in methods:
        try:
            if m == "keywords":
                generated += generate_keyword_lfs(texts, y, classes, **(params or {}))
            elif m == "centroid":
                generated.append(generate_centroid_lf(texts, y, classes, backend=backend))
            elif m == "prompt":
                generated.append(generate_prompt_lf(texts, y, classes, prompt, answers, model=lm, chat=chat))
            else:
                generated.append(generate_zero_shot_lf(texts, y, classes, descriptions, backend=backend))
        except LFRefused as e:
            if len(methods) == 1:  # the only thing asked for
                raise
            refused[m] = str(e)  # a scored LF not clearly above chance: reported, not written
    for g in generated:  # unique names, here and beside the LF file they are meant to merge with
        name, i = g.lf.name, 1
        while name in taken:
            i += 1
            name = f"{g.lf.name}_{i}"
        g.lf.name = name
        taken.add(name)
    source = f"{len(texts):,} dev records of {', '.join(str(f.path) for f in dev.files)}"
    header = [f"LFs generated by thresher generate-lfs ({', '.join(methods)}) from {source}",
              f"(label field {label_field!r}" + (f", where {dev_where}" if dev_where else "")
              + (f", a seeded sample: seed {seed}" if sample is not None else "") + f"; settings {params or {}}).",
              "Each is an ordinary LF: edit or delete freely. The dev precision and coverage after each LF are",
              "measured on the records it was chosen on (leave-one-out for nearest-centroid prototypes), so they are",
              "optimistic."]
    write_lf_yaml(out, generated, classes, header)
    return GeneratedLFs(out, classes, generated, len(texts), errors.to_dict()["total"], refused)


def _labelled_records(dev: Dataset, errors: ErrorLog, label_field: str, dev_where: str | None, sample: int | None,
                      seed: int) -> pa.Table:
    """The dev records (id, text, label field) where ``dev_where`` holds, or a seeded ``sample`` of them."""
    where = dev_filter(dev_where)
    extra = [label_field] + (where.columns if where is not None else [])
    table = dev.read_all(errors, extra)
    if table.num_rows == 0:
        raise ConfigError("no labelled dev records to generate LFs from")
    if where is not None:
        table = table.take(pa.array(dev_where_rows(table, where)))
    if sample is not None:
        if sample < 1:
            raise ConfigError(f"sample must be >= 1, got {sample}")
        if sample < table.num_rows:
            rows = np.sort(np.random.default_rng(seed).choice(table.num_rows, sample, replace=False))
            table = table.take(pa.array(rows))
    return table
