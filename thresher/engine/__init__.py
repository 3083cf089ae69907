"""Engines run a stage's function over a stream of work items; results come back in item order.

Jobs never construct an engine themselves: they call :func:`make_engine` with their ``workers`` setting, and the
engine chosen by ``--engine`` / ``th.engine(...)`` (local processes by default, or Ray) comes back. Both give the
same results in the same order, so a job's outputs do not depend on where it ran.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from thresher.engine.local import LocalEngine
from thresher.errors import ConfigError

R = TypeVar("R")

ENGINES = ("local", "ray")


class Engine(Protocol):
    """What a job needs from an engine: an ordered ``map``, a description for the manifest, and ``close``."""

    workers: int

    def map(self, fn: Callable[..., R], items: Iterable[tuple[Any, ...]]) -> Iterator[R]: ...

    def describe(self) -> dict: ...

    def close(self) -> None: ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class EngineChoice:
    """Which engine jobs use, and where (``address``: a Ray cluster address, ``auto`` or ``None`` for local)."""

    name: str = "local"
    address: str | None = None

    def __post_init__(self):
        if self.name not in ENGINES:
            raise ConfigError(f"unknown engine {self.name!r}; choose from {', '.join(ENGINES)}")
        if self.address and self.name != "ray":
            raise ConfigError("--ray-address needs --engine ray")


_current: contextvars.ContextVar[EngineChoice | None] = contextvars.ContextVar("thresher_engine", default=None)


@contextmanager
def engine(name: str = "local", address: str | None = None) -> Iterator[EngineChoice]:
    """Run every job in the block on engine ``name`` (``"local"`` or ``"ray"``), like joblib's
    ``parallel_backend``: ``with th.engine("ray", address="auto"): th.select(...)``."""
    choice = EngineChoice(name, address)
    token = _current.set(choice)
    try:
        yield choice
    finally:
        _current.reset(token)


def current_engine() -> EngineChoice:
    """The engine jobs started now would use."""
    return _current.get() or EngineChoice()


def make_engine(workers: int | None = None) -> Engine:
    """The engine for one job, with ``workers`` processes or tasks at once (``None``: every core)."""
    choice = current_engine()
    if choice.name == "ray":
        from thresher.engine.ray import RayEngine

        return RayEngine(workers, choice.address)
    return LocalEngine(workers)


__all__ = ["ENGINES", "Engine", "EngineChoice", "LocalEngine", "current_engine", "engine", "make_engine"]
