"""Memory measurement shared by the benchmark runners: peak summed RSS of a process tree, sampled."""

from __future__ import annotations

import collections
import contextlib
import os
import threading

_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss_bytes(root_pid: int) -> int:
    """Sum of the current RSS of ``root_pid`` and all its live descendants (from /proc)."""
    children = collections.defaultdict(list)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()  # comm may hold spaces: ppid follows the last ')'
        children[int(rest[1])].append(int(name))
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
        stack.extend(children.get(pid, ()))
    return total


class TreeRssSampler(threading.Thread):
    """Polls the summed RSS of this process tree (self + live children) every ``interval`` seconds."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = 0
        self._stop_evt = threading.Event()

    def run(self) -> None:
        pid = os.getpid()
        while not self._stop_evt.is_set():
            with contextlib.suppress(Exception):  # never let the sampler kill the benchmark
                self.peak = max(self.peak, tree_rss_bytes(pid))
            self._stop_evt.wait(self.interval)

    def stop(self) -> int:
        self._stop_evt.set()
        self.join()
        return self.peak
