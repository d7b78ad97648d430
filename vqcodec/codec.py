"""The codec: pixels -> quantize -> packing -> container, and back.

This is the one module that joins the leaves.  It works on values (numpy
arrays, :class:`~vqcodec.pixels.Pixels`, bytes); the path and stream forms
of the public API are thin wrappers at the bottom.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

from . import books, container, fileio, packing, pixels
from .choose import EVERY_CODER_BELOW_SPEED, choose
from .errors import LimitError, NotSmallerError, OptionError, TargetUnreachableError
from .limits import DEFAULT_K, DEFAULT_MAX_PIXELS
from .options import DEFAULT_RDO, EncodeOptions

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from .target import TargetResult

__all__ = [
    "Encoded",
    "Info",
    "encode",
    "encode_pixels",
    "encode_target",
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
    codebook: np.ndarray  # (k, C) uint8; blocks: (k, bw × bh × C), each entry a block (spec §4)
    indices: np.ndarray  # (H, W); blocks: (⌈H / bh⌉, ⌈W / bw⌉)
    source: pixels.Pixels

    def reconstruct(self) -> np.ndarray:
        """The decoded pixels (H, W, C), by codebook lookup, without re-reading the file."""
        if self.header.block == (1, 1):
            return self.codebook[self.indices]
        return _lookup(self.codebook, self.indices.reshape(-1), self.header)


@dataclass(frozen=True)
class Info:
    """What ``vqcodec info`` shows: version, header and the sections."""

    version: tuple[int, int]
    header: container.Header
    sections: tuple[container.SectionInfo, ...]
    icc_profile_bytes: int
    file_bytes: int
    codebook_ref: bytes | None = None  # the identity of a shared codebook (spec §11)


def as_pixels(image: ImageLike, max_pixels: int | None) -> pixels.Pixels:
    """Any image argument (array, PIL image, Pixels, file) as :class:`~vqcodec.pixels.Pixels`."""
    if isinstance(image, pixels.Pixels):
        return image
    if isinstance(image, np.ndarray):
        return pixels.from_array(image)
    if pixels.is_pil_image(image):  # also images of plugins outside PIL (VQI's own)
        return pixels.from_pil(image)
    return pixels.load(image, max_pixels=max_pixels)


def _options(options: EncodeOptions | None, changes: dict[str, Any]) -> EncodeOptions:
    opts = options or EncodeOptions()
    return opts.replace(**changes) if changes else opts


def _load(image: ImageLike, opts: EncodeOptions) -> tuple[pixels.Pixels, int | None]:
    """The pixels (ICC profile left out with *strip*), checked against the limit, and the
    input file's size (for ``skip_if_larger``; None: not asked for).

    ``skip_if_larger`` compares with the input file, so an input that is no
    file (an array, a PIL image, a stream that cannot tell its length) is
    refused with :class:`OptionError` rather than never skipped.
    """
    px = pixels.stored(as_pixels(image, opts.max_pixels), strip=opts.strip)
    if opts.max_pixels is not None and px.width * px.height > opts.max_pixels:
        raise LimitError(
            f"image is {px.width}×{px.height} = {px.width * px.height:,} pixels, "
            f"above the limit of {opts.max_pixels:,} (max_pixels)"
        )
    if not opts.skip_if_larger:
        return px, None
    input_bytes = _input_size(image)
    if input_bytes is None:
        raise OptionError(f"skip_if_larger compares the .vqi file with the input file's size, and the "
                          f"input is {_no_file(image)}, not a file; give the image as a path, bytes or a "
                          "seekable stream, or leave skip_if_larger out and compare the sizes yourself")
    return px, input_bytes


def _no_file(image: object) -> str:
    """What an input without a file size is, for a message."""
    if isinstance(image, np.ndarray):
        return "a numpy array"
    if isinstance(image, pixels.Pixels):
        return "a Pixels value"
    if pixels.is_pil_image(image):
        return "a PIL image"
    return f"a stream ({type(image).__name__}) that cannot tell its length"


def _input_size(image: ImageLike) -> int | None:
    """The size of a file input (path, bytes, or a seekable binary stream), else None."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return memoryview(image).nbytes
    if isinstance(image, (str, os.PathLike)):
        return os.path.getsize(image)
    if not (hasattr(image, "read") and hasattr(image, "seek")):  # an array, a PIL image...
        return None
    try:  # a stream that was read to its end: its length
        return int(image.seek(0, os.SEEK_END))
    except (OSError, ValueError, TypeError):
        return None


def _assemble(px: pixels.Pixels, opts: EncodeOptions, codebook: np.ndarray, indices: np.ndarray,
              block: tuple[int, int] = (1, 1), shared: Any = None) -> Encoded:
    """The file for a codebook and index map: the coder's choice, header, container."""
    codebook = np.ascontiguousarray(codebook, dtype=np.uint8)
    choice = choose(indices, codebook, coder=opts.coder, layout=opts.layout, level=opts.level,
                    every_coder=opts.speed < EVERY_CODER_BELOW_SPEED)
    header = container.Header(
        width=px.width, height=px.height, channels=px.channels, k=len(codebook),
        index_layout=choice.layout, index_coder=choice.coder.id,
        block_width=block[0], block_height=block[1],
        codebook_source=0 if shared is None else 1,
    )
    payload = packing.pack(indices, bits=header.index_bits, layout=choice.layout)
    data = container.write(header, codebook.tobytes(), payload, icc_profile=px.icc_profile,
                           coded_index=choice.data,
                           codebook_ref=None if shared is None else bytes.fromhex(shared.sha256))
    return Encoded(data, header, codebook, indices, px)


def _not_smaller(nbytes: int, input_bytes: int | None, opts: EncodeOptions) -> bool:
    return opts.skip_if_larger and input_bytes is not None and nbytes >= input_bytes


def encode_target(image: ImageLike, /, options: EncodeOptions | None = None,
                  **changes: Any) -> TargetResult:
    """Encode to the target of *options* (``psnr``, ``quality``, ``max_bytes`` or ``bpp``).

    Returns a :class:`~vqcodec.target.TargetResult` whether or not the target
    was reached: ``result.ok`` says whether there is a file
    (``result.data``), and ``k``, ``rdo``, ``psnr``, ``bytes`` what was
    chosen or, when unreachable, the best that could be done.  An
    unreachable target is an outcome here, not an exception;
    :func:`encode_pixels` raises :class:`~vqcodec.errors.TargetUnreachableError`
    for it instead.  Bad options or input raise as for any encode.
    """
    opts = _options(options, changes)
    if opts.target is None:
        raise OptionError("encode_target needs a target: psnr, quality, max_bytes or bpp")
    px, input_bytes = _load(image, opts)
    from . import target  # the search and what it needs: only an encode with a target imports it

    result = target.search(px.array, opts, lambda book, idx: _assemble(px, opts, book, idx))
    skipped = result.reached and _not_smaller(result.bytes, input_bytes, opts)
    return replace(result, skipped=skipped, input_bytes=input_bytes,
                   encoded=None if skipped else result.encoded)


def encode_pixels(image: ImageLike, /, options: EncodeOptions | None = None, *,
                  on_stage: Callable[[str], None] | None = None, **changes: Any) -> Encoded:
    """Encode and return the bytes together with the codebook and indices.

    *options* is an :class:`~vqcodec.options.EncodeOptions` (default: all
    defaults); keyword *changes* replace some of its fields (``k=64``...).
    *on_stage*, if given, is called with the name of each stage as it starts
    ("reading", "learning the codebook", "mapping pixels", "coding"): what a
    progress display shows.  With a target option the codebook size is
    chosen to meet it (:func:`encode_target`; stage "choosing k");
    :class:`~vqcodec.errors.TargetUnreachableError` when no k up to ``k``
    does.  With ``skip_if_larger``, :class:`~vqcodec.errors.NotSmallerError`
    when the file would not be smaller than the input file (and
    :class:`~vqcodec.errors.OptionError` when the image is not given as a
    file: an array, a PIL image).
    """
    from .quantize import quantize, remap  # numpy-heavy work, imported when needed
    from .quantize.rdo import iterations_for

    stage = on_stage or (lambda name: None)
    opts = _options(options, changes)
    if opts.target is not None:
        stage("choosing k")
        result = encode_target(image, opts)
        if not result.reached:
            raise TargetUnreachableError(_unreachable(result), result)
        if result.skipped:
            raise _larger(result.bytes, result.input_bytes)
        return result.encoded
    stage("reading")
    px, input_bytes = _load(image, opts)
    stage("learning the codebook" if opts.codebook is None else "mapping pixels")
    shared = opts.codebook
    block = opts.block
    if shared is not None:  # spec §11: map to the shared codebook, which the file names by its identity
        px = to_channels(px, shared.channels)
        if block not in ((1, 1), shared.block):
            raise OptionError(f"block {block[0]}x{block[1]} differs from the codebook's "
                              f"{shared.block[0]}x{shared.block[1]}; leave block out to use the codebook's")
        block = shared.block
        codebook = np.ascontiguousarray(shared.entries)
        if block == (1, 1):
            indices = remap(px.array, codebook, rdo_strength=opts.rdo, dither=opts.dither)
        else:
            indices = remap(px.array, shared, rdo_strength=opts.rdo, dither=opts.dither)
    elif block == (1, 1):
        q = quantize(px.array, k=opts.k, seed=opts.seed, speed=opts.speed)
        codebook = np.ascontiguousarray(q.codebook, dtype=np.uint8)
        stage("mapping pixels")
        indices = remap(px.array, codebook, indices=q.indices, rdo_strength=opts.rdo,
                        dither=opts.dither, rdo_iterations=iterations_for(opts.speed))
    else:  # block vectors (spec §3.1): one entry per block of pixels, nearest entry per block
        codebook, indices = _quantize_blocks(px.array, opts)
    stage("coding")
    enc = _assemble(px, opts, codebook, indices, block, shared)
    if _not_smaller(len(enc.data), input_bytes, opts):
        raise _larger(len(enc.data), input_bytes)
    return enc


def _unreachable(result: TargetResult) -> str:
    if result.target.startswith("<="):
        return (f"target {result.target} not reached: the smallest file found is "
                f"{result.bytes:,} bytes (k={result.k}, rdo {result.rdo:g}); nothing was made")
    return (f"target {result.target} not reached: the best is PSNR {result.psnr:.2f} dB, "
            f"quality {result.quality}, at k={result.k}; raise k or lower the target; "
            "nothing was made")


def _larger(nbytes: int, input_bytes: int | None) -> NotSmallerError:
    return NotSmallerError(f"skip_if_larger: the .vqi file would be {nbytes:,} bytes, not smaller "
                           f"than the input's {input_bytes:,}; nothing was made", nbytes,
                           input_bytes or 0)


def _quantize_blocks(array: np.ndarray, opts: EncodeOptions) -> tuple[np.ndarray, np.ndarray]:
    """(codebook (k, bw × bh × C), index map (⌈H / bh⌉, ⌈W / bw⌉)) for block vectors."""
    from .quantize import Histogram, learn, remap

    book = learn(Histogram.of(array, block=opts.block), opts.k, seed=opts.seed)
    return np.ascontiguousarray(book.entries), remap(array, book, rdo_strength=opts.rdo, dither=opts.dither)


def _lookup(book: np.ndarray, flat: np.ndarray, h: container.Header) -> np.ndarray:
    """Spec §8: each index's entry, blocks put in place and cropped to (H, W, C)."""
    book = book.reshape(h.k, h.entry_size)
    if h.block == (1, 1):
        return np.take(book, flat, axis=0).reshape(h.height, h.width, h.channels)  # 4x book[flat]
    from .quantize.blocks import lookup  # the encoder's gather, inverted

    return lookup(book, flat.reshape(h.map_height, h.map_width), h.height, h.width, h.channels, h.block)


def to_channels(px: pixels.Pixels, channels: int) -> pixels.Pixels:
    """*px* in a shared codebook's channel layout: widened (L -> RGB, no alpha -> opaque), or
    narrowed only where nothing is lost (opaque alpha dropped, grey RGB to L); else OptionError."""
    a, have = px.array, px.channels
    if have == channels:
        return px
    colour, alpha = a[..., : 1 if have <= 2 else 3], a[..., have - 1 :] if have in (2, 4) else None
    want_colour = 1 if channels <= 2 else 3
    if colour.shape[-1] != want_colour:
        if want_colour == 3:
            colour = np.repeat(colour, 3, axis=-1)
        elif (colour == colour[..., :1]).all():
            colour = colour[..., :1]
        else:
            raise OptionError(f"codebook: the image is {px.mode}, in colour; the codebook's entries are "
                              f"{container.CHANNEL_LAYOUTS[channels]} (grey)")
    if channels in (2, 4):
        alpha = np.full(colour.shape[:-1] + (1,), 255, np.uint8) if alpha is None else alpha
        colour = np.concatenate([colour, alpha], axis=-1)
    elif alpha is not None and not (alpha == 255).all():
        raise OptionError(f"codebook: the image is {px.mode}, with transparent pixels; the codebook's "
                          f"entries are {container.CHANNEL_LAYOUTS[channels]} (opaque)")
    return pixels.Pixels(np.ascontiguousarray(colour), px.icc_profile)


def encode(image: ImageLike, dst: fileio.Target | None = None, /, *, k: int = DEFAULT_K,
           seed: int = 0, rdo: float = DEFAULT_RDO, dither: float = 0.0, coder: str = "auto",
           layout: str | None = None, level: int | None = None, block: object = (1, 1),
           strip: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS, overwrite: bool = False,
           codebook: books.Source | None = None, psnr: float | None = None, quality: Any = None,
           max_bytes: int | None = None, bpp: float | None = None,
           skip_if_larger: bool = False, speed: int = 4) -> bytes:
    """Encode an image to .vqi bytes.

    *image* is a numpy array (H×W or H×W×C uint8, C = 1..4), a PIL image, or
    an image file given as a path, bytes or a binary stream.  When *dst* (a
    path or a writable binary stream) is given the bytes are also written
    there; a path is written atomically and is not replaced unless
    *overwrite*.  The options are :class:`~vqcodec.options.EncodeOptions`'
    (each is described there): ``k`` (2..65536), ``seed``, ``rdo``
    (rate-aware index choice), ``dither`` (error diffusion, 0..1, off by
    default), ``coder`` ("auto", "ctx", "cand", "bzip2", "zstd"),
    ``layout`` ("bytes", "stripes", "packed"; None: the coder's choice),
    ``level`` (zstd 1-22), ``block`` (vectors of bw × bh pixels: ``(2, 2)`` or
    ``"2x2"``; default one pixel), ``strip`` (leave the ICC profile out),
    ``max_pixels``, ``codebook`` (a shared codebook: the file names it
    instead of holding it, :mod:`vqcodec.books`); one target of ``psnr`` (dB),
    ``quality`` ("65-80", pngquant's scale), ``max_bytes``, ``bpp`` (then ``k``
    is the largest codebook tried); ``skip_if_larger``; ``speed`` (1-10).  An
    unreachable target raises :class:`~vqcodec.errors.TargetUnreachableError`
    and ``skip_if_larger`` :class:`~vqcodec.errors.NotSmallerError`, with
    nothing written (:func:`encode_target` returns the outcome instead).
    """
    options = EncodeOptions(k=k, seed=seed, rdo=rdo, dither=dither, coder=coder, layout=layout, level=level,
                            block=block, strip=strip, max_pixels=max_pixels, codebook=codebook,
                            psnr=psnr, quality=quality, max_bytes=max_bytes, bpp=bpp,
                            skip_if_larger=skip_if_larger, speed=speed)
    data = encode_pixels(image, options).data
    if dst is not None:
        fileio.write_target(dst, data, overwrite=overwrite)
    return data


def _read_vqi(src: fileio.Source) -> bytes:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return src  # parsed without a copy
    return fileio.read_source(src)  # a path or a stream; anything else: a clear TypeError


def decode_pixels(src: fileio.Source, /, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                  codebook: books.Source | list[books.Source] | None = None) -> pixels.Pixels:
    """Decode .vqi bytes (or a path / stream of them) to :class:`Pixels` with the ICC profile.

    A file with a shared codebook (format 1.2) is decoded with the codebook
    found by :func:`vqcodec.books.resolver`: one of *codebook* (a source or a
    list of them), a registered one, or one on the search path.
    """
    parsed = container.read(_read_vqi(src), max_pixels=max_pixels, samples=True,
                            codebooks=books.resolver(codebook))
    h = parsed.header
    if parsed.samples is not None:  # index coder 2 looked the codebook up as it decoded
        array = parsed.samples.reshape(h.height, h.width, h.channels)
        return pixels.Pixels(array, parsed.icc_profile)
    book = np.frombuffer(parsed.codebook, dtype=np.uint8)
    flat = packing.unpack(
        parsed.index_payload, bits=h.index_bits, count=h.map_width * h.map_height, k=h.k,
        layout=h.index_layout, width=h.map_width,
    )
    # indices were checked < k by unpack
    return pixels.Pixels(_lookup(book, flat, h), parsed.icc_profile)


def decode(src: fileio.Source, dst: fileio.Target | None = None, /, *,
           max_pixels: int | None = DEFAULT_MAX_PIXELS, format: str | None = None,
           overwrite: bool = False, codebook: books.Source | list[books.Source] | None = None
           ) -> np.ndarray:
    """Decode .vqi data to a uint8 array shaped as ``np.asarray(PIL image)`` would be.

    (H, W) for L images, (H, W, C) otherwise.  *src* is bytes, a path or a
    binary stream.  When *dst* is given, the image is also written there in
    *format* (default: from the path's extension, else PNG).  *codebook*:
    for files with a shared codebook, as for :func:`decode_pixels`.
    """
    px = decode_pixels(src, max_pixels=max_pixels, codebook=codebook)
    if dst is not None:
        if format is None:
            format = pixels.format_for_path(os.fspath(dst)) if isinstance(dst, (str, os.PathLike)) else "PNG"
        fileio.write_target(dst, pixels.to_bytes(px, format), overwrite=overwrite)
    return px.array[:, :, 0] if px.channels == 1 else px.array


def decode_image(src: fileio.Source, /, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 codebook: books.Source | list[books.Source] | None = None) -> "Image.Image":
    """Decode to a PIL image (ICC profile in ``image.info['icc_profile']``)."""
    return pixels.to_pil(decode_pixels(src, max_pixels=max_pixels, codebook=codebook))


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
        parsed.codebook_ref,
    )
