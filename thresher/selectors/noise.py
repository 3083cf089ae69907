"""Position-keyed randomness: a record's random draw is a pure function of (seed, stream, its position).

A selector that draws noise from a sequential generator gives record i a value that depends on how many records
were drawn before it, so a shard cannot compute its own records' noise without the whole pool. Here the noise of a
record is the SplitMix64 output number ``position`` of a stream keyed by ``(seed, stream)``: a counter-based hash,
vectorised in numpy, identical whether the pool is processed whole, in shards or in any batch size.

The uniform is ``(m + 1/2) / 2**52`` for a 52-bit hash ``m``: every value is exact in float64 and lies strictly inside
(0, 1) (53 bits cannot: the top midpoint rounds to 1.0), so ``-log(-log(u))`` (Gumbel) is always finite.
Different purposes use different ``stream`` constants, so that e.g. a Gumbel selection and the random baseline
drawn with the same seed are independent.
"""

from __future__ import annotations

import numpy as np

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = (1 << 64) - 1

#: Stream constants: one per use of randomness, so that draws for different purposes are independent.
STREAM_RANDOM = 0x52414E44          # "RAND": the random selector (and the random baseline of a selection)
STREAM_GUMBEL = 0x47554D42          # "GUMB": the gumbel selector
STREAM_QUOTA_RANDOM = 0x51524E44    # "QRND": random order inside a quota group
STREAM_QUOTA_GUMBEL = 0x51474D42    # "QGMB": gumbel order inside a quota group


def _finalize(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (Stafford's mix13) on uint64, in place; numpy uint64 arithmetic wraps."""
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def _stream_key(seed: int, stream: int) -> np.uint64:
    """A 64-bit key for (seed, stream): both hashed, so nearby seeds give unrelated streams."""
    z = np.array([int(seed) & _MASK], dtype=np.uint64)
    z = _finalize(z + _GAMMA)
    z ^= np.uint64(int(stream) & _MASK)
    return _finalize(z + _GAMMA)[0]


def uniform(seed: int, positions: np.ndarray, stream: int = STREAM_RANDOM) -> np.ndarray:
    """A uniform draw in the open interval (0, 1) for every position (52 random bits), a pure function of its inputs."""
    pos = np.asarray(positions)
    if pos.size and pos.min() < 0:
        raise ValueError("record positions must be >= 0")
    with np.errstate(over="ignore"):
        z = pos.astype(np.uint64) + np.uint64(1)
        z *= _GAMMA
        z += _stream_key(seed, stream)
        z = _finalize(z)
    return ((z >> np.uint64(12)).astype(np.float64) + 0.5) * 2.0 ** -52


def gumbel(seed: int, positions: np.ndarray, stream: int = STREAM_GUMBEL) -> np.ndarray:
    """A standard Gumbel draw for every position: ``-log(-log(u))`` of :func:`uniform` (finite everywhere)."""
    return -np.log(-np.log(uniform(seed, positions, stream)))
