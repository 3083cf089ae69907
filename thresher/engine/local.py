"""The local engine: runs a function over work items in worker processes, yielding results in input order.

Results never depend on the number of workers: items are fixed by the input (not by the worker count) and results
are consumed in item order. At most ``2 * workers`` items are in flight, so memory stays bounded by batch size.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from thresher.errors import ConfigError, ThresherError

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _context() -> mp.context.BaseContext:
    """Workers come from a fork server that imported thresher once: forking the parent itself is unsafe once Arrow
    has started threads, and "spawn" re-imports numpy and pyarrow in every worker (about a second each)."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["thresher.jobs.featurize"])
    return ctx


class LocalEngine:
    """Map ``fn`` over items on this machine with ``workers`` processes (1 = in this process, no pickling).

    The worker processes are started on first use and kept for every later ``map`` until :meth:`close` (or the
    end of a ``with`` block), so the stages of one run share them.
    """

    def __init__(self, workers: int | None = None):
        workers = default_workers() if workers in (None, 0) else workers
        if workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def map(self, fn: Callable[..., R], items: Iterable[tuple[Any, ...]]) -> Iterator[R]:
        """Yield ``fn(*item)`` for each item, in order. ``fn`` must be a module-level function when workers > 1."""
        if self.workers == 1:
            for item in items:
                yield fn(*item)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_context())
        pending: deque[Future] = deque()
        try:
            for item in items:
                pending.append(self._pool.submit(fn, *item))
                if len(pending) >= 2 * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as e:
            self._pool = None
            raise ThresherError(
                "a worker process died (out of memory, or a file in the working folder shadows a Python module "
                "such as re.py); run again with --workers 1 to see the underlying error") from e
        finally:
            for f in pending:
                f.cancel()

    def describe(self) -> dict:
        return {"engine": "local", "workers": self.workers}
