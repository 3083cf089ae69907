"""LF sets and the files they come from: a ``.py`` file (module-level LFs in definition order, plus ``CLASSES``) or
a ``.yaml`` file (``classes:`` and ``lfs:``), read with errors that name the file and line, and merged when a task
takes LFs from several files."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from thresher.errors import ConfigError
from thresher.label.lfs import (
    USER_ERRORS,
    CallableLF,
    KeywordLF,
    LabelingFunction,
    PrototypeLF,
    RegexLF,
    ScoreLF,
    describe_error,
    label_index,
)


class LFSet:
    """The classes and the LFs of one labelling task, and where they came from (for workers and the manifest).

    An LF set loaded from a file pickles as its path and content digest, so worker processes load the file again
    instead of pickling functions defined in it.
    """

    def __init__(self, classes: Sequence[str], lfs: Sequence[LabelingFunction], source: str | None = None,
                 digest: str | None = None):
        self.classes = [str(c) for c in classes]
        self.lfs = list(lfs)
        self.source, self.digest = source, digest
        where = f"{source}: " if source else ""
        if len(self.classes) < 2:
            raise ConfigError(f"{where}a labelling task needs at least 2 classes, got {self.classes}")
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"{where}duplicate class names in {self.classes}")
        if not self.lfs:
            raise ConfigError(f"{where}no labelling functions found")
        names = [f.name for f in self.lfs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"{where}two labelling functions are named {', '.join(dupes)}; names must be unique")
        for f in self.lfs:
            if not isinstance(f, LabelingFunction):
                raise ConfigError(f"{where}{f!r} is not a labelling function (decorate it with @thresher.lf)")
            if isinstance(f, CallableLF) and f.label_names is not None and f.label_names != self.classes:
                raise ConfigError(f"{where}LF {f.name!r} has label_names {f.label_names}, but the classes are "
                                  f"{self.classes}")
            for label in f.voted_labels():
                label_index(label, self.classes, f.name)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.lfs]

    @property
    def columns(self) -> list[str]:
        """Extra record columns the LFs read (score LFs)."""
        return list(dict.fromkeys(c for f in self.lfs for c in f.columns))

    def describe(self) -> dict:
        return {"source": self.source, "digest": self.digest, "classes": self.classes,
                "lfs": [f.describe() for f in self.lfs]}

    def __reduce__(self):
        if self.source and self.digest:
            return (_load_cached, (self.source, self.digest))
        if getattr(self, "parts", None):
            return (_load_merged, (self.parts,))
        return (LFSet, (self.classes, self.lfs, self.source, self.digest))

    def __len__(self) -> int:
        return len(self.lfs)

    def __repr__(self) -> str:
        return f"LFSet({len(self.lfs)} LFs, classes={self.classes}, source={self.source!r})"


_CACHE: dict[tuple[str, str], LFSet] = {}


def _load_cached(source: str, digest: str) -> LFSet:
    """Load an LF file once per process (workers receive the path, not the functions)."""
    key = (source, digest)
    if key not in _CACHE:
        lfs = load_lfs(source)
        if lfs.digest != digest:
            raise ConfigError(f"{source} changed while labelling; run again")
        _CACHE[key] = lfs
    return _CACHE[key]


def merge_lf_sets(sets: Sequence[LFSet]) -> LFSet:
    """One LF set from several with the same classes (hand-written plus generated LFs, say); LF names stay unique.

    Merged file-loaded sets pickle as their files' paths and digests, so workers load each file themselves.
    """
    if len(sets) == 1:
        return sets[0]
    first = sets[0]
    for other in sets[1:]:
        if other.classes != first.classes:
            raise ConfigError(f"LF files must list the same classes in the same order: {first.source or 'the first'} "
                              f"has {first.classes}, {other.source or 'another'} has {other.classes}")
    merged = LFSet(first.classes, [f for s in sets for f in s.lfs],
                   source=" + ".join(str(s.source) for s in sets))
    if all(s.source and s.digest for s in sets):
        merged.parts = tuple((s.source, s.digest) for s in sets)
    return merged


def _load_merged(parts: tuple[tuple[str, str], ...]) -> LFSet:
    """A merged LF set rebuilt in a worker from its files."""
    return merge_lf_sets([_load_cached(source, digest) for source, digest in parts])


def load_lfs(path: str | os.PathLike) -> LFSet:
    """Read an LF set from a ``.py`` or ``.yaml``/``.yml`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"LF file {path} does not exist")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    if path.suffix == ".py":
        return _load_python(path.resolve(), digest)
    if path.suffix in (".yaml", ".yml"):
        return _load_yaml(path.resolve(), data.decode("utf-8"), digest)
    raise ConfigError(f"{path}: LF files are .py (decorated functions and CLASSES) or .yaml (classes and lfs)")


def as_lf_set(lfs: LFSet | str | os.PathLike | Sequence[LabelingFunction | Callable | str | os.PathLike],
              classes: Sequence[str] | None = None) -> LFSet:
    """An :class:`LFSet` from a file path, an LFSet, several LF files (merged), or a list of LFs/functions plus
    ``classes``."""
    if isinstance(lfs, LFSet):
        if classes is not None and list(classes) != lfs.classes:
            raise ConfigError(f"classes {list(classes)} differ from the LF set's {lfs.classes}")
        return lfs
    if isinstance(lfs, (str, os.PathLike)):
        loaded = load_lfs(lfs)
        return as_lf_set(loaded, classes)
    if isinstance(lfs, (list, tuple)) and lfs and all(isinstance(x, (str, os.PathLike, LFSet)) for x in lfs):
        return as_lf_set(merge_lf_sets([x if isinstance(x, LFSet) else load_lfs(x) for x in lfs]), classes)
    if classes is None:
        raise ConfigError("give the class names (classes=[...]) with a list of labelling functions")
    return LFSet(classes, [f if isinstance(f, LabelingFunction) else CallableLF(f) for f in lfs])


def _load_python(path: Path, digest: str) -> LFSet:
    """Import the file as a fresh module; collect module-level LFs (definition order) and CLASSES/LABELS."""
    name = f"_thresher_lfs_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling by reference inside the file need the module registered
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except USER_ERRORS as e:  # user code at import time (sys.exit too)
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
        line = f":{frames[-1].lineno}" if frames else ""
        raise ConfigError(f"{path}{line}: importing the LF file failed: {describe_error(e)}") from None
    classes = getattr(module, "CLASSES", None) or getattr(module, "LABELS", None)
    if not classes or not isinstance(classes, (list, tuple)):
        raise ConfigError(f"{path}: define the class names at module level, e.g. CLASSES = ['negative', 'positive']")
    explicit = getattr(module, "LFS", None)
    lfs = list(explicit) if explicit is not None else [
        v for k, v in vars(module).items() if isinstance(v, LabelingFunction) and not k.startswith("_")]
    return LFSet(classes, lfs, source=str(path), digest=digest)


_LF_KEYS = {"name", "label", "keywords", "regex", "case_sensitive", "whole_word", "column", "threshold", "op",
            "else_label", "prototypes", "backend", "margin", "min_similarity", "prompt", "answers", "model", "chat",
            "bias", "max_tokens", "batch_size"}
#: the keys of each model-backed LF kind (they vote the classes they score, so they take no label)
_PROTOTYPE_KEYS = {"name", "prototypes", "backend", "margin", "min_similarity"}
_PROMPT_KEYS = {"name", "prompt", "answers", "model", "chat", "bias", "margin", "max_tokens", "batch_size"}


def _load_yaml(path: Path, text: str, digest: str) -> LFSet:
    """``classes: [..]`` and ``lfs: [{name, label, keywords | regex | column+threshold+op, ...}]``, or
    ``{name, prototypes: {class: [texts]}, backend, margin, min_similarity}``."""
    from thresher.yaml_loading import load_yaml

    data = load_yaml(text, str(path))
    if not isinstance(data, dict) or "classes" not in data or "lfs" not in data:
        raise ConfigError(f"{path}: an LF file is a mapping with 'classes' (a list of names) and 'lfs' (a list)")
    if set(data) - {"classes", "lfs", "__line__"}:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(set(data) - {'classes', 'lfs', '__line__'}))}")
    classes, entries = data["classes"], data["lfs"]
    if not isinstance(classes, list) or not isinstance(entries, list):
        raise ConfigError(f"{path}:{data['__line__']}: 'classes' and 'lfs' must be lists")
    lfs = []
    for i, entry in enumerate(entries):
        where = f"{path}:{entry.get('__line__', '?')}" if isinstance(entry, dict) else f"{path} (lfs item {i + 1})"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: each LF is a mapping such as {{name: sport, label: sport, keywords: [..]}}")
        spec = {k: v for k, v in entry.items() if k != "__line__"}
        unknown = sorted(set(spec) - _LF_KEYS)
        kinds = [k for k in ("keywords", "regex", "column", "prototypes", "prompt") if k in spec]
        try:
            if unknown:
                raise ConfigError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_LF_KEYS))}")
            if len(kinds) != 1:
                raise ConfigError("give exactly one of keywords, regex, column (with threshold), prototypes or prompt")
            name = str(spec.get("name") or f"lf_{i}")
            if "prototypes" in spec or "prompt" in spec:
                keys = _PROTOTYPE_KEYS if "prototypes" in spec else _PROMPT_KEYS
                extra = sorted(set(spec) - keys)
                if extra:
                    raise ConfigError(f"a {kinds[0]} LF votes the classes it scores; it takes no {', '.join(extra)}")
                spec = {k: _without_lines(v) for k, v in spec.items() if k != "name"}
                if "prototypes" in spec:
                    lfs.append(PrototypeLF(name, **spec))
                else:
                    from thresher.label.prompted import PromptLF

                    lfs.append(PromptLF(name, **spec))
            elif "label" not in spec:
                raise ConfigError("give the 'label' this LF votes for")
            elif "keywords" in spec:
                lfs.append(KeywordLF(name, spec["label"], spec["keywords"], spec.get("case_sensitive", False),
                                     spec.get("whole_word", True)))
            elif "regex" in spec:
                if "whole_word" in spec:
                    raise ConfigError(f"LF {name!r}: whole_word applies to keywords, not regex")
                lfs.append(RegexLF(name, spec["label"], spec["regex"], spec.get("case_sensitive", False)))
            else:
                if "threshold" not in spec:
                    raise ConfigError("a column LF needs a 'threshold'")
                lfs.append(ScoreLF(name, str(spec["column"]), spec["threshold"], spec["label"],
                                   str(spec.get("op", ">=")), spec.get("else_label")))
            for label in lfs[-1].voted_labels():
                label_index(label, [str(c) for c in classes], name)  # here too, so the error names the line
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    return LFSet(classes, lfs, source=str(path), digest=digest)


def _without_lines(value):
    """A YAML value without the ``__line__`` entries the reader adds to every mapping."""
    if isinstance(value, dict):
        return {k: _without_lines(v) for k, v in value.items() if k != "__line__"}
    return value
