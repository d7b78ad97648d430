"""The Pillow plugin: ``Image.open("x.vqi")`` and ``image.save("y.vqi", k=64)``.

Importing :mod:`vqcodec` calls :func:`register`, after which Pillow knows the
format ``"VQI"``, the extension ``.vqi`` and the MIME type ``image/x-vqi``.

Opening is lazy, as Pillow's own plugins are: :meth:`VqiImageFile._open`
reads the file's bytes and checks its structure and every CRC
(``container.read(..., inflate=False)``), which gives the size, the mode
(L, LA, RGB or RGBA) and the ICC profile (``info["icc_profile"]``) without
inflating the indices, so Pillow's decompression-bomb check runs before any
pixel memory is allocated.  The pixels are decoded in :meth:`load`.

Errors: a file that does not start with the VQI magic is not ours, and
``Image.open`` goes on to the other plugins (``UnidentifiedImageError`` if
none matches).  A file with the magic but a bad structure, CRC or version
raises our own :class:`~vqcodec.errors.FormatError` family (from
``Image.open`` or ``load()``), whose message says what is wrong, rather than
a vague "cannot identify image file".  Raised through Pillow, each is also
an :class:`OSError` (a subclass of both, with the same name and message),
so the ``except OSError`` that catches Pillow's own damaged-file errors
catches ours too.

Saving takes the encoder's options (:data:`SAVE_OPTIONS`: those of
:class:`~vqcodec.options.EncodeOptions` but ``max_pixels``) as save
parameters; other parameters are ignored, as Pillow's plugins do.  The image is converted by the mode rules of
:mod:`vqcodec.pixels` (P, 1, I;16, CMYK ... become L, LA, RGB or RGBA).  The
ICC profile written is the ``icc_profile`` save parameter if given (``None``
or ``b""`` writes none), else the image's ``info["icc_profile"]``.  A target
(``quality="65-80"``, ``psnr=35``, ``max_bytes``, ``bpp``) chooses k; one that
cannot be met raises :class:`~vqcodec.errors.TargetUnreachableError`, and
Pillow removes the file it opened.  ``skip_if_larger`` is refused
(:class:`~vqcodec.errors.OptionError`): an image in memory has no input file
to compare with (``vqcodec.encode(path, skip_if_larger=True)`` has).
"""

from __future__ import annotations

from typing import IO

from PIL import Image, ImageFile

from . import codec, container, options, pixels
from .errors import OptionError, VqiError

__all__ = ["FORMAT", "EXTENSION", "MIME_TYPE", "SAVE_OPTIONS", "VqiImageFile", "register"]

FORMAT = "VQI"
EXTENSION = ".vqi"
MIME_TYPE = "image/x-vqi"
SAVE_OPTIONS = tuple(name for name in options.NAMES if name != "max_pixels")
"""The save parameters passed on to the encoder (the image is already in memory: no pixel limit)."""


def _accept(prefix: bytes) -> bool:
    """Whether *prefix* (the file's first bytes) starts with the VQI magic."""
    return prefix[: len(container.MAGIC)] == container.MAGIC


class VqiImageFile(ImageFile.ImageFile):
    """A .vqi file opened by Pillow: header and ICC profile at open, pixels at load."""

    format = FORMAT
    format_description = "VQI (vector-quantized image)"

    _vqi_data: bytes | None = None

    def _open(self) -> None:
        assert self.fp is not None
        data = self.fp.read()
        if not _accept(data):
            raise SyntaxError("not a VQI file")
        # Not read_header(): the iccp section comes after HEAD.  inflate=False
        # checks every section's framing and CRC but decompresses only iccp.
        try:
            parsed = container.read(data, max_pixels=None, inflate=False)
        except VqiError as e:
            raise as_os_error(e) from e
        header = parsed.header
        self._size = (header.width, header.height)
        self._mode = header.mode
        if parsed.icc_profile:
            self.info["icc_profile"] = parsed.icc_profile
        self._vqi_data = data

    def load(self) -> Image.core.PixelAccess | None:
        """Decode the pixels (once), then behave as any loaded Pillow image."""
        if self._vqi_data is not None:
            # Pillow's bomb check has already seen width × height at open; a file of
            # block vectors decodes whole blocks before the crop (spec §3.1), so the
            # decoder's own limit holds those to Pillow's error threshold too.
            limit = None if Image.MAX_IMAGE_PIXELS is None else 2 * Image.MAX_IMAGE_PIXELS
            try:
                decoded = codec.decode_pixels(self._vqi_data, max_pixels=limit)
            except VqiError as e:
                raise as_os_error(e) from e
            self.im = pixels.to_pil(decoded).im
            self._vqi_data = None
            self.readonly = 0
            if self.fp is not None and self._exclusive_fp:
                self.fp.close()  # everything was read at open
            self.fp = None
        return super().load()


_OS_ERROR_CLASSES: dict[type, type] = {}


def as_os_error(error: VqiError) -> VqiError:
    """*error* as an instance of a subclass of both its class and :class:`OSError`
    (same name, same message): what Pillow users' ``except OSError`` expects."""
    cls = type(error)
    if isinstance(error, OSError):
        return error
    both = _OS_ERROR_CLASSES.get(cls)
    if both is None:
        both = type(cls.__name__, (cls, OSError), {"__module__": cls.__module__,
                                                   "__doc__": cls.__doc__})
        _OS_ERROR_CLASSES[cls] = both
    return both(*error.args)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Pillow's save hook: encode *im* with the save parameters and write to *fp*."""
    info = im.encoderinfo
    chosen = options.EncodeOptions(max_pixels=None, **{name: info[name] for name in SAVE_OPTIONS
                                                        if name in info})
    if chosen.skip_if_larger:  # refused, not ignored: a user asked for a comparison
        raise OptionError("skip_if_larger compares the .vqi file with the input file's size, and Pillow "
                          "saves an image in memory, not a file; use vqcodec.encode(path, "
                          "skip_if_larger=True), or leave it out and compare the sizes yourself")
    px = pixels.from_pil(im)
    if "icc_profile" in info:
        px = pixels.from_array(px.array, icc_profile=info["icc_profile"] or None)
    fp.write(codec.encode_pixels(px, chosen).data)


def register() -> None:
    """Register the VQI format with Pillow (open, save, extension, MIME type).

    Safe to call more than once; :mod:`vqcodec` calls it on import.
    """
    Image.register_open(FORMAT, VqiImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME_TYPE)
