"""Pixels in and out: Pillow and numpy at the edge of the codec.

Everything inside vqcodec works on one value, :class:`Pixels`: an
``(H, W, C)`` ``uint8`` array with ``C`` in 1..4 (L, LA, RGB, RGBA) and the
image's ICC profile, if any.  This module turns what users hand us (files,
bytes, streams, Pillow images, numpy arrays) into that value by one set of
documented *mode rules*, and turns it back into Pillow images and encoded
bytes (PNG, WebP, TIFF, ...).

The mode rules (also in the README):

========================  ==========  ==========================================
Pillow mode               result      how
========================  ==========  ==========================================
L, LA, RGB, RGBA          unchanged
L / RGB + transparency    LA / RGBA   alpha 0 where the pixel equals the tRNS
                                      colour, 255 elsewhere
1                         L (LA)      0 / 255 (LA with a tRNS colour)
P                         RGB / RGBA  RGBA when a transparency entry or the
                                      palette has alpha below 255, else RGB
PA                        RGBA        palette lookup
I;16, I;16B/L/N           L (LA)      ``(v * 255 + 32767) // 65535``
I                         L (LA)      clipped to 0..65535, then as I;16
F                         L           NaN -> 0, rounded to nearest (ties to
                                      even), clipped to 0..255
La, RGBa                  LA, RGBA    un-premultiplied (Pillow's convert)
RGBX                      RGB         padding dropped
CMYK, YCbCr, LAB, HSV     RGB         Pillow's convert; the ICC profile is
                                      kept only if it is an RGB profile
anything else             error       :class:`ImageInputError` naming the mode
========================  ==========  ==========================================

:func:`load` also reads only the first frame of animated images, applies the
EXIF orientation, checks every PNG chunk CRC (Pillow skips IDAT's) and
refuses images above ``max_pixels`` before decoding them.

This module is a leaf: it imports only numpy, Pillow, the standard library
and :mod:`vqcodec.errors`, and knows nothing of the .vqi format.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Union

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from vqcodec.errors import ImageInputError, LimitError, OptionError, VqiError

__all__ = [
    "MODES",
    "DEFAULT_MAX_PIXELS",
    "Pixels",
    "from_array",
    "from_pil",
    "load",
    "NamedBytes",
    "to_pil",
    "to_bytes",
    "format_for_path",
    "extension_format",
    "format_name",
    "stored",
    "is_lossy",
]

MODES: dict[int, str] = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
"""Channel count -> Pillow mode of a :class:`Pixels`."""

DEFAULT_MAX_PIXELS: int = 178_956_970
"""Largest width × height :func:`load` decodes by default.

It is Pillow's own hard limit (``2 * Image.MAX_IMAGE_PIXELS`` with Pillow's
default of 89,478,485), so vqcodec refuses exactly what a default Pillow
refuses, but with its own message and before any decoding.  It is about
13,400 × 13,400 pixels, 716 MB as RGBA.  Pass ``max_pixels=None`` to lift it.
"""

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------
# The value
# --------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Pixels:
    """An 8-bit image: ``array`` is ``(H, W, C)`` ``uint8``, C-contiguous.

    ``C`` is 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA); alpha is straight (not
    premultiplied).  Treat ``array`` as read-only: arrays made by
    :func:`load` and :func:`from_pil` are flagged so, and :func:`from_array`
    shares the caller's array without copying.  Two ``Pixels`` are equal when
    their arrays and ICC profiles are.
    """

    array: np.ndarray
    icc_profile: bytes | None = None

    def __post_init__(self) -> None:
        a = self.array
        if not isinstance(a, np.ndarray):
            raise OptionError(f"Pixels.array must be a numpy array, got {type(a).__name__}")
        if a.dtype != np.uint8 or a.ndim != 3 or not 1 <= a.shape[2] <= 4:
            raise OptionError(
                f"Pixels.array must be (H, W, C) uint8 with C in 1..4, "
                f"got shape {a.shape} dtype {a.dtype}; use from_array()"
            )
        if a.shape[0] < 1 or a.shape[1] < 1:
            raise OptionError(f"Pixels.array has no pixels (shape {a.shape})")
        if not a.flags.c_contiguous:
            raise OptionError("Pixels.array must be C-contiguous; use from_array()")
        if self.icc_profile is not None and not isinstance(self.icc_profile, bytes):
            raise OptionError(
                f"icc_profile must be bytes or None, got {type(self.icc_profile).__name__}"
            )

    @property
    def mode(self) -> str:
        """The Pillow mode: "L", "LA", "RGB" or "RGBA"."""
        return MODES[self.array.shape[2]]

    @property
    def width(self) -> int:
        """Pixels per row."""
        return int(self.array.shape[1])

    @property
    def height(self) -> int:
        """Rows."""
        return int(self.array.shape[0])

    @property
    def channels(self) -> int:
        """Channels per pixel: 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)."""
        return int(self.array.shape[2])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pixels):
            return NotImplemented
        return self.icc_profile == other.icc_profile and np.array_equal(self.array, other.array)

    __hash__ = None  # type: ignore[assignment]  # holds a mutable array

    def __repr__(self) -> str:
        icc = "None" if self.icc_profile is None else f"<{len(self.icc_profile)} bytes>"
        return f"Pixels({self.mode}, {self.width}×{self.height}, icc_profile={icc})"


# --------------------------------------------------------------------------
# numpy in
# --------------------------------------------------------------------------


def from_array(array: np.ndarray, /, *, icc_profile: bytes | None = None) -> Pixels:
    """Wrap an ``(H, W)`` or ``(H, W, C)`` array (C in 1..4) as :class:`Pixels`.

    ``uint8`` is taken as is (no copy when it is already 3-D and
    C-contiguous); ``bool`` becomes 0 / 255.  Any other dtype, rank, channel
    count or an empty array raises :class:`OptionError`: scale other types to
    0..255 yourself, the right scaling depends on what the numbers mean.
    """
    if not isinstance(array, np.ndarray):
        hint = "; use from_pil() for Pillow images" if isinstance(array, Image.Image) else ""
        raise OptionError(f"expected a numpy array, got {type(array).__name__}{hint}")
    if array.dtype == np.bool_:
        array = np.where(array, np.uint8(255), np.uint8(0))
    elif array.dtype != np.uint8:
        raise OptionError(
            f"pixel array must be uint8 or bool, got {array.dtype}; "
            f"scale it to 0..255 and cast (e.g. np.clip(a, 0, 255).astype(np.uint8))"
        )
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    elif array.ndim != 3:
        raise OptionError(
            f"pixel array must be H×W or H×W×C, got {array.ndim} dimensions (shape {array.shape})"
        )
    if not 1 <= array.shape[2] <= 4:
        raise OptionError(
            f"pixel array must have 1 to 4 channels (L, LA, RGB, RGBA), got {array.shape[2]}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise OptionError(f"pixel array is empty (shape {array.shape})")
    if icc_profile is not None and not isinstance(icc_profile, bytes):
        if not isinstance(icc_profile, (bytearray, memoryview)):
            raise OptionError(f"icc_profile must be bytes or None, got {type(icc_profile).__name__}")
        icc_profile = bytes(icc_profile)
    return Pixels(np.ascontiguousarray(array), icc_profile or None)


# --------------------------------------------------------------------------
# Pillow in: the mode rules
# --------------------------------------------------------------------------


def stored(pixels: Pixels, /, *, strip: bool = False) -> Pixels:
    """What an encoder stores of *pixels*: all of it, or without the ICC profile
    when *strip* (the one ICC rule: ``vqcodec encode`` and ``rd`` both follow it)."""
    return Pixels(pixels.array) if strip and pixels.icc_profile is not None else pixels


def is_pil_image(value: object) -> bool:
    """True for a Pillow image, whichever plugin made it."""
    return isinstance(value, Image.Image)


def from_pil(image: Image.Image, /) -> Pixels:
    """Convert a Pillow image by the mode rules, keeping its ICC profile.

    Loads the image if it is not loaded yet (decoding errors become
    :class:`ImageInputError`).  It does not apply EXIF orientation or any
    size limit: :func:`load` does.  Given an unloaded PNG, it also knows the
    file's bit depth (for 16-bit grey + alpha and tRNS colours); given an
    already loaded one, it sees only what Pillow kept.
    """
    if not isinstance(image, Image.Image):
        raise OptionError(f"from_pil() expects a PIL.Image.Image, got {type(image).__name__}")
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageInputError(f"the image has {width}×{height} pixels")
    rawmode = _png_rawmode(image)
    _load_pixels(image, None)
    return _normalise(image, rawmode)


def _png_rawmode(image: Image.Image) -> str | None:
    """The PNG decoder's raw mode ("L;4", "RGB;16B", ...) of an unloaded PNG."""
    tile = getattr(image, "tile", None)
    if getattr(image, "format", None) != "PNG" or not tile:
        return None
    args = tile[0][3]
    return args if isinstance(args, str) else None


def _normalise(im: Image.Image, rawmode: str | None) -> Pixels:
    """Apply the mode rules to a loaded image."""
    mode = im.mode
    icc = im.info.get("icc_profile") or None
    trns = im.info.get("transparency")
    if mode in ("RGBA", "LA", "RGB", "L"):
        a = _as_array(im)
        if rawmode == "LA;16B" and mode == "RGBA":
            a = a[:, :, [0, 3]]  # Pillow expands 16-bit grey + alpha PNGs to RGBA
        elif mode in ("L", "RGB") and trns is not None:
            a = _add_trns_alpha(a, _trns_8bit(trns, mode, rawmode))
    elif mode == "1":
        a = _as_array(im).astype(np.uint8) * np.uint8(255)
        if isinstance(trns, int):
            a = _add_trns_alpha(a, (255 if trns else 0,))
    elif mode == "P":
        with warnings.catch_warnings():  # "...Transparency expressed in bytes...": all opaque
            warnings.filterwarnings("ignore", "Palette images with Transparency", UserWarning)
            a = _as_array(im.convert("RGBA" if _palette_has_alpha(im) else "RGB"))
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        v = _as_array(im)
        if mode == "I":
            v = np.clip(v, 0, 65535)
        v = v.astype(np.uint32)  # v * 255 + 32767 < 2**24
        a = ((v * 255 + 32767) // 65535).astype(np.uint8)
        if isinstance(trns, int):
            a = np.concatenate([a, np.where(v == trns, 0, 255).astype(np.uint8)], axis=2)
    elif mode == "F":
        v = np.nan_to_num(_as_array(im), nan=0.0, posinf=255.0, neginf=0.0)
        a = np.clip(np.rint(v), 0, 255).astype(np.uint8)
    elif mode in ("La", "RGBa", "PA", "RGBX"):
        target = {"La": "LA", "RGBa": "RGBA", "PA": "RGBA", "RGBX": "RGB"}[mode]
        a = _as_array(im.convert(target))
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        a = _as_array(im.convert("RGB"))
        if icc is not None and icc[16:20] != b"RGB ":
            icc = None  # it describes the old colour space, not these pixels
    else:
        raise ImageInputError(
            f"unsupported image mode {mode!r}; vqcodec reads L, LA, RGB, RGBA and the "
            f"modes it can convert to them (1, P, PA, I, I;16, F, La, RGBa, RGBX, "
            f"CMYK, YCbCr, LAB, HSV)"
        )
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return Pixels(a, icc)


def _as_array(im: Image.Image) -> np.ndarray:
    a = np.asarray(im)
    return a[:, :, np.newaxis] if a.ndim == 2 else a


def _trns_8bit(trns: Any, mode: str, rawmode: str | None) -> tuple[int, ...] | None:
    """The tRNS colour as it appears in the 8-bit pixels Pillow decoded."""
    n = 1 if mode == "L" else 3
    values = (trns,) if isinstance(trns, int) else trns
    if not (isinstance(values, tuple) and len(values) == n and all(isinstance(v, int) for v in values)):
        return None
    if rawmode in ("L;2", "L;4"):  # PNG gives the raw 2/4-bit sample; pixels are scaled up
        factor = 85 if rawmode == "L;2" else 17
        return tuple(v * factor for v in values)
    if (rawmode is not None and rawmode.endswith(";16B")) or any(v > 255 for v in values):
        return tuple(v >> 8 for v in values)  # Pillow keeps only the high byte
    return tuple(values)


def _add_trns_alpha(a: np.ndarray, colour: tuple[int, ...] | None) -> np.ndarray:
    if colour is None:
        return a
    transparent = np.all(a == np.array(colour, dtype=np.int64), axis=2, keepdims=True)
    return np.concatenate([a, np.where(transparent, 0, 255).astype(np.uint8)], axis=2)


def _palette_has_alpha(im: Image.Image) -> bool:
    trns = im.info.get("transparency")
    if isinstance(trns, int):
        return True
    if isinstance(trns, (bytes, bytearray)) and any(b < 255 for b in trns):
        return True
    if im.palette is not None and "A" in im.palette.mode:
        palette = im.getpalette("RGBA") or []
        return any(alpha < 255 for alpha in palette[3::4])
    return False


# --------------------------------------------------------------------------
# Files, bytes and streams in
# --------------------------------------------------------------------------


def load(src: Source, /, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Pixels:
    """Read an image file with Pillow and normalise it by the mode rules.

    ``src`` is a path, the file's bytes, or a binary file object (read from
    its start; left open).  Only the first frame of an animated image is
    read, and the EXIF orientation is applied (``ImageOps.exif_transpose``;
    unreadable EXIF is ignored).  ``width * height`` is checked against
    ``max_pixels`` right after the header is parsed, before decoding
    (:class:`LimitError`); ``None`` means no limit.  Every failure raises
    :class:`ImageInputError` (or :class:`LimitError`) with a one-line reason.
    """
    if max_pixels is not None and (
        isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1
    ):
        raise OptionError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")
    name = _name_of(src)
    with _binary_stream(src, name) as fp:
        # The image is not closed: ImageFile.close() would close the caller's
        # stream too.  Its file is closed by _binary_stream when it is ours.
        im = _open_image(fp, name, max_pixels)
        if im.format == "VQI":  # the mirror of decode's refusal to write VQI (_not_vqi)
            raise ImageInputError(
                f"{_subject(name)} is already a VQI file; encoding it would quantize it again "
                f"(decode it to keep its pixels, or copy the file as it is)")
        if im.format == "PNG":
            _check_png_crcs(fp, name)
        rawmode = _png_rawmode(im)
        _load_pixels(im, name)
        _apply_exif_orientation(im)
        return _normalise(im, rawmode)


def _name_of(src: object) -> str | None:
    if isinstance(src, (str, os.PathLike)):
        return os.fsdecode(src)
    name = getattr(src, "name", None)
    return name if isinstance(name, str) else None


def _subject(name: str | None) -> str:
    return f"'{name}'" if name is not None else "the image"


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


class NamedBytes(io.BytesIO):
    """The bytes of a file, as a whole file object that carries a name for messages.

    What the CLI hands :func:`load` for stdin, and what :func:`load` makes of
    a stream that lacks part of a file's interface: Pillow's plugins call
    ``read``, ``readline``, ``seek`` and ``tell``, and which plugin gets to
    try a file depends on its content.
    """

    def __init__(self, data: bytes = b"", name: str | None = None) -> None:
        super().__init__(data)
        self.name = name


@contextlib.contextmanager
def _binary_stream(src: Source, name: str | None) -> Iterator[IO[bytes]]:
    """A seekable binary stream over ``src``; closes only what it opened."""
    if isinstance(src, (str, os.PathLike)):
        try:
            f = open(src, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise ImageInputError(f"cannot open '{name}': {e.strerror or _reason(e)}") from e
        with f:
            yield f
    elif isinstance(src, (bytes, bytearray, memoryview)):
        yield io.BytesIO(src)
    elif isinstance(src, io.TextIOBase):
        raise OptionError("load() needs a binary file object; open the file with 'rb'")
    elif hasattr(src, "read"):
        try:
            # Pillow's plugins need a whole file object (readline, seek, tell):
            # anything less is read into one, so every caller reads the same files
            can_seek = src.seekable() if hasattr(src, "seekable") else hasattr(src, "seek")
            whole = can_seek and all(hasattr(src, attr) for attr in ("readline", "tell"))
            if not whole and can_seek:
                src.seek(0)  # read from its start, as a whole file object is
            stream = src if whole else NamedBytes(src.read(), name)  # type: ignore[union-attr]
        except OSError as e:
            raise ImageInputError(f"cannot read {_subject(name)}: {_reason(e)}") from e
        yield stream
    else:
        raise OptionError(
            f"load() expects a path, bytes or a binary file object, got {type(src).__name__}"
        )


_pillow_limit_lock = threading.Lock()


@contextlib.contextmanager
def _pillow_bomb_check_off() -> Iterator[None]:
    """Switch Pillow's global decompression-bomb check off, for one header parse.

    Used only when Pillow refused an image that the caller's ``max_pixels``
    may allow; our own check runs right after.  The lock keeps two of our
    threads from restoring each other's value.
    """
    with _pillow_limit_lock:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _open_header(fp: IO[bytes]) -> Image.Image:
    """``Image.open(fp)``; a PNG straight through Pillow's PNG plugin, because
    Image.open first imports five plugins (JPEG's brings subprocess), a cost
    every encode would pay.  The caller checks the size against max_pixels either
    way (Pillow's own bomb limit, which Image.open would apply, is the same
    as the default max_pixels)."""
    start = fp.tell()
    head = fp.read(len(_PNG_SIGNATURE))
    fp.seek(start)
    if head != _PNG_SIGNATURE:
        return Image.open(fp)
    from PIL import PngImagePlugin

    try:
        return PngImagePlugin.PngImageFile(fp)
    except (SyntaxError, IndexError, TypeError, struct.error) as e:  # what Image.open turns into
        raise UnidentifiedImageError(f"cannot identify image file {fp!r}") from e


def _open_image(fp: IO[bytes], name: str | None, max_pixels: int | None) -> Image.Image:
    """``Image.open`` (header only) with every failure wrapped, then the size checks."""
    what = _subject(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                im = _open_header(fp)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                with _pillow_bomb_check_off():
                    im = _open_header(fp)
    except UnidentifiedImageError as e:
        fp.seek(0)
        if fp.read(8) == _PNG_SIGNATURE:
            raise ImageInputError(f"cannot read {what}: invalid or damaged PNG header") from e
        raise ImageInputError(f"cannot read {what}: not an image Pillow recognises") from e
    except (VqiError, MemoryError):
        raise
    except Exception as e:  # Pillow plugins raise many kinds on hostile headers
        raise ImageInputError(f"cannot read {what}: invalid image header ({_reason(e)})") from e
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageInputError(f"{what} has {width}×{height} pixels")
    if max_pixels is not None and width * height > max_pixels:
        raise LimitError(
            f"{what} is {width}×{height} = {width * height:,} pixels, above the limit "
            f"of {max_pixels:,} (max_pixels)"
        )
    return im


def _load_pixels(im: Image.Image, name: str | None) -> None:
    """``im.load()`` (the decode) with every failure wrapped."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise LimitError(
            f"{_subject(name)}: Pillow's own limit refused it ({_reason(e)}); "
            f"raise PIL.Image.MAX_IMAGE_PIXELS"
        ) from e
    except (VqiError, MemoryError):
        raise
    except Exception as e:  # OSError, SyntaxError, ValueError, struct.error, EOFError...
        raise ImageInputError(
            f"cannot read {_subject(name)}: truncated or corrupt image data ({_reason(e)})"
        ) from e


_ORIENTATION = 0x0112  # the EXIF Orientation tag


def _apply_exif_orientation(im: Image.Image) -> None:
    """Rotate/flip a loaded image as its EXIF Orientation says; ignore broken EXIF."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data" and the like
            if im.getexif().get(_ORIENTATION, 1) == 1:  # upright: ImageOps (and the palette
                return                                   # modules it imports) is not needed
            from PIL import ImageOps

            ImageOps.exif_transpose(im, in_place=True)
    except (VqiError, MemoryError):
        raise
    except Exception:  # noqa: S110 - an unreadable tag is not worth refusing the image
        pass


def _check_png_crcs(fp: IO[bytes], name: str | None) -> None:
    """Check the CRC of every PNG chunk up to IEND, and that none is cut short.

    Pillow verifies the header chunks but not IDAT, so a damaged pixel
    stream could decode to wrong pixels silently, and a file cut inside its
    last IDAT can still decode.  A file that ends cleanly between two chunks
    is left to Pillow; so is everything when ``ImageFile.LOAD_TRUNCATED_IMAGES``
    asks for leniency.
    """
    what = _subject(name)
    fp.seek(len(_PNG_SIGNATURE))
    while True:
        pos = fp.tell()
        head = fp.read(8)
        if not head:
            break
        length, ctype = struct.unpack(">I4s", head) if len(head) == 8 else (0, b"")
        kind = ctype.decode("latin-1")
        crc = zlib.crc32(ctype)
        remaining = length
        while remaining:
            block = fp.read(min(remaining, 1 << 20))
            if not block:
                break
            crc = zlib.crc32(block, crc)
            remaining -= len(block)
        stored = fp.read(4)
        if len(head) < 8 or remaining or len(stored) < 4:
            if ImageFile.LOAD_TRUNCATED_IMAGES:
                break
            where = f"{kind} chunk at byte {pos}" if len(head) == 8 else f"chunk header at byte {pos}"
            raise ImageInputError(f"cannot read {what}: truncated PNG data ({where} is cut short)")
        found = struct.unpack(">I", stored)[0]
        if found != crc:
            raise ImageInputError(
                f"cannot read {what}: corrupt PNG data ({kind} chunk at byte "
                f"{pos}: CRC expected 0x{crc:08x}, found 0x{found:08x})"
            )
        if ctype == b"IEND":
            break
    fp.seek(0)


# --------------------------------------------------------------------------
# Out: Pillow images and encoded bytes
# --------------------------------------------------------------------------


def to_pil(pixels: Pixels, /) -> Image.Image:
    """A new Pillow image (a copy) in ``pixels.mode``, ICC profile in ``info``."""
    im = Image.frombytes(pixels.mode, (pixels.width, pixels.height), pixels.array.tobytes())
    if pixels.icc_profile is not None:
        im.info["icc_profile"] = pixels.icc_profile
    return im


# Modes each common format stores faithfully through Pillow.  Formats not
# listed are left to Pillow (its own refusals are wrapped).  BMP/DIB and PPM
# accept RGBA in Pillow but read back as RGB, so they are refused here.
_ALL = frozenset(MODES.values())
_FORMAT_MODES: dict[str, frozenset[str]] = {
    "PNG": _ALL,
    "TIFF": _ALL,
    "WEBP": _ALL,  # L and LA are stored as RGB and RGBA
    "AVIF": _ALL,
    "JPEG2000": _ALL,
    "TGA": _ALL,
    "ICO": _ALL,
    "IM": _ALL,
    "JPEG": frozenset({"L", "RGB"}),
    "MPO": frozenset({"L", "RGB"}),
    "BMP": frozenset({"L", "RGB"}),
    "DIB": frozenset({"L", "RGB"}),
    "PPM": frozenset({"L", "RGB"}),
    "PCX": frozenset({"L", "RGB"}),
    "SGI": frozenset({"L", "RGB", "RGBA"}),
    "QOI": frozenset({"RGB", "RGBA"}),
}
_MODE_WORDS = {"L": "greyscale", "LA": "grey + alpha", "RGB": "colour", "RGBA": "colour + alpha"}


def to_bytes(pixels: Pixels, /, format: str, **options: Any) -> bytes:
    """Encode with Pillow as ``format`` ("PNG", "WEBP", "TIFF", "JPEG", ...).

    ``options`` are Pillow's save options (``quality=90``, ``lossless=True``
    ...).  WebP is written lossless (and ``exact``) unless ``quality`` is
    given; :func:`is_lossy` says which formats lose pixels.  The ICC profile is passed as ``icc_profile`` unless ``options``
    sets it (formats without ICC support ignore it).  A format that cannot
    hold the mode (alpha in JPEG, BMP, PPM...) raises
    :class:`ImageInputError`, unless every pixel is opaque (then the alpha
    channel is dropped, losing nothing); PNG holds all four modes losslessly.
    """
    fmt = _save_format(format)
    mode = pixels.mode
    allowed = _FORMAT_MODES.get(fmt)
    if allowed is not None and mode not in allowed and "A" in mode \
            and mode[:-1] in allowed and bool((pixels.array[:, :, -1] == 255).all()):
        # every pixel opaque: the alpha channel holds nothing, dropping it loses nothing
        pixels = Pixels(np.ascontiguousarray(pixels.array[:, :, :-1]), pixels.icc_profile)
        mode = pixels.mode
    if allowed is not None and mode not in allowed:
        keep = "keep the alpha channel" if "A" in mode else "store it"
        raise ImageInputError(
            f"{fmt} cannot store {mode} ({_MODE_WORDS[mode]}) images; "
            f"use .png (or .tiff) to {keep}"
        )
    if pixels.icc_profile is not None:
        options.setdefault("icc_profile", pixels.icc_profile)
    im = Image.frombuffer(mode, (pixels.width, pixels.height), pixels.array, "raw", mode, 0, 1)
    if fmt == "PNG" and options.pop("palette", True):
        im = _as_palette(im, pixels) or im
    if fmt == "WEBP" and "quality" not in options:  # lossless unless a quality is asked for
        options.setdefault("lossless", True)
        options.setdefault("exact", True)  # the colour of transparent pixels too
    out = io.BytesIO()
    try:
        im.save(out, fmt, **options)
    except MemoryError:
        raise
    except Exception as e:  # Pillow's "cannot write mode X as Y", bad options...
        raise ImageInputError(
            f"cannot encode the {mode} image as {fmt}: {_reason(e)}"
        ) from e
    return out.getvalue()


def format_name(format: str, /) -> str:
    """Pillow's name of the format a user wrote ("jpg" -> "JPEG", "tif" -> "TIFF")."""
    return _save_format(format)


LOSSY_FORMATS = frozenset({"JPEG", "MPO", "AVIF"})


def is_lossy(format: str, /, **options: Any) -> bool:
    """Whether :func:`to_bytes` with *format* and *options* changes pixels (GIF's
    reduction to 256 colours aside)."""
    fmt = _save_format(format)
    if fmt == "WEBP":
        return "quality" in options and not options.get("lossless", False)
    if fmt == "JPEG2000":  # Pillow's default is the reversible wavelet
        return bool(options.get("irreversible")) or "quality_layers" in options
    return fmt in LOSSY_FORMATS


def _as_palette(im: Image.Image, pixels: Pixels) -> Image.Image | None:
    """The same pixels as a palette image (PNG8, with tRNS for alpha) when they
    have at most 256 colours, else None.

    RGB, and RGBA that has some transparency (an opaque RGBA image stays RGBA,
    so that it reads back in its mode).  Read back, the palette image gives
    exactly these pixels in this mode (:func:`load`'s mode rules).  Entries
    are in descending order of use, as palette quantizers write them.
    """
    if pixels.mode not in ("RGB", "RGBA"):
        return None
    colours = im.getcolors(256)  # Pillow's C hash: None as soon as there are more than 256
    if colours is None:
        return None
    if pixels.mode == "RGBA" and all(c[1][3] == 255 for c in colours):
        return None
    colours.sort(key=lambda c: -c[0])
    table = np.array([c[1] for c in colours], dtype=np.uint8).reshape(len(colours), -1)
    keys = _packed(pixels.array)
    order = np.argsort(_packed(table[None])[0])
    sorted_keys = _packed(table[None])[0][order]
    index = order[np.searchsorted(sorted_keys, keys)].astype(np.uint8)
    out = Image.frombytes("P", im.size, index.tobytes())
    out.putpalette(table[:, :3].tobytes(), "RGB")
    if pixels.mode == "RGBA":
        out.info["transparency"] = table[:, 3].tobytes()
    out.info.update(im.info)
    return out


def _packed(array: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> (H, W) uint32, one number per colour."""
    packed = np.zeros(array.shape[:2], dtype=np.uint32)
    for c in range(array.shape[2]):
        packed = (packed << 8) | array[:, :, c]
    return packed


def _save_format(format: str) -> str:
    if not isinstance(format, str) or not format:
        raise OptionError(f"format must be a non-empty string such as 'PNG', got {format!r}")
    fmt = format.upper()
    Image.preinit()
    if fmt not in Image.SAVE:
        Image.init()
    if fmt not in Image.SAVE:
        fmt = Image.registered_extensions().get("." + format.lower().lstrip("."), fmt)
    if fmt not in Image.SAVE:
        raise OptionError(f"Pillow cannot write {format!r} images; use PNG, WEBP, TIFF or JPEG")
    _not_vqi(fmt)
    return fmt


def _not_vqi(fmt: str) -> None:
    # The Pillow plugin can write VQI, but a decoder writing it would quantize the
    # decoded pixels again (k = 256 by default): a silent loss, never what is meant.
    if fmt == "VQI":
        raise OptionError("decoding to .vqi would quantize the image again; "
                          "decode to .png (or copy the .vqi file as it is)")


def extension_format(ext: str) -> str | None:
    """Pillow's format for a file extension (".png" -> "PNG"), or None.

    The common formats' plugins (``Image.preinit``: PNG, JPEG, GIF, BMP, PPM,
    and VQI, registered on import) are asked first; every other plugin is
    loaded (``Image.init``, ~40 ms a process) only for an extension they do
    not know, and then whatever format the loaded plugins give it wins.
    """
    Image.preinit()
    fmt = Image.EXTENSION.get(ext)
    if fmt is None or fmt not in Image.SAVE:
        fmt = Image.registered_extensions().get(ext)
    return fmt


def format_for_path(path: str | os.PathLike[str]) -> str:
    """The Pillow format to write ``path`` in, from its extension ("out.png" -> "PNG")."""
    text = os.fsdecode(path)
    ext = os.path.splitext(text)[1].lower()
    if not ext:
        raise OptionError(f"'{text}' has no file extension; add one such as .png")
    fmt = extension_format(ext)
    if fmt is None:
        raise OptionError(
            f"unknown image extension '{ext}' in '{text}'; use .png, .webp, .tiff, .bmp or .jpg"
        )
    if fmt not in Image.SAVE:
        raise OptionError(f"Pillow cannot write {fmt} files ('{text}'); use .png, .webp or .tiff")
    _not_vqi(fmt)
    return fmt
