"""The one exception family of vqcodec.

Everything the library raises on purpose is a :class:`VqiError`.  The
subclasses say *which* kind of failure happened, so that callers (and the
CLI) can react without parsing messages:

* :class:`FormatError` -- the bytes are not a well-formed .vqi file
  (wrong magic, bad field, truncated, malformed section).
* :class:`UnsupportedVersionError` -- a well-formed file of a format major
  version this reader does not implement, or a feature it does not know.
* :class:`IntegrityError` -- a checksum does not match: the file was damaged.
* :class:`LimitError` -- the file or image is larger than the configured
  limits (pixel count, section size).  Raised *before* allocating.
* :class:`ImageInputError` -- an input image cannot be read or converted.
* :class:`OptionError` -- an encoder option is out of range (also a
  :class:`ValueError`).
* :class:`CodebookError` -- a shared codebook (spec §11) cannot be found,
  or its file is not a valid codebook file; the message names its hash.

Messages name what failed, where, what was expected and what was found.
"""

from __future__ import annotations

__all__ = [
    "VqiError",
    "FormatError",
    "UnsupportedVersionError",
    "IntegrityError",
    "LimitError",
    "ImageInputError",
    "OptionError",
    "CodebookError",
]


class VqiError(Exception):
    """Base class of every error vqcodec raises on purpose."""


class FormatError(VqiError):
    """The data is not a well-formed .vqi file."""


class UnsupportedVersionError(FormatError):
    """A .vqi file of a version (or with a feature) this reader cannot read."""


class IntegrityError(FormatError):
    """A CRC check failed: the file was damaged after it was written."""


class LimitError(VqiError):
    """A size is above the configured limit; nothing was allocated for it."""


class ImageInputError(VqiError):
    """An input image could not be opened, decoded or converted."""


class OptionError(VqiError, ValueError):
    """An encoder or decoder option is out of range."""


class CodebookError(FormatError):
    """A file's shared codebook is missing, damaged, or does not fit the file (spec §11).

    ``missing`` is the identity (hex) of a codebook that was found nowhere, else None.
    """

    def __init__(self, message: str, missing: str | None = None) -> None:
        super().__init__(message)
        self.missing = missing

    def __reduce__(self):  # pickled across processes with its identity
        return type(self), (str(self), self.missing)
