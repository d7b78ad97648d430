"""Pixels <-> vectors of bw x bh pixels: the gather and scatter of block vector quantization.

An image of H x W pixels with C channels is padded to a multiple of the
block in each direction by repeating its last row and its last column (edge
replication: the padding is the nearest real pixel, so it costs the
quantizer nothing it would not pay anyway), then cut into blocks in raster
order.  A block's vector is its pixels in raster order, channels
interleaved: ``D = bh x bw x C`` components, the layout a :class:`Codebook`
of that block shape holds.  :func:`scatter` is the inverse and crops the
padding away, and :func:`lookup` is the decoder's form of it: a table
gather from the codebook straight into place (spec §3.1, §8).  A 1 x 1
block is a pixel: the vectors are the pixels.
"""

from __future__ import annotations

import numpy as np

from vqcodec.errors import OptionError

__all__ = ["grid_shape", "gather", "scatter", "lookup", "check_block"]


def check_block(block: object) -> tuple[int, int]:
    """``(width, height)``, each an int from 1 to 16, or OptionError."""
    if (not isinstance(block, (tuple, list)) or len(block) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= 16
                       for v in block)):
        raise OptionError(f"block must be (width, height), each from 1 to 16, got {block!r}")
    return int(block[0]), int(block[1])


def grid_shape(height: int, width: int, block: tuple[int, int]) -> tuple[int, int]:
    """Blocks down and across for an image of *height* x *width*: ``ceil(H / bh), ceil(W / bw)``."""
    bw, bh = block
    return -(-height // bh), -(-width // bw)


def gather(pixels: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """``(H, W, C)`` pixels -> ``(rows x cols, bh x bw x C)`` block vectors (padded by edge replication)."""
    bw, bh = check_block(block)
    h, w, c = pixels.shape
    rows, cols = grid_shape(h, w, (bw, bh))
    if (bw, bh) == (1, 1):
        return pixels.reshape(h * w, c)
    padded = np.pad(pixels, ((0, rows * bh - h), (0, cols * bw - w), (0, 0)), mode="edge")
    return np.ascontiguousarray(
        padded.reshape(rows, bh, cols, bw, c).transpose(0, 2, 1, 3, 4)).reshape(rows * cols, bh * bw * c)


def scatter(vectors: np.ndarray, height: int, width: int, channels: int, block: tuple[int, int]) -> np.ndarray:
    """The inverse of :func:`gather`: ``(rows x cols, D)`` vectors -> ``(H, W, C)`` pixels, padding cropped."""
    bw, bh = check_block(block)
    rows, cols = grid_shape(height, width, (bw, bh))
    v = np.asarray(vectors)
    if v.shape != (rows * cols, bh * bw * channels):
        raise OptionError(f"blocks: expected {rows * cols} vectors of {bh * bw * channels} components "
                          f"for a {width}x{height} image of {channels} channels in {bw}x{bh} blocks, "
                          f"found shape {v.shape}")
    full = v.reshape(rows, cols, bh, bw, channels).transpose(0, 2, 1, 3, 4).reshape(rows * bh, cols * bw, channels)
    return np.ascontiguousarray(full[:height, :width])


def lookup(entries: np.ndarray, indices: np.ndarray, height: int, width: int, channels: int,
           block: tuple[int, int]) -> np.ndarray:
    """``(H, W, C)`` pixels from a ``(rows, cols)`` map of *indices* into ``(n, bh x bw x C)`` *entries*.

    :func:`scatter` of ``entries[indices]`` without the intermediate copy: each
    row of pixels of a block (``bw x C`` bytes, one opaque item) is gathered
    by ``np.take`` straight into its place, one pass per row of the block
    (~3x faster than take then transpose).  Indices must be below ``n``.
    """
    bw, bh = block
    rows, cols = grid_shape(height, width, block)
    book = np.ascontiguousarray(entries, np.uint8)
    if book.ndim != 2 or book.shape[1] != bh * bw * channels or np.shape(indices) != (rows, cols):
        raise OptionError(f"blocks: entries {book.shape} and indices {np.shape(indices)} do not make a "
                          f"{width}x{height} image of {channels} channels in {bw}x{bh} blocks")
    item = np.dtype((np.void, bw * channels))
    lines = book.view(item).reshape(len(book), bh).T.copy()  # lines[j, e]: row j of entry e
    out = np.empty((rows, bh, cols), item)
    grid = np.asarray(indices, np.intp)
    for j in range(bh):
        np.take(lines[j], grid, out=out[:, j, :])
    full = out.view(np.uint8).reshape(rows * bh, cols * bw, channels)
    return full if full.shape[:2] == (height, width) else np.ascontiguousarray(full[:height, :width])
