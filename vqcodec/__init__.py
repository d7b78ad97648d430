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
    NotSmallerError,
    OptionError,
    TargetUnreachableError,
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
    encode_target,
    read_info,
)
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
    "encode_target",
    "TargetResult",
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
    "TargetUnreachableError",
    "NotSmallerError",
    "CodebookError",
    "register_codebook",
    "unregister_codebook",
    "tokens",
    "detokenize",
]


# Imported when first used, not with the package: the tokenizer brings the batch
# machinery (concurrent.futures) and the target search its own module, which an
# encode, decode or info process does not need (bench/startup_bench.py).
_LAZY = {"tokens": "tokenizer", "detokenize": "tokenizer", "TargetResult": "target"}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vqcodec' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def read_header(data: bytes, /) -> Header:
    """Parse only the signature and ``HEAD`` of .vqi bytes (cheap, no decompression)."""
    return _read_header(data)[1]


_pillow_plugin.register()
