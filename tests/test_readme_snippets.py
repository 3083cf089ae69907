"""The README's Python snippets run as a user runs them: saved as a script, piped into ``python -``, and in a
Jupyter notebook, with no ``if __name__ == "__main__":`` guard (multiprocessing must not re-run the user's
script, and ``@th.lf`` functions defined in it must reach the workers).

Each snippet runs in a fresh directory per mode (so no run reuses another's scores); it must exit cleanly, print
the same output in every mode (a script that re-ran itself in a worker would print twice), and every run
directory it writes must account for every input record.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TIMEOUT = 600


def readme_snippets() -> list[str]:
    """Every ```python block of the README, in order."""
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)


SNIPPETS = readme_snippets()
MODES = ["script", "stdin", "notebook"]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run_python(code: str, mode: str, cwd: Path) -> str:
    """Run ``code`` saved as ``example.py`` (``python example.py``) or piped (``python - < example.py``)."""
    script = cwd / "example.py"
    script.write_text(code)
    if mode == "script":
        proc = subprocess.run([sys.executable, script.name], cwd=cwd, env=_env(), capture_output=True, text=True,
                              timeout=TIMEOUT)
    else:
        with script.open() as stdin:
            proc = subprocess.run([sys.executable, "-"], stdin=stdin, cwd=cwd, env=_env(), capture_output=True,
                                  text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{mode} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc.stdout


def _run_notebook(code: str, cwd: Path, monkeypatch) -> str:
    """Run ``code`` as the one cell of a notebook on a real IPython kernel; its printed output."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])  # the kernel inherits this process's environment
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = nb.cells[0].outputs
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, "\n".join(errors[0].traceback)
    return "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")


def _run_dirs(cwd: Path) -> list[Path]:
    return sorted(p.parent for p in cwd.glob("runs/*/manifest.json"))


def test_readme_has_the_snippets():
    """The select, pipeline and labelling snippets are all there, each importing what it uses."""
    assert len(SNIPPETS) >= 3
    assert any("th.select(" in s for s in SNIPPETS)
    assert any("Pipeline(" in s for s in SNIPPETS)
    assert any("@th.lf" in s and "th.label(" in s for s in SNIPPETS)
    for snippet in SNIPPETS:
        if "th." in snippet:
            assert "import thresher as th" in snippet, snippet


@pytest.mark.parametrize("index", range(len(SNIPPETS)), ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_snippet_runs_as_script_piped_and_in_a_notebook(index, tmp_path, monkeypatch):
    code = SNIPPETS[index]
    printed = {}
    for mode in MODES:
        cwd = tmp_path / mode
        cwd.mkdir()
        printed[mode] = _run_notebook(code, cwd, monkeypatch) if mode == "notebook" else _run_python(code, mode, cwd)
        runs = _run_dirs(cwd)
        assert runs, f"{mode}: the snippet wrote no run directory"
        for run in runs:
            counts = json.loads((run / "manifest.json").read_text())["counts"]
            assert counts.get("all_accounted_for", True) is True, (mode, run.name, counts)
            assert counts["input_records"] > 0
    assert printed["script"].strip(), "the snippet printed nothing"
    assert printed["stdin"] == printed["script"]
    assert printed["notebook"] == printed["script"]
