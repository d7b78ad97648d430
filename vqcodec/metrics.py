"""Image quality and size metrics: MSE, PSNR, SSIM, bits per pixel, ratios.

A leaf module: it imports only numpy, the standard library,
:mod:`vqcodec.errors` and SSIM's compiled loops, ``vqcodec._ssim`` (no scipy
-- the CLI's start-up time is measured).

Images are ``uint8`` arrays of shape ``(H, W)`` or ``(H, W, C)`` with
``C`` in 1..4 (L, LA, RGB, RGBA); both images of a pair have the same shape.

Alpha
    For images with alpha (``C`` = 2 or 4) the default
    ``alpha="premultiplied"`` measures the colour channels multiplied by
    alpha/255 (see :func:`premultiply`) together with the alpha channel: the
    colour of a fully transparent pixel is invisible and does not count.
    ``alpha="straight"`` measures the stored channels as they are.  For
    ``C`` = 1 or 3 the option is checked but has no effect.

MSE / PSNR
    MSE is the mean of the squared differences over all pixels and all
    channels (alpha included).  PSNR is ``10 * log10(peak**2 / MSE)``,
    ``math.inf`` for identical images.  For uint8 data (straight alpha, or
    no alpha) the sum of squares is exact.

Blurred PSNR
    :func:`blurred_psnr`: the PSNR of the two images after a Gaussian blur
    of ``sigma`` pixels (default 1) applied to both, a simple model of the
    eye's low-pass at a normal viewing distance: it sees what dithering is
    for (a dithered gradient's average colour is right, its single pixels
    are not), where plain PSNR only counts the single pixels.  The blur is
    scipy.ndimage's ``gaussian_filter`` (taps ``exp(-x^2 / 2 sigma^2)``
    normalised, truncated at ``int(4 sigma + 0.5)`` pixels, borders
    reflected: ``d c b a | a b c d``) on each channel of the error space,
    applied to the difference of the images (the blur is linear), in
    float64 one channel at a time.

SSIM
    Wang, Bovik, Sheikh & Simoncelli (2004), as scikit-image computes it with
    ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=255``: an 11x11 Gaussian window (sigma 1.5, truncated at
    radius 5 and normalised), K1 = 0.01, K2 = 0.03, L = 255, population
    covariances; the SSIM map is averaged over the valid region (5 pixels
    cropped at every border), per channel, then averaged over channels.

    Small images: along an axis shorter than 11 pixels the window is reduced
    to the largest odd length that fits (n if n is odd, else n - 1), i.e. the
    same sigma-1.5 Gaussian truncated at radius ``(len - 1) // 2`` and
    renormalised, and that radius is cropped.  A 1-pixel axis therefore gets a
    1-tap window (the pixel itself).  Every image of at least 1x1 pixel has
    an SSIM; nothing crashes.

    With ``vqcodec._ssim`` built (the usual case) the filtering is C: each
    input row is filtered along the row into a ring of a window's height of
    rows, each output row down the ring, in chunks of 64 output rows shared
    by two threads and added up in one fixed order (several times numpy's
    speed; equal to it up to rounding).  Without it, numpy: the
    separable Gaussian is applied as
    banded matrix products (BLAS), vertically then horizontally.  The image
    is processed one channel and one tile at a time -- strips of 24 output
    rows, cut into 4096-column tiles, each reading the 10 extra rows and
    columns its windows overlap -- in float64, with buffers reused between
    tiles and the per-tile sums of the SSIM map accumulated.  Working memory
    is about 13 MB whatever the image size (measured: 12 MB for 6000 x 4000
    RGB), and the result equals the whole-image computation up to
    floating-point summation order.  A tile whose pixels are identical in
    both images contributes exactly 1 per pixel, so identical images give
    exactly 1.0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import space
from ._threads import cores, map_in_order
from ._native import load
from .errors import OptionError

_native = load("_ssim")  # SSIM's filtering loops in C (vqcodec/_ssim.c); numpy below is the reference

__all__ = [
    "mse",
    "psnr",
    "blurred_psnr",
    "ssim",
    "bits_per_pixel",
    "compression_ratio",
    "premultiply",
    "psnr_from_mse",
    "REPORT_SSIM_MAX_PIXELS",
    "Report",
    "measure",
    "measure_indexed",
    "json_ready",
]

_ALPHA_MODES = ("premultiplied", "straight")

# SSIM constants (Wang et al. 2004; scikit-image defaults with Gaussian weights).
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # int(3.5 * 1.5 + 0.5): an 11-tap window, as skimage's truncate=3.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_SSIM_L = 255.0

# MSE works on strips of rows holding about this many bytes of float64.
_STRIP_BUDGET_BYTES = 8 << 20

# SSIM tiling.  A tile gives _SSIM_STRIP_ROWS x _SSIM_TILE_COLS output pixels
# (it reads 10 more rows and columns, the window overlap), so the working
# memory is about 16 float64 per tile pixel (~13 MB) whatever the image size.
# The vertical band product costs 2 * (rows + 10) flops per value, the
# horizontal one 2 * (block + 10): short strips and narrow blocks are
# faster.  Every matrix product is kept at or below _GEMM_SIZE = m * n * k,
# OpenBLAS's threshold for using one thread: on a small machine its threads
# made a 30 ms SSIM take over a second now and then.  Tests patch these.
_SSIM_STRIP_ROWS = 24
_SSIM_TILE_COLS = 4096
_SSIM_COLUMN_BLOCK = 32
_GEMM_SIZE = 1 << 18
# Threads that share an image's tiles (each with its own buffers, ~13 MB);
# 2 halves a Kodak photo's SSIM on a 2-core machine.  Images of fewer than 16
# tiles stay on one thread.
_SSIM_THREADS = min(2, cores())
# The compiled loops take an image's output rows in chunks of this many.
_SSIM_NATIVE_ROWS = 64


# --------------------------------------------------------------------------
# Input checks and alpha handling


def _check_alpha(alpha: str) -> None:
    if alpha not in _ALPHA_MODES:
        raise OptionError(
            f"alpha: expected one of {', '.join(map(repr, _ALPHA_MODES))}, found {alpha!r}"
        )


def _as_hwc(array: object, name: str) -> np.ndarray:
    """Check one image and return it as an (H, W, C) view."""
    if not isinstance(array, np.ndarray):
        raise OptionError(f"{name}: expected a numpy array, found {type(array).__name__}")
    if array.dtype != np.uint8:
        raise OptionError(f"{name}: expected dtype uint8, found {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    elif array.ndim != 3:
        raise OptionError(
            f"{name}: expected shape (H, W) or (H, W, C), found {array.ndim} dimensions"
            f" {array.shape}"
        )
    height, width, channels = array.shape
    if not 1 <= channels <= 4:
        raise OptionError(f"{name}: expected 1 to 4 channels, found {channels}")
    if height < 1 or width < 1:
        raise OptionError(f"{name}: image is empty (shape {array.shape})")
    return array


def _check_pair(reference: object, test: object, alpha: str) -> tuple[np.ndarray, np.ndarray]:
    _check_alpha(alpha)
    if isinstance(reference, np.ndarray) and isinstance(test, np.ndarray):
        if reference.dtype != test.dtype:
            raise OptionError(
                f"dtype mismatch: reference is {reference.dtype}, test is {test.dtype}"
            )
        if reference.shape != test.shape:
            raise OptionError(
                f"shape mismatch: reference is {reference.shape}, test is {test.shape}"
            )
    return _as_hwc(reference, "reference"), _as_hwc(test, "test")


def _premultiplied_channel(
    block: np.ndarray, channel: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Channel ``channel`` of an (h, w, 2|4) uint8 block times alpha / 255, float32.

    :func:`vqcodec.space.premultiply` one channel at a time (bounded memory);
    ``colour * alpha`` is exact in float32 (at most 65025 < 2**24), so the
    value is rounded once, by the division.
    """
    out = np.multiply(block[:, :, channel], block[:, :, -1], out=out, dtype=np.float32)
    out /= np.float32(255.0)
    return out


def premultiply(array: np.ndarray) -> np.ndarray:
    """Return an (H, W, 2|4) uint8 image with its colour multiplied by alpha.

    The result is float32 of the same shape: colour channels
    ``colour * alpha / 255``, the alpha channel unchanged.
    """
    image = _as_hwc(array, "image")
    if array.ndim != 3 or image.shape[2] not in (2, 4):
        raise OptionError(
            "premultiply: expected an (H, W, 2) or (H, W, 4) image with alpha,"
            f" found shape {array.shape}"
        )
    return space.premultiply(image, np.float32)


def _load_channel(
    block: np.ndarray, channel: int, alpha: str, out: np.ndarray, scratch: np.ndarray
) -> None:
    """Write one channel of an (h, w, C) uint8 block, as measured, into float64 ``out``.

    ``scratch`` is a float32 array of the same shape, used for premultiplying.
    """
    if alpha == "premultiplied" and block.shape[2] in (2, 4) and channel < block.shape[2] - 1:
        out[...] = _premultiplied_channel(block, channel, out=scratch)
    else:
        out[...] = block[:, :, channel]


def _buffer(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The leading part of a preallocated flat buffer, as an array of ``shape``.

    Strips and tiles reuse buffers allocated once per call: fresh large
    allocations are page-faulted in every time, which tripled the run time.
    """
    return flat[: math.prod(shape)].reshape(shape)


# --------------------------------------------------------------------------
# MSE and PSNR


def _sum_squared_error(ref: np.ndarray, tst: np.ndarray, alpha: str) -> float:
    """Sum of squared differences over all pixels and channels, strip by strip."""
    height, width, channels = ref.shape
    if alpha == "straight" or channels in (1, 3):
        return float(_integer_sse(ref, tst))
    rows = max(1, min(height, _STRIP_BUDGET_BYTES // (20 * width)))
    a = np.empty(rows * width, dtype=np.float64)
    b = np.empty(rows * width, dtype=np.float64)
    scratch = np.empty(rows * width, dtype=np.float32)
    total = 0.0
    for top in range(0, height, rows):
        n = min(rows, height - top)
        shape = (n, width)
        for channel in range(channels):
            x, y = _buffer(a, shape), _buffer(b, shape)
            _load_channel(ref[top : top + n], channel, alpha, x, _buffer(scratch, shape))
            _load_channel(tst[top : top + n], channel, alpha, y, _buffer(scratch, shape))
            x -= y
            flat = x.reshape(-1)
            total += float(np.dot(flat, flat))
    return total


def _integer_sse(ref: np.ndarray, tst: np.ndarray) -> int:
    """Exact sum of squared differences of two uint8 images, in integers.

    Strips of whole rows, all channels at once: the difference in int16, its
    square in int32 (at most 255**2), each strip's sum in int64.  About 1 ns
    a value (8 times faster than float64 channel by channel).
    """
    if _native is not None:  # the same sum in C, without the temporaries
        return _native.sse(np.ascontiguousarray(ref), np.ascontiguousarray(tst))
    height = ref.shape[0]
    row = ref[0].size
    rows = max(1, min(height, _STRIP_BUDGET_BYTES // (6 * row)))
    diff = np.empty(rows * row, dtype=np.int16)
    square = np.empty(rows * row, dtype=np.int32)
    total = 0
    for top in range(0, height, rows):
        x = ref[top : top + rows].reshape(-1)
        d = diff[: x.size]
        np.subtract(x, tst[top : top + rows].reshape(-1), out=d, dtype=np.int16)
        q = square[: x.size]
        np.multiply(d, d, out=q, dtype=np.int32)
        total += int(q.sum(dtype=np.int64))
    return total


def mse(reference: np.ndarray, test: np.ndarray, /, *, alpha: str = "premultiplied") -> float:
    """Mean squared error over all pixels and channels (see the module notes on alpha)."""
    ref, tst = _check_pair(reference, test, alpha)
    return _sum_squared_error(ref, tst, alpha) / ref.size


def psnr_from_mse(error: float, peak: float = 255.0) -> float:
    """PSNR in dB from a mean squared error: ``10 * log10(peak**2 / error)``, inf for 0 (the one formula)."""
    if error == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / error)


def _check_peak(peak: float) -> float:
    try:
        value = float(peak)
    except (TypeError, ValueError) as e:
        raise OptionError(f"peak: expected a positive number, found {peak!r}") from e
    if not (value > 0.0 and math.isfinite(value)):
        raise OptionError(f"peak: expected a positive finite number, found {peak!r}")
    return value


def psnr(
    reference: np.ndarray,
    test: np.ndarray,
    /,
    *,
    peak: float = 255.0,
    alpha: str = "premultiplied",
) -> float:
    """Peak signal-to-noise ratio in dB, ``10 * log10(peak**2 / MSE)``; inf if identical."""
    peak = _check_peak(peak)
    return psnr_from_mse(mse(reference, test, alpha=alpha), peak)


def _blur_axis(x: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    """*x* convolved with the symmetric *taps* along *axis*, borders reflected (scipy's 'reflect')."""
    radius = len(taps) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(x, pad, mode="symmetric")
    n = x.shape[axis]
    out = np.zeros_like(x)
    for i, tap in enumerate(taps):
        out += tap * np.take(padded, np.arange(i, i + n), axis=axis)
    return out


def blurred_psnr(
    reference: np.ndarray,
    test: np.ndarray,
    /,
    *,
    sigma: float = 1.0,
    peak: float = 255.0,
    alpha: str = "premultiplied",
) -> float:
    """PSNR in dB after a Gaussian blur of *sigma* pixels applied to both images (see the module notes)."""
    ref, tst = _check_pair(reference, test, alpha)
    peak = _check_peak(peak)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (0 < sigma < 1e3):
        raise OptionError(f"sigma: expected a positive number of pixels below 1000, found {sigma!r}")
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 / (sigma * sigma) * x * x)
    taps /= taps.sum()
    height, width, channels = ref.shape
    a = np.empty((height, width))
    b = np.empty((height, width))
    scratch = np.empty((height, width), np.float32)
    total = 0.0
    for channel in range(channels):
        _load_channel(ref, channel, alpha, a, scratch)
        _load_channel(tst, channel, alpha, b, scratch)
        a -= b
        blurred = _blur_axis(_blur_axis(a, taps, 0), taps, 1).reshape(-1)
        total += float(np.dot(blurred, blurred))
    return psnr_from_mse(total / ref.size, peak)


# --------------------------------------------------------------------------
# SSIM


def _window_length(length: int) -> int:
    """Taps of the SSIM window along an axis of ``length`` pixels: 11, or the
    largest odd number that fits in a shorter axis."""
    return min(2 * _SSIM_RADIUS + 1, length if length % 2 else length - 1)


@lru_cache(maxsize=None)
def _gaussian_taps(ntaps: int) -> np.ndarray:
    """The sigma-1.5 Gaussian truncated to ``ntaps`` (odd) taps, normalised."""
    radius = (ntaps - 1) // 2
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 / (_SSIM_SIGMA * _SSIM_SIGMA) * x * x)
    taps /= taps.sum()
    taps.flags.writeable = False
    return taps


@lru_cache(maxsize=64)
def _band(ntaps: int, outputs: int) -> np.ndarray:
    """Banded (outputs, outputs + ntaps - 1) matrix whose row i is the window at i."""
    taps = _gaussian_taps(ntaps)
    width = len(taps)
    band = np.zeros((outputs, outputs + width - 1), dtype=np.float64)
    for i in range(width):
        band[np.arange(outputs), np.arange(outputs) + i] = taps[i]
    band.flags.writeable = False
    return band


class _SsimTiles:
    """SSIM sums over tiles of one image pair, with buffers reused between tiles.

    A tile gives ``rows x cols`` SSIM values (fewer at the right and bottom
    edges) and reads ``taps_v - 1`` more rows and ``taps_h - 1`` more columns.
    """

    def __init__(self, taps_v: int, taps_h: int, rows: int, cols: int) -> None:
        self.taps_v, self.taps_h = taps_v, taps_h
        rows_in, cols_in = rows + taps_v - 1, cols + taps_h - 1
        self.stack = np.empty(rows_in * 4 * cols_in, dtype=np.float64)
        self.vertical = np.empty(rows * 4 * cols_in, dtype=np.float64)
        self.filtered = np.empty(rows * 4 * cols, dtype=np.float64)
        self.temp = np.empty(rows * cols, dtype=np.float64)
        self.scratch = np.empty(rows_in * cols_in, dtype=np.float32)

    def tile_sum(self, ref: np.ndarray, tst: np.ndarray, channel: int, alpha: str) -> float:
        """Sum of the SSIM map of one channel over a tile: ``ref``, ``tst`` are
        the (rows_in, cols_in, C) uint8 blocks it reads."""
        taps_v, taps_h = self.taps_v, self.taps_h
        rows_in, cols_in = ref.shape[:2]
        rows, cols = rows_in - taps_v + 1, cols_in - taps_h + 1

        # The four quantities to filter, side by side: x, y, x^2 + y^2, x * y.
        stack = _buffer(self.stack, (rows_in, 4, cols_in))
        x, y = stack[:, 0], stack[:, 1]
        scratch = _buffer(self.scratch, (rows_in, cols_in))
        _load_channel(ref, channel, alpha, x, scratch)
        _load_channel(tst, channel, alpha, y, scratch)
        if np.array_equal(x, y):
            return float(rows * cols)  # identical windows: SSIM is exactly 1
        np.multiply(x, x, out=stack[:, 2])
        np.multiply(y, y, out=stack[:, 3])
        stack[:, 2] += stack[:, 3]
        np.multiply(x, y, out=stack[:, 3])

        # Vertical pass: the (rows, rows_in) band times column chunks.
        band_v = _band(taps_v, rows)
        flat = stack.reshape(rows_in, 4 * cols_in)
        vertical = _buffer(self.vertical, (rows, 4 * cols_in))
        chunk = max(16, _GEMM_SIZE // (rows * rows_in))
        for left in range(0, 4 * cols_in, chunk):
            right = left + chunk
            np.matmul(band_v, flat[:, left:right], out=vertical[:, left:right])
        vertical = vertical.reshape(rows * 4, cols_in)

        # Horizontal pass: column blocks times the (block + taps - 1, block) band.
        block = _SSIM_COLUMN_BLOCK
        band_h = _band(taps_h, min(block, cols)).T
        filtered = _buffer(self.filtered, (rows * 4, cols))
        for left in range(0, cols, block):
            n = min(block, cols - left)
            np.matmul(
                vertical[:, left : left + n + taps_h - 1],
                band_h[: n + taps_h - 1, :n],
                out=filtered[:, left : left + n],
            )
        filtered = filtered.reshape(rows, 4, cols)
        mu_x, mu_y = filtered[:, 0], filtered[:, 1]
        sum_sq, cross = filtered[:, 2], filtered[:, 3]  # G(x^2 + y^2), G(x y)

        # SSIM = (2 mu_x mu_y + C1) (2 cov_xy + C2)
        #        / ((mu_x^2 + mu_y^2 + C1) (var_x + var_y + C2))
        c1 = (_SSIM_K1 * _SSIM_L) ** 2
        c2 = (_SSIM_K2 * _SSIM_L) ** 2
        numerator = _buffer(self.temp, (rows, cols))
        np.multiply(mu_x, mu_y, out=numerator)
        cross -= numerator  # cov_xy
        np.multiply(mu_x, mu_x, out=mu_x)
        np.multiply(mu_y, mu_y, out=mu_y)
        denominator = mu_x
        denominator += mu_y  # mu_x^2 + mu_y^2
        sum_sq -= denominator  # var_x + var_y
        numerator *= 2.0
        numerator += c1
        cross *= 2.0
        cross += c2
        numerator *= cross
        denominator += c1
        sum_sq += c2
        denominator *= sum_sq
        numerator /= denominator
        return float(numerator.sum())


def ssim(reference: np.ndarray, test: np.ndarray, /, *, alpha: str = "premultiplied") -> float:
    """Mean structural similarity, averaged over channels (see the module notes)."""
    ref, tst = _check_pair(reference, test, alpha)
    height, width, channels = ref.shape
    taps_v, taps_h = _window_length(height), _window_length(width)
    out_rows, out_cols = height - taps_v + 1, width - taps_h + 1
    if _native is not None:
        return _ssim_native(ref, tst, alpha, taps_v, taps_h)
    rows = max(1, min(_SSIM_STRIP_ROWS, out_rows))
    cols = max(1, min(_SSIM_TILE_COLS, out_cols))
    tiles = [
        (channel, top, left)
        for channel in range(channels)
        for top in range(0, out_rows, rows)
        for left in range(0, out_cols, cols)
    ]

    def run(share: list[tuple[int, int, int]]) -> list[float]:
        work = _SsimTiles(taps_v, taps_h, rows, cols)  # each thread its own buffers
        sums = []
        for channel, top, left in share:
            bottom = min(top + rows, out_rows) + taps_v - 1
            right = min(left + cols, out_cols) + taps_h - 1
            sums.append(work.tile_sum(
                ref[top:bottom, left:right], tst[top:bottom, left:right], channel, alpha))
        return sums

    # numpy and BLAS release the GIL on a tile's big array operations
    workers = min(_SSIM_THREADS, len(tiles) // 8) if _SSIM_THREADS > 1 else 1
    return _channel_mean(tiles, _in_order(run, tiles, workers), channels, out_rows * out_cols)


def _ssim_native(ref: np.ndarray, tst: np.ndarray, alpha: str, taps_v: int, taps_h: int) -> float:
    """:func:`ssim` with the filtering in C: each chunk of output rows of each
    channel is one call (it releases the GIL)."""
    height, width, channels = ref.shape
    out_rows, out_cols = height - taps_v + 1, width - taps_h + 1
    ref, tst = np.ascontiguousarray(ref), np.ascontiguousarray(tst)
    vertical, horizontal = _gaussian_taps(taps_v).tobytes(), _gaussian_taps(taps_h).tobytes()
    chunks = [(channel, top, min(top + _SSIM_NATIVE_ROWS, out_rows))
              for channel in range(channels) for top in range(0, out_rows, _SSIM_NATIVE_ROWS)]

    def run(share: list[tuple[int, int, int]]) -> list[float]:
        return [_native.ssim_rows(ref, tst, height, width, channels, channel,
                                  alpha == "premultiplied" and channels in (2, 4) and channel < channels - 1,
                                  vertical, horizontal, first, last)
                for channel, first, last in share]

    workers = min(_SSIM_THREADS, len(chunks))
    return _channel_mean(chunks, _in_order(run, chunks, workers), channels, out_rows * out_cols)


def _in_order(run, items: list, workers: int) -> list[float]:
    """``run(items)`` with the items dealt out to *workers* threads (every
    workers-th to each), the results put back in the items' order."""
    if workers <= 1:
        return run(items)
    parts = map_in_order(lambda i: run(items[i::workers]), list(range(workers)), workers)
    sums = [0.0] * len(items)
    for i, part in enumerate(parts):
        sums[i::workers] = part
    return sums


def _channel_mean(items: list[tuple[int, int, int]], sums: list[float], channels: int,
                  count: int) -> float:
    """The mean over channels of each channel's summed SSIM map / *count*.  Added
    up in the items' order whatever the threads did: the same float every time."""
    per_channel = [0.0] * channels
    for (channel, _, _), value in zip(items, sums):
        per_channel[channel] += value
    return sum(total / count for total in per_channel) / channels


# --------------------------------------------------------------------------
# Sizes


def bits_per_pixel(nbytes: int, width: int, height: int) -> float:
    """``8 * nbytes / (width * height)``."""
    if nbytes < 0:
        raise OptionError(f"nbytes: expected a size >= 0, found {nbytes}")
    if width < 1 or height < 1:
        raise OptionError(f"image size: expected width and height >= 1, found {width}x{height}")
    return 8.0 * nbytes / (width * height)


def compression_ratio(original_bytes: int, compressed_bytes: int) -> float:
    """``original_bytes / compressed_bytes`` (above 1 means smaller)."""
    if original_bytes < 0:
        raise OptionError(f"original_bytes: expected a size >= 0, found {original_bytes}")
    if compressed_bytes < 1:
        raise OptionError(f"compressed_bytes: expected a size >= 1, found {compressed_bytes}")
    return original_bytes / compressed_bytes


# --------------------------------------------------------------------------
# The report of one encode

REPORT_SSIM_MAX_PIXELS = 4_000_000
"""Largest ``width * height`` whose SSIM :func:`measure` computes by default.

SSIM costs about 0.1 µs per pixel and channel, several times the rest of an
encode on large images (4.2 s for 6000 x 4000 RGB, when the whole encode
takes 3 s); above this size the report leaves it out (``ssim`` is None)
unless ``ssim_max_pixels=None`` asks for it.
"""


@dataclass(frozen=True)
class Report:
    """What the CLI prints after an encode.

    ``raw_bytes`` is the size of the uncompressed pixels (W * H * channels);
    ``ratio_raw`` = raw_bytes / nbytes; ``input_bytes`` is the size of the
    input file when there is one, and ``ratio_input`` = input_bytes / nbytes.
    ``psnr`` is ``math.inf`` for a lossless result.  ``ssim`` is None when it
    was not measured (an image above the ``ssim_max_pixels`` of
    :func:`measure`, by default :data:`REPORT_SSIM_MAX_PIXELS`).
    """

    width: int
    height: int
    mode: str
    k: int
    bits_per_index: int
    nbytes: int
    raw_bytes: int
    input_bytes: int | None
    bpp: float
    ratio_raw: float
    ratio_input: float | None
    mse: float
    psnr: float
    ssim: float | None
    seconds: float

    def as_dict(self) -> dict:
        """The fields as a dict that ``json.dumps(..., allow_nan=False)`` accepts.

        An infinite PSNR (lossless) becomes ``None`` (JSON ``null``): strict
        JSON has no infinity, and ``mse == 0`` already says "lossless".
        """
        return json_ready(asdict(self))


def json_ready(value: Any) -> Any:
    """*value* with every non-finite float (an infinite PSNR: lossless) as ``None``, recursively.

    The one rule by which vqcodec writes strict JSON (``allow_nan=False``):
    lists, tuples and dicts are walked; other values are returned as they are.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def measure(
    original: np.ndarray,
    decoded: np.ndarray,
    /,
    *,
    nbytes: int,
    k: int,
    bits_per_index: int,
    mode: str,
    input_bytes: int | None = None,
    seconds: float = 0.0,
    ssim_max_pixels: int | None = REPORT_SSIM_MAX_PIXELS,
) -> Report:
    """Compare ``decoded`` with ``original`` and describe the encode in a :class:`Report`.

    ``nbytes`` is the size of the encoded file; the metrics use the default
    (premultiplied) alpha handling and a PSNR peak of 255.  SSIM is measured
    when ``width * height <= ssim_max_pixels`` (None: always), else it is None.
    """
    ref, tst = _check_pair(original, decoded, "premultiplied")
    _check_sizes(nbytes, ssim_max_pixels)
    height, width = ref.shape[:2]
    skip = ssim_max_pixels is not None and width * height > ssim_max_pixels
    return _report(
        ref, _sum_squared_error(ref, tst, "premultiplied"),
        None if skip else ssim(original, decoded),
        nbytes=nbytes, k=k, bits_per_index=bits_per_index, mode=mode,
        input_bytes=input_bytes, seconds=seconds,
    )


def measure_indexed(
    original: np.ndarray,
    codebook: np.ndarray,
    indices: np.ndarray,
    /,
    *,
    nbytes: int,
    k: int,
    bits_per_index: int,
    mode: str,
    input_bytes: int | None = None,
    seconds: float = 0.0,
    ssim_max_pixels: int | None = REPORT_SSIM_MAX_PIXELS,
) -> Report:
    """:func:`measure` of ``original`` against ``codebook[indices]``, without that image.

    ``codebook`` is ``(n, C)`` uint8 with the original's ``C`` channels,
    ``indices`` an ``(H, W)`` array of integers below ``n``.  The decoded
    image is made whole only when SSIM is measured (at most
    ``ssim_max_pixels``); otherwise the squared error is summed over strips
    of rows decoded one at a time, so a 100-megapixel image needs no second
    full-size copy.
    """
    ref = _as_hwc(original, "original")
    book, idx = _check_indexed(ref, codebook, indices)
    _check_sizes(nbytes, ssim_max_pixels)
    height, width, channels = ref.shape
    value = None
    if ssim_max_pixels is None or width * height <= ssim_max_pixels:  # SSIM needs it whole
        decoded = np.take(book, idx, axis=0)
        sse = _sum_squared_error(ref, decoded, "premultiplied")
        value = ssim(ref, decoded)
    else:
        rows = max(1, min(height, _STRIP_BUDGET_BYTES // (8 * width * channels)))
        strip = np.empty(rows * width * channels, dtype=np.uint8)
        sse = 0.0
        for top in range(0, height, rows):
            part = idx[top : top + rows]
            decoded = _buffer(strip, (*part.shape, channels))
            np.take(book, part, axis=0, out=decoded)
            sse += _sum_squared_error(ref[top : top + rows], decoded, "premultiplied")
    return _report(
        ref, sse, value, nbytes=nbytes, k=k, bits_per_index=bits_per_index, mode=mode,
        input_bytes=input_bytes, seconds=seconds,
    )


def _check_sizes(nbytes: int, ssim_max_pixels: int | None) -> None:
    if nbytes < 1:
        raise OptionError(f"nbytes: expected an encoded size >= 1, found {nbytes}")
    if ssim_max_pixels is not None and (
        isinstance(ssim_max_pixels, bool) or not isinstance(ssim_max_pixels, int) or ssim_max_pixels < 0
    ):
        raise OptionError(
            f"ssim_max_pixels: expected a pixel count >= 0 or None, found {ssim_max_pixels!r}"
        )


def _check_indexed(
    ref: np.ndarray, codebook: object, indices: object
) -> tuple[np.ndarray, np.ndarray]:
    height, width, channels = ref.shape
    if not isinstance(codebook, np.ndarray) or codebook.dtype != np.uint8 or codebook.ndim != 2:
        found = codebook.dtype if isinstance(codebook, np.ndarray) else type(codebook).__name__
        raise OptionError(f"codebook: expected an (n, C) uint8 numpy array, found {found}")
    if codebook.shape[1] != channels or len(codebook) == 0:
        raise OptionError(
            f"codebook: expected shape (n, {channels}) with n >= 1, found {codebook.shape}"
        )
    if not isinstance(indices, np.ndarray) or not np.issubdtype(indices.dtype, np.integer):
        found = indices.dtype if isinstance(indices, np.ndarray) else type(indices).__name__
        raise OptionError(f"indices: expected an integer numpy array, found {found}")
    if indices.shape != (height, width):
        raise OptionError(f"indices: expected shape {(height, width)}, found {indices.shape}")
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= len(codebook):
        raise OptionError(
            f"indices: expected values from 0 to {len(codebook) - 1}, found {low} to {high}"
        )
    return np.ascontiguousarray(codebook), indices


def _report(ref: np.ndarray, sse: float, ssim_value: float | None, *, nbytes: int, k: int,
            bits_per_index: int, mode: str, input_bytes: int | None, seconds: float) -> Report:
    height, width, channels = ref.shape
    raw_bytes = width * height * channels
    error = sse / ref.size
    return Report(
        width=width,
        height=height,
        mode=mode,
        k=k,
        bits_per_index=bits_per_index,
        nbytes=nbytes,
        raw_bytes=raw_bytes,
        input_bytes=input_bytes,
        bpp=bits_per_pixel(nbytes, width, height),
        ratio_raw=compression_ratio(raw_bytes, nbytes),
        ratio_input=None if input_bytes is None else compression_ratio(input_bytes, nbytes),
        mse=error,
        psnr=psnr_from_mse(error, 255.0),
        ssim=ssim_value,
        seconds=float(seconds),
    )
