"""Rate-aware index choice: trade a little distortion for a more compressible index map.

A leaf: numpy and the compiled loops of ``vqcodec._rdo``.  Given the pixels, the codebook and each pixel's nearest
entry, :func:`smooth` lets a pixel take its left or upper neighbour's index
instead when that entry is almost as close:

    cost(neighbour) <= cost(nearest) * (1 + strength / 3) + strength * mean cost

where ``cost`` is the squared error summed over the channels (over
premultiplied colours when there is alpha, as the quantizer and the metrics
measure it: a transparent pixel's hidden colour costs nothing) and the mean
is over the whole image.  Runs of equal indices are what every coder codes
cheaply, so the map shrinks by more than the error grows.  The threshold's
shape was chosen with bench/research/rdo_sweep.py and the default strength
(``DEFAULT_RDO`` in :mod:`vqcodec.options`) with ``bench/rdo_bench.py``;
their measurements are in README (`--rdo` under "The command line"), not here.
The threshold scales with the image's own mean error, so one strength suits
every k; an image quantized without loss (mean cost 0) is left exactly as it
is, because the codebook's entries are distinct.

The rule: every pixel looks at its neighbours' indices as they were before
the pass, left then up, ``iterations`` times, so runs can grow.  In numpy
(complete, and the reference) that is every pixel of a pass at once, on
bands of at most 256 kpixel of rows so memory stays bounded on very large
images (~9 MB per band in flight); once few neighbours differ, only those
pixels are costed.  ``vqcodec._rdo`` runs the same rule pixel by pixel in
place (walking each pass against its direction, so a neighbour is read
before it changes, skipping a neighbour that already has the pixel's index
and stopping once a pass changes nothing), with the same indices (the tests
check the two against each other).  The bands run on up to 4 threads.  The result depends only on the inputs and the constants here: it
is the encoder's choice, and the format does not know about it.
"""

from __future__ import annotations


import numpy as np

from vqcodec._threads import cores, map_in_order
from vqcodec import space
from vqcodec._native import load
from vqcodec.errors import OptionError

_native = load("_rdo")  # the same loops in C (vqcodec/_rdo.c), several times faster; same result

__all__ = ["DEFAULT_STRENGTH", "smooth", "iterations_for"]

DEFAULT_STRENGTH = 0.6
ITERATIONS = 4


def iterations_for(speed: int) -> int:
    """Passes of the rate-aware choice at encoder speed 1-10: 4 up to speed 6, 2 up to 8, then 1."""
    return ITERATIONS if speed <= 6 else (2 if speed <= 8 else 1)

# Pixels per band of rows at most (bands are as even as the rows allow): numpy
# holds a few int32 planes of a band at a time, and the bands run on up to 4
# threads (a Kodak photo: 2 bands of 256 rows).
BAND_PIXELS = 1 << 18
SPARSE_BELOW = 4  # cost only the differing pixels when they are under 1/4 of the band


def _cost(planes: np.ndarray, book: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Squared error of each pixel against entry idx, summed over channels (int32).

    *planes* is (C, N) int32, one row per channel; *book* (C, n) int32;
    *idx* (N,).  Channel by channel: gathers from a short table stay in cache.
    """
    total = None
    for plane, column in zip(planes, book):
        d = plane - column[idx]
        d *= d
        total = d if total is None else total + d
    return total


def smooth(pixels: np.ndarray, codebook: np.ndarray, indices: np.ndarray, /, *,
           strength: float = DEFAULT_STRENGTH, iterations: int = ITERATIONS,
           band_pixels: int = BAND_PIXELS, threads: int | None = None,
           channels: int | None = None) -> np.ndarray:
    """Return a new (H, W) index map, same dtype as *indices* (see the module docstring).

    *pixels* is (H, W, C) uint8, *codebook* (n, C) uint8, *indices* (H, W)
    with every index < n.  For block vectors *pixels* is the map of blocks,
    (rows, cols, D) with each block's pixels in order, *codebook* (n, D),
    and *channels* the channels of one pixel (D = pixels per block ×
    channels): with alpha each pixel is premultiplied by its own alpha, and
    "neighbour" means the block to the left or above.  ``strength`` 0 returns a copy of *indices*.
    Bands of rows are independent (a band's first row looks up at the
    *input* index of the row above), so they run on *threads* threads
    (default: up to 4, when there are several bands) with the same result.
    """
    if not (isinstance(strength, (int, float)) and 0 <= strength <= 100):
        raise OptionError(f"rdo strength must be a number from 0 to 100, got {strength!r}")
    if pixels.ndim != 3 or indices.shape != pixels.shape[:2] or codebook.shape[1:] != pixels.shape[2:]:
        raise OptionError(
            f"rdo: shapes do not match (pixels {pixels.shape}, codebook {codebook.shape}, "
            f"indices {indices.shape})"
        )
    channels = channels or pixels.shape[2]
    if pixels.shape[2] % channels:
        raise OptionError(f"rdo: {pixels.shape[2]} components are not whole pixels of {channels} channels")
    out = np.array(indices, copy=True)
    h, w = out.shape
    if strength == 0 or out.size == 0:
        return out
    bands = -(-h * w // max(1, band_pixels))
    rows = max(1, -(-h // bands))
    starts = range(0, h, rows)

    if (_native is not None and out.dtype in (np.uint8, np.uint16) and len(codebook) <= 65536
            and channels == pixels.shape[2]):  # the C loops take pixels (1x1 vectors)
        band_total, band_smooth = _native_bands(pixels, codebook, indices, out, rows,
                                                float(strength), iterations)
    else:
        band_total, band_smooth = _numpy_bands(pixels, codebook, indices, out, rows,
                                               float(strength), iterations, channels)
    workers = min(len(starts), threads or min(4, cores()))
    if workers <= 1:
        lam = strength * sum(map(band_total, starts)) / out.size
        for r0 in starts:
            band_smooth(r0, lam)
        return out
    # numpy and the C loops release the GIL in the heavy work
    lam = strength * sum(map_in_order(band_total, list(starts), workers)) / out.size
    map_in_order(lambda r0: band_smooth(r0, lam), list(starts), workers)
    return out


def _native_bands(pixels, codebook, indices, out, rows, strength, iterations):
    """(band_total, band_smooth) in C (vqcodec/_rdo.c): the same numbers as numpy's."""
    channels = codebook.shape[1]
    alpha, wide = channels in (2, 4), out.dtype == np.uint16
    image = np.ascontiguousarray(pixels, dtype=np.uint8)
    index = np.ascontiguousarray(indices)
    book = np.ascontiguousarray(codebook, dtype=np.uint8)
    if index.size and int(index.max()) >= len(book):
        raise OptionError(f"rdo: an index is {int(index.max())}, the codebook has {len(book)} entries")

    def band_total(r0: int) -> int:
        return _native.total_cost(image[r0 : r0 + rows], index[r0 : r0 + rows], book,
                                  channels, alpha, wide)

    def band_smooth(r0: int, lam: float) -> None:
        above = index[r0 - 1] if r0 else b""
        _native.smooth_band(image[r0 : r0 + rows], out[r0 : r0 + rows], above, book,
                            out.shape[1], channels, alpha, wide, strength, lam, iterations)

    return band_total, band_smooth


def _numpy_bands(pixels, codebook, indices, out, rows, strength, iterations, channels):
    """(band_total, band_smooth) in numpy: every pixel (or block) of a pass at once."""
    dim = codebook.shape[1]
    alpha = space.has_alpha(channels)  # costs over premultiplied colours, as the quantizer measures
    book = _planes(codebook, alpha, channels)

    def planes(r0: int) -> np.ndarray:
        return _planes(pixels[r0 : r0 + rows].reshape(-1, dim), alpha, channels)

    def band_total(r0: int) -> int:
        return int(_cost(planes(r0), book, indices[r0 : r0 + rows].reshape(-1)).sum(dtype=np.int64))

    def band_smooth(r0: int, lam: float) -> None:
        img = planes(r0)
        cur = out[r0 : r0 + rows]  # a view: updated in place
        flat = cur.reshape(-1)  # a view too (out is C-contiguous)
        # cost <= limit  <=>  cost <= floor(limit) for integer costs; int32 compares are cheaper
        limit = np.floor(_cost(img, book, flat) * (1.0 + strength / 3.0) + lam).astype(np.int32)
        above = indices[r0 - 1] if r0 else cur[0]
        nb = np.empty_like(cur)
        for _ in range(iterations):
            # left neighbour
            nb[:, 1:] = cur[:, :-1]
            nb[:, 0] = cur[:, 0]
            _take(flat, nb.reshape(-1), img, book, limit)
            # upper neighbour
            nb[1:] = cur[:-1]
            nb[0] = cur[0] if r0 == 0 else above
            _take(flat, nb.reshape(-1), img, book, limit)

    return band_total, band_smooth


def _planes(colors: np.ndarray, alpha: bool, channels: int) -> np.ndarray:
    """(N, D) uint8 -> (D, N) int32; with *alpha* the colour channels of each pixel of
    *channels* premultiplied (rounded) by its own alpha."""
    if alpha:
        n, dim = colors.shape
        pre = space.premultiply_rounded(colors.reshape(n, dim // channels, channels))
        return np.ascontiguousarray(pre.reshape(n, dim).T)
    return np.ascontiguousarray(colors.T, dtype=np.int32)


def _take(cur: np.ndarray, nb: np.ndarray, img: np.ndarray, book: np.ndarray, limit: np.ndarray) -> None:
    """cur[p] = nb[p] where they differ and nb's entry is within limit[p] (all flat).

    When few neighbours differ (smooth or large images, later passes) only
    those pixels are costed; otherwise every pixel is, which is cheaper than
    gathering most of them.
    """
    differ = nb != cur
    count = int(np.count_nonzero(differ))
    if count * SPARSE_BELOW < differ.size:
        where = np.flatnonzero(differ)
        take = nb[where]
        ok = _cost(img[:, where], book, take) <= limit[where]
        cur[where[ok]] = take[ok]
    elif count:
        differ &= _cost(img, book, nb) <= limit
        np.copyto(cur, nb, where=differ)
