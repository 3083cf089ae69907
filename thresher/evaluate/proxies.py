"""Downstream proxies trained on each selection: a small softmax classifier, and the user's own training code.

A user proxy is a Python callable ``proxy(train, heldout, seed) -> {metric: value}`` or a shell-free command
template run once per selection and seed. A value is either one number (the metric for that run) or a list with
one number per held-out record (the metric is their mean, and the held-out records can then be bootstrapped, which
gives far tighter honest intervals from a few seeds than one number per seed can).

A command gets ``{train}`` (a Parquet file of the selected records), ``{heldout}`` (the held-out records as Parquet),
``{out}`` (a folder to write in) and ``{seed}``; it must write ``{out}/metrics.json`` holding ``{"metric": value}``
and may add ``"higher_is_better": {"metric": false}``. Metric names containing ``loss``, ``perplexity`` or
``error`` default to lower-is-better.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.io.atomic import write_parquet
from thresher.softmax import fit_softmax, softmax

ProxyValue = float | list[float] | np.ndarray
ProxyFn = Callable[[pa.Table, pa.Table, int], Mapping[str, ProxyValue]]
_LOWER_IS_BETTER = ("loss", "perplexity", "error")


@dataclass
class SoftmaxClassifier:
    """Softmax regression weights and intercepts (see :mod:`thresher.softmax`)."""

    coef: np.ndarray  # d x k
    intercept: np.ndarray  # k

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return softmax(x @ self.coef + self.intercept)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(x), axis=1)


def fit_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1e-3, max_iter: int = 200,
                   init: SoftmaxClassifier | None = None) -> SoftmaxClassifier:
    """Softmax regression on hard labels ``y``; a class missing from ``y`` simply gets a low intercept.
    ``init``: a model to start from (see :func:`thresher.softmax.fit_softmax`)."""
    if len(y) == 0:
        raise ConfigError("the classification proxy got a selection with no labelled records")
    onehot = np.zeros((len(y), n_classes))
    onehot[np.arange(len(y)), y] = 1.0
    start = None if init is None else (init.coef, init.intercept)
    return SoftmaxClassifier(*fit_softmax(x, onehot, l2, max_iter, init=start))


def higher_is_better(name: str, declared: Mapping[str, bool] | None = None) -> bool:
    """A declared direction wins; otherwise loss/perplexity/error names are lower-is-better."""
    if declared and name in declared:
        return bool(declared[name])
    return not any(word in name.lower() for word in _LOWER_IS_BETTER)


def check_values(metrics: Mapping[str, ProxyValue], n_items: int, where: str) -> dict[str, np.ndarray | float]:
    """Validate a proxy's output: finite numbers, or one per held-out record."""
    if not isinstance(metrics, Mapping) or not metrics:
        raise ConfigError(f"{where}: a proxy must return a non-empty {{metric: value}} mapping, got {metrics!r}")
    out: dict[str, np.ndarray | float] = {}
    for name, value in metrics.items():
        if isinstance(value, (list, tuple, np.ndarray)):
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape != (n_items,):
                raise ConfigError(f"{where}: metric {name!r} has {arr.size} values; per-item metrics need one per "
                                  f"held-out record ({n_items})")
            if not np.all(np.isfinite(arr)):
                raise ConfigError(f"{where}: metric {name!r} has non-finite values")
            out[str(name)] = arr
        else:
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: metric {name!r} is not a number: {value!r}") from None
            if not np.isfinite(v):
                raise ConfigError(f"{where}: metric {name!r} is not finite: {v}")
            out[str(name)] = v
    return out


class CommandProxy:
    """Runs a user's training command per selection and seed, without a shell, and reads its metrics.json."""

    def __init__(self, template: str, workdir: str | os.PathLike, timeout: float | None = None):
        self.template = template
        self.argv = shlex.split(template)
        if not self.argv:
            raise ConfigError("the proxy command is empty")
        self.workdir = Path(workdir)
        self.timeout = timeout
        self.declared: dict[str, bool] = {}

    def __call__(self, train: pa.Table, heldout: pa.Table, seed: int, tag: str = "run") -> dict[str, ProxyValue]:
        folder = self.workdir / tag
        folder.mkdir(parents=True, exist_ok=True)
        heldout_path = self.workdir / "heldout.parquet"
        if not heldout_path.exists():
            write_parquet(heldout, heldout_path)
        write_parquet(train, folder / "train.parquet")
        fields = {"train": str(folder / "train.parquet"), "heldout": str(heldout_path), "out": str(folder),
                  "seed": str(seed)}
        try:
            argv = [a.format(**fields) for a in self.argv]
        except (KeyError, IndexError) as e:
            raise ConfigError(f"proxy command {self.template!r}: unknown placeholder {e}; use {{train}}, "
                              "{heldout}, {out}, {seed}") from None
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout)
        except FileNotFoundError:
            raise ConfigError(f"proxy command not found: {argv[0]!r}") from None
        except subprocess.TimeoutExpired:
            raise ConfigError(f"proxy command timed out after {self.timeout}s ({tag})") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise ConfigError(f"proxy command failed with exit code {proc.returncode} ({tag}): " + " | ".join(tail))
        path = folder / "metrics.json"
        if not path.is_file():
            raise ConfigError(f"proxy command wrote no {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object of metrics")
        declared = data.pop("higher_is_better", {}) or {}
        if not isinstance(declared, dict):
            raise ConfigError(f"{path}: 'higher_is_better' must map metric names to true/false")
        self.declared.update({str(k): bool(v) for k, v in declared.items()})
        return data
