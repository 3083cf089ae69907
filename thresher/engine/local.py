"""The local engine: runs a function over work items in worker processes, yielding results in input order.

Results never depend on the number of workers: items are fixed by the input (not by the worker count) and results
are consumed in item order. At most ``2 * workers`` items are in flight, so memory stays bounded by batch size.

Two habits make the engine safe to call from any script, as scikit-learn's and joblib's are:

* Workers never re-run the caller's ``__main__`` module, so a script needs no ``if __name__ == "__main__":``
  guard, and piped (``python - < script.py``) or notebook code works. Functions and classes defined in
  ``__main__`` (``@th.lf`` labelling functions in a script, say) are sent to the workers by value instead.
* Workers die with the process that started them: killing it (SIGKILL, SIGTERM from ``timeout``, Slurm or
  Kubernetes) leaves no worker, fork server or resource tracker behind.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import pickle
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import context, popen_forkserver, spawn
from typing import Any, TypeVar

from thresher.errors import ConfigError, ThresherError

T = TypeVar("T")
R = TypeVar("R")

#: Keys of multiprocessing's preparation data that make a new process re-import the parent's ``__main__``.
_MAIN_KEYS = ("init_main_from_path", "init_main_from_name")
_launch_lock = threading.Lock()


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class _PopenWithoutMain(popen_forkserver.Popen):
    """A fork-server child that does not re-run the parent's ``__main__`` (which, in a script without a
    ``__main__`` guard, would start the user's whole job again in every worker, and which fails for piped code)."""

    def _launch(self, process_obj):
        with _launch_lock:
            original = spawn.get_preparation_data

            def preparation_data(name):
                data = original(name)
                for key in _MAIN_KEYS:
                    data.pop(key, None)
                return data

            spawn.get_preparation_data = preparation_data
            try:
                super()._launch(process_obj)
            finally:
                spawn.get_preparation_data = original


class _ProcessWithoutMain(context.ForkServerProcess):
    _start_method = "forkserver"

    @staticmethod
    def _Popen(process_obj):
        return _PopenWithoutMain(process_obj)


class _ContextWithoutMain(context.ForkServerContext):
    Process = _ProcessWithoutMain


def _context() -> mp.context.BaseContext:
    """Workers come from a fork server that imported thresher once: forking the parent itself is unsafe once Arrow
    has started threads, and "spawn" re-imports numpy and pyarrow in every worker (about a second each)."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = _ContextWithoutMain()
    ctx.set_forkserver_preload(["thresher.jobs.featurize"])
    return ctx


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker as soon as ``parent_pid`` ends, however it ended (a killed parent
    cannot shut its pool down, and its workers would otherwise wait forever on a pipe nobody reads)."""

    def watch() -> None:
        try:
            fd = os.pidfd_open(parent_pid)
        except (AttributeError, OSError):  # not Linux >= 5.3: poll instead
            while True:
                try:
                    os.kill(parent_pid, 0)
                except ProcessLookupError:
                    break
                except PermissionError:
                    pass
                time.sleep(0.5)
        else:
            select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="thresher-exit-with-parent", daemon=True).start()


def _refers_to_main(obj: object) -> bool:
    """Whether pickling ``obj`` would refer to something defined in ``__main__``, which workers do not import."""
    found = False

    class Probe(pickle.Pickler):
        def reducer_override(self, o):
            nonlocal found
            if not found and getattr(o, "__module__", None) == "__main__":
                found = True
            return NotImplemented

    try:
        Probe(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    except Exception:  # noqa: BLE001 -- not picklable by reference at all: let cloudpickle try (and explain)
        return True
    return found


def _call_by_value(payload: bytes) -> Any:
    """Worker side of :func:`_by_value`: unpickle a function and its arguments and call it."""
    fn, args = pickle.loads(payload)
    return fn(*args)


def _by_value(fn: Callable, item: tuple) -> bytes:
    """Pickle ``fn`` and its arguments with what ``__main__`` defines included by value (cloudpickle)."""
    import cloudpickle

    try:
        return cloudpickle.dumps((fn, item), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001
        raise ThresherError(
            f"cannot send work to worker processes: {type(e).__name__}: {e}. Functions and objects passed to "
            "thresher must be picklable to run with workers > 1; define them at module level, or pass "
            "workers=1 to run in this process") from e


#: Tasks in flight per worker. Results come back in order, so a slow task holds the finished ones behind it: with
#: pieces of very unequal cost (a big row group's rows are cut evenly, its texts are not) two per worker left the
#: other workers idle behind one long piece; the finished results held meanwhile are small (summaries, a piece's
#: scores).
AHEAD_PER_WORKER = 4


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
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _submit(self, fn: Callable, item: tuple, by_value: bool) -> Future:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_context(), initializer=_exit_with_parent,
                                             initargs=(os.getpid(),))
        if by_value:
            return self._pool.submit(_call_by_value, _by_value(fn, item))
        return self._pool.submit(fn, *item)

    def map(self, fn: Callable[..., R], items: Iterable[tuple[Any, ...]]) -> Iterator[R]:
        """Yield ``fn(*item)`` for each item, in order. ``fn`` and the items are pickled to the workers when
        workers > 1; anything defined in ``__main__`` goes by value, so a script's own functions work too."""
        if self.workers == 1:
            for item in items:
                yield fn(*item)
            return
        pending: deque[Future] = deque()
        by_value = None
        try:
            for item in items:
                if by_value is None:  # the first item tells: the rest carry the same kinds of objects
                    by_value = _refers_to_main((fn, item))
                pending.append(self._submit(fn, item, by_value))
                if len(pending) >= AHEAD_PER_WORKER * self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as e:
            self._pool = None
            raise ThresherError(
                "a worker process died (out of memory, killed, or a file in the working folder shadows a Python "
                "module such as re.py); run again with --workers 1 (workers=1) to see the underlying error") from e
        finally:
            for f in pending:
                f.cancel()

    def describe(self) -> dict:
        return {"engine": "local", "workers": self.workers}
