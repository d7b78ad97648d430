"""The encoder's options: one frozen, validated value used by the API, the CLI, batch and the plugin.

:class:`EncodeOptions` is the one definition of every encoder option: its
name, default, type and range.  Each field is checked once, when the value
is made, by the check of the same name in :data:`CHECKS`, which the command
line also calls on what the user typed; a misspelt option is refused by
:meth:`EncodeOptions.from_mapping` (or Python, for the keyword arguments of
:func:`vqcodec.encode`) with the option's name.  :data:`NAMES` is the list
of options the Pillow plugin takes as save parameters and batch passes to
its workers.

Messages name the option as the library spells it (``k``, ``rdo``...);
the command line adds its own flag names.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Mapping

from . import coders, packing
from .errors import OptionError
from .limits import DEFAULT_K, DEFAULT_MAX_PIXELS, check_block, check_k, check_seed

__all__ = ["EncodeOptions", "NAMES", "CHECKS", "check", "DEFAULT_RDO", "RDO_RANGE", "LEVEL_RANGE",
           "DITHER_RANGE"]

DEFAULT_RDO = 0.6
# The knee: beyond about 5 a file stops getting smaller and only loses PSNR
# (k=64: sample 11,919 B at 4, 11,955 at 5, 12,555 at 20, 14,322 at 100;
# kodim03 42,995 B at 5, 46,225 at 20); so the range ends there.
RDO_RANGE = (0.0, 5.0)
LEVEL_RANGE = (1, 22)
DITHER_RANGE = (0.0, 1.0)


def _integer(value: object) -> bool:
    """An int or a numpy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number(value: object) -> bool:
    """An int, a float or a numpy number, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_rdo(value: object) -> float:
    low, high = RDO_RANGE
    if not _number(value) or not (math.isfinite(value) and low <= value <= high):
        raise OptionError(f"rdo must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _check_dither(value: object) -> float:
    low, high = DITHER_RANGE
    if not _number(value) or not (math.isfinite(value) and low <= value <= high):
        raise OptionError(f"dither must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _check_coder(value: object) -> str:
    if value is None or value == "auto":  # None: the default, as for layout and level
        return "auto"
    if not isinstance(value, str):
        raise OptionError(f"coder must be one of {sorted([*coders.names(), 'auto'])}, got {value!r}")
    return coders.by_name(value).name


def _check_layout(value: object) -> str | None:
    if value is not None and value not in packing.LAYOUTS.values():
        raise OptionError(f"layout must be one of {sorted(packing.LAYOUTS.values())}, got {value!r}")
    return value


def _check_level(value: object) -> int | None:
    low, high = LEVEL_RANGE
    if value is not None and (not _integer(value) or not low <= value <= high):
        raise OptionError(f"level must be a zstd level from {low} to {high}, got {value!r}")
    return None if value is None else int(value)


def _check_codebook(value: object) -> Any:
    """None, or the shared codebook to encode with, loaded and checked (a Codebook)."""
    if value is None:
        return None
    from .books import to_codebook  # reads files, imports the quantizer: only when asked for

    return to_codebook(value)


def _check_strip(value: object) -> bool:
    if not (isinstance(value, bool) or type(value).__name__ == "bool_"):  # numpy's too
        raise OptionError(f"strip must be True or False, got {value!r}")
    return bool(value)


def _check_max_pixels(value: object) -> int | None:
    if value is not None and (not _integer(value) or value < 1):
        raise OptionError(f"max_pixels must be a positive integer or None, got {value!r}")
    return None if value is None else int(value)


CHECKS: dict[str, Callable[[Any], Any]] = {
    "k": check_k,
    "seed": check_seed,
    "rdo": _check_rdo,
    "dither": _check_dither,
    "coder": _check_coder,
    "layout": _check_layout,
    "level": _check_level,
    "block": check_block,
    "strip": _check_strip,
    "max_pixels": _check_max_pixels,
    "codebook": _check_codebook,
}
"""Option name -> its check: the value normalised (numpy ints to int...), or OptionError."""


def check(name: str, value: object) -> Any:
    """*value* checked as the option *name* (the command line calls this on what was typed)."""
    return CHECKS[name](value)


@dataclass(frozen=True)
class EncodeOptions:
    """Every option of an encode, checked when the value is made (:class:`OptionError`).

    ``k``           codebook size, 2 ... 65536 (an image of fewer colours keeps them all);
    ``seed``        seed of the k-means initialisation;
    ``rdo``         rate-aware index choice, 0 to 5: 0 maps every pixel to its nearest
                    entry; larger lets a pixel take a neighbour's entry when it
                    is almost as close (a smaller file for a little PSNR; the
                    range ends where files stop getting smaller);
    ``dither``      error diffusion, 0 (off, the default: it costs PSNR and bytes)
                    to 1: smooth gradients look smooth instead of banded
                    (:mod:`vqcodec.quantize.dither`);
    ``coder``       the index coder: "auto" (the encoder's choice, see
                    :mod:`vqcodec.choose`) or a coder's name ("ctx", "bzip2", "zstd");
    ``layout``      the index layout ("bytes", "stripes", "packed"), or None for
                    the coder's choice;
    ``level``       zstd's level 1-22, or None for the encoder's choice;
    ``block``       (width, height) of a vector in pixels, 1 to 8 each, or text
                    "WxH" ("2x2"): each codebook entry is a block of pixels and
                    the index map has one index per block (spec §3.1); default
                    (1, 1), one colour per entry.  ``rdo`` works on blocks as on
                    pixels: a block may take its left or upper neighbour's entry; ``dither``
                    applies to 1×1 only;
    ``strip``       leave the input's ICC profile (the only metadata a .vqi
                    file keeps) out of the file (:func:`vqcodec.pixels.stored`,
                    the one rule that encode and rd share);
    ``max_pixels``  refuse images above this many pixels (None: no limit);
    ``codebook``    a shared codebook to map the image to instead of learning one
                    (a .vqb or palette file, a Codebook, a (n, C) uint8 array: see
                    :mod:`vqcodec.books`); the file then names it by its identity
                    and does not hold it (format 1.2, spec §11); ``k`` and ``seed``
                    are not used.
    """

    k: int = DEFAULT_K
    seed: int = 0
    rdo: float = DEFAULT_RDO
    dither: float = 0.0
    coder: str = "auto"
    layout: str | None = None
    level: int | None = None
    block: tuple[int, int] = (1, 1)
    strip: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    codebook: Any = None

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, CHECKS[f.name](getattr(self, f.name)))
        if self.dither and self.block != (1, 1):
            raise OptionError(f"dither diffuses the error of single pixels; it does not apply to "
                              f"{self.block[0]}x{self.block[1]} blocks (use dither 0 with block)")
        if self.coder != "auto" and self.layout is not None:
            layouts = coders.by_name(self.coder).layouts
            if _LAYOUT_IDS[self.layout] not in layouts:
                names = " or ".join(repr(packing.LAYOUTS[i]) for i in layouts)
                raise OptionError(f"coder {self.coder!r} needs layout {names}, got {self.layout!r}")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], /) -> "EncodeOptions":
        """Options from a mapping (save parameters, a config); an unknown name is an error."""
        unknown = sorted(set(options) - set(NAMES))
        if unknown:
            raise OptionError(f"unknown encode option {unknown[0]!r}; the options are {', '.join(NAMES)}")
        return cls(**options)

    def replace(self, **changes: Any) -> "EncodeOptions":
        """A copy with *changes*, checked like a new value."""
        return replace(self, **changes) if not set(changes) - set(NAMES) else \
            EncodeOptions.from_mapping({**self.as_dict(), **changes})

    def as_dict(self) -> dict[str, Any]:
        """The options by name."""
        return asdict(self)


NAMES: tuple[str, ...] = tuple(f.name for f in fields(EncodeOptions))
"""Every encoder option, in the order of :class:`EncodeOptions`."""

_LAYOUT_IDS = {name: value for value, name in packing.LAYOUTS.items()}
