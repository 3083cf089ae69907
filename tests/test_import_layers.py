"""The orchestration floor has no import circles: run directories are read below the jobs that write them.

Every ``import`` in thresher is followed, including those inside functions (a lazy import still ties two modules
together), and the strongly connected components of that graph are computed: a cycle is two or more modules that
each reach the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import thresher

ROOT = Path(thresher.__file__).parent

#: Label models use one-coin Dawid-Skene as the default class-balance estimator of their shared template (a
#: template-and-default-strategy knot inside one package), not the orchestration floor this test guards.
KNOWN_INSIDE_ONE_PACKAGE = {"thresher.label.models"}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for target in targets:
                dep = owner(target) if target.startswith("thresher") else None
                if dep and dep != mod and not mod.startswith(dep + "."):  # a package's own __init__ is not a cycle
                    graph[mod].add(dep)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_is_read_with_lazy_imports():
    graph = _imports(_modules())
    assert "thresher.jobs.select" in graph["thresher.api"]  # a module-level import
    assert "thresher.jobs.label" in graph["thresher.api"]  # an import inside a function counts too
    assert "thresher.report.summary" in graph["thresher.run"]
    # the checker finds a circle when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_one_that_imports_it_back():
    cycles = [c for c in _cycles(_imports(_modules()))
              if not all(any(m.startswith(p) for p in KNOWN_INSIDE_ONE_PACKAGE) for m in c)]
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_run_directories_are_read_below_the_jobs_that_write_them():
    graph = _imports(_modules())
    readers = [m for m in graph if m == "thresher.run" or m.startswith("thresher.report")]
    for reader in readers:
        upward = sorted(d for d in graph[reader] if d.startswith(("thresher.jobs", "thresher.pipeline",
                                                                     "thresher.recipe", "thresher.evaluate.harness",
                                                                     "thresher.api", "thresher.cli")))
        assert not upward, f"{reader} imports {upward}"
