"""The codec: pixels -> quantize -> packing -> container, and back.

This is the one module that joins the leaves.  It works on values (numpy
arrays, :class:`~vqcodec.pixels.Pixels`, bytes); the path and stream forms
of the public API are thin wrappers at the bottom.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from . import container, fileio, packing, pixels, rdo as rdo_
from ._threads import map_in_order
from .errors import OptionError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "DEFAULT_K",
    "MIN_K",
    "MAX_K",
    "Encoded",
    "Info",
    "encode",
    "encode_pixels",
    "decode",
    "decode_pixels",
    "decode_image",
    "read_info",
]

DEFAULT_K = 256
# "auto": index coder 2 (ctx) when k <= 256 and the compiled coder is there, unless
# a quick zstd is smaller (repetitive graphics), in which case the smallest of
# ctx, bzip2 (stripes or bytes) and zstd; for k > 256 the smallest of the last two.
DEFAULT_CODER = "auto"
MIN_K = 2
MAX_K = 65536
LAYOUT_NAMES = {"packed": packing.PACKED, "bytes": packing.BYTES, "stripes": packing.STRIPES}
CODER_NAMES = {"zstd": container.CODER_ZSTD, "bzip2": container.CODER_BZIP2,
               "ctx": container.CODER_CTX}
# Above this many pixels the encoder picks the layout from a sample, not by trying both.
TRY_ALL_PIXELS = 4_000_000
# coder="auto": zstd at the final level is tried when a quick zstd-9 estimate is
# at most this many times bzip2's size (on the Kodak maps zstd-19 is 0.86-0.95 x zstd-9).
ZSTD_TRY = 1 / 0.86
# coder="auto": zstd at this (fast) level is the check that ctx suits the map.
ZSTD_QUICK_LEVEL = 3
# coder="auto": maps up to this many pixels try every coder, ctx included (on the
# PngSuite's 32x32 images ctx's ~30 bytes of tables lose to zstd or bzip2 now and then).
TRY_EVERY_CODER_PIXELS = 1 << 16

ImageLike = Union[np.ndarray, "Image.Image", pixels.Pixels, fileio.Source]


@dataclass(frozen=True)
class Encoded:
    """The result of an encode: the file's bytes and what went into them."""

    data: bytes
    header: container.Header
    codebook: np.ndarray  # (k, C) uint8
    indices: np.ndarray  # (H, W)
    source: pixels.Pixels

    def reconstruct(self) -> np.ndarray:
        """The decoded pixels (H, W, C), by codebook lookup, without re-reading the file."""
        return self.codebook[self.indices]


@dataclass(frozen=True)
class Info:
    """What ``vqcodec info`` shows: version, header and the sections."""

    version: tuple[int, int]
    header: container.Header
    sections: tuple[container.SectionInfo, ...]
    icc_profile_bytes: int
    file_bytes: int


def _threads(pixel_count: int) -> int:
    return 0 if pixel_count <= TRY_ALL_PIXELS else min(4, os.cpu_count() or 1)


def _zstd_level(pixel_count: int) -> int:
    """zstd level for the INDX frame: strong on ordinary images, faster on huge ones."""
    return 19 if pixel_count <= TRY_ALL_PIXELS else 12


def _choose_layout(indices: np.ndarray, bits: int, coder: int) -> int:
    """Pick stripes or bytes by compressing both (or, on huge maps, a band of rows)."""
    import bz2

    import zstandard

    h, w = indices.shape
    if h * w > TRY_ALL_PIXELS:
        rows = max(2, (1 << 20) // max(w, 1)) & ~1
        top = (h // 2) & ~1
        indices = indices[top : top + rows]
    sizes = {}
    for layout in (packing.STRIPES, packing.BYTES):
        raw = packing.pack(indices, bits=bits, layout=layout)
        if coder == container.CODER_BZIP2:
            sizes[layout] = len(bz2.compress(raw, 9))
        else:
            sizes[layout] = len(zstandard.ZstdCompressor(level=9).compress(raw))
    return min(sizes, key=lambda layout: (sizes[layout], layout))


def _auto_coding(indices: np.ndarray, codebook: np.ndarray, bits: int, level: int,
                 threads: int, *, try_all: bool) -> tuple[int, int, bytes]:
    """coder="auto": (layout, coder, INDX data).

    With k <= 256 and the compiled coder, index coder 2 (ctx) is made first;
    on the Kodak photos it is 6-19 % smaller than the best of bzip2 and zstd
    (k = 256 to 16) and decodes about three times as fast as bzip2,
    so it is taken unless zstd at a fast level (on bytes, and on packed bits
    when an index takes at most 4) already beats it -- long repeats, as in
    some graphics, or noise -- in which case every coder is tried, as on
    small maps (up to TRY_EVERY_CODER_PIXELS), where trying is cheap.
    """
    from . import ctxcoder

    ctx = None
    if len(codebook) <= ctxcoder.MAX_K and ctxcoder.available():
        layouts = (packing.BYTES, packing.PACKED) if bits <= 4 else (packing.BYTES,)

        def estimate() -> int:  # zstd releases the GIL: on another thread, beside ctx
            return min(len(container.compress_index(
                packing.pack(indices, bits=bits, layout=layout), container.CODER_ZSTD,
                level=ZSTD_QUICK_LEVEL)) for layout in layouts)

        def context_model() -> bytes:
            return ctxcoder.encode(indices, codebook)

        coded, quick = map_in_order(lambda task: task(), [context_model, estimate], 2)
        ctx = (packing.BYTES, container.CODER_CTX, coded)
        if len(ctx[2]) <= quick and indices.size > TRY_EVERY_CODER_PIXELS:
            return ctx
    if try_all:
        choice = _choose_coding(indices, bits, level, threads, try_zstd=True)
    else:  # a huge map: the sampled layout, bzip2
        layout = _choose_layout(indices, bits, container.CODER_BZIP2)
        raw = packing.pack(indices, bits=bits, layout=layout)
        choice = (layout, container.CODER_BZIP2,
                  container.compress_index(raw, container.CODER_BZIP2, threads=threads))
    return ctx if ctx is not None and len(ctx[2]) <= len(choice[2]) else choice


def _choose_coding(indices: np.ndarray, bits: int, level: int, threads: int, *,
                   try_zstd: bool) -> tuple[int, int, bytes]:
    """The smallest of bzip2 on stripes and on bytes; with *try_zstd*, also zstd.

    zstd is tried on bzip2's better layout and, when an index takes at most
    4 bits, on the packed layout (several indices per byte: at k <= 4 the
    byte layouts are 10-15 % larger).  Returns (layout, coder, INDX data):
    the winner's data is kept, not compressed again.  zstd decodes several
    times faster than bzip2 and wins ties.  With rate-aware indices it is the
    smaller on most Kodak photos at k <= 16, bzip2 at k = 64 and 256
    (bench/rdo_bench.py --coder auto).
    """
    layouts = (packing.BYTES, packing.STRIPES)  # bytes first: it wins ties, as before
    raws = [packing.pack(indices, bits=bits, layout=layout) for layout in layouts]
    if threads:  # a big map: container.compress_index already splits it over threads
        codeds = [container.compress_index(raw, container.CODER_BZIP2, threads=threads) for raw in raws]
    else:  # both layouts at once (bz2 releases the GIL): ~25 ms less per Kodak photo
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            codeds = list(pool.map(lambda raw: container.compress_index(raw, container.CODER_BZIP2), raws))
    best = min((0, 1), key=lambda i: (len(codeds[i]), i))
    layout, raw, coded = layouts[best], raws[best], codeds[best]
    choice = (layout, container.CODER_BZIP2, coded)
    if not try_zstd:
        return choice
    candidates = [(layout, raw)]
    if bits <= 4:
        candidates.append((packing.PACKED, packing.pack(indices, bits=bits, layout=packing.PACKED)))
    for layout, raw in candidates:
        estimate = container.compress_index(raw, container.CODER_ZSTD, level=min(level, 9))
        if len(estimate) > len(choice[2]) * ZSTD_TRY:
            continue
        zstd = estimate if level <= 9 else container.compress_index(
            raw, container.CODER_ZSTD, level=level, threads=threads)
        if len(zstd) < len(choice[2]) or (len(zstd) == len(choice[2]) and choice[1] != container.CODER_ZSTD):
            choice = (layout, container.CODER_ZSTD, zstd)
    return choice


def _as_pixels(image: ImageLike, max_pixels: int | None) -> pixels.Pixels:
    if isinstance(image, pixels.Pixels):
        return image
    if isinstance(image, np.ndarray):
        return pixels.from_array(image)
    if type(image).__module__.startswith("PIL."):
        return pixels.from_pil(image)
    return pixels.load(image, max_pixels=max_pixels)


def encode_pixels(
    image: ImageLike,
    /,
    *,
    k: int = DEFAULT_K,
    seed: int = 0,
    layout: str | None = None,
    coder: str | None = None,
    level: int | None = None,
    rdo: float = rdo_.DEFAULT_STRENGTH,
    max_pixels: int | None = pixels.DEFAULT_MAX_PIXELS,
) -> Encoded:
    """Encode and return the bytes together with the codebook and indices."""
    from .quantize import quantize  # numpy-heavy work, imported when needed

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not MIN_K <= k <= MAX_K:
        raise OptionError(f"k must be an integer from {MIN_K} to {MAX_K}, got {k!r}")
    if layout is not None and layout not in LAYOUT_NAMES:
        raise OptionError(f"layout must be one of {sorted(LAYOUT_NAMES)}, got {layout!r}")
    if coder is not None and coder not in CODER_NAMES and coder != "auto":
        raise OptionError(f"coder must be one of {sorted([*CODER_NAMES, 'auto'])}, got {coder!r}")
    if level is not None and not 1 <= level <= 22:
        raise OptionError(f"zstd level must be 1 to 22, got {level}")
    if isinstance(rdo, bool) or not isinstance(rdo, (int, float, np.integer, np.floating)) \
            or not 0 <= rdo <= 100:
        raise OptionError(f"rdo must be a number from 0 to 100, got {rdo!r}")
    px = _as_pixels(image, max_pixels)
    if max_pixels is not None and px.width * px.height > max_pixels:
        from .errors import LimitError

        raise LimitError(
            f"image is {px.width}×{px.height} = {px.width * px.height:,} pixels, "
            f"above the limit of {max_pixels:,}"
        )
    q = quantize(px.array, k=int(k), seed=seed)
    codebook = np.ascontiguousarray(q.codebook, dtype=np.uint8)
    indices = rdo_.smooth(px.array, codebook, q.indices, strength=float(rdo))
    n = codebook.shape[0]
    count = px.width * px.height
    coder = coder or DEFAULT_CODER
    coder_id = CODER_NAMES.get(coder, container.CODER_BZIP2)
    bits = container.bits_for(n)
    zstd_level = _zstd_level(count) if level is None else level
    coded = None
    if coder_id == container.CODER_CTX and n > 256:
        raise OptionError(f"coder 'ctx' codes one byte per index, so it needs k <= 256; this "
                          f"encode has {n} colours (use coder 'bzip2' or 'zstd' above 256)")
    if coder_id == container.CODER_CTX and layout not in (None, "bytes"):
        raise OptionError(f"coder 'ctx' needs layout 'bytes', got {layout!r}")
    if layout is None and coder == "auto":
        layout_id, coder_id, coded = _auto_coding(
            indices, codebook, bits, zstd_level, _threads(count), try_all=count <= TRY_ALL_PIXELS)
    elif layout is None and coder == "bzip2" and count <= TRY_ALL_PIXELS:
        layout_id, coder_id, coded = _choose_coding(
            indices, bits, zstd_level, _threads(count), try_zstd=False)
    elif layout is not None:
        layout_id = LAYOUT_NAMES[layout]
    elif coder_id in (container.CODER_ZSTD, container.CODER_CTX):
        layout_id = packing.BYTES
    else:
        layout_id = _choose_layout(indices, bits, coder_id)
    header = container.Header(
        width=px.width, height=px.height, channels=px.channels, k=n,
        index_layout=layout_id, index_coder=coder_id,
    )
    payload = packing.pack(indices, bits=header.index_bits, layout=layout_id)
    data = container.write(
        header,
        codebook.tobytes(),
        payload,
        icc_profile=px.icc_profile,
        level=zstd_level,
        threads=_threads(count),
        coded_index=coded,
    )
    return Encoded(data, header, codebook, indices, px)


def encode(image: ImageLike, dst: fileio.Target | None = None, /, *, overwrite: bool = False,
           **options: Any) -> bytes:
    """Encode an image to .vqi bytes.

    *image* is a numpy array (H×W or H×W×C uint8, C = 1..4), a PIL image, or
    an image file given as a path, bytes or a binary stream.  When *dst* (a
    path or a writable binary stream) is given the bytes are also written
    there; a path is written atomically and is not replaced unless
    *overwrite*.  Options: ``k`` (2..65536, default 256), ``seed``,
    ``layout`` ("stripes", "bytes" or "packed"; default: the smaller of
    stripes and bytes), ``coder`` ("auto", the default: the context-model
    coder "ctx" (format 1.1) when k <= 256, unless a quick zstd shows the map
    suits a dictionary coder better, then (and on images of at most 65,536
    pixels) the smallest file of ctx, bzip2 and zstd; for k > 256 the smaller of bzip2 and zstd, bzip2 alone above
    4 Mpixel; or "ctx", "bzip2", "zstd"),
    ``level`` (zstd level 1-22), ``rdo`` (rate-aware index choice: 0 maps
    every pixel to its nearest entry; the default 0.6 lets a pixel take a
    neighbour's entry when it is almost as close, for a smaller file at a
    small PSNR cost; see :mod:`vqcodec.rdo`), ``max_pixels``.
    """
    data = encode_pixels(image, **options).data
    if dst is not None:
        fileio.write_target(dst, data, overwrite=overwrite)
    return data


def _read_vqi(src: fileio.Source) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return src  # parsed without a copy
    return fileio.read_source(src)  # a path or a stream; anything else: a clear TypeError


def decode_pixels(src: fileio.Source, /, *, max_pixels: int | None = container.DEFAULT_MAX_PIXELS
                  ) -> pixels.Pixels:
    """Decode .vqi bytes (or a path / stream of them) to :class:`Pixels` with the ICC profile."""
    parsed = container.read(_read_vqi(src), max_pixels=max_pixels, samples=True)
    h = parsed.header
    if parsed.samples is not None:  # index coder 2 looked the codebook up as it decoded
        array = parsed.samples.reshape(h.height, h.width, h.channels)
        return pixels.Pixels(array, parsed.icc_profile)
    book = np.frombuffer(parsed.codebook, dtype=np.uint8).reshape(h.k, h.channels)
    flat = packing.unpack(
        parsed.index_payload, bits=h.index_bits, count=h.pixel_count, k=h.k,
        layout=h.index_layout, width=h.width,
    )
    # np.take: 4x faster than book[flat] (indices were checked < k by unpack)
    array = np.take(book, flat, axis=0).reshape(h.height, h.width, h.channels)
    return pixels.Pixels(array, parsed.icc_profile)


def decode(src: fileio.Source, dst: fileio.Target | None = None, /, *,
           max_pixels: int | None = container.DEFAULT_MAX_PIXELS, format: str | None = None,
           overwrite: bool = False) -> np.ndarray:
    """Decode .vqi data to a uint8 array shaped as ``np.asarray(PIL image)`` would be.

    (H, W) for L images, (H, W, C) otherwise.  *src* is bytes, a path or a
    binary stream.  When *dst* is given, the image is also written there in
    *format* (default: from the path's extension, else PNG).
    """
    px = decode_pixels(src, max_pixels=max_pixels)
    if dst is not None:
        if format is None:
            format = pixels.format_for_path(os.fspath(dst)) if isinstance(dst, (str, os.PathLike)) else "PNG"
        fileio.write_target(dst, pixels.to_bytes(px, format), overwrite=overwrite)
    return px.array[:, :, 0] if px.channels == 1 else px.array


def decode_image(src: fileio.Source, /, *, max_pixels: int | None = container.DEFAULT_MAX_PIXELS
                 ) -> "Image.Image":
    """Decode to a PIL image (ICC profile in ``image.info['icc_profile']``)."""
    return pixels.to_pil(decode_pixels(src, max_pixels=max_pixels))


def read_info(src: fileio.Source, /) -> Info:
    """Check a whole file's structure and CRCs and describe it, without inflating the indices."""
    data = _read_vqi(src)
    parsed = container.read(data, max_pixels=None, inflate=False)
    return Info(
        parsed.version,
        parsed.header,
        parsed.sections,
        len(parsed.icc_profile or b""),
        len(data),
    )
