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
           "DITHER_RANGE", "TARGETS", "PSNR_RANGE", "SPEED_RANGE", "parse_quality"]

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


PSNR_RANGE = (1.0, 100.0)
TARGETS = ("psnr", "quality", "max_bytes", "bpp")
"""The target options: at most one per encode (:mod:`vqcodec.target` meets it)."""


def _check_psnr(value: object) -> float | None:
    low, high = PSNR_RANGE
    if value is not None and (not _number(value) or not (math.isfinite(value) and low <= value <= high)):
        raise OptionError(f"psnr must be a number of dB from {low:g} to {high:g}, got {value!r}")
    return None if value is None else float(value)


def parse_quality(text: str) -> tuple[int, int]:
    """pngquant's quality forms: "MIN-MAX"; "N" (MIN = 9 N / 10, as pngquant); "-N" (0-N); "N-" (N-100)."""
    t = text.strip()
    try:
        if t.startswith("-"):
            low, high = 0, int(t[1:])
        elif t.endswith("-"):
            low, high = int(t[:-1]), 100
        elif "-" in t:
            a, b = t.split("-", 1)
            low, high = int(a), int(b)
        else:
            high = int(t)
            low = high * 9 // 10
    except ValueError:
        raise OptionError(f"quality must be MIN-MAX with whole numbers from 0 to 100 "
                          f"(e.g. 65-80), got {text!r}") from None
    return low, high


def _check_quality(value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, str):
        low, high = parse_quality(value)
    elif _integer(value):
        low, high = parse_quality(str(int(value)))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_integer, value)):
        low, high = (int(v) for v in value)
    else:
        raise OptionError(f"quality must be MIN-MAX (a string such as '65-80', a pair of "
                          f"integers or one integer), got {value!r}")
    if not 0 <= low <= high <= 100:
        raise OptionError(f"quality must be MIN-MAX with 0 <= MIN <= MAX <= 100, got {low}-{high}")
    return low, high


def _check_max_bytes(value: object) -> int | None:
    if value is not None and (not _integer(value) or value < 1):
        raise OptionError(f"max_bytes must be a positive integer (bytes), got {value!r}")
    return None if value is None else int(value)


def _check_bpp(value: object) -> float | None:
    if value is not None and (not _number(value) or not (math.isfinite(value) and value > 0)):
        raise OptionError(f"bpp must be a positive number of bits per pixel, got {value!r}")
    return None if value is None else float(value)


def _check_flag(name: str) -> Callable[[Any], bool]:
    def check(value: object) -> bool:
        numpy_bool = getattr(getattr(value, "dtype", None), "kind", None) == "b" and not getattr(value, "shape", ())
        if not (isinstance(value, bool) or numpy_bool):
            raise OptionError(f"{name} must be True or False, got {value!r}")
        return bool(value)
    return check


SPEED_RANGE = (1, 10)


def _check_speed(value: object) -> int:
    low, high = SPEED_RANGE
    if not _integer(value) or not low <= value <= high:
        raise OptionError(f"speed must be an integer from {low} (slowest) to {high} (fastest), got {value!r}")
    return int(value)


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
    "strip": _check_flag("strip"),
    "max_pixels": _check_max_pixels,
    "codebook": _check_codebook,
    "psnr": _check_psnr,
    "quality": _check_quality,
    "max_bytes": _check_max_bytes,
    "bpp": _check_bpp,
    "skip_if_larger": _check_flag("skip_if_larger"),
    "speed": _check_speed,
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
                    :mod:`vqcodec.choose`) or a coder's name ("ctx", "cand", "bzip2",
                    "zstd"; "cand" is index coder 3, format 1.3: 3-4 % smaller photos
                    than "ctx", slower to decode, never chosen by "auto");
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

    At most one *target* (:mod:`vqcodec.target` chooses k, and with a byte
    budget the rdo strength, to meet it; ``k`` is then the largest codebook tried):

    ``psnr``        the smallest file whose PSNR is at least this many dB;
    ``quality``     (MIN, MAX) on pngquant's 0-100 scale (also "65-80", "80"...:
                    :func:`parse_quality`): the fewest colours whose error meets
                    MAX; below MIN the encode is refused (unreachable);
    ``max_bytes``   the best PSNR whose file fits in this many bytes;
    ``bpp``         the same budget as bits per pixel (bytes = bpp x pixels / 8);
    ``skip_if_larger``  refuse to encode when the .vqi file would not be
                    smaller than the input file: a file input only (a path,
                    bytes or a seekable stream); with an array or a PIL image,
                    and in the Pillow plugin, the encode is refused
                    (OptionError: there is no input file to compare with);
    ``speed``       effort, 1 (slowest) to 10 (fastest), default 4: 1-4 are the
                    full k-means search, and 1-3 also let ``coder="auto"`` try
                    index coder 3 (cand), whose files are smaller and decode
                    more slowly (:data:`vqcodec.choose.EVERY_CODER_BELOW_SPEED`;
                    ``bench/speed_bench.py --speed 1``, README's *Speed*);
                    faster speeds fewer iterations, one start
                    and no jumps for small codebooks, fewer rate-aware passes;
                    9-10 learn on the seed set only, with one (9) or no (10)
                    rounded-mean pass (:mod:`vqcodec.quantize.kmeans`,
                    :func:`vqcodec.quantize.learn.rounds_for`).  Speed 10 against
                    4 on the 8 Kodak photos (``bench/speed_bench.py --runs 5``,
                    README's *Speed*): ``encode(path)`` 2.5x / 3.0x / 1.6x
                    faster at k = 16 / 64 / 256, the whole ``vqcodec encode``
                    process 1.1x (its start and imports dominate), files
                    1.018 / 1.015 / 1.010x the bytes, 0.12 / 0.10 / 0.08 dB lower.
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
    psnr: float | None = None
    quality: tuple[int, int] | None = None
    max_bytes: int | None = None
    bpp: float | None = None
    skip_if_larger: bool = False
    speed: int = 4

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, CHECKS[f.name](getattr(self, f.name)))
        if self.dither and self.block != (1, 1):
            raise OptionError(f"dither diffuses the error of single pixels; it does not apply to "
                              f"{self.block[0]}x{self.block[1]} blocks (use dither 0 with block)")
        given = [name for name in TARGETS if getattr(self, name) is not None]
        if len(given) > 1:
            raise OptionError(f"{' and '.join(given)} are alternative targets; give one of them")
        if self.target is not None and self.codebook is not None:
            raise OptionError(f"{self.target} chooses the codebook size, and a shared codebook fixes it; "
                              "give one of them")
        if self.target is not None and self.block != (1, 1):
            raise OptionError(f"{self.target} chooses k for single pixels; it does not apply to "
                              f"{self.block[0]}x{self.block[1]} blocks yet")
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

    @property
    def target(self) -> str | None:
        """The name of the target option given (``"psnr"``, ``"quality"``...), or None."""
        return next((name for name in TARGETS if getattr(self, name) is not None), None)

    def as_dict(self) -> dict[str, Any]:
        """The options by name."""
        return asdict(self)


NAMES: tuple[str, ...] = tuple(f.name for f in fields(EncodeOptions))
"""Every encoder option, in the order of :class:`EncodeOptions`."""

_LAYOUT_IDS = {name: value for value, name in packing.LAYOUTS.items()}
