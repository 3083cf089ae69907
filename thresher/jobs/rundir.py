"""Claiming a run directory: created with a clear error when it cannot be, and locked for one job at a time.

Two jobs writing into one ``--out`` at once would interleave their files, and the last writer would win with no
word. Each job holds an exclusive ``flock`` on ``OUT/.thresher.lock`` while it runs (the kernel drops it if the
process dies, so a killed run never leaves a stale lock); a second job into the same folder stops at once,
naming the process that holds it. Jobs that run other jobs into the same folder in one process re-enter the lock.
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from thresher.errors import ConfigError

F = TypeVar("F", bound=Callable)

LOCK_NAME = ".thresher.lock"
_held: dict[Path, list[int]] = {}  # resolved run directory -> [lock fd, depth]
_guard = threading.Lock()


def prepare_dir(out: str | os.PathLike) -> Path:
    """Create ``out`` (and its parents) or raise a one-line :class:`ConfigError` saying why not."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"cannot use {out} as a run directory: it (or a folder above it) is a file") from None
    except NotADirectoryError:
        raise ConfigError(f"cannot use {out} as a run directory: a folder above it is a file") from None
    except OSError as e:
        raise ConfigError(f"cannot create run directory {out}: {e.strerror or e}") from None
    return path


@contextmanager
def claim(out: str | os.PathLike) -> Iterator[Path]:
    """Create and lock run directory ``out`` for the duration of the block (re-entrant within this process)."""
    created = not Path(out).exists()
    path = prepare_dir(out)
    key = path.resolve()
    with _guard:
        if key in _held:
            _held[key][1] += 1
        else:
            _held[key] = [_lock(path), 1]
    failed = True
    try:
        yield path
        failed = False
    finally:
        with _guard:
            _held[key][1] -= 1
            if _held[key][1] == 0:
                os.close(_held.pop(key)[0])  # closing the descriptor releases the flock
                if failed and created:
                    _remove_if_only_lock(path)


def _remove_if_only_lock(path: Path) -> None:
    """A job that failed before writing anything leaves no folder behind (only if it made the folder itself)."""
    try:
        if [p.name for p in path.iterdir()] == [LOCK_NAME]:
            (path / LOCK_NAME).unlink()
            path.rmdir()
    except OSError:
        pass  # another job took it over meanwhile: leave it


def _lock(path: Path) -> int:
    lock = path / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise ConfigError(f"cannot write to run directory {path}: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(f"run directory {path} is in use by another thresher job (process {holder}); wait for it "
                          "to finish, or choose another --out") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def claims_run_dir(*names: str) -> Callable[[F], F]:
    """Decorate a job so that it runs holding :func:`claim` on its output folder: the first of the arguments
    ``names`` that is given (e.g. ``"out", "run_dir"`` for re-selection, which writes into its input run)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind_partial(*args, **kwargs)
            out = next((bound.arguments[n] for n in names if bound.arguments.get(n) is not None), None)
            if out is None:
                return fn(*args, **kwargs)
            with claim(out):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
