"""Distinct colours and their pixel counts: what the codebook is learned from.

Each pixel is packed into one integer key (first channel most
significant).  The distinct keys are found by marking a table of flags
(O(pixels), no sort), level by level; colours come out in key order, i.e.
sorted lexicographically.  For RGB the compiled loops of
``vqcodec._quantize`` mark a bitmap of the 2^24 keys instead (numpy's
sparse tables cost page faults in a fresh process): the same result.

:class:`Histogram` is the public, mergeable form: add the pixels of many
images (a corpus to learn one shared codebook from) and learn from the sum.
"""

from __future__ import annotations

import numpy as np

from vqcodec._native import load
from vqcodec.errors import OptionError
from vqcodec.quantize.blocks import check_block, gather

_native = load("_quantize")

__all__ = ["Histogram", "distinct", "distinct_vectors", "unique_small", "CHUNK"]

# Distinct colours: largest flag table of a level (else np.unique); pixels per pass.
_TABLE_MAX = 1 << 26
CHUNK = 1 << 18


class Histogram:
    """The distinct vectors of one or more images and their counts.

    For a block of 1 x 1 (the default) the vectors are colours: ``colors``
    is ``(n, C)`` ``uint8``; for a block of bw x bh pixels they are the
    images' blocks (:mod:`.blocks`), ``(n, bh x bw x C)``.  Rows are
    distinct and sorted lexicographically; ``counts`` is ``(n,)``
    ``int64``, every count > 0.  Build one from an image with :meth:`of`,
    add more images with :meth:`add` or another histogram with
    :meth:`merge`; all must have the same channels and block.
    """

    __slots__ = ("channels", "block", "colors", "counts")

    def __init__(self, channels: int, block: tuple[int, int] = (1, 1)) -> None:
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or not 1 <= channels <= 4:
            raise OptionError(f"histogram: channels must be 1 to 4, got {channels!r}")
        self.channels = int(channels)
        self.block = check_block(block)
        self.colors = np.zeros((0, self.dim), np.uint8)
        self.counts = np.zeros(0, np.int64)

    @property
    def dim(self) -> int:
        """Components per vector: channels x block width x block height."""
        return self.channels * self.block[0] * self.block[1]

    @property
    def vectors(self) -> np.ndarray:
        """The distinct vectors (the same array as ``colors``)."""
        return self.colors

    @classmethod
    def of(cls, pixels: np.ndarray, /, block: tuple[int, int] = (1, 1)) -> "Histogram":
        """The histogram of one ``(H, W, C)`` ``uint8`` image, of its pixels or of its blocks."""
        check_pixels(pixels)
        hist = cls(pixels.shape[2], block)
        if hist.block == (1, 1):
            colors, counts, _ = distinct(pixels)
        else:
            colors, counts, _ = distinct_vectors(gather(pixels, hist.block))
        hist.colors, hist.counts = colors, counts.astype(np.int64)
        return hist

    def add(self, pixels: np.ndarray, /) -> "Histogram":
        """Add one image's pixels (same channel count); returns self."""
        return self.merge(Histogram.of(pixels, self.block))

    def merge(self, other: "Histogram", /) -> "Histogram":
        """Add another histogram's counts to this one (in place); returns self."""
        if not isinstance(other, Histogram):
            raise OptionError(f"histogram: can only merge a Histogram, got {type(other).__name__}")
        if (other.channels, other.block) != (self.channels, self.block):
            raise OptionError(f"histogram: cannot merge {other.channels}-channel {_name(other.block)} vectors "
                              f"into a {self.channels}-channel {_name(self.block)} histogram")
        if not len(self.colors):
            self.colors, self.counts = other.colors.copy(), other.counts.copy()
            return self
        colors, _, inverse = distinct_vectors(np.concatenate([self.colors, other.colors]))
        counts = np.concatenate([self.counts, other.counts])
        self.counts = np.bincount(inverse, weights=counts, minlength=len(colors)).astype(np.int64)
        self.colors = colors
        return self

    @property
    def pixels(self) -> int:
        """The number of pixels counted (padding included, for blocks)."""
        return int(self.counts.sum()) * self.block[0] * self.block[1]

    def __len__(self) -> int:
        return len(self.colors)

    def __repr__(self) -> str:
        return (f"Histogram({len(self)} {_name(self.block)} vectors of {self.channels} channels, "
                f"{self.pixels} pixels)")


def _name(block: tuple[int, int]) -> str:
    return "colour" if block == (1, 1) else f"{block[0]}x{block[1]}-block"


def distinct_vectors(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of a ``(n, D)`` ``uint8`` matrix (lexicographic order), their counts, each row's id.

    Any D: the rows are compared as byte strings, whose order is the
    lexicographic order of uint8 components (the order :func:`distinct` gives).
    """
    v = np.ascontiguousarray(vectors, np.uint8)
    n, d = v.shape
    keys = v.view(np.dtype((np.void, d))).reshape(n)
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    return v[first], counts.astype(np.intp), inverse.reshape(-1).astype(np.int32)


def check_pixels(pixels: object) -> None:
    """OptionError unless *pixels* is a non-empty ``(H, W, C)`` ``uint8`` array with C in 1..4."""
    if not isinstance(pixels, np.ndarray):
        raise OptionError(f"pixels: expected a numpy array, found {type(pixels).__name__}")
    if pixels.dtype != np.uint8:
        raise OptionError(f"pixels: expected dtype uint8, found {pixels.dtype}")
    if pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4:
        raise OptionError(f"pixels: expected shape (H, W, C) with C in 1..4, found {pixels.shape}")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise OptionError(f"pixels: image is empty (shape {pixels.shape})")


def distinct(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct colours (key order), their pixel counts, each pixel's colour id (int32).

    Level by level: the first one or two channels are a key into a table of
    ``256**2`` flags; then each further channel extends the previous level's
    colour id: ``id * 256 + value``, a key into a table of ``ids * 256``
    flags.  Tables stay as small as the image's colours allow (a full
    ``256**3`` table of int32 ids costs more to page in than a 768x512 image
    takes to read), and every pass runs over chunks of pixels, so the index
    temporaries stay in cache and no full-image key array is made.
    """
    c = pixels.shape[2]
    flat = pixels.reshape(-1, c)
    if _native is not None and c == 3:  # a bitmap of the 2^24 keys, in C: the same result
        ids = np.empty(len(flat), np.int32)
        colours, counts = _native.distinct3(np.ascontiguousarray(flat), ids)
        return (np.frombuffer(colours, np.uint8).reshape(-1, 3).copy(),
                np.frombuffer(counts, np.int64).astype(np.intp), ids)
    first = min(c, 2)
    ids = np.empty(len(flat), np.int32)

    def key0(s: int, e: int) -> np.ndarray:
        key = flat[s:e, 0].astype(np.intp)
        if first == 2:
            key <<= 8
            key |= flat[s:e, 1]
        return key

    levels = [_ids_by_table(key0, len(flat), 1 << (8 * first), ids)]
    for j in range(first, c):
        size = len(levels[-1]) << 8

        def key(s: int, e: int, j: int = j) -> np.ndarray:
            k = ids[s:e].astype(np.intp)
            k <<= 8
            k |= flat[s:e, j]
            return k

        if size <= _TABLE_MAX:
            levels.append(_ids_by_table(key, len(flat), size, ids))
        else:  # too many colours for a table: sort
            values, inverse = np.unique(key(0, len(flat)), return_inverse=True)
            ids[:] = inverse.reshape(-1)
            levels.append(values)
    colors = np.empty((len(levels[-1]), c), np.uint8)
    v = levels[-1]
    for j in range(c - 1, first - 1, -1):  # walk the levels back to the first
        colors[:, j] = v & 255
        v = levels[j - first][v >> 8]
    if first == 2:
        colors[:, 1] = v & 255
        v = v >> 8
    colors[:, 0] = v
    counts = np.zeros(len(colors), np.intp)
    step = CHUNK * 8  # bincount copies its input to intp: 16 MB at a time, not 8 bytes a pixel
    for s in range(0, len(ids), step):
        counts += np.bincount(ids[s : s + step], minlength=len(colors))
    return colors, counts, ids


def _ids_by_table(key, n: int, size: int, ids: np.ndarray) -> np.ndarray:
    """Distinct values of ``key(s, e)`` over ``[0, n)`` (all below ``size``), sorted.

    Two passes over chunks, without sorting: mark a table of ``size`` flags,
    then write each position's rank among the distinct values to ``ids``.
    """
    mark = np.zeros(size, bool)
    for s in range(0, n, CHUNK):
        mark[key(s, min(s + CHUNK, n))] = True
    values = np.flatnonzero(mark)
    del mark
    lut = np.empty(size, np.int32)
    lut[values] = np.arange(len(values), dtype=np.int32)
    for s in range(0, n, CHUNK):
        e = min(s + CHUNK, n)
        np.take(lut, key(s, e), out=ids[s:e])
    return values


def unique_small(key: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(key, return_inverse=True) for keys < size, without sorting: O(len + size)."""
    inverse = np.empty(len(key), np.int32)
    values = _ids_by_table(lambda s, e: key[s:e], len(key), size, inverse)
    return values, inverse

