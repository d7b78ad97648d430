"""Error diffusion: Floyd–Steinberg where it helps, in the premultiplied error space.

A leaf of :mod:`vqcodec.quantize` (numpy, :mod:`vqcodec.space` and the
diffusion loop of ``vqcodec._quantize``), called by :func:`.remap.remap`
after the nearest map.  Libimagequant's approach, in our own code:

1. **Where** (:func:`weights`).  A per-pixel share in 0..1 of the error
   diffused into the pixel.  It is low on edges (dithering makes them
   ragged) and in noise or texture (already "dithered" by nature; dithering
   there only costs bytes), full in smooth areas: from the source's second
   differences along rows and columns (in the error space, the largest over
   the channels), an edge map (``(1 - contrast)^2``: a clear edge is left
   nearly alone) and a noise map (both directions busy, floored at
   :data:`NOISE_FLOOR`), each spread by 3 x 3 minimum and
   maximum filters.  Contrast is measured against the quantization error:
   :data:`CONTRAST` times the undithered map's rms error per channel, so a
   texture finer than the codebook's steps is still dithered (at k = 16 most
   of a photo is).  The level (0..1) applies through libimagequant's response
   curve ``(1 - (1 - level)^2) * 15/16`` (below 1, a little error is always
   dropped so it cannot pile up).  Libimagequant also lowers the share of
   pixels in short runs of the undithered map; measured on Kodak that cost
   0.2-0.5 dB of blurred PSNR for 1-4 % of bytes, a worse trade than the
   rate-aware choice below, so it is not done here.

2. **Diffusion** (:func:`diffuse`).  Serpentine Floyd–Steinberg (7, 3, 5, 1
   / 16; even rows left to right, odd rows right to left) in the error space
   (:mod:`vqcodec.space`: colour times alpha / 255, and alpha).  A pixel's
   target is its colour plus its share of the error diffused into it; when
   that error is below :data:`QUIET` (squared) the target is the colour
   itself and the pixel keeps its nearest entry (no search).  The target is
   held within :data:`OVERSHOOT` of 0..255 by shortening the error (not
   channel by channel, so the hue holds), and an error above the clamp
   (:func:`clamp`: :data:`CLAMP_FACTOR` times the undithered map's mean
   squared error, at least :data:`CLAMP_FLOOR`) is shortened by 0.8 before it
   is added and by 0.75 before it is passed on, so a poorly matched colour
   does not throw bright specks into its neighbours.  A fully transparent
   source pixel takes no error and passes none on (its colour is invisible).

3. **The rate-aware choice, inside the loop.**  :mod:`.rdo` after dithering
   would undo it (its runs are the bands dithering breaks up).  Instead a
   pixel takes its previous (in scan order) or upper neighbour's entry when
   that is within ``cost * (1 + s t / 3) + s t mean`` of its *dithered
   target* -- rdo's rule, with ``s`` = :data:`STICKY` times rdo's strength,
   ``t`` = 1 - the pixel's share and ``mean`` the undithered map's mean
   error -- and the error of that choice is diffused like any other: the
   runs the index coder likes come back while the neighbourhood still
   averages to the right colour.  ``t`` keeps the choice mild in smooth
   areas, where runs pulled through a dither pattern draw visible "worms"
   (with one strength everywhere they did, at the strength that saved as
   many bytes); in texture and on edges it is strong.  On kodim01-08
   at k = 16 / 64 it makes the files 8 / 9 % smaller for 0.15 / 0.23 dB of
   blurred PSNR (with ``rdo`` 0 there is none: 0.80 / 0.83 of pngquant's
   dithered bytes instead of 0.74 / 0.75).  It is tuned for the context coder (index
   coder 2); where the encoder's "auto" picks zstd instead (some synthetic
   images) its runs can cost a few percent more than no choice at all
   (tests/test_dither.py's textured ramp: 2379 against 2295 bytes).

The loop is in C (``vqcodec._quantize.diffuse``); :func:`_diffuse_python`
is its reference and fallback, the same float64 operations in the same
order, so the two give the same indices (the tests compare them).  The C
search for a target's nearest entry is exact but pruned (entries sorted by
the sum of their components, searched outward from the target's sum);
Python scans every entry.  Both break ties to the lowest index.
"""

from __future__ import annotations

import numpy as np

from vqcodec import space
from vqcodec._native import load

_native = load("_quantize")  # the diffusion loop in C (vqcodec/_quantize.c); Python below is the reference

__all__ = ["dither", "weights", "diffuse", "mean_error", "clamp", "curve", "QUIET", "OVERSHOOT"]

QUIET = 2.0  # squared diffused error (0..255 units) below which a pixel is left undithered
OVERSHOOT = 25.5  # a target may leave 0..255 by this much (10 %), as libimagequant allows
CLAMP_FACTOR = 2.4  # the clamp: this many times the undithered map's mean squared error...
CLAMP_FLOOR = 400.0  # ...and at least this (a 20-level error)
SCALE_DOWN_IN = 0.8  # an incoming error above the clamp is shortened by this
SCALE_DOWN_OUT = 0.75  # an outgoing error above the clamp is shortened by this
STICKY = 4.0  # the in-loop rate-aware choice's strength, times rdo's (and times 1 - share)
CONTRAST = 40.0  # contrast is measured in units of this many times the undithered rms error per channel
EDGE_POWER = 2.0  # edges: (1 - contrast)^2, so a clear edge is left nearly alone
NOISE_FLOOR = 0.3  # the share in noise / texture
BAND_PIXELS = 1 << 18  # the numpy parts work on bands of rows of about this many pixels
HALO = 3  # rows of context a band's weights need on each side (second differences, two 3x3 filters)


def curve(level: float) -> float:
    """The strength of the diffusion at *level* (0..1): ``(1 - (1 - level)^2) * 15/16``."""
    return (1.0 - (1.0 - level) * (1.0 - level)) * (15.0 / 16.0)


def error_space(pixels: np.ndarray) -> np.ndarray:
    """``(..., C)`` uint8 -> float64 in the error space (premultiplied when the last channel is alpha)."""
    if space.has_alpha(pixels.shape[-1]):
        return space.premultiply(pixels)
    return pixels.astype(np.float64)


def _min3(a: np.ndarray) -> np.ndarray:
    p = np.pad(a, 1, mode="edge")
    h, w = a.shape
    rows = np.minimum(np.minimum(p[:, :w], p[:, 1 : w + 1]), p[:, 2:])
    return np.minimum(np.minimum(rows[:h], rows[1 : h + 1]), rows[2:])


def _max3(a: np.ndarray) -> np.ndarray:
    return -_min3(-a)


def _bands(h: int, w: int) -> list[tuple[int, int]]:
    """Bands of rows of at most about :data:`BAND_PIXELS` pixels: numpy's temporaries stay small."""
    rows = max(1, BAND_PIXELS // max(w, 1))
    return [(r0, min(h, r0 + rows)) for r0 in range(0, h, rows)]


def weights(pixels: np.ndarray, level: float, mean: float) -> np.ndarray:
    """Each pixel's share (0..1, times :func:`curve` of *level*) of the error diffused into it, float32.

    *pixels* ``(H, W, C)`` uint8; *mean* the undithered map's :func:`mean_error`.
    Computed on bands of rows with :data:`HALO` rows of context on each side:
    the same values as on the whole image.
    """
    rms = np.sqrt(mean / pixels.shape[2])  # the typical error of one channel
    scale = np.float32(max(CONTRAST * rms, 1.0))
    h, w = pixels.shape[:2]
    share = np.empty((h, w), np.float32)
    for r0, r1 in _bands(h, w):
        a0, a1 = max(0, r0 - HALO), min(h, r1 + HALO)
        share[r0:r1] = _smooth(pixels[a0:a1], scale)[r0 - a0 : r1 - a0]
    share *= np.float32(curve(level))
    return share


def _smooth(pixels: np.ndarray, scale: np.float32) -> np.ndarray:
    """The share before the level, of a band of rows (its first and last HALO rows not to be trusted)."""
    x = error_space(pixels).astype(np.float32)
    x /= scale
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = pixels.shape[:2]
    centre = 2 * x
    horiz = np.abs(p[1 : h + 1, : w] + p[1 : h + 1, 2:] - centre).max(axis=2)
    vert = np.abs(p[: h, 1 : w + 1] + p[2:, 1 : w + 1] - centre).max(axis=2)
    edge = np.maximum(horiz, vert)
    # noise: both directions busy (an edge is busy across itself only)
    z = 1.0 - np.maximum(edge - np.abs(horiz - vert) * 0.5, np.minimum(horiz, vert))
    z = np.clip(z, 0.0, 1.0) ** 4
    noise = _min3(_max3(NOISE_FLOOR + (1 - NOISE_FLOOR) * z))
    edges = _max3(_min3(np.clip(1.0 - edge, 0.0, 1.0) ** EDGE_POWER))
    return np.minimum(noise, edges)


def mean_error(pixels: np.ndarray, book: np.ndarray, indices: np.ndarray) -> float:
    """The undithered map's mean squared error per pixel (summed over channels, in the error space)."""
    h, w = indices.shape
    if not indices.size:
        return 0.0
    pre = error_space(book)
    total = 0.0
    for r0, r1 in _bands(h, w):
        d = error_space(pixels[r0:r1]) - pre[indices[r0:r1]]
        total += float(np.vdot(d, d))
    return total / (h * w)


def _exact(pixels: np.ndarray, book: np.ndarray, indices: np.ndarray) -> bool:
    """True when the codebook reproduces every pixel (an image of at most k colours)."""
    return all(np.array_equal(book[indices[r0:r1]], pixels[r0:r1]) for r0, r1 in _bands(*indices.shape))


def clamp(mean: float) -> float:
    """The squared error above which a diffused error is shortened, from :func:`mean_error`."""
    return max(CLAMP_FACTOR * mean, CLAMP_FLOOR)


def dither(pixels: np.ndarray, book: np.ndarray, indices: np.ndarray, level: float, *,
           rdo_strength: float = 0.0) -> np.ndarray:
    """*indices* (the nearest map) after error diffusion at *level*, with the rate-aware choice inside.

    An image the codebook reproduces exactly (at most k colours) is returned
    as it is.  *rdo_strength* is :mod:`.rdo`'s strength (see the module docstring).
    """
    if level == 0 or not indices.size or _exact(pixels, book, indices):
        return indices
    mean = mean_error(pixels, book, indices)
    share = weights(pixels, level, mean)
    return diffuse(pixels, book, indices, share, clamp(mean), rdo_strength * STICKY,
                   rdo_strength * STICKY * mean)


def diffuse(pixels: np.ndarray, book: np.ndarray, indices: np.ndarray, share: np.ndarray,
            max_error: float, strength: float = 0.0, lam: float = 0.0, *,
            native: bool | None = None) -> np.ndarray:
    """The index map after serpentine Floyd–Steinberg with per-pixel *share* (see the module docstring).

    *pixels* ``(H, W, C)`` uint8, *book* ``(n, C)`` uint8, *indices* the
    nearest map (uint8 or uint16), *share* ``(H, W)`` (read as float32).  A
    pixel takes its previous (in scan order) or upper neighbour's entry when
    that is within ``cost * (1 + strength t / 3) + lam t`` of its target,
    ``t`` = 1 - its share.  *native*
    None: the C loop when it is built; False: the Python reference.
    """
    out = np.array(indices, dtype=indices.dtype, order="C", copy=True)
    image = np.ascontiguousarray(pixels, dtype=np.uint8)
    pre = np.ascontiguousarray(error_space(book))
    share = np.ascontiguousarray(share, dtype=np.float32)
    alpha = space.has_alpha(image.shape[2])
    use_c = _native is not None if native is None else native
    args = (float(max_error), float(strength) / 3.0, float(lam))
    if use_c and out.dtype in (np.uint8, np.uint16):
        _native.diffuse(image, pre, out, share, image.shape[1], image.shape[2], alpha,
                        out.dtype == np.uint16, *args, QUIET, OVERSHOOT, SCALE_DOWN_IN, SCALE_DOWN_OUT)
    else:
        _diffuse_python(image, pre, out, share, *args)
    return out


def _distance(entry: list[float], target: list[float]) -> float:
    d = 0.0
    for e, t in zip(entry, target):
        d += (e - t) * (e - t)
    return d


def _diffuse_python(image: np.ndarray, pre: np.ndarray, out: np.ndarray, share: np.ndarray,
                    max_error: float, third: float, lam: float) -> None:
    """The reference loop: float64 in the order of the C loop, *out* updated in place."""
    h, w, channels = image.shape
    alpha = space.has_alpha(channels)
    columns = [np.ascontiguousarray(pre[:, c]) for c in range(channels)]
    entries = pre.tolist()
    lo, hi = -OVERSHOOT, 255.0 + OVERSHOOT
    this = [[0.0] * channels for _ in range(w + 2)]
    following = [[0.0] * channels for _ in range(w + 2)]
    for y in range(h):
        for e in following:
            e[:] = [0.0] * channels
        forward = y % 2 == 0
        row = image[y].tolist()
        weights_row = share[y].tolist()
        out_row = out[y]
        for x in (range(w) if forward else range(w - 1, -1, -1)):
            px = row[x]
            if alpha and px[-1] == 0:
                continue  # transparent: its nearest entry, no error in or out
            if alpha:
                a = px[-1]
                p = [(c * a) / 255.0 for c in px[:-1]] + [float(a)]
            else:
                p = [float(c) for c in px]
            level = weights_row[x]
            s = [e * level for e in this[x + 1]]
            spread = 0.0
            for v in s:
                spread += v * v
            if spread < QUIET:
                target, index = p, int(out_row[x])
            else:
                ratio = 1.0
                for c in range(channels):
                    t = p[c] + s[c]
                    if t > hi:
                        ratio = min(ratio, (hi - p[c]) / s[c])
                    elif t < lo:
                        ratio = min(ratio, (lo - p[c]) / s[c])
                if spread > max_error:
                    ratio *= SCALE_DOWN_IN
                target = [p[c] + s[c] * ratio for c in range(channels)]
                d = (columns[0] - target[0]) ** 2
                for c in range(1, channels):
                    d += (columns[c] - target[c]) ** 2
                index = int(np.argmin(d))
            if lam > 0:  # the rate-aware choice: the previous or the upper pixel's entry, if almost as close
                t = 1.0 - level  # less in smooth areas, where runs would draw worms
                limit = _distance(entries[index], target) * (1.0 + third * t) + lam * t
                previous = x - 1 if forward else x + 1
                for nb in ((int(out_row[previous]),) if 0 <= previous < w else ()) + \
                        ((int(out[y - 1, x]),) if y else ()):
                    if nb != index and _distance(entries[nb], target) <= limit:
                        index = nb
                        break
            out_row[x] = index
            err = [target[c] - entries[index][c] for c in range(channels)]
            size = 0.0
            for v in err:
                size += v * v
            if size > max_error:
                err = [v * SCALE_DOWN_OUT for v in err]
            step = 1 if forward else -1
            ahead, here, behind = this[x + 1 + step], following[x + 1], following[x + 1 - step]
            after = following[x + 1 + step]
            for c in range(channels):
                v = err[c]
                ahead[c] += v * (7.0 / 16.0)
                behind[c] += v * (3.0 / 16.0)
                here[c] += v * (5.0 / 16.0)
                after[c] += v * (1.0 / 16.0)
        this, following = following, this
