"""Vector quantization: pixels -> (codebook, indices), in stages.

The stages, in libimagequant's shape (each a module; numpy, the standard
library, :mod:`vqcodec.space` and the compiled loops of
``vqcodec._quantize`` and ``vqcodec._rdo`` -- no scipy, no files, no bytes)::

    pixels ─► Histogram ─► learn ─► Codebook ─► remap ─► indices
              histogram    learn     codebook    remap
              (distinct    (kmeans,  (entries,   (nearest entry per colour,
               colours,     finish)   sha256)     then rdo: the rate-aware
               counts)                             choice by position)

* :mod:`.histogram` -- distinct colours and their counts; :class:`Histogram`
  merges many images.
* :mod:`.kmeans` -- weighted k-means (box splits, Ward merging, Lloyd, jumps).
* :mod:`.learn` -- k-means plus finishing (rounding, refinement, dropping
  unused entries): :func:`learn` gives a :class:`Codebook`.
* :mod:`.nearest` -- the nearest-entry search (C, numpy, pruned).
* :mod:`.remap` -- pixels to indices against a codebook, then :mod:`.rdo`
  or :mod:`.dither`; :func:`rebuild`, indices back to pixels.
* :mod:`.blocks` -- pixels to vectors of bw x bh pixels and back: every
  stage works on vectors of any dimension (a :class:`Codebook` of blocks,
  ``Histogram.of(pixels, block=(2, 2))``).
* :mod:`.rdo` -- the rate-aware index choice.
* :mod:`.dither` -- error diffusion where it helps, with the rate-aware
  choice inside its loop.

:func:`quantize` is the encoder's path through the stages for one image: it
maps pixels through their distinct colours' labels from learning, never by
per-pixel distance computations.  Alpha (LA, RGBA) is learned and mapped in
the premultiplied error space; codebooks are stored straight.  An image with
at most ``k`` distinct colours comes back exactly.  Everything is
deterministic: the same input and ``seed`` give the same output, whatever
the thread count or timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vqcodec.limits import MAX_K, MIN_K, check_k, check_seed
from vqcodec.quantize.codebook import Codebook
from vqcodec.quantize.histogram import Histogram, check_pixels, distinct
from vqcodec.quantize.learn import fit, learn, learn_codebook
from vqcodec.quantize.remap import assign, lookup, rebuild, remap

__all__ = ["MIN_K", "MAX_K", "Quantization", "quantize", "Histogram", "Codebook", "learn", "remap",
           "rebuild", "learn_codebook", "assign"]


@dataclass(frozen=True)
class Quantization:
    """A codebook and the index of each pixel's entry.

    ``codebook`` is ``(n, C)`` ``uint8`` with ``1 <= n <= k``, rows distinct,
    sorted lexicographically, every entry used by at least one pixel.
    ``indices`` is ``(H, W)``, ``uint8`` if ``n <= 256`` else ``uint16``.
    """

    codebook: np.ndarray
    indices: np.ndarray


def quantize(pixels: np.ndarray, /, *, k: int, seed: int = 0) -> Quantization:
    """Quantize ``(H, W, C)`` ``uint8`` pixels (``C`` in 1..4) to at most ``k`` colours.

    With alpha (C = 2 or 4) the codebook is learned and the colours
    assigned over premultiplied colours, where the error is seen (the
    colour of a transparent pixel is invisible; a half-transparent one's
    error counts half); the codebook is stored straight.  Lossless when the
    image has at most ``k`` distinct colours.  Raises :class:`OptionError` for a bad ``k``,
    ``seed`` or array.
    """
    k = check_k(k)
    seed = check_seed(seed)
    check_pixels(pixels)
    colors, counts, inverse = distinct(pixels)
    codebook, labels = fit(colors, counts, k, seed)
    return Quantization(codebook=codebook, indices=lookup(labels, inverse, pixels.shape[:2], len(codebook)))
