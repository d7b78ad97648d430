"""Tokens: an image as a grid of codebook indices and back, the VQ-GAN user's view of vqcodec.

>>> import numpy as np
>>> from vqcodec.tokenizer import tokens, detokenize, usage
>>> book = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)   # (n, D): colours
>>> t = tokens(np.full((2, 3, 3), 250, np.uint8), book)
>>> t.tolist(), usage(t, 2).used
([[1, 1, 1], [1, 1, 1]], 1)
>>> detokenize(t, book).shape
(2, 3, 3)

A codebook is anything :func:`vqcodec.books.to_codebook` takes -- a
``.vqb`` file, a palette, a :class:`~vqcodec.quantize.Codebook` -- or a
``(n, D)`` ``uint8`` numpy array: colours (``D`` = channels), or blocks when
``block=(bw, bh)`` is given (``D`` = channels × bw × bh, each block's pixels
in raster order, channels interleaved, as in a ``.vqb`` file).  With a block
codebook the grid is ``ceil(H / bh) × ceil(W / bw)``: the image is padded by
repeating its last row and column (:mod:`vqcodec.quantize.blocks`), and
:func:`detokenize` crops to the size it is given.  Each token is the nearest
entry (squared error; over premultiplied colours when there is alpha).

:func:`tokenize_file` is the batch worker (a folder of images to ``.npy``
token grids on any executor, as :mod:`vqcodec.batch` encodes).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import batch, books, codec, metrics, pixels
from .errors import OptionError
from .limits import DEFAULT_MAX_PIXELS

__all__ = ["Usage", "tokens", "detokenize", "usage", "codebook_of", "tokenize_file", "token_dtype"]


@dataclass(frozen=True)
class Usage:
    """How a set of tokens uses a codebook of ``k`` entries."""

    k: int
    used: int  # entries used at least once
    entropy: float  # bits per token, of the tokens' empirical distribution

    @property
    def used_fraction(self) -> float:
        """used / k."""
        return self.used / self.k

    @classmethod
    def of_counts(cls, counts: np.ndarray, k: int) -> "Usage":
        """From each entry's count (or weight)."""
        counts = np.asarray(counts, np.float64)
        total = counts.sum()
        p = counts[counts > 0] / total if total else counts[:0]
        return cls(k=int(k), used=int((counts > 0).sum()), entropy=float(-(p * np.log2(p)).sum()) + 0.0)


def codebook_of(codebook: Any, /, *, block: tuple[int, int] | None = None) -> Any:
    """A :class:`~vqcodec.quantize.Codebook` from any codebook argument (module docstring)."""
    from .quantize import Codebook

    if isinstance(codebook, np.ndarray) and block is not None:
        a = codebook
        bw, bh = block
        if a.ndim != 2 or a.dtype != np.uint8 or a.shape[1] % (bw * bh):
            raise OptionError(f"codebook: a (n, D) uint8 array with D a multiple of {bw}x{bh} is "
                              f"needed for {bw}x{bh} blocks, found {a.dtype} {a.shape}")
        return Codebook(a, channels=a.shape[1] // (bw * bh), block=(bw, bh))
    if block not in (None, (1, 1)) and not isinstance(codebook, np.ndarray):
        raise OptionError("block: only for a codebook given as a numpy array (others carry their shape)")
    return books.to_codebook(codebook)


def tokens(image: Any, codebook: Any, /, *, block: tuple[int, int] | None = None) -> np.ndarray:
    """The ``(ceil(H / bh), ceil(W / bw))`` ``int64`` grid of codebook indices of *image*.

    *image* is a numpy array (H×W or H×W×C ``uint8``), a PIL image or an
    image file; it is brought to the codebook's channels where nothing is
    lost (grey to RGB, opaque alpha dropped...), else :class:`OptionError`.
    """
    return _tokens(image, codebook_of(codebook, block=block))[0].astype(np.int64)


def _tokens(image: Any, book: Any) -> tuple[np.ndarray, pixels.Pixels]:
    """(the token grid, the pixels in the codebook's channels) of *image*."""
    from .quantize import remap

    px = codec.to_channels(codec.as_pixels(image, DEFAULT_MAX_PIXELS), book.channels)
    return remap(px.array, book), px


def detokenize(grid: Any, codebook: Any, /, *, block: tuple[int, int] | None = None,
               height: int | None = None, width: int | None = None) -> np.ndarray:
    """The image a grid of tokens stands for: ``uint8``, (H, W) for L, else (H, W, C).

    *height* and *width* crop a block grid's padding (default: the whole grid).
    """
    from .quantize import rebuild

    book = codebook_of(codebook, block=block)
    image = rebuild(np.asarray(grid), book, height=height, width=width)
    return image[:, :, 0] if book.channels == 1 else image


def usage(grid: Any, k: int, /) -> Usage:
    """Entries used and the entropy (bits per token) of a grid of tokens below *k*."""
    t = np.asarray(grid)
    if not np.issubdtype(t.dtype, np.integer) or not isinstance(k, (int, np.integer)) or k < 1:
        raise OptionError(f"usage: expected integer tokens and k >= 1, got {t.dtype} and {k!r}")
    if t.size and (t.min() < 0 or t.max() >= k):
        raise OptionError(f"usage: tokens must be 0 to k - 1 = {k - 1}, found {t.min()} to {t.max()}")
    return Usage.of_counts(np.bincount(t.reshape(-1), minlength=k), k)


def token_dtype(k: int) -> type:
    """The dtype a ``.npy`` token grid is stored in: uint8 up to 256 entries, else uint16."""
    return np.uint8 if k <= 256 else np.uint16


def tokenize_file(source: str, target: str, /, *, codebook: Any, overwrite: bool = False,
                  measure: bool = True) -> tuple[batch.Result, np.ndarray | None, float | None]:
    """Tokenize the image file *source* into the ``.npy`` file *target* (atomically).

    The grid is stored as :func:`token_dtype` (``np.load`` gives it back).
    Returns the :class:`~vqcodec.batch.Result` (``psnr``: of the detokenized
    image, with *measure*; never an exception for a bad file), the count
    of each entry among the tokens (None when it failed), which sum over a
    folder into its :class:`Usage`, and the SSIM of the detokenized image
    (with *measure*, else None).
    """
    counts: list[np.ndarray] = []
    ssims: list[float] = []

    def work() -> batch.Result:
        book = codebook_of(codebook)
        grid, px = _tokens(pixels.load(source), book)
        buffer = io.BytesIO()
        np.save(buffer, grid.astype(token_dtype(len(book))), allow_pickle=False)
        batch.write_file(target, buffer.getvalue(), overwrite)
        psnr = None
        if measure:
            rebuilt = detokenize(grid, book, height=px.height, width=px.width).reshape(px.array.shape)
            psnr = metrics.psnr(px.array, rebuilt)
            ssims.append(metrics.ssim(px.array, rebuilt))
        counts.append(np.bincount(grid.reshape(-1), minlength=len(book)))
        return batch.Result(source, target, os.stat(source).st_size, len(buffer.getvalue()),
                            px.width * px.height, psnr=psnr)

    result = batch.attempt(source, target, work)
    return result, (counts[0] if counts else None), (ssims[0] if ssims else None)
