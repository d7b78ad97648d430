"""Rate-aware index choice: trade a little distortion for a more compressible index map.

A leaf: numpy only.  Given the pixels, the codebook and each pixel's nearest
entry, :func:`smooth` lets a pixel take its left or upper neighbour's index
instead when that entry is almost as close:

    cost(neighbour) <= cost(nearest) * (1 + strength / 3) + strength * mean cost

where ``cost`` is the squared error summed over the channels and the mean is
over the whole image.  Runs of equal indices are what bzip2 (and any coder)
codes cheaply, so the map shrinks by more than the error grows: on Kodak
kodim01-08 at k = 16 / 64 / 256, strength 0.75 makes the files 8 / 5 / 4 %
smaller for 0.20 / 0.26 / 0.29 dB of PSNR, and the BD-rate against
pngquant --nofs goes from -20.8 % to -23.2 % (bench/rdo_bench.py; the
strength and the threshold's shape were chosen with bench/research/rdo_sweep.py).
The threshold scales with the image's own mean error, so one strength suits
every k; an image quantized without loss (mean cost 0) is left exactly as it
is, because the codebook's entries are distinct.

The update is vectorised (every pixel looks at its neighbours' current
indices at once, left then up, ``iterations`` times, so runs can grow) and
works on bands of rows so memory stays bounded on very large images.  The
result depends only on the inputs and the constants here: it is the encoder's
choice, and the format does not know about it.
"""

from __future__ import annotations

import numpy as np

from .errors import OptionError

__all__ = ["DEFAULT_STRENGTH", "smooth"]

DEFAULT_STRENGTH = 0.75
ITERATIONS = 4
BAND_PIXELS = 1 << 20  # pixels per band of rows (a few int32 planes of this size at a time)


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
           band_pixels: int = BAND_PIXELS) -> np.ndarray:
    """Return a new (H, W) index map, same dtype as *indices* (see the module docstring).

    *pixels* is (H, W, C) uint8, *codebook* (n, C) uint8, *indices* (H, W)
    with every index < n.  ``strength`` 0 returns a copy of *indices*.
    """
    if not (isinstance(strength, (int, float)) and 0 <= strength <= 100):
        raise OptionError(f"rdo strength must be a number from 0 to 100, got {strength!r}")
    if pixels.ndim != 3 or indices.shape != pixels.shape[:2] or codebook.shape[1:] != pixels.shape[2:]:
        raise OptionError(
            f"rdo: shapes do not match (pixels {pixels.shape}, codebook {codebook.shape}, "
            f"indices {indices.shape})"
        )
    out = np.array(indices, copy=True)
    h, w = out.shape
    if strength == 0 or out.size == 0:
        return out
    book = np.ascontiguousarray(codebook.T, dtype=np.int32)
    channels = book.shape[0]
    rows = max(1, band_pixels // max(w, 1))

    def planes(r0: int) -> np.ndarray:
        return np.ascontiguousarray(pixels[r0 : r0 + rows].reshape(-1, channels).T, dtype=np.int32)

    total = 0
    for r0 in range(0, h, rows):
        total += int(_cost(planes(r0), book, out[r0 : r0 + rows].reshape(-1)).sum(dtype=np.int64))
    lam = strength * total / out.size
    slack = 1.0 + strength / 3.0
    for r0 in range(0, h, rows):
        img = planes(r0)
        cur = out[r0 : r0 + rows]  # a view: updated in place
        flat = cur.reshape(-1)  # a view too (out is C-contiguous)
        # cost <= limit  <=>  cost <= floor(limit) for integer costs; int32 compares are cheaper
        limit = np.floor(_cost(img, book, flat) * slack + lam).astype(np.int32)
        above = out[r0 - 1] if r0 else None  # final already
        nb = np.empty_like(cur)
        for _ in range(iterations):
            # left neighbour
            nb[:, 1:] = cur[:, :-1]
            nb[:, 0] = cur[:, 0]
            _take(flat, nb.reshape(-1), img, book, limit)
            # upper neighbour
            nb[1:] = cur[:-1]
            nb[0] = cur[0] if above is None else above
            _take(flat, nb.reshape(-1), img, book, limit)
    return out


def _take(cur: np.ndarray, nb: np.ndarray, img: np.ndarray, book: np.ndarray, limit: np.ndarray) -> None:
    """cur[p] = nb[p] where they differ and nb's entry is within limit[p] (all flat)."""
    ok = nb != cur
    ok &= _cost(img, book, nb) <= limit
    np.copyto(cur, nb, where=ok)
