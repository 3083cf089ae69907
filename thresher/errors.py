"""Exceptions that thresher raises for problems a user can fix (bad input, bad parameters).

The CLI turns every :class:`ThresherError` into a one-line message and exit code 2, without a traceback.
"""

from __future__ import annotations


class ThresherError(Exception):
    """A problem with the user's input or configuration, explained in one line."""


class ConfigError(ThresherError, ValueError):
    """An invalid parameter value (budget, method, field name, ...)."""


class InputError(ThresherError):
    """A malformed input record or file; the message names the file and, where known, the line."""

    def __init__(self, path: str, reason: str, detail: str, line: int | None = None):
        self.path = path
        self.reason = reason
        self.detail = detail
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {detail} (reason: {reason}; use --on-error skip to skip and count such records)")
