"""The one check that record ids are unique, run by the dataset layer for every job: streaming, ~8 bytes a record.

Each record's id is hashed (xxh3-64) as its batch streams by. The hashes seen so far are kept as a few sorted arrays,
merged like a binary counter, so checking a batch is a sort plus a few binary searches per array. Only when a hash
repeats does anything more happen:

- ``"error"`` (default): the repeat is confirmed exactly by reading the files again up to the first record with the
  same id (a second pass, only then), and :class:`DuplicateIdError` names the id and both places. A hash collision
  between two different ids is recognised by that comparison and never raises.
- ``"rename"``: every record is kept; a later record whose id ``X`` was already used gets ``X#2`` (``X#3`` for the
  next one, ...: the first ``X#k``, k >= 2, that no earlier record uses), in reading order, so the new ids are the
  same on every read. In this mode ids are compared by 128-bit hash (a false match has probability ~n^2/2^129).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import xxhash

from thresher.errors import ConfigError, InputError, ThresherError

DUPLICATE_ID_POLICIES = ("error", "rename")
#: Renamed records listed in the manifest (all of them are counted).
MAX_RENAME_EXAMPLES = 20


class DuplicateIdError(InputError):
    """Two records share an id; the message names the id and where both records are."""

    def __init__(self, record_id: str, first: str, second: str):
        self.path, self.reason, self.line = second, "duplicate_id", None
        self.detail = f"duplicate id {record_id!r}: {second} repeats the id of {first}"
        ThresherError.__init__(self, f"{self.detail} (ids must be unique: outputs are keyed by id; fix the input, or "
                                     f"use --duplicate-ids rename to keep both, the later one as {record_id + '#2'!r})")


def check_policy(policy: str) -> str:
    """``policy`` if it is a known duplicate-id policy, else a ConfigError."""
    if policy not in DUPLICATE_ID_POLICIES:
        raise ConfigError(f"duplicate_ids must be one of {', '.join(DUPLICATE_ID_POLICIES)}, got {policy!r}")
    return policy


class _SortedHashes:
    """A growing set of hashes (one uint64 column, or two for 128 bits) as a few sorted arrays."""

    def __init__(self, width: int):
        self.width = width
        self.levels: list[np.ndarray] = []  # each (n, width), sorted by column 0

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which rows of ``keys`` (n, width) are in the set."""
        found = np.zeros(len(keys), dtype=bool)
        for level in self.levels:
            first = level[:, 0]
            pos = np.searchsorted(first, keys[:, 0])
            inside = pos < len(first)
            hit = np.zeros(len(keys), dtype=bool)
            hit[inside] = first[pos[inside]] == keys[inside, 0]
            for i in np.flatnonzero(hit & ~found):  # rare: confirm the other columns on the run of equal first hashes
                j = pos[i]
                while j < len(first) and first[j] == keys[i, 0]:
                    if (level[j] == keys[i]).all():
                        found[i] = True
                        break
                    j += 1
        return found

    def add(self, keys: np.ndarray) -> None:
        """Add the rows of ``keys``; keep at most ~log2(n) levels by merging equal-sized neighbours."""
        if not len(keys):
            return
        level = keys[np.argsort(keys[:, 0], kind="stable")]
        while self.levels and len(self.levels[-1]) <= 2 * len(level):
            merged = np.concatenate([self.levels.pop(), level])
            level = merged[np.argsort(merged[:, 0], kind="stable")]
        self.levels.append(level)


def _hashes(values: list[bytes], width: int) -> np.ndarray:
    """xxh3-64 (width 1) or xxh3-128 (width 2) of each UTF-8 id, as an (n, width) uint64 array."""
    if width == 1:
        return np.fromiter(map(xxhash.xxh3_64_intdigest, values), dtype=np.uint64, count=len(values)).reshape(-1, 1)
    return np.frombuffer(b"".join(map(xxhash.xxh3_128_digest, values)), dtype=np.uint64).reshape(-1, 2)


class IdCheck:
    """One read pass's duplicate-id check: feed it each chunk's ids (in reading order) through :meth:`apply`."""

    def __init__(self, policy: str, locate: Callable[[str], str]):
        self.policy = check_policy(policy)
        self._locate = locate  # id -> place of the first record with that id (a second read, on demand)
        self._seen = _SortedHashes(2 if policy == "rename" else 1)
        self._next_suffix: dict[str, int] = {}
        self.renamed = 0
        self.examples: list[dict] = []

    def apply(self, ids: pa.Array, place: Callable[[int], str]) -> pa.Array:
        """``ids`` unchanged if all are new; else raise (``error``) or return them with repeats renamed."""
        if len(ids) == 0:
            return ids
        keys = _hashes(ids.cast(pa.large_binary()).to_pylist(), self._seen.width)
        order = np.lexsort(keys.T[::-1])
        repeated_in_batch = np.zeros(len(keys), dtype=bool)
        same = (keys[order[1:]] == keys[order[:-1]]).all(axis=1)
        repeated_in_batch[order[1:][same]] = True  # lexsort is stable: the later of two equal keys is flagged
        seen_before = self._seen.contains(keys)
        if not (repeated_in_batch.any() or seen_before.any()):
            self._seen.add(keys)
            return ids
        values = ids.to_pylist()
        if self.policy == "error":
            self._raise_first(values, np.flatnonzero(repeated_in_batch | seen_before), seen_before, place)
            self._seen.add(keys)  # only hash collisions get here
            return ids
        return pa.array(self._rename(values, keys, place), ids.type)

    def _raise_first(self, values: list[str], candidates: np.ndarray, seen_before: np.ndarray,
                     place: Callable[[int], str]) -> None:
        """Raise for the first candidate whose id really occurred before (exact comparison of the strings)."""
        for i in candidates.tolist():
            value, here = values[i], place(i)
            if seen_before[i]:  # the first record with this id, if it is not this one, is in an earlier batch
                first = self._locate(value)
            else:
                first = next((place(j) for j in range(i) if values[j] == value), here)
            if first != here:
                raise DuplicateIdError(value, first, here)

    def _rename(self, values: list[str], keys: np.ndarray, place: Callable[[int], str]) -> list[str]:
        """Give each repeated id the first free ``#k`` suffix (k >= 2), in order; record and count the renames."""
        known = self._seen.contains(keys)
        keys = keys.copy()  # renamed records' rows are replaced below
        batch: set[bytes] = set()
        out = list(values)
        for i, value in enumerate(values):
            key = keys[i].tobytes()
            if known[i] or key in batch:
                k = self._next_suffix.get(value, 2)
                while True:
                    new = f"{value}#{k}"
                    new_key = _hashes([new.encode()], 2)
                    if not self._seen.contains(new_key)[0] and new_key[0].tobytes() not in batch:
                        break
                    k += 1
                self._next_suffix[value] = k + 1
                out[i], key = new, new_key[0].tobytes()
                keys[i] = new_key[0]
                self.renamed += 1
                if len(self.examples) < MAX_RENAME_EXAMPLES:
                    self.examples.append({"id": value, "renamed_to": new, "at": place(i)})
            batch.add(key)
        self._seen.add(keys)
        return out
