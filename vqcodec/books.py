"""Shared codebooks: load them, register them, and find the one a file names (spec §11).

A ``.vqi`` file with a shared codebook names it by its identity (the SHA-256
of its ``.vqb`` file's body).  :func:`resolver` gives the decoder a function
from that identity to the codebook, which looks, in this order:

1. in the codebooks given to the call (the ``codebook`` argument of
   :func:`vqcodec.decode` and friends: one or a list of :data:`Source`, or
   folders, searched as below);
2. in the registry of this process (:func:`register_codebook`; the Pillow
   plugin decodes through it);
3. in the folders (or files) of the environment variable
   ``VQCODEC_CODEBOOKS``, separated by ``os.pathsep`` (``:``; ``;`` on Windows);
4. in the default folder, ``$XDG_DATA_HOME/vqcodec/codebooks``
   (``~/.local/share/vqcodec/codebooks`` when ``XDG_DATA_HOME`` is unset).

In a folder, the file ``<identity in hex>.vqb`` is tried first, then every
``*.vqb`` file in it (not in sub-folders); files that are not valid codebook
files are passed over there.  A codebook found nowhere is one
:class:`~vqcodec.errors.CodebookError` naming its identity.

A codebook :data:`Source` is a ``.vqb`` file (path or bytes), a user's fixed
palette -- a GIMP palette (``.gpl``) or an image: the palette of a palette
(P-mode) image, else the image's distinct colours -- of at most 256 colours,
a :class:`~vqcodec.quantize.Codebook`, a :class:`~vqcodec.vqb.Book`, or a
``(n, C)`` ``uint8`` numpy array of colours.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Union

from . import vqb
from .errors import CodebookError, VqiError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .quantize import Codebook

__all__ = ["Source", "ENV_VAR", "MAX_PALETTE", "load", "to_codebook", "from_codebook", "register_codebook",
           "unregister_codebook", "registered", "default_folder", "search_path", "find", "resolver",
           "save"]

Source = Union[str, "os.PathLike[str]", bytes, "Codebook", vqb.Book, "np.ndarray"]
ENV_VAR = "VQCODEC_CODEBOOKS"
MAX_PALETTE = 256
"""The most colours a user's palette (a .gpl file or an image) may give."""

_registry: dict[bytes, vqb.Book] = {}
_scanned: dict[tuple[str, int, int], bytes | None] = {}  # (path, mtime_ns, size) -> identity


# ---------------------------------------------------------------- loading


def load(source: Source, /) -> vqb.Book:
    """The codebook *source* holds (module docstring); :class:`CodebookError` when it holds none."""
    if isinstance(source, vqb.Book):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return vqb.read(source)
    if isinstance(source, (str, os.PathLike)):
        return _load_path(os.fspath(source))
    if type(source).__name__ == "Codebook":
        return from_codebook(source)
    if type(source).__module__ == "numpy":
        return _from_array(source)
    raise CodebookError(f"codebook: expected a .vqb or palette file, a Codebook or a (n, C) uint8 "
                        f"array, got {type(source).__name__}")


def _load_path(path: str) -> vqb.Book:
    try:
        size = os.stat(path).st_size
        if path.lower().endswith(".gpl"):
            if size > 1 << 20:
                raise CodebookError(f"codebook '{path}': {size:,} bytes is too large for a GIMP palette")
            with open(path, "rb") as f:
                return _from_gpl(f.read(), path)
        with open(path, "rb") as f:
            head = f.read(len(vqb.MAGIC))
            if head == vqb.MAGIC or path.lower().endswith(".vqb"):
                if size > vqb.MAX_FILE_SIZE:
                    raise CodebookError(f"codebook '{path}': {size:,} bytes, larger than any codebook file "
                                        f"({vqb.MAX_FILE_SIZE:,})")
                return vqb.read(head + f.read())
    except OSError as e:
        raise CodebookError(f"cannot read codebook '{path}': {e.strerror or e}") from None
    except CodebookError as e:
        if f"'{path}'" in str(e):
            raise
        raise CodebookError(f"codebook '{path}': {e}") from None
    return _from_image(path)


def _from_gpl(data: bytes, path: str) -> vqb.Book:
    """A GIMP palette: ``GIMP Palette``, then ``Name:``/``Columns:``/``Channels:`` lines,
    ``#`` comments, and one colour per line, ``R G B [name]`` (``R G B A`` with ``Channels: RGBA``)."""
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise CodebookError(f"codebook '{path}': a GIMP palette is UTF-8 text") from None
    if not lines or lines[0].strip() != "GIMP Palette":
        raise CodebookError(f"codebook '{path}': not a GIMP palette (the first line is not 'GIMP Palette')")
    channels = 3
    colours: list[tuple[int, ...]] = []
    for number, line in enumerate(lines[1:], start=2):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.partition(":")
        if sep and key in ("Name", "Columns", "Channels"):
            if key == "Channels":
                if value.strip() not in ("RGB", "RGBA"):
                    raise CodebookError(f"codebook '{path}' line {number}: Channels {value.strip()!r}; "
                                        "expected RGB or RGBA")
                channels = len(value.strip())
            continue
        fields = text.split()
        try:
            values = tuple(int(v) for v in fields[:channels])
        except ValueError:
            values = ()
        if len(values) != channels or not all(0 <= v <= 255 for v in values):
            raise CodebookError(f"codebook '{path}' line {number}: expected {channels} values 0-255 "
                                f"and a name, found {text[:40]!r}")
        colours.append(values)
        if len(colours) > MAX_PALETTE:
            break
    return _palette(colours, channels, path)


def _from_image(path: str) -> vqb.Book:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.width * im.height > 1 << 24:
                raise CodebookError(f"codebook '{path}': a {im.width}x{im.height} image is too large "
                                    "to be a palette")
            if im.mode == "P":
                rgb = im.getpalette() or []
                colours = [tuple(rgb[i : i + 3]) for i in range(0, len(rgb), 3)]
                alpha = im.info.get("transparency")
                if isinstance(alpha, int):
                    alpha = bytes(255 if i != alpha else 0 for i in range(len(colours)))
                if isinstance(alpha, bytes):
                    alpha = alpha + b"\xff" * (len(colours) - len(alpha))
                    return _palette([c + (a,) for c, a in zip(colours, alpha)], 4, path)
                return _palette(colours, 3, path)
            rgb = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
            found = rgb.getcolors(MAX_PALETTE)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise CodebookError(f"codebook '{path}' is not a .vqb file, a GIMP palette (.gpl) or an image "
                            f"Pillow can open: {e}") from None
    if found is None:
        raise CodebookError(f"codebook '{path}': the image has more than {MAX_PALETTE} colours; a palette "
                            f"image holds at most {MAX_PALETTE}")
    return _palette(sorted(colour for _, colour in found), len(rgb.mode), path)


def _palette(colours: list[tuple[int, ...]], channels: int, path: str) -> vqb.Book:
    if not colours:
        raise CodebookError(f"codebook '{path}': the palette has no colours")
    if len(colours) > MAX_PALETTE:
        raise CodebookError(f"codebook '{path}': more than {MAX_PALETTE} colours; a palette may hold "
                            f"at most {MAX_PALETTE} (use vqcodec's .vqb files for larger codebooks)")
    return vqb.Book(channels=channels, block_width=1, block_height=1, k=len(colours),
                    entries=bytes(v for colour in colours for v in colour))


def _from_array(array: Any) -> vqb.Book:
    import numpy as np

    a = np.asarray(array)
    if a.dtype != np.uint8 or a.ndim != 2 or not 1 <= a.shape[1] <= 4 or not len(a):
        raise CodebookError(f"codebook: an array must be (n, C) uint8 colours with C in 1..4, "
                            f"found {a.dtype} {a.shape}")
    return vqb.Book(channels=a.shape[1], block_width=1, block_height=1, k=len(a),
                    entries=np.ascontiguousarray(a).tobytes())


def from_codebook(codebook: "Codebook", /) -> vqb.Book:
    """The :class:`~vqcodec.vqb.Book` of a :class:`~vqcodec.quantize.Codebook` (same identity)."""
    bw, bh = codebook.block
    return vqb.Book(channels=codebook.channels, block_width=bw, block_height=bh, k=len(codebook),
                    entries=codebook.entries.tobytes())


def to_codebook(source: Source, /) -> "Codebook":
    """The :class:`~vqcodec.quantize.Codebook` of any codebook *source* (same identity)."""
    import numpy as np

    from .quantize import Codebook

    if isinstance(source, Codebook):
        return source
    book = load(source)
    entries = np.frombuffer(book.entries, np.uint8).reshape(book.k, book.dim)
    return Codebook(entries, channels=book.channels, block=book.block)


def save(source: Source, path: str | os.PathLike[str], /, *, overwrite: bool = False) -> bytes:
    """Write *source* as a ``.vqb`` file at *path* (atomically); returns its identity."""
    from .fileio import atomic_write

    book = load(source)
    atomic_write(os.fspath(path), vqb.write(book), overwrite=overwrite)
    return book.identity


# ---------------------------------------------------------------- the registry


def register_codebook(source: Source, /) -> str:
    """Make *source* known to every decode of this process; returns its identity in hex.

    The registry is the process's own: worker processes (batch, training)
    start with an empty one, so give them the codebook itself (``codebook=``)
    or put it on the search path.
    """
    book = load(source)
    _registry[book.identity] = book
    return book.identity.hex()


def unregister_codebook(identity: str | bytes, /) -> None:
    """Forget a registered codebook (by its identity, hex or bytes); nothing if it is not registered."""
    _registry.pop(bytes.fromhex(identity) if isinstance(identity, str) else bytes(identity), None)


def registered() -> tuple[str, ...]:
    """The identities (hex) of the registered codebooks."""
    return tuple(key.hex() for key in _registry)


# ---------------------------------------------------------------- the search path


def default_folder() -> str:
    """``$XDG_DATA_HOME/vqcodec/codebooks`` (``~/.local/share/vqcodec/codebooks`` without it)."""
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "vqcodec", "codebooks")


def search_path() -> list[str]:
    """The folders (or files) searched after the given and registered codebooks, in order."""
    env = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [*env, default_folder()]


def _identity_of_file(path: str) -> bytes | None:
    """The identity of the .vqb file *path*, or None when it is not a valid one (cached by mtime)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
    if key not in _scanned:
        try:
            _scanned[key] = load(path).identity if st.st_size <= vqb.MAX_FILE_SIZE else None
        except VqiError:
            _scanned[key] = None
    return _scanned[key]


def _in_place(place: str, identity: bytes) -> vqb.Book | None:
    if os.path.isfile(place):
        return load(place) if _identity_of_file(place) == identity else None
    if not os.path.isdir(place):
        return None
    named = os.path.join(place, identity.hex() + ".vqb")
    if os.path.isfile(named):
        book = load(named)  # named after the identity: a defect here is an error
        if book.identity != identity:
            raise CodebookError(f"codebook file '{named}' is named after {identity.hex()} but its "
                                f"identity is {book.identity.hex()}; the file is damaged or misnamed")
        return book
    try:
        names = sorted(os.listdir(place))
    except OSError:
        return None
    for name in names:
        path = os.path.join(place, name)
        if name.lower().endswith(".vqb") and _identity_of_file(path) == identity:
            return load(path)
    return None


def _as_list(codebook: Source | Iterable[Source] | None) -> list[Source]:
    if codebook is None:
        return []
    if isinstance(codebook, (list, tuple)):
        return list(codebook)
    return [codebook]


def find(identity: bytes, /, codebook: Source | Iterable[Source] | None = None) -> vqb.Book:
    """The codebook whose identity is *identity*: given, registered or on the search path.

    A folder given as a codebook is searched as the folders of the search path are.
    """
    sources = _as_list(codebook)
    folders = [os.fspath(s) for s in sources if isinstance(s, (str, os.PathLike)) and os.path.isdir(s)]
    given = [load(source) for source in sources
             if not (isinstance(source, (str, os.PathLike)) and os.fspath(source) in folders)]
    for book in given:
        if book.identity == identity:
            return book
    if identity in _registry:
        return _registry[identity]
    for place in [*folders, *search_path()]:
        book = _in_place(place, identity)
        if book is not None:
            return book
    hint = ""
    if given:
        others = ", ".join(b.identity.hex()[:16] + "..." for b in given)
        hint = f" (the codebook given is another one: {others})"
    raise CodebookError(
        f"shared codebook {identity.hex()} not found{hint}: give its .vqb file as the codebook "
        f"argument, register it (vqcodec.register_codebook), or put it in a folder of "
        f"{ENV_VAR} or in {default_folder()}", missing=identity.hex())


def resolver(codebook: Source | Iterable[Source] | None = None) -> Callable[[bytes], vqb.Book]:
    """The function :func:`vqcodec.container.read` calls with a file's ``BREF`` (module docstring)."""
    def resolve(identity: bytes) -> vqb.Book:
        return find(identity, codebook)

    return resolve
