"""One measured row of the sweep: a codec's file of one image at one k, and how it is measured.

Every codec's row is made by :func:`make_row` from the original pixels, the
file's bytes and the pixels decoded from them, so that every codec is
measured the same way (:mod:`vqcodec.metrics`, premultiplied RGBA for
images with alpha).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import numpy as np

from .. import metrics, pixels

_DECODE_RUNS = 5
_DECODE_BUDGET_S = 0.5


class RoundTripError(RuntimeError):
    """vqcodec's decode differs from the encoder's reconstruction: a codec bug."""


@dataclass(frozen=True)
class Row:
    """One codec on one image at one k.  ``psnr`` is ``inf`` when lossless."""

    image: str
    codec: str
    k: int
    width: int
    height: int
    mode: str
    bytes: int
    bpp: float
    ratio: float  # raw pixel bytes (W * H * channels) / bytes
    mse: float
    psnr: float
    blurred_psnr: float  # PSNR after a Gaussian blur of sigma 1 pixel on both images (what dithering is for)
    ssim: float
    encode_s: float
    decode_s: float
    encode_mps: float
    decode_mps: float
    quality: int | None = None  # webp / avif / jpeg: the quality used
    target_psnr: float | None = None  # webp / avif / jpeg: vqcodec's PSNR at this k
    reached: bool | None = None  # webp / avif / jpeg: did the quality reach the target
    settings: str = ""

    def as_dict(self) -> dict:
        """The fields, with non-finite numbers as ``None`` (strict JSON)."""
        return metrics.json_ready(asdict(self))

    def replace(self, **changes: object) -> "Row":
        """A copy with *changes* (the same file reported at another k, say)."""
        values = asdict(self)
        values.update(changes)
        return Row(**values)


COLUMNS = tuple(f.name for f in fields(Row))


@dataclass(frozen=True)
class Skipped:
    """An input the sweep did not measure, and why (unreadable, not an image...)."""

    path: str
    reason: str


def make_row(px: pixels.Pixels, name: str, codec_name: str, k: int, data: bytes, decoded: np.ndarray,
             encode_s: float, decode_s: float, *, settings: str = "") -> Row:
    """The row of one file: its size and the distortion of *decoded* against *px*."""
    ref = px.array
    mse = metrics.mse(ref, decoded)
    megapixels = px.width * px.height / 1e6
    return Row(
        image=name, codec=codec_name, k=k, width=px.width, height=px.height, mode=px.mode,
        bytes=len(data), bpp=metrics.bits_per_pixel(len(data), px.width, px.height),
        ratio=metrics.compression_ratio(ref.size, len(data)),
        mse=mse, psnr=metrics.psnr_from_mse(mse), blurred_psnr=metrics.blurred_psnr(ref, decoded),
        ssim=metrics.ssim(ref, decoded),
        encode_s=encode_s, decode_s=decode_s,
        encode_mps=megapixels / encode_s if encode_s > 0 else math.inf,
        decode_mps=megapixels / decode_s if decode_s > 0 else math.inf,
        settings=settings,
    )


def pillow_decode(data: bytes, mode: str) -> np.ndarray:
    """Decode with Pillow to an (H, W, C) array in ``mode`` (palettes expanded)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode in ("P", "PA", "1") and im.mode != mode:
            im = im.convert("RGBA")
        if im.mode != mode:
            im = im.convert(mode)
        array = np.asarray(im)
    return array.reshape(array.shape[0], array.shape[1], -1)


def median_time(fn: Callable[[], object]) -> float:
    """Median wall time of ``fn`` over up to five runs (fewer past ~0.5 s)."""
    import statistics

    times: list[float] = []
    while len(times) < _DECODE_RUNS and sum(times) < _DECODE_BUDGET_S:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
