"""Defensive reads of cached shards (feature and embedding caches).

A shard can be damaged after it was written whole: a full disk, a copy cut short, a bad sector. Reading one must
never end in a raw ``BadZipFile`` traceback: a damaged shard is recomputed where the text is at hand, and
otherwise removed (with its store's completion marker) and named, so that the same command recomputes it.
"""

from __future__ import annotations

import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from thresher.errors import ThresherError

T = TypeVar("T")

#: What numpy raises for a truncated or altered .npy/.npz file.
_DAMAGE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class CorruptShardError(ThresherError):
    """A cached shard that cannot be read back; it has been removed, so a re-run recomputes it."""

    def __init__(self, path: Path, cause: BaseException | str):
        self.path = Path(path)
        self.cause = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        super().__init__(f"cached shard {path} is damaged ({self.cause}); it was removed: run the same command again "
                         "to recompute it")

    def __reduce__(self):  # raised in worker processes: must survive the trip back to the parent
        return type(self), (str(self.path), self.cause)


def load_shard(path: Path, loader: Callable[[Path], T]) -> T:
    """``loader(path)``, with any sign of damage turned into :class:`CorruptShardError` after removing the shard
    and the completion marker beside it (so the store is no longer taken as complete)."""
    try:
        return loader(path)
    except _DAMAGE as e:
        discard(path)
        raise CorruptShardError(path, e) from e


def file_checksum(path: Path) -> str:
    """xxh3-64 of a file's bytes: what a store records when it is complete, to tell later that a file changed."""
    import xxhash

    digest = xxhash.xxh3_64()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def discard(path: Path) -> None:
    """Remove a damaged shard and its store's ``_COMPLETE`` marker."""
    for p in (path, path.parent / "_COMPLETE"):
        p.unlink(missing_ok=True)


def warn_recomputed(paths: list[Path]) -> None:
    """Say, once per stage, which damaged shards were recomputed."""
    if paths:
        shown = ", ".join(p.name for p in paths[:5]) + (", ..." if len(paths) > 5 else "")
        print(f"warning: {len(paths)} damaged cache file(s) in {paths[0].parent} were recomputed ({shown})",
              file=sys.stderr)
