"""The Ray engine: the same ``map`` contract as the local engine, with work items run as Ray tasks on a cluster.

Results come back in item order with at most ``2 * parallelism`` items in flight, exactly as locally, so every job
writes the same bytes on either engine. A task whose worker dies (a node lost, a process killed) is retried by
Ray (``max_retries``); the functions are pure given their item, so a retry changes nothing. Work items carry paths
to feature and embedding caches: on a multi-machine cluster those must be on a shared file system.

Ray is imported only when this engine is used (``pip install 'thresher[ray]'``).
"""

from __future__ import annotations

import signal
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from thresher.engine.local import AHEAD_PER_WORKER
from thresher.errors import ConfigError, ThresherError

R = TypeVar("R")

#: Times Ray re-runs a task whose worker died before it finished.
MAX_RETRIES = 3


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray engine needs Ray: pip install 'thresher[ray]'") from None
    return ray


def _check_reachable(address: str | None, timeout: float = 10.0) -> None:
    """A ``host:port`` cluster address that nothing answers on is an error now, not minutes of Ray's retries."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r}: expected auto, ray://host:port or host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from None


class RayEngine:
    """Map ``fn`` over items as Ray tasks on the cluster at ``address`` (``None``: connect to a running cluster
    if there is one, else start a local one; ``"auto"``: a running cluster, or an error)."""

    def __init__(self, workers: int | None = None, address: str | None = None):
        if workers is not None and workers < 0:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.address = address
        self._requested = workers or None
        self._started = False
        self._remote: dict[Callable, Any] = {}

    def _connect(self):
        ray = _ray()
        if not ray.is_initialized():
            _check_reachable(self.address)
            on_term = signal.getsignal(signal.SIGTERM)
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR", configure_logging=False)
            except ConnectionError as e:
                raise ConfigError(f"cannot connect to the Ray cluster at {self.address or 'auto'}: {e}") from None
            finally:
                # Ray's driver installs its own SIGTERM handler (a C++ stack dump, exit 15): keep the caller's, so
                # the CLI still exits with one line and 143, and tasks in flight are cancelled on the way out.
                if threading.current_thread() is threading.main_thread() and on_term is not None:
                    signal.signal(signal.SIGTERM, on_term)
            self._started = True
        return ray

    @property
    def workers(self) -> int:
        """Tasks run at once: the requested number, else the cluster's CPUs."""
        if self._requested:
            return self._requested
        ray = self._connect()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the cluster running (it is not ours to stop); forget the remote functions."""
        self._remote.clear()

    def map(self, fn: Callable[..., R], items: Iterable[tuple[Any, ...]]) -> Iterator[R]:
        """Yield ``fn(*item)`` for each item, in order, each computed by a Ray task."""
        ray = self._connect()
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(fn)
        limit = AHEAD_PER_WORKER * self.workers
        pending: deque = deque()
        try:
            for item in items:
                pending.append(remote.remote(*item))
                if len(pending) >= limit:
                    yield self._get(ray, pending.popleft())
            while pending:
                yield self._get(ray, pending.popleft())
        finally:
            for ref in pending:
                ray.cancel(ref, force=False)

    @staticmethod
    def _get(ray, ref):
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the task raised: re-raise its own exception (errors stay named)
            cause = e.cause if getattr(e, "cause", None) is not None else e.as_instanceof_cause()
            raise cause from None
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.ObjectLostError) as e:
            raise ThresherError(f"a Ray task failed {MAX_RETRIES + 1} times because its worker died "
                                f"({type(e).__name__}); see the Ray logs") from None

    def describe(self) -> dict:
        return {"engine": "ray", "workers": self.workers, "address": self.address or "local"}
