"""The numbers that bound what vqcodec reads and writes, each defined once.

A foundation module (it imports only :mod:`vqcodec.errors`): the format's k range (spec §3), the
encoder's range of k and its default, and the pixel limit every reader
applies before it allocates anything for an image.
"""

from __future__ import annotations

import numbers

from vqcodec.errors import OptionError

__all__ = ["MIN_K", "MAX_K", "DEFAULT_K", "DEFAULT_MAX_PIXELS", "MAX_BLOCK", "check_k", "check_seed",
           "check_block"]

MAX_K = 65536
"""The largest codebook the format holds (spec §3: ``k`` is 1 ... 65536, 16-bit indices)."""

MIN_K = 2
"""The smallest k an encoder may be asked for (a file may hold k = 1: an image of one colour)."""

DEFAULT_K = 256
"""The encoder's default codebook size."""

DEFAULT_MAX_PIXELS = 178_956_970
"""Largest ``width × height`` read by default, from an image file or a .vqi file.

It is Pillow's own hard limit (``2 * Image.MAX_IMAGE_PIXELS`` with Pillow's
default of 89,478,485), so vqcodec refuses exactly what a default Pillow
refuses, but with its own message and before any decoding.  It is about
13,400 × 13,400 pixels, 716 MB as RGBA.  ``max_pixels=None`` lifts it.
"""


MAX_BLOCK = 8
"""The largest ``block_width`` and ``block_height`` (spec §3.1): an 8×8 RGBA entry is 256 bytes,
so a BOOK of 65536 entries stays at 16 MiB, and larger blocks do not pay (issue 13)."""


def _integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_k(value: object) -> int:
    """*value* as an int if it is an integer from MIN_K to MAX_K, else OptionError (the one check of k)."""
    if not _integer(value) or not MIN_K <= value <= MAX_K:
        raise OptionError(f"k must be an integer from {MIN_K} to {MAX_K}, got {value!r}")
    return int(value)


def check_seed(value: object) -> int:
    """*value* as an int if it is an integer >= 0 (a k-means seed), else OptionError."""
    if not _integer(value) or value < 0:
        raise OptionError(f"seed must be an integer >= 0, got {value!r}")
    return int(value)


def check_block(value: object) -> tuple[int, int]:
    """*value* as ``(width, height)``: a pair of integers or text ``"WxH"`` ("2x2"), each
    from 1 to MAX_BLOCK; else OptionError (the one check of a block shape)."""
    pair = value
    if isinstance(value, str):
        parts = value.lower().replace("×", "x").split("x")
        try:
            pair = tuple(int(p) for p in parts)
        except ValueError:
            pair = None
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(_integer(v) and 1 <= v <= MAX_BLOCK for v in pair)):
        raise OptionError(f"block must be WIDTHxHEIGHT (such as 2x2), each from 1 to {MAX_BLOCK}, "
                          f"got {value!r}")
    return int(pair[0]), int(pair[1])
