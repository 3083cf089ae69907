"""Progress of long stages, one helper for every job: a tqdm bar on a terminal (or in a notebook), and where stderr
is a log file or a CI console, one line every ``THRESHER_PROGRESS_INTERVAL`` seconds (default 30):

    stage featurize: 40,000/93,695 records (43%), 12.3 s

Jobs, the Python API and the CLI all default to ``progress=True``; ``progress=False`` (``--quiet``/``--json``)
silences it. Progress goes to stderr, so stdout stays the job's summary.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

#: Seconds between log lines when stderr is not a terminal.
DEFAULT_INTERVAL = 30.0


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("THRESHER_PROGRESS_INTERVAL", DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def _interactive(stream: TextIO) -> bool:
    """A terminal, or the stderr of a Jupyter kernel (which renders a tqdm bar in place)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        return False
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return stream is sys.stderr and type(shell).__name__ == "ZMQInteractiveShell"


def known_rows(dataset) -> int | None:
    """A Dataset's record count when cheaply known (Parquet metadata; before bad records are dropped), else None."""
    if all(f.format == "parquet" for f in dataset.files):
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f.path).metadata.num_rows for f in dataset.files)
    return None


class Progress:
    """Counts work done in one stage and shows it: a bar when interactive, periodic log lines otherwise.

    ``total`` may be unknown (None). A closed or disabled Progress ignores updates. Use as a context manager or
    call :meth:`close`.
    """

    def __init__(self, stage: str, total: int | None = None, unit: str = "records", enabled: bool = True,
                 stream: TextIO | None = None, interval: float | None = None):
        self.stage, self.total, self.unit = stage, total, unit
        self.n = 0
        self.enabled = bool(enabled)
        self._stream = stream if stream is not None else sys.stderr
        self._interval = _interval() if interval is None else interval
        self._start = self._last = time.monotonic()
        self._lines = 0
        self._bar = None
        if self.enabled and _interactive(self._stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=stage, unit=" " + unit, file=self._stream, leave=False)

    def update(self, n: int = 1) -> None:
        """Record ``n`` more units done."""
        if not self.enabled:
            return
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._log(now)

    def line(self, now: float | None = None) -> str:
        """The one-line state: ``stage featurize: 40,000/93,695 records (43%), 12.3 s``."""
        elapsed = (time.monotonic() if now is None else now) - self._start
        done = f"{self.n:,}/{self.total:,} {self.unit} ({self.n / self.total:.0%})" if self.total else \
            f"{self.n:,} {self.unit}"
        return f"stage {self.stage}: {done}, {elapsed:.1f} s"

    def _log(self, now: float) -> None:
        print(self.line(now), file=self._stream, flush=True)
        self._lines += 1

    def close(self) -> None:
        """End the stage: close the bar, or (if any line was logged) log the final count."""
        if not self.enabled:
            return
        self.enabled = False
        if self._bar is not None:
            self._bar.close()
        elif self._lines:
            print(self.line() + " (done)", file=self._stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
