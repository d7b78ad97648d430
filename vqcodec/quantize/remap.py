"""Mapping pixels to a codebook: the position-aware stage.

:func:`remap` gives every pixel an index into a codebook: first its
colour's nearest entry in the error space of :mod:`vqcodec.space` (exact
matches first: a colour equal to an entry always gets that entry, since
its distance is 0 and ties go to the lowest index), computed once per
distinct colour; then, optionally, the rate-aware choice of
:mod:`.rdo`, which looks at each pixel's neighbours.  Anything else that
looks at positions (dithering) belongs here too, in the same pass, so
that the rate-aware choice does not undo it.

:func:`assign` is the position-free kernel: the nearest entry of each
vector of a list.
"""

from __future__ import annotations

import numpy as np

from vqcodec import space
from vqcodec.errors import OptionError
from vqcodec.quantize import rdo
from vqcodec.quantize.codebook import Codebook
from vqcodec.quantize.histogram import CHUNK, check_pixels, distinct
from vqcodec.quantize.nearest import nearest

__all__ = ["remap", "assign", "lookup"]


def remap(pixels: np.ndarray, codebook: Codebook | np.ndarray, /, *, indices: np.ndarray | None = None,
          rdo_strength: float = 0.0) -> np.ndarray:
    """The ``(H, W)`` index map of ``(H, W, C)`` ``uint8`` *pixels* against *codebook*.

    *codebook* is a :class:`Codebook` of single colours or an ``(n, C)``
    ``uint8`` array.  With *indices* (each pixel's nearest entry, as
    :func:`vqcodec.quantize.quantize` returns them) the nearest-entry
    search is skipped.  ``rdo_strength`` > 0 then lets pixels take a
    neighbour's entry where it is almost as close (:func:`.rdo.smooth`).
    The map is ``uint8`` for at most 256 entries, else ``uint16``.
    """
    check_pixels(pixels)
    book = codebook.entries if isinstance(codebook, Codebook) else np.asarray(codebook)
    if isinstance(codebook, Codebook) and codebook.block != (1, 1):
        raise OptionError(f"remap: a codebook of {codebook.block[0]}x{codebook.block[1]} blocks "
                          "cannot map single pixels")
    if book.dtype != np.uint8 or book.ndim != 2 or book.shape[1] != pixels.shape[2] or not len(book):
        raise OptionError(f"remap: the codebook's entries {book.dtype} {book.shape} do not match "
                          f"{pixels.shape[2]}-channel pixels")
    if indices is None:
        colors, _, inverse = distinct(pixels)
        if space.has_alpha(book.shape[1]):
            labels = nearest(space.premultiply(colors).astype(np.float32), space.premultiply(book))[0]
        else:
            labels = nearest(colors.astype(np.float32), book.astype(np.float64))[0]
        indices = lookup(labels, inverse, pixels.shape[:2], len(book))
    if rdo_strength:
        indices = rdo.smooth(pixels, book, indices, strength=rdo_strength)
    return indices


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
    if a.ndim != 2 or not 1 <= a.shape[1] <= 4:
        raise OptionError(f"{name}: expected shape (n, C) with C in 1..4, found {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise OptionError(f"{name}: expected numbers, found dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise OptionError(f"{name}: expected finite values")
    return a
