"""The error space: where vqcodec measures how far apart two colours are.

One definition, used by the quantizer (learning and mapping), the rate-aware
index choice and the metrics.  Colours without alpha (L, RGB) are measured
as stored.  Colours with alpha (LA, RGBA; alpha last, straight in files and
arrays) are measured *premultiplied*: each colour channel times alpha / 255,
alpha as it is.  A transparent pixel's colour is then invisible (every
transparent colour is the point 0), and a half-transparent pixel's colour
error counts half, as the eye sees it over a background.  The squared
distance is summed over all channels, alpha included.

:func:`premultiply` computes ``c × a / 255`` in float64 (the product is
exact, the quotient rounded once).  The integer kernels (the rate-aware
choice in C and numpy) use :func:`premultiply_rounded`, that value rounded
to the nearest integer -- ``(c × a + 127) // 255``, which is the same
integer because ``c × a / 255`` is never a half (2·c·a is even, 255 is odd).
"""

from __future__ import annotations

import numpy as np

__all__ = ["has_alpha", "premultiply", "premultiply_rounded", "unpremultiply"]


def has_alpha(channels: int) -> bool:
    """True for LA (2) and RGBA (4): the last channel is alpha."""
    return channels in (2, 4)


def premultiply(colors: np.ndarray, /, dtype: type = np.float64) -> np.ndarray:
    """``(..., C)`` uint8 colours with alpha last -> *dtype*: colour × alpha / 255, alpha as is."""
    x = np.asarray(colors)
    out = np.empty(x.shape, dtype)
    np.multiply(x[..., :-1], x[..., -1:], out=out[..., :-1], dtype=dtype)  # exact: at most 255²
    out[..., :-1] /= dtype(255.0)
    out[..., -1] = x[..., -1]
    return out


def premultiply_rounded(colors: np.ndarray, /) -> np.ndarray:
    """:func:`premultiply` rounded to the nearest integer, as int32 (the integer kernels' space)."""
    out = np.asarray(colors).astype(np.int32)
    out[..., :-1] *= out[..., -1:]
    out[..., :-1] += 127
    out[..., :-1] //= 255
    return out


def unpremultiply(p: np.ndarray, /) -> np.ndarray:
    """Inverse of :func:`premultiply` for float colours: clipped to 0..255, colour 0 where alpha is 0."""
    out = np.clip(np.asarray(p, dtype=np.float64), 0, 255)
    alpha = out[..., -1:]
    np.divide(out[..., :-1] * 255.0, alpha, out=out[..., :-1], where=alpha > 0)
    out[..., :-1][np.broadcast_to(alpha <= 0, out[..., :-1].shape)] = 0
    return np.clip(out, 0, 255)
