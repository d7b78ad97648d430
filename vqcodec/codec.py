"""The codec: pixels -> quantize -> packing -> container, and back.

This is the one module that joins the leaves.  It works on values (numpy
arrays, :class:`~vqcodec.pixels.Pixels`, bytes); the path and stream forms
of the public API are thin wrappers at the bottom.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

from . import container, fileio, packing, pixels
from .choose import choose
from .errors import LimitError
from .limits import DEFAULT_K, DEFAULT_MAX_PIXELS
from .options import DEFAULT_RDO, EncodeOptions

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "Encoded",
    "Info",
    "encode",
    "encode_pixels",
    "decode",
    "decode_pixels",
    "decode_image",
    "read_info",
]

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


def _as_pixels(image: ImageLike, max_pixels: int | None) -> pixels.Pixels:
    if isinstance(image, pixels.Pixels):
        return image
    if isinstance(image, np.ndarray):
        return pixels.from_array(image)
    if pixels.is_pil_image(image):  # also images of plugins outside PIL (VQI's own)
        return pixels.from_pil(image)
    return pixels.load(image, max_pixels=max_pixels)


def encode_pixels(image: ImageLike, /, options: EncodeOptions | None = None, *,
                  on_stage: Callable[[str], None] | None = None, **changes: Any) -> Encoded:
    """Encode and return the bytes together with the codebook and indices.

    *options* is an :class:`~vqcodec.options.EncodeOptions` (default: all
    defaults); keyword *changes* replace some of its fields (``k=64``...).
    *on_stage*, if given, is called with the name of each stage as it starts
    ("reading", "learning the codebook", "mapping pixels", "coding"): what a
    progress display shows.
    """
    from .quantize import quantize, remap  # numpy-heavy work, imported when needed

    stage = on_stage or (lambda name: None)
    opts = options or EncodeOptions()
    if changes:
        opts = opts.replace(**changes)
    stage("reading")
    px = pixels.stored(_as_pixels(image, opts.max_pixels), strip=opts.strip)
    if opts.max_pixels is not None and px.width * px.height > opts.max_pixels:
        raise LimitError(
            f"image is {px.width}×{px.height} = {px.width * px.height:,} pixels, "
            f"above the limit of {opts.max_pixels:,} (max_pixels)"
        )
    stage("learning the codebook")
    q = quantize(px.array, k=opts.k, seed=opts.seed)
    codebook = np.ascontiguousarray(q.codebook, dtype=np.uint8)
    stage("mapping pixels")
    indices = remap(px.array, codebook, indices=q.indices, rdo_strength=opts.rdo)
    stage("coding")
    choice = choose(indices, codebook, coder=opts.coder, layout=opts.layout, level=opts.level)
    header = container.Header(
        width=px.width, height=px.height, channels=px.channels, k=len(codebook),
        index_layout=choice.layout, index_coder=choice.coder.id,
    )
    payload = packing.pack(indices, bits=header.index_bits, layout=choice.layout)
    data = container.write(header, codebook.tobytes(), payload, icc_profile=px.icc_profile,
                           coded_index=choice.data)
    return Encoded(data, header, codebook, indices, px)


def encode(image: ImageLike, dst: fileio.Target | None = None, /, *, k: int = DEFAULT_K,
           seed: int = 0, rdo: float = DEFAULT_RDO, coder: str = "auto", layout: str | None = None,
           level: int | None = None, strip: bool = False,
           max_pixels: int | None = DEFAULT_MAX_PIXELS, overwrite: bool = False) -> bytes:
    """Encode an image to .vqi bytes.

    *image* is a numpy array (H×W or H×W×C uint8, C = 1..4), a PIL image, or
    an image file given as a path, bytes or a binary stream.  When *dst* (a
    path or a writable binary stream) is given the bytes are also written
    there; a path is written atomically and is not replaced unless
    *overwrite*.  The options are :class:`~vqcodec.options.EncodeOptions`'
    (each is described there): ``k`` (2..65536), ``seed``, ``rdo``
    (rate-aware index choice), ``coder`` ("auto", "ctx", "bzip2", "zstd"),
    ``layout`` ("bytes", "stripes", "packed"; None: the coder's choice),
    ``level`` (zstd 1-22), ``strip`` (leave the ICC profile out), ``max_pixels``.
    """
    options = EncodeOptions(k=k, seed=seed, rdo=rdo, coder=coder, layout=layout, level=level,
                            strip=strip, max_pixels=max_pixels)
    data = encode_pixels(image, options).data
    if dst is not None:
        fileio.write_target(dst, data, overwrite=overwrite)
    return data


def _read_vqi(src: fileio.Source) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return src  # parsed without a copy
    return fileio.read_source(src)  # a path or a stream; anything else: a clear TypeError


def decode_pixels(src: fileio.Source, /, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
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
           max_pixels: int | None = DEFAULT_MAX_PIXELS, format: str | None = None,
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


def decode_image(src: fileio.Source, /, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
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
