"""Mapping pixels to a codebook: the position-aware stage.

:func:`remap` gives every pixel an index into a codebook: first its
colour's nearest entry in the error space of :mod:`vqcodec.space` (exact
matches first: a colour equal to an entry always gets that entry, since
its distance is 0 and ties go to the lowest index), computed once per
distinct colour; then, optionally, the rate-aware choice of
:mod:`.rdo`, which looks at each pixel's neighbours, or dithering
(:mod:`.dither`: error diffusion where it helps).

How the two combine: with dithering on, :func:`.rdo.smooth` does not run
(every change it made inside a dithered area would put back the bands the
diffusion broke up: on Kodak at k = 16 it took the blurred PSNR from 0.1 dB
above pngquant's to 1.4 dB below).  The rate-aware choice runs inside the
diffusion loop instead, with rdo's rule and strength measured against each
pixel's dithered target, and the error it makes is diffused like any other
(:mod:`.dither`, point 3).

:func:`assign` is the position-free kernel: the nearest entry of each
vector of a list.
"""

from __future__ import annotations

import numpy as np

from vqcodec import space
from vqcodec.errors import OptionError
from vqcodec.quantize import dither as _dither
from vqcodec.quantize import rdo
from vqcodec.quantize.codebook import Codebook
from vqcodec.quantize.blocks import gather, grid_shape
from vqcodec.quantize.blocks import lookup as lookup_blocks
from vqcodec.quantize.histogram import CHUNK, check_pixels, distinct, distinct_vectors
from vqcodec.quantize.nearest import nearest

__all__ = ["remap", "rebuild", "assign", "lookup"]


def remap(pixels: np.ndarray, codebook: Codebook | np.ndarray, /, *, indices: np.ndarray | None = None,
          rdo_strength: float = 0.0, dither: float = 0.0) -> np.ndarray:
    """The index map of ``(H, W, C)`` ``uint8`` *pixels* against *codebook*.

    *codebook* is a :class:`Codebook` or an ``(n, C)`` ``uint8`` array of
    colours.  For colours the map is ``(H, W)``; for a codebook of bw x bh
    blocks it is one index per block, ``(ceil(H / bh), ceil(W / bw))`` (the
    image padded by edge replication, :mod:`.blocks`).  With *indices* (each
    pixel's nearest entry, as :func:`vqcodec.quantize.quantize` returns
    them) the nearest-entry search is skipped.  ``rdo_strength`` > 0 then
    lets pixels take a neighbour's entry where it is almost as close
    (:func:`.rdo.smooth`; for blocks, a neighbouring block's entry).  ``dither``
    (0..1, 0 = off) diffuses the error where that helps (:mod:`.dither`; single
    pixels only; an image the codebook reproduces exactly is never dithered),
    with the rate-aware choice inside the diffusion loop (see the module
    docstring).  The map is ``uint8`` for at most 256 entries, else ``uint16``.
    """
    check_pixels(pixels)
    if isinstance(codebook, Codebook):
        book, channels, block = codebook.entries, codebook.channels, codebook.block
    else:
        book, channels, block = np.asarray(codebook), pixels.shape[2], (1, 1)
    if channels != pixels.shape[2] or book.dtype != np.uint8 or book.ndim != 2 or not len(book) \
            or book.shape[1] != channels * block[0] * block[1]:
        raise OptionError(f"remap: the codebook's entries {book.dtype} {book.shape} do not match "
                          f"{pixels.shape[2]}-channel pixels")
    if not (isinstance(dither, (int, float)) and not isinstance(dither, bool) and 0 <= dither <= 1):
        raise OptionError(f"remap: dither must be a number from 0 to 1, got {dither!r}")
    if block != (1, 1):
        if dither:
            raise OptionError(f"remap: dithering maps single pixels, not {block[0]}x{block[1]} blocks; "
                              "use dither 0 with a block codebook")
        rows, cols = grid_shape(pixels.shape[0], pixels.shape[1], block)
        blocks = gather(pixels, block)
        vectors, _, inverse = distinct_vectors(blocks)
        indices = lookup(_nearest_in_space(vectors, book, channels), inverse, (rows, cols), len(book))
        if rdo_strength:  # the same choice between a block and its left and upper neighbours
            indices = rdo.smooth(blocks.reshape(rows, cols, -1), book, indices, strength=rdo_strength,
                                 channels=channels)
        return indices
    if indices is None:
        colors, _, inverse = distinct(pixels)
        indices = lookup(_nearest_in_space(colors, book, channels), inverse, pixels.shape[:2], len(book))
    if dither:
        return _dither.dither(pixels, book, indices, float(dither), rdo_strength=rdo_strength)
    if rdo_strength:
        indices = rdo.smooth(pixels, book, indices, strength=rdo_strength)
    return indices


def rebuild(indices: np.ndarray, codebook: Codebook, /, height: int | None = None,
            width: int | None = None) -> np.ndarray:
    """The ``(H, W, C)`` image an index map stands for: each index's entry, blocks put in place.

    For block codebooks *height* and *width* crop the padding (default: the
    whole grid of blocks).
    """
    idx = np.asarray(indices)
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
        raise OptionError(f"indices: expected a 2-D integer array, found {idx.dtype} {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= len(codebook)):
        raise OptionError(f"indices: every index must be below the codebook's {len(codebook)} entries")
    bw, bh = codebook.block
    rows, cols = idx.shape
    height = rows * bh if height is None else height
    width = cols * bw if width is None else width
    if grid_shape(height, width, codebook.block) != (rows, cols):
        raise OptionError(f"indices: a {cols}x{rows} grid of {bw}x{bh} blocks cannot be a "
                          f"{width}x{height} image")
    return lookup_blocks(codebook.entries, idx, height, width, codebook.channels, codebook.block)


def _nearest_in_space(vectors: np.ndarray, book: np.ndarray, channels: int) -> np.ndarray:
    """Each vector's nearest entry, measured in the error space (premultiplied pixel by pixel for alpha)."""
    if space.has_alpha(channels):
        def pre(a: np.ndarray) -> np.ndarray:
            return space.premultiply(a.reshape(len(a), -1, channels)).reshape(len(a), -1)
        return nearest(pre(vectors).astype(np.float32), pre(book))[0]
    return nearest(vectors.astype(np.float32), book.astype(np.float64))[0]


def lookup(labels: np.ndarray | None, inverse: np.ndarray, shape: tuple[int, int], n: int) -> np.ndarray:
    """Each pixel's entry from its colour id (*inverse*) and each colour's entry (*labels*; None: the id itself)."""
    dtype = np.uint8 if n <= 256 else np.uint16
    lut = np.arange(n, dtype=dtype) if labels is None else labels.astype(dtype)
    indices = np.empty(len(inverse), dtype)
    for s in range(0, len(inverse), CHUNK):  # chunks: the intp copy of the ids stays small
        np.take(lut, inverse[s : s + CHUNK], out=indices[s : s + CHUNK])
    return indices.reshape(shape)


def assign(colors: np.ndarray, codebook: np.ndarray, /) -> np.ndarray:
    """Index of the nearest ``codebook`` row (squared Euclidean) for each row of ``colors``.

    Ties go to the lowest index.  Exact for integer-valued inputs; float
    inputs are compared in float32 (ties closer than float32 rounding may go
    either way).  Returns an ``intp`` array of shape ``(n,)``.
    """
    x = as_matrix("colors", colors)
    cb = as_matrix("codebook", codebook)
    if len(cb) == 0:
        raise OptionError("codebook: expected at least one row, found 0")
    if x.shape[1] != cb.shape[1]:
        raise OptionError(
            f"colors and codebook: expected the same number of components, "
            f"found {x.shape[1]} and {cb.shape[1]}"
        )
    return nearest(x.astype(np.float32), cb.astype(np.float64))[0]


def as_matrix(name: str, a: object) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[1] < 1:
        raise OptionError(f"{name}: expected shape (n, D) with D >= 1, found {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise OptionError(f"{name}: expected numbers, found dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise OptionError(f"{name}: expected finite values")
    return a
