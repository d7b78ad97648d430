"""What the two rANS coders (ctx, spec §5.4, and cand, §5.5) share: the byte forms
of their tables and bands, and the rANS loop in Python.

* ``v14``: a value below 2^14 in one or two bytes (§5.4.3);
* bands: ``band_rows`` (u32) then, per band of rows, a u32 length and the
  band's stream (its initial state, then the bytes its decoder reads);
* the rANS step: 32-bit state, byte-wise renormalisation, L = 2^23, 12-bit
  frequencies (every table sums to 4096).

Each coder names itself in the errors (``who``, "index coder 2").
"""

from __future__ import annotations

import struct

import numpy as np

from .. import packing
from ..errors import FormatError, OptionError
from . import Coder, HeaderLike

__all__ = ["MapCoder", "SCALE_BITS", "SCALE", "RANS_L", "v14", "read_v14", "starts", "bands",
           "band_rows_for", "assemble_bands", "read_streams", "encode_stream"]

SCALE_BITS = 12
SCALE = 1 << SCALE_BITS
RANS_L = 1 << 23
# Coding bands (§5.4.3): the encoders cut the map into bands of rows of about
# this many pixels, coded independently (the row above a band counts as
# outside), so that a decoder can run them on several threads; a Kodak photo
# gets 4 bands, for 24 bytes and a ~0.1 % larger file under coder 2.
CODING_BAND_PIXELS = 100_000


def check_grid(indices: np.ndarray, n: int, who: str) -> np.ndarray:
    """*indices* as a C-contiguous (H, W) uint8 map, each from 0 to *n* - 1."""
    grid = np.asarray(indices)
    if grid.ndim != 2 or grid.size == 0:
        raise OptionError(f"{who} codes an (H, W) index map, got shape {grid.shape}")
    if grid.min() < 0:
        raise OptionError(f"index {int(grid.min())} is negative")
    if grid.max() >= n:
        raise OptionError(f"index {int(grid.max())} is not below k = {n}")
    return np.ascontiguousarray(grid, dtype=np.uint8)


def check_band_rows(band_rows: int | None, shape: tuple[int, int], who: str) -> int:
    """The rows per band an encoder was asked for (1 to 2^32 - 1, spec §5.4.3), or its
    own choice (None)."""
    if band_rows is None:
        return band_rows_for(*shape)
    if not isinstance(band_rows, (int, np.integer)) or not 1 <= band_rows < 1 << 32:
        raise OptionError(f"{who}: band_rows must be a whole number from 1 to {(1 << 32) - 1}, "
                          f"got {band_rows!r}")
    return int(band_rows)


def v14(value: int) -> bytes:
    """*value* (< 2^14) as a v14: one byte below 128, else two (§5.4.3)."""
    return bytes([value]) if value < 0x80 else bytes([(value & 0x7F) | 0x80, value >> 7])


def read_v14(raw: bytes, pos: int, who: str) -> tuple[int, int]:
    """(value, next position) of the v14 at *pos*."""
    if pos >= len(raw):
        raise FormatError(f"section INDX: {who} tables are truncated")
    first = raw[pos]
    if first < 0x80:
        return first, pos + 1
    if pos + 1 >= len(raw):
        raise FormatError(f"section INDX: {who} tables are truncated")
    second = raw[pos + 1]
    if second >= 0x80 or second == 0:
        raise FormatError(f"section INDX: {who} table value longer than 2 bytes or not minimal")
    return (first & 0x7F) | (second << 7), pos + 2


def starts(freq: np.ndarray) -> np.ndarray:
    """Cumulative starts along the last axis (uint16)."""
    return (np.cumsum(freq, axis=-1, dtype=np.int64) - freq).astype(np.uint16)


def band_rows_for(height: int, width: int) -> int:
    """Rows per coding band: about CODING_BAND_PIXELS pixels (the encoder's choice)."""
    return max(1, min(height, CODING_BAND_PIXELS // max(1, width)))


def bands(height: int, band_rows: int) -> list[tuple[int, int]]:
    """(top, bottom) of each band of *band_rows* rows."""
    return [(top, min(height, top + band_rows)) for top in range(0, height, band_rows)]


def assemble_bands(band_rows: int, streams: list[bytes]) -> bytes:
    """``band_rows`` and the length-prefixed streams."""
    out = [struct.pack("<I", band_rows)]
    for stream in streams:
        out += [struct.pack("<I", len(stream)), stream]
    return b"".join(out)


def read_streams(data: bytes | memoryview, offset: int, height: int, who: str
                 ) -> tuple[int, list[memoryview]]:
    """(band_rows, one stream per band) from *offset* to the end of *data*."""
    view = memoryview(data).cast("B")
    if offset + 4 > len(view):
        raise FormatError(f"section INDX: {who} data ends before its band size")
    band_rows = struct.unpack_from("<I", view, offset)[0]
    if band_rows < 1:
        raise FormatError(f"section INDX: {who} band of 0 rows")
    pos = offset + 4
    streams = []
    for band, _ in enumerate(bands(height, band_rows)):
        if pos + 4 > len(view):
            raise FormatError(f"section INDX: {who} data ends before band {band}")
        length = struct.unpack_from("<I", view, pos)[0]
        pos += 4
        if length > len(view) - pos:
            raise FormatError(f"section INDX: {who} band {band} needs {length} bytes, "
                              f"{len(view) - pos} left")
        streams.append(view[pos : pos + length])
        pos += length
    if pos != len(view):
        raise FormatError(f"section INDX: {len(view) - pos} bytes after the last {who} band")
    return band_rows, streams


def encode_stream(freq: np.ndarray, start: np.ndarray) -> bytes:
    """One band's stream (its initial state, then its bytes) coding the symbols whose
    frequencies and starts are *freq* and *start*, in decoding order (§5.4.5), in Python."""
    out = bytearray()  # renormalisation bytes, in reverse
    x = RANS_L
    for f, s in zip(reversed(np.asarray(freq).tolist()), reversed(np.asarray(start).tolist())):
        x_max = ((RANS_L >> SCALE_BITS) << 8) * f
        while x >= x_max:
            out.append(x & 0xFF)
            x >>= 8
        x = ((x // f) << SCALE_BITS) + (x % f) + s
    out.reverse()
    return x.to_bytes(4, "little") + bytes(out)


class MapCoder(Coder):
    """A registry entry for a coder of the index map itself (layout 1, one byte an
    index, so k <= 256), given its module's ``encode(grid, book)`` and
    ``decode(data, width, height, book, pixels=)`` as :attr:`encode_map` and
    :attr:`decode_map`."""

    kind = "map"
    layouts = (packing.BYTES,)
    max_k = 256

    @staticmethod
    def encode_map(grid: np.ndarray, book: np.ndarray) -> bytes:
        raise NotImplementedError

    @staticmethod
    def decode_map(data: memoryview, width: int, height: int, book: np.ndarray, *,
                   pixels: bool = False) -> np.ndarray:
        raise NotImplementedError

    def encode(self, payload: bytes, header: HeaderLike, codebook: bytes, /, *,
               level: int | None = None, threads: int = 0) -> bytes:
        grid = np.frombuffer(payload, dtype=np.uint8).reshape(header.height, header.width)
        return self.encode_map(grid, _book(codebook, header.channels))

    def decode(self, data: memoryview, header: HeaderLike, codebook: bytes, /, *,
               samples: bool = False) -> "bytes | np.ndarray":
        out = self.decode_map(data, header.width, header.height, _book(codebook, header.channels),
                              pixels=samples)
        return out if samples else out.tobytes()


def _book(codebook: bytes, channels: int) -> np.ndarray:
    return np.frombuffer(codebook, dtype=np.uint8).reshape(-1, channels)
