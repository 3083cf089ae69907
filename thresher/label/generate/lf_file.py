"""Generated LFs written as an ordinary LF file: one readable line per LF, with how it did on the dev records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from thresher.io.atomic import atomic_path


def lf_yaml(generated: Sequence, classes: Sequence[str], header: Sequence[str] = ()) -> str:
    """YAML text of keyword LFs (``classes:`` and ``lfs:``), each followed by its dev precision and coverage.

    Strings are written as JSON, which YAML reads as the same strings whatever characters a keyword holds.
    """
    lines = [f"# {line}" if line else "#" for line in header]
    lines.append(f"classes: {json.dumps(list(classes), ensure_ascii=False)}")
    lines.append("lfs:" if generated else "lfs: []")
    seen: dict[str, int] = {}
    for g in generated:
        name = g.lf.name
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:  # two keywords that differ only in punctuation share a name: number the later ones
            name = f"{name}_{seen[name]}"
        spec = (f"{{name: {json.dumps(name, ensure_ascii=False)}, label: {json.dumps(g.label, ensure_ascii=False)}, "
                f"keywords: {json.dumps(g.lf.keywords, ensure_ascii=False)}}}")
        lines.append(f"  - {spec}  # {g.note()}")
    return "\n".join(lines) + "\n"


def write_lf_yaml(path: str | Path, generated: Sequence, classes: Sequence[str], header: Sequence[str] = ()) -> Path:
    """Write :func:`lf_yaml` to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(lf_yaml(generated, classes, header), encoding="utf-8")
    return path
