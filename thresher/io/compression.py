"""One decompression layer for every codec (gzip, zstd, bzip2, xz), with the same truncation and corruption checks.

Each codec's incremental decompressor is driven the same way: compressed bytes go in 64 KiB at a time, and a new
decompressor starts after each complete frame / member / stream, so multi-frame files are read to the end. The
input ending inside a frame is a truncated file; data the codec rejects is a corrupt file. Both raise
:class:`CorruptStream` at the point where reading stops, after everything before it was returned, so a reader can
say which line was the last good one.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from typing import Any

#: Compressed bytes fed to a decompressor at a time (bounds memory together with the codec's expansion ratio).
_INPUT_CHUNK = 1 << 16


class CorruptStream(Exception):
    """A compressed file is truncated or its data is not valid for its codec; the message says which."""


def _zstd() -> Any:
    import zstandard  # optional-weight dependency, loaded only for .zst inputs

    return zstandard.ZstdDecompressor().decompressobj()


#: suffix -> (codec name, factory of a fresh incremental decompressor, whether zero padding between frames is legal,
#: the signatures a file of this codec starts with)
CODECS: dict[str, tuple[str, Callable[[], Any], bool, tuple[bytes, ...]]] = {
    ".gz": ("gzip", lambda: zlib.decompressobj(wbits=31), True, (b"\x1f\x8b",)),
    # a zstd frame, or a skippable frame (magic 0x184D2A50..5F, little-endian)
    ".zst": ("zstd", _zstd, False, (b"\x28\xb5\x2f\xfd", *(bytes([0x50 + i, 0x2A, 0x4D, 0x18]) for i in range(16)))),
    ".bz2": ("bzip2", bz2.BZ2Decompressor, False, (b"BZh",)),
    ".xz": ("xz", lzma.LZMADecompressor, True, (b"\xfd7zXZ\x00", b"\x5d\x00\x00")),  # .xz, or legacy .lzma
}


def codec_of(path: str) -> str | None:
    """The compression suffix of ``path`` (``.gz``, ``.zst``, ``.bz2``, ``.xz``), or None for a plain file."""
    low = path.lower()
    return next((s for s in CODECS if low.endswith(s)), None)


class _Decompressed(io.RawIOBase):
    """The decompressed bytes of one file, frame after frame; raises :class:`CorruptStream` where they stop."""

    def __init__(self, path: str, suffix: str):
        self._codec, self._new, self._zero_padding, self._magic = CODECS[suffix]
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._dec: Any = None  # the current frame's decompressor (None before the first frame)
        self._tail = b""  # compressed bytes read but not yet given to a decompressor
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            if not self._fill():
                return 0
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _fill(self) -> bool:
        """Decompress the next piece into ``self._out``; False at a clean end of the file."""
        if not self._tail:
            self._tail = self._file.read(_INPUT_CHUNK)
            if not self._tail:
                if self._dec is not None and not self._dec.eof:
                    raise CorruptStream(f"truncated {self._codec} file: it ends inside a compressed frame")
                return False
            if self._dec is None and not self._tail.startswith(self._magic):
                raise CorruptStream(f"not a {self._codec} file: it does not start with the {self._codec} signature")
        if self._dec is None or self._dec.eof:
            if self._zero_padding and self._dec is not None:
                self._tail = self._tail.lstrip(b"\0")
                if not self._tail:
                    return True
            self._dec = self._new()
        data, self._tail = self._tail, b""
        try:
            out = self._dec.decompress(data)
        except Exception as e:  # zlib.error, OSError (bz2), LZMAError, ZstdError: the codec rejected the data
            raise CorruptStream(f"corrupt {self._codec} data ({type(e).__name__}: {e})") from None
        if self._dec.eof:
            self._tail = self._dec.unused_data
        self._out = memoryview(out)
        return True

    def close(self) -> None:
        self._file.close()
        super().close()


def open_binary(path: str) -> io.BufferedIOBase:
    """A file for binary reading, decompressed by its suffix; a problem in the data raises CorruptStream."""
    suffix = codec_of(path)
    if suffix is None:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    return io.BufferedReader(_Decompressed(path, suffix), buffer_size=1 << 16)
