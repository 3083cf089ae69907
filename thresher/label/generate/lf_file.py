"""Generated LFs written as an ordinary LF file: one readable line per LF, with how it did on the dev records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from thresher.io.atomic import atomic_path
from thresher.label.lfs import PrototypeLF
from thresher.label.prompted import PromptLF


def lf_yaml(generated: Sequence, classes: Sequence[str], header: Sequence[str] = ()) -> str:
    """YAML text of generated LFs (``classes:`` and ``lfs:``), each with its dev precision and coverage.

    Strings are written as JSON, which YAML reads as the same strings whatever characters a keyword holds.
    """
    lines = [f"# {line}" if line else "#" for line in header]
    lines.append(f"classes: {json.dumps(list(classes), ensure_ascii=False)}")
    lines.append("lfs:" if generated else "lfs: []")
    for g in generated:
        lines += _entry(g.lf.name, g)
    return "\n".join(lines) + "\n"


def _entry(name: str, g) -> list[str]:
    """The YAML lines of one generated LF: a one-line keyword LF, a prototypes LF with one text per line, or a
    prompt LF with one setting per line."""
    def q(value) -> str:
        return json.dumps(value, ensure_ascii=False)

    if isinstance(g.lf, PrototypeLF):
        lines = [f"  - name: {q(name)}  # {g.note()}", f"    backend: {q(g.lf.backend)}",
                 f"    margin: {g.lf.margin:g}", "    prototypes:"]
        for label, texts in g.lf.prototypes.items():
            lines.append(f"      {q(label)}:")
            lines += [f"        - {q(text)}" for text in texts]
        return lines
    if isinstance(g.lf, PromptLF):
        scorer = g.lf.scorer
        return [f"  - name: {q(name)}  # {g.note()}", f"    prompt: {q(scorer.template)}",
                f"    answers: {q(scorer.answers)}", f"    model: {q(g.lf.model)}",
                f"    chat: {'true' if scorer.chat else 'false'}", f"    max_tokens: {scorer.max_tokens}",
                f"    bias: {q(g.lf.bias)}", f"    margin: {g.lf.margin:g}"]
    return [f"  - {{name: {q(name)}, label: {q(g.label)}, keywords: {q(g.lf.keywords)}}}  # {g.note()}"]


def write_lf_yaml(path: str | Path, generated: Sequence, classes: Sequence[str], header: Sequence[str] = ()) -> Path:
    """Write :func:`lf_yaml` to ``path`` atomically and return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(lf_yaml(generated, classes, header), encoding="utf-8")
    return path
