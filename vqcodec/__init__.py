"""vqcodec: the VQI image format, compressed by vector quantization.

>>> import numpy as np, vqcodec
>>> image = np.zeros((4, 6, 3), dtype=np.uint8)
>>> data = vqcodec.encode(image, k=16)
>>> bool((vqcodec.decode(data) == image).all())
True

Public API: :func:`encode`, :func:`decode`, :func:`decode_image`,
:func:`read_info`, :func:`read_header`, :class:`EncodeOptions`, the
:mod:`vqcodec.metrics` module,
the error family (:class:`VqiError` and subclasses), ``FORMAT_VERSION`` and
``__version__``; shared codebooks: :func:`register_codebook`,
:func:`unregister_codebook` (and :mod:`vqcodec.books`); tokens:
:func:`tokens`, :func:`detokenize` (and :mod:`vqcodec.tokenizer`).  Importing the package registers the Pillow plugin, so
``PIL.Image.open("x.vqi")`` works.
"""

from __future__ import annotations

from .container import FORMAT_VERSION, Header
from .limits import DEFAULT_K, DEFAULT_MAX_PIXELS
from .options import EncodeOptions
from .container import read_header as _read_header
from .books import register_codebook, unregister_codebook
from .errors import (
    CodebookError,
    FormatError,
    ImageInputError,
    IntegrityError,
    LimitError,
    OptionError,
    UnsupportedVersionError,
    VqiError,
)
from .codec import (
    Encoded,
    Info,
    decode,
    decode_image,
    decode_pixels,
    encode,
    encode_pixels,
    read_info,
)
from .tokenizer import detokenize, tokens
from . import pillow_plugin as _pillow_plugin

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "FORMAT_VERSION",
    "DEFAULT_K",
    "DEFAULT_MAX_PIXELS",
    "Header",
    "EncodeOptions",
    "Encoded",
    "Info",
    "encode",
    "encode_pixels",
    "decode",
    "decode_pixels",
    "decode_image",
    "read_header",
    "read_info",
    "VqiError",
    "FormatError",
    "UnsupportedVersionError",
    "IntegrityError",
    "LimitError",
    "ImageInputError",
    "OptionError",
    "CodebookError",
    "register_codebook",
    "unregister_codebook",
    "tokens",
    "detokenize",
]


def read_header(data: bytes, /) -> Header:
    """Parse only the signature and ``HEAD`` of .vqi bytes (cheap, no decompression)."""
    return _read_header(data)[1]


_pillow_plugin.register()
