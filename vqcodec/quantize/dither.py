"""Error diffusion: Floyd–Steinberg where it helps, in the premultiplied error space.

A leaf of :mod:`vqcodec.quantize` (numpy, :mod:`vqcodec.space` and the
diffusion loop of ``vqcodec._quantize``), called by :func:`.remap.remap`.
Libimagequant's approach, in our own code:

1. **Where** (:func:`weights`).  A per-pixel weight in 0..1 says how much
   of the error diffused into a pixel it takes.  It is low on edges
   (dithering makes them ragged) and in noise or texture (already "dithered"
   by nature, and dithering there only costs bytes), and high in smooth
   areas: from the source's local contrast (second differences along rows
   and columns, in the error space), spread by 3 x 3 minimum/maximum
   filters.  It is then scaled by how flat the *undithered* index map is
   around the pixel: a pixel inside a large area of one entry is where a
   gradient turns into bands, an isolated one needs no help.  The level
   (0..1) is applied through libimagequant's response curve
   ``(1 - (1 - level)^2) * 15/16`` (below 1: a little error is always
   dropped, so it cannot pile up).

2. **Diffusion** (:func:`diffuse`).  Serpentine Floyd–Steinberg (7, 3, 5, 1
   / 16; even rows left to right, odd rows right to left) over the error
   space (:mod:`vqcodec.space`: colour times alpha / 255, and alpha).  Each
   pixel's target is its colour plus ``weight`` times the error diffused
   into it; when that error is below :data:`QUIET` (squared) the target is
   the colour itself and the pixel keeps its nearest entry (no search: a
   smooth area mapped well keeps its runs, which the index coder codes for
   almost nothing).  The target is held within :data:`OVERSHOOT` of the
   0..255 range by shortening the error (not channel by channel, so the hue
   holds), and an error above the clamp (:func:`clamp`: a multiple of the
   undithered map's mean squared error) is shortened by 0.8 before it is
   added and by 0.75 before it is passed on, so a poorly matched colour does
   not throw bright specks into its neighbours.  A fully transparent source
   pixel takes no error and passes none on (its colour is invisible).

The loop is in C (``vqcodec._quantize.diffuse``); :func:`_diffuse_python`
is its reference and fallback, the same arithmetic in float64 in the same
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

__all__ = ["dither", "weights", "diffuse", "clamp", "curve", "QUIET", "OVERSHOOT"]

QUIET = 2.0  # squared diffused error (0..255 units) below which a pixel is left undithered
OVERSHOOT = 25.5  # a target may leave 0..255 by this much (10 %), as libimagequant allows
CLAMP_FACTOR = 2.4  # the clamp: this many times the undithered map's mean squared error...
CLAMP_FLOOR = 400.0  # ...and at least this (a 20-level error)
SCALE_DOWN_IN = 0.8  # an incoming error above the clamp is shortened by this
SCALE_DOWN_OUT = 0.75  # an outgoing error above the clamp is shortened by this


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


def _same3(indices: np.ndarray) -> np.ndarray:
    """How many of each pixel's 8 neighbours (edge pixels: replicated) have its index."""
    p = np.pad(indices, 1, mode="edge")
    h, w = indices.shape
    count = np.zeros((h, w), np.int32)
    for dy in range(3):
        for dx in range(3):
            if dy != 1 or dx != 1:
                count += p[dy : dy + h, dx : dx + w] == indices
    return count


def weights(pixels: np.ndarray, indices: np.ndarray, level: float) -> np.ndarray:
    """Each pixel's share (0..1, times :func:`curve` of *level*) of the error diffused into it.

    *pixels* ``(H, W, C)`` uint8, *indices* the undithered (nearest) map.
    """
    x = error_space(pixels).astype(np.float32) / np.float32(255.0)
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = indices.shape
    centre = 2 * x
    horiz = np.abs(p[1 : h + 1, : w] + p[1 : h + 1, 2:] - centre).max(axis=2)
    vert = np.abs(p[: h, 1 : w + 1] + p[2:, 1 : w + 1] - centre).max(axis=2)
    edge = np.maximum(horiz, vert)
    # noise: both directions busy (an edge is busy across itself only)
    z = 1.0 - np.maximum(edge - np.abs(horiz - vert) * 0.5, np.minimum(horiz, vert))
    z = np.clip(z, 0.0, 1.0) ** 4
    noise = _min3(_max3(0.3 + 0.7 * z))
    edges = _max3(_min3(np.clip(1.0 - edge, 0.0, 1.0)))
    smooth = np.minimum(noise, edges)
    same = _same3(indices)
    flat = (same + 1.0) / (same + 3.0)  # alone: 1/3; inside an area of one entry: 0.9
    return (smooth * flat * curve(level)).astype(np.float64)


def clamp(pixels: np.ndarray, book: np.ndarray, indices: np.ndarray) -> float:
    """The squared error above which a diffused error is shortened (see the module docstring)."""
    d = error_space(pixels) - error_space(book)[indices]
    mean = float(np.einsum("...c,...c->...", d, d).mean()) if d.size else 0.0
    return max(CLAMP_FACTOR * mean, CLAMP_FLOOR)


def dither(pixels: np.ndarray, book: np.ndarray, indices: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """(dithered index map, the weights used): *indices* (the nearest map) after error diffusion at *level*.

    An image the codebook reproduces exactly (at most k colours) is returned
    as it is, with zero weights.
    """
    h, w = indices.shape
    if level == 0 or not indices.size or np.array_equal(book[indices], pixels):
        return indices, np.zeros((h, w))
    share = weights(pixels, indices, level)
    return diffuse(pixels, book, indices, share, clamp(pixels, book, indices)), share


def diffuse(pixels: np.ndarray, book: np.ndarray, indices: np.ndarray, share: np.ndarray,
            max_error: float, *, native: bool | None = None) -> np.ndarray:
    """The index map after serpentine Floyd–Steinberg with per-pixel *share* (see the module docstring).

    *pixels* ``(H, W, C)`` uint8, *book* ``(n, C)`` uint8, *indices* the
    nearest map (uint8 or uint16), *share* ``(H, W)`` float64.  *native*
    None: the C loop when it is built; False: the Python reference.
    """
    out = np.array(indices, dtype=indices.dtype, order="C", copy=True)
    image = np.ascontiguousarray(pixels, dtype=np.uint8)
    pre = np.ascontiguousarray(error_space(book))
    share = np.ascontiguousarray(share, dtype=np.float64)
    alpha = space.has_alpha(image.shape[2])
    use_c = _native is not None if native is None else native
    if use_c and out.dtype in (np.uint8, np.uint16):
        _native.diffuse(image, pre, out, share, image.shape[1], image.shape[2], alpha,
                        out.dtype == np.uint16, float(max_error), QUIET, OVERSHOOT,
                        SCALE_DOWN_IN, SCALE_DOWN_OUT)
    else:
        _diffuse_python(image, pre, out, share, float(max_error))
    return out


def _diffuse_python(image: np.ndarray, pre: np.ndarray, out: np.ndarray, share: np.ndarray,
                    max_error: float) -> None:
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
