"""The index coders: how ``INDX.data`` codes the index payload (spec §5.3 and §5.4).

Each coder is one module of this package holding one :class:`Coder` value,
``CODER``, and this module's registry lists them.  The container dispatches
on the registry (a file names its coder by ``index_coder``), and the
encoder's "auto" choice (:mod:`vqcodec.choose`) iterates it.  A new coder is
one module here plus one line in :data:`_MODULES`.

Two kinds of coder:

* ``"bytes"`` coders (zstd, bzip2) compress the *payload* of any index
  layout (spec §5.0-5.2) as a byte string;
* ``"map"`` coders (ctx) model the index map itself and exist for
  layout 1 only; their payload is the layout-1 bytes in raster order.

A coder sees the index map's header, an :class:`IndexMap` (duck-typed: any
object with its fields will do), and the codebook's bytes, never a file.
For a file of block vectors (spec §3.1) the map is not the image: it has
one index per block, and an entry is a block of pixels.  ``decode`` returns exactly the payload the header
implies, or -- for a map coder asked for ``samples`` -- the image's samples,
the codebook looked up as it decodes.  Every error is a
:class:`~vqcodec.errors.FormatError` naming section INDX.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import FormatError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["IndexMap", "HeaderLike", "Coder", "all_coders", "by_id", "by_name", "names"]


@dataclass(frozen=True)
class IndexMap:
    """What a coder reads of the ``HEAD`` section (spec §3), for the index map.

    ``width`` × ``height`` indices and ``channels``, the bytes of one
    codebook entry: the image's size and channels for 1×1 vectors; for
    blocks of bw × bh pixels, ⌈W / bw⌉ × ⌈H / bh⌉ indices of entries of
    bw × bh × channels bytes (:meth:`vqcodec.container.Header.index_map`).
    """

    width: int
    height: int
    channels: int
    k: int
    index_bits: int
    index_layout: int
    index_coder: int


HeaderLike = IndexMap  # the name the coders' signatures use


class Coder:
    """One index coder.  Subclasses set the class attributes and the two methods.

    ``id``         its ``index_coder`` value in ``HEAD``;
    ``name``       its name in the API and on the command line;
    ``version``    the lowest format version whose files may use it;
    ``kind``       "bytes" or "map" (module docstring);
    ``layouts``    the index layouts it codes;
    ``max_k``      the largest k it codes;
    ``tie_rank``   when two of the encoder's candidates are the same size, the
                   one whose coder has the lower rank is kept;
    ``searches_layout``  a bytes coder for which the encoder tries layouts
                   rather than taking bytes (:mod:`vqcodec.choose`);
    ``auto``       the encoder's "auto" choice tries it.
    """

    id: int
    name: str
    version: tuple[int, int] = (1, 0)
    kind: str = "bytes"
    layouts: tuple[int, ...] = (0, 1, 2)
    max_k: int = 65536
    tie_rank: int = 0
    searches_layout: bool = False
    auto: bool = True

    def available(self) -> bool:
        """True when this installation can encode with it (decoding always works)."""
        return True

    def refusal(self, k: int, layout: int) -> str | None:
        """Why a map of *k* entries in *layout* cannot use this coder, or None."""
        if layout not in self.layouts:
            names = " or ".join(str(x) for x in self.layouts)
            return f"index_coder {self.id} ({self.name}) needs index_layout {names}, found {layout}"
        if k > self.max_k:
            return f"index_coder {self.id} ({self.name}) needs k <= {self.max_k}, found {k}"
        return None

    def encode(self, payload: bytes, header: HeaderLike, codebook: bytes, /, *,
               level: int | None = None, threads: int = 0) -> bytes:
        """The ``INDX.data`` that codes *payload* (the layout's bytes, spec §5.0-5.2)."""
        raise NotImplementedError

    def decode(self, data: memoryview, header: HeaderLike, codebook: bytes, /, *,
               samples: bool = False) -> "bytes | np.ndarray":
        """The payload that ``INDX.data`` codes (exactly its size, spec §5); with
        *samples*, a coder that can returns the samples instead (an ndarray)."""
        raise NotImplementedError


# id -> module (imported on first use: zstd, bzip2 and numpy stay unloaded until needed)
_MODULES = {0: "zstd", 1: "bzip2", 2: "ctx", 3: "cand"}
_loaded: dict[int, Coder] = {}


def by_id(coder_id: int) -> Coder:
    """The coder with ``index_coder`` = *coder_id*; FormatError if there is none."""
    if coder_id not in _loaded:
        if coder_id not in _MODULES:
            raise FormatError(f"index_coder {coder_id} is not supported "
                              f"(this reader knows {sorted(_MODULES)})")
        _loaded[coder_id] = importlib.import_module(f"{__name__}.{_MODULES[coder_id]}").CODER
    return _loaded[coder_id]


def all_coders() -> list[Coder]:
    """Every coder, in id order."""
    return [by_id(i) for i in sorted(_MODULES)]


def names() -> list[str]:
    """The coders' names, sorted."""
    return sorted(_MODULES.values())


def ids() -> list[int]:
    """The coders' ids, sorted."""
    return sorted(_MODULES)


def by_name(name: str) -> Coder:
    """The coder called *name*; OptionError naming the choices if there is none."""
    for coder_id, module in _MODULES.items():
        if module == name:
            return by_id(coder_id)
    raise OptionError(f"coder must be one of {sorted([*names(), 'auto'])}, got {name!r}")
