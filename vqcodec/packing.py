"""Index packing: the index layouts of spec §5, indices <-> payload bytes.

A leaf: numpy only.  ``pack`` turns an index map into the (uncompressed)
payload of an ``INDX`` section; ``unpack`` is its inverse and checks every
index against k.  zstd is the container's business.

Layout 0 (packed): one continuous big-endian bit string, ``bits`` bits per
index, rows not padded, last byte zero-padded.  Layout 1 (bytes): one u8 per
index (bits <= 8) or one little-endian u16 (bits >= 9).  Layout 2 (stripes):
as layout 1, in stripe-2 order: rows are taken in pairs and each pair is
read column by column (upper pixel, then lower), so that a pixel's upper
neighbour sits next to it in the byte stream; an odd last row is read left
to right.
"""

from __future__ import annotations

import numpy as np

from .errors import FormatError, OptionError, UnsupportedVersionError

__all__ = ["PACKED", "BYTES", "STRIPES", "LAYOUTS", "pack", "unpack", "packed_size", "payload_size"]

PACKED = 0
BYTES = 1
STRIPES = 2
LAYOUTS = {PACKED: "packed", BYTES: "bytes", STRIPES: "stripes"}
"""index_layout value -> name (spec §5.0-5.2)."""

# Work on this many indices at a time so that the bit-level temporaries of
# layout 0 stay small (16 bits per index as uint8 -> 16 MiB per chunk).
_CHUNK = 1 << 20


def packed_size(count: int, bits: int) -> int:
    """Bytes of a layout-0 payload: ceil(count * bits / 8)."""
    return (count * bits + 7) // 8


def payload_size(count: int, bits: int, layout: int) -> int:
    """The exact size of the payload of *count* indices of *bits* bits in *layout* (spec §5)."""
    if layout == PACKED:
        return packed_size(count, bits)
    if layout in (BYTES, STRIPES):
        return count * ((bits + 7) // 8)
    raise UnsupportedVersionError(
        f"HEAD: index_layout {layout} is not supported (this reader knows {sorted(LAYOUTS)})")


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 16:
        raise OptionError(f"bits per index must be 1 to 16, got {bits}")


def to_stripes(grid: np.ndarray) -> np.ndarray:
    """(H, W) map -> 1-D array in stripe-2 order (spec §5.2)."""
    h, w = grid.shape
    even = h - (h & 1)
    main = grid[:even].reshape(even // 2, 2, w).transpose(0, 2, 1).reshape(-1)
    return np.concatenate([main, grid[even]]) if h & 1 else main


def from_stripes(flat: np.ndarray, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`to_stripes`: 1-D stripe-2 order -> (H, W) map."""
    out = np.empty((height, width), dtype=flat.dtype)
    even = height - (height & 1)
    split = even * width
    out[:even] = flat[:split].reshape(even // 2, width, 2).transpose(0, 2, 1).reshape(even, width)
    if height & 1:
        out[even] = flat[split:]
    return out


def pack(indices: np.ndarray, /, *, bits: int, layout: int = PACKED) -> bytes:
    """Serialise an index map in *layout*; the map is (H, W) for layout 2, any shape otherwise."""
    _check_bits(bits)
    if layout == STRIPES:
        grid = np.asarray(indices)
        if grid.ndim != 2:
            raise OptionError(f"layout 2 (stripes) needs an (H, W) map, got shape {grid.shape}")
        return pack(to_stripes(grid), bits=bits, layout=BYTES)
    flat = np.ascontiguousarray(indices).reshape(-1)
    if flat.size and int(flat.max()) >= (1 << bits):
        raise OptionError(f"index {int(flat.max())} does not fit in {bits} bits")
    if layout == BYTES:
        dtype = np.uint8 if bits <= 8 else np.dtype("<u2")
        return flat.astype(dtype, copy=False).tobytes()
    if layout != PACKED:
        raise OptionError(f"unknown index layout {layout}")
    if bits == 8:
        return flat.astype(np.uint8, copy=False).tobytes()
    if bits == 16:
        return flat.astype(">u2", copy=False).tobytes()
    if bits in (1, 2, 4):  # whole indices per byte: shifts, no bit planes
        return _pack_small(flat, bits)
    out = bytearray()
    # Chunks hold a multiple of 8 indices, so every chunk ends on a byte boundary.
    step = _CHUNK - _CHUNK % 8
    for start in range(0, flat.size, step):
        part = flat[start : start + step].astype(">u2")
        bitplane = np.unpackbits(part.view(np.uint8).reshape(-1, 2), axis=1)[:, 16 - bits :]
        out += np.packbits(bitplane.reshape(-1)).tobytes()
    return bytes(out)


def unpack(payload: bytes, /, *, bits: int, count: int, k: int, layout: int = PACKED,
           width: int | None = None) -> np.ndarray:
    """Read *count* indices from a payload; refuse a wrong size or an index >= k.

    Returns a flat uint8 array (bits <= 8, else uint16) in raster order.
    Layout 2 needs the image *width* (count must be a multiple of it).
    """
    _check_bits(bits)
    if layout == STRIPES:
        if not width or count % width:
            raise FormatError(f"INDX: layout 2 needs the image width (count {count}, width {width})")
        flat = unpack(payload, bits=bits, count=count, k=k, layout=BYTES)
        return from_stripes(flat, count // width, width).reshape(-1)
    out_dtype = np.uint8 if bits <= 8 else np.uint16
    if layout == BYTES:
        width = 1 if bits <= 8 else 2
        if len(payload) != count * width:
            raise FormatError(f"INDX: payload is {len(payload)} bytes, expected {count * width}")
        src = np.frombuffer(payload, dtype=np.uint8 if width == 1 else "<u2")
        flat = src.astype(out_dtype, copy=False)
    elif layout == PACKED:
        size = packed_size(count, bits)
        if len(payload) != size:
            raise FormatError(f"INDX: payload is {len(payload)} bytes, expected {size}")
        flat = _unpack_bits(payload, bits, count, out_dtype)
    else:
        raise FormatError(f"INDX: unknown index layout {layout}")
    _check_range(flat, k)
    return flat


def _unpack_bits(payload: bytes, bits: int, count: int, out_dtype) -> np.ndarray:
    raw = np.frombuffer(payload, dtype=np.uint8)
    if bits == 8:
        return raw[:count].copy()
    if bits == 16:
        return raw.view(">u2")[:count].astype(np.uint16)
    if bits in (1, 2, 4):
        return _unpack_small(raw, bits, count)
    out = np.empty(count, dtype=out_dtype)
    step = _CHUNK - _CHUNK % 8
    for start in range(0, count, step):
        n = min(step, count - start)
        first = start * bits // 8
        nbytes = packed_size(n, bits)
        bitstring = np.unpackbits(raw[first : first + nbytes])[: n * bits]
        wide = np.zeros((n, 16), dtype=np.uint8)
        wide[:, 16 - bits :] = bitstring.reshape(n, bits)
        out[start : start + n] = np.packbits(wide, axis=1).view(">u2").reshape(n)
    return out


def _shifts(bits: int) -> np.ndarray:
    """Bit offsets of the indices in one byte, first index in the high bits (spec §5.0)."""
    return np.arange(8 - bits, -1, -bits, dtype=np.uint8)


def _pack_small(flat: np.ndarray, bits: int) -> bytes:
    """Layout 0 for bits 1, 2 and 4: 8 // bits indices per byte, the first one highest."""
    per = 8 // bits
    out = bytearray()
    step = _CHUNK - _CHUNK % per
    for start in range(0, flat.size, step):
        part = flat[start : start + step].astype(np.uint8)
        if part.size % per:
            part = np.concatenate([part, np.zeros(per - part.size % per, np.uint8)])
        cols = part.reshape(-1, per)
        acc = np.zeros(cols.shape[0], np.uint8)
        for col, shift in zip(cols.T, _shifts(bits)):
            acc |= col << shift
        out += acc.tobytes()
    return bytes(out)


def _unpack_small(raw: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`_pack_small`: *count* uint8 indices."""
    per = 8 // bits
    out = np.empty(count, dtype=np.uint8)
    mask = np.uint8((1 << bits) - 1)
    shifts = _shifts(bits)
    step = _CHUNK - _CHUNK % per
    for start in range(0, count, step):
        n = min(step, count - start)
        src = raw[start // per : (start + n + per - 1) // per]
        part = src[:, None] >> shifts
        part &= mask
        out[start : start + n] = part.reshape(-1)[:n]
    return out


def _check_range(flat: np.ndarray, k: int) -> None:
    if flat.size == 0:
        return
    top = int(flat.max())
    if top >= k:
        where = int(np.argmax(flat >= k))
        raise FormatError(f"INDX: index {top} at pixel {where} is not below k = {k}")
