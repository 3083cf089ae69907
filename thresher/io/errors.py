"""Error policy for malformed input: raise at once (default) or skip, counting every skip by reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from thresher.errors import ConfigError, InputError

OnError = Literal["raise", "skip"]
#: How many skipped records are kept verbatim (file, line, reason) in the manifest; the rest are only counted.
MAX_EXAMPLES = 50


@dataclass
class ErrorLog:
    """Collects skipped records and files under ``on_error='skip'``; raises under ``on_error='raise'``."""

    on_error: OnError = "raise"
    counts: Counter = field(default_factory=Counter)
    file_problems: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {self.on_error!r}")

    def report(self, path: str, reason: str, detail: str, line: int | None = None, records: int = 1) -> None:
        """Record one problem: raise :class:`InputError`, or count ``records`` lost records under ``reason``.

        ``records=0`` marks a problem with a whole file that lost no known record (an empty file, say).
        """
        if self.on_error == "raise":
            raise InputError(path, reason, detail, line)
        if records:
            self.counts[reason] += records
        else:
            self.file_problems[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append({"path": path, "line": line, "reason": reason, "detail": detail})

    def merge(self, other: ErrorLog) -> None:
        """Add what ``other`` (the log of a later part of the same read) counted, as if it had been counted here."""
        self.counts.update(other.counts)
        self.file_problems.update(other.file_problems)
        self.examples.extend(other.examples[: max(0, MAX_EXAMPLES - len(self.examples))])

    @property
    def n_failed(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict:
        return {
            "total": self.n_failed,
            "by_reason": dict(sorted(self.counts.items())),
            "file_problems": dict(sorted(self.file_problems.items())),
            "examples": self.examples,
        }
