"""spec/FORMAT.md as code: the signature, the sections and their order, HEAD, BOOK, the limits.

Bytes in, bytes out.  This module is the spec's framing, section by section
(§2 file layout, §3 HEAD, §4 BOOK, §5 INDX, §6 ancillary sections, §7 the
decoder's checks); it knows nothing of pixels or k-means.  What ``INDX``
holds is the index coders' business (:mod:`vqcodec.coders`): this module
looks the file's ``index_coder`` up in their registry and hands it the
section's data, the header and the codebook.

Section names follow the spec: ``HEAD``, ``iccp``, ``BOOK`` (or ``BREF``,
naming a shared codebook, §11), ``INDX``, ``DONE``.  Field names of :class:`Header` are the spec's.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from . import coders, packing, vqb
from .coders import zstd
from .errors import CodebookError, FormatError, IntegrityError, LimitError, UnsupportedVersionError
from .limits import DEFAULT_MAX_PIXELS, MAX_BLOCK, MAX_K

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "SUPPORTED_MAJOR",
    "DEFAULT_MAX_PIXELS",
    "MAX_ICC_BYTES",
    "CHANNEL_LAYOUTS",
    "ORDER",
    "Header",
    "SectionInfo",
    "Container",
    "bits_for",
    "index_payload_size",
    "version_for",
    "write",
    "read",
    "read_header",
]

# ---------------------------------------------------------------- §2.1 signature

MAGIC = b"\x89VQI\r\n\x1a\n"
FORMAT_VERSION = (1, 3)  # the newest version read and written; a file is stamped
# with the lowest version that holds it (spec §2.1)
BLOCKS_VERSION = (1, 2)  # the version that brought block vectors (spec §3.1)
SUPPORTED_MAJOR = 1
SIGNATURE_SIZE = len(MAGIC) + 2

# ---------------------------------------------------------------- §2.2 sections

MAX_SECTION_LENGTH = 2**31 - 1
_SECTION_HEAD = struct.Struct("<I4s")
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class SectionInfo:
    """Where a section sits in the file (for ``vqcodec info``)."""

    type: str
    offset: int
    length: int
    crc: int


def _section(kind: bytes, data: bytes) -> bytes:
    """``length | type | data | CRC-32 of type and data``."""
    if len(data) > MAX_SECTION_LENGTH:
        raise LimitError(f"section {kind.decode()}: {len(data)} bytes is above the 2^31-1 limit")
    crc = zlib.crc32(data, zlib.crc32(kind))
    return b"".join((_SECTION_HEAD.pack(len(data), kind), data, _U32.pack(crc)))


def _iter_sections(data: memoryview):
    """Yield (type, offset, length, crc, data) for each section, checking framing and CRC."""
    pos = SIGNATURE_SIZE
    end = len(data)
    while pos < end:
        if end - pos < _SECTION_HEAD.size:
            raise FormatError(
                f"truncated file: {end - pos} bytes at offset {pos}, a section head needs 8"
            )
        length, raw_type = _SECTION_HEAD.unpack_from(data, pos)
        if not raw_type.isalpha() or not raw_type.isascii():
            raise FormatError(f"section at offset {pos}: type {raw_type!r} is not four ASCII letters")
        kind = raw_type.decode("ascii")
        if length > MAX_SECTION_LENGTH:
            raise FormatError(f"section {kind} at offset {pos}: length {length} is above 2^31-1")
        if length + 4 > end - pos - 8:
            raise FormatError(
                f"truncated file: section {kind} at offset {pos} needs {length + 12} bytes, "
                f"{end - pos} left"
            )
        body = data[pos + 8 : pos + 8 + length]
        (stored,) = _U32.unpack_from(data, pos + 8 + length)
        actual = zlib.crc32(body, zlib.crc32(raw_type))
        if stored != actual:
            raise IntegrityError(
                f"section {kind} at offset {pos}: CRC mismatch "
                f"(expected 0x{stored:08x}, found 0x{actual:08x}); the file is damaged"
            )
        yield kind, pos, length, stored, body
        pos += 12 + length


# ---------------------------------------------------------------- §2.3 section order


@dataclass(frozen=True)
class Rule:
    """One row of spec §2.3: which sections must come before this one, which after it."""

    required: bool
    after: tuple[str, ...] = ()
    before: tuple[str, ...] = ()


ORDER: dict[str, Rule] = {
    "HEAD": Rule(required=True),  # first; checked on its own
    "iccp": Rule(required=False, after=("HEAD",), before=("INDX",)),
    "BOOK": Rule(required=True, after=("HEAD",), before=("INDX",)),
    "BREF": Rule(required=True, after=("HEAD",), before=("INDX",)),  # §11: instead of BOOK
    "INDX": Rule(required=True, after=("BOOK",)),
    "DONE": Rule(required=True, after=("INDX",)),  # last: nothing may follow it
}
"""Spec §2.3, the known sections (each at most once; unknown ancillary ones anywhere).

``BOOK`` and ``BREF`` are one slot: the file has the one its ``codebook_source``
names (:data:`CODEBOOK_SECTION`), and ``INDX`` comes after it."""

CODEBOOK_SECTION = {0: "BOOK", 1: "BREF"}
"""``codebook_source`` -> the section that holds the codebook (0) or names it (1, spec §11)."""
BREF_SIZE = 32  # a SHA-256

# ---------------------------------------------------------------- §3 HEAD

HEAD_SIZE = 24
_HEAD = struct.Struct("<IIBBBBIBBBBB3s")
CHANNEL_LAYOUTS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def bits_for(k: int) -> int:
    """Bits per index for a codebook of *k* entries: max(1, ceil(log2 k))."""
    if k < 1:
        raise FormatError(f"k must be at least 1, found {k}")
    return max(1, (k - 1).bit_length())


@dataclass(frozen=True)
class Header:
    """The ``HEAD`` section (spec §3); field names are the spec's."""

    width: int
    height: int
    channels: int
    k: int
    index_layout: int
    index_coder: int = 0
    sample_depth: int = 8
    block_width: int = 1
    block_height: int = 1
    stages: int = 1
    codebook_source: int = 0
    index_bits: int = field(default=-1)  # -1: derive from k (spec §3)

    def __post_init__(self) -> None:
        if self.index_bits == -1:
            object.__setattr__(self, "index_bits", bits_for(self.k) if self.k >= 1 else 0)

    @property
    def mode(self) -> str:
        """The channel layout's name: L, LA, RGB or RGBA."""
        return CHANNEL_LAYOUTS[self.channels]

    @property
    def pixel_count(self) -> int:
        """width × height."""
        return self.width * self.height

    @property
    def block(self) -> tuple[int, int]:
        """(block_width, block_height): the pixels one index stands for (spec §3.1)."""
        return self.block_width, self.block_height

    @property
    def entry_size(self) -> int:
        """Bytes per codebook entry: block_width × block_height × channels (spec §4)."""
        return self.block_width * self.block_height * self.channels

    @property
    def map_width(self) -> int:
        """Indices per row of the index map: ⌈width / block_width⌉ (spec §3.1)."""
        return -(-self.width // self.block_width)

    @property
    def map_height(self) -> int:
        """Rows of the index map: ⌈height / block_height⌉ (spec §3.1)."""
        return -(-self.height // self.block_height)

    @property
    def padded_pixel_count(self) -> int:
        """Pixels of the blocks before the crop: the count a decoder's limit sees (spec §7)."""
        return self.map_width * self.block_width * self.map_height * self.block_height

    def index_map(self) -> coders.IndexMap:
        """What the index coders see: the map of ⌈W/bw⌉ × ⌈H/bh⌉ indices and its entries."""
        return coders.IndexMap(self.map_width, self.map_height, self.entry_size, self.k, self.index_bits,
                        self.index_layout, self.index_coder)

    def pack(self) -> bytes:
        """The 24 bytes of ``HEAD.data`` (spec §3), little-endian."""
        return _HEAD.pack(
            self.width, self.height, self.channels, self.sample_depth,
            self.block_width, self.block_height, self.k, self.index_bits,
            self.index_layout, self.index_coder, self.stages, self.codebook_source, b"\0\0\0",
        )


def _parse_head(body: memoryview) -> Header:
    if len(body) < HEAD_SIZE:
        raise FormatError(f"HEAD: {len(body)} bytes, at least {HEAD_SIZE} expected")
    (width, height, channels, depth, bw, bh, k, bits, layout, coder, stages, source,
     reserved) = _HEAD.unpack_from(body, 0)
    header = Header(
        width=width, height=height, channels=channels, sample_depth=depth,
        block_width=bw, block_height=bh, k=k, index_bits=bits, index_layout=layout,
        index_coder=coder, stages=stages, codebook_source=source,
    )
    _check_header(header)
    if reserved != b"\0\0\0":
        raise UnsupportedVersionError(
            f"HEAD: reserved bytes 21-23 are {reserved.hex(' ')}, expected 00 00 00 "
            f"(a feature of a newer format version?)"
        )
    extra = bytes(body[HEAD_SIZE:])
    if extra.strip(b"\0"):  # spec §3: appended fields are "as in 1.0" only when all zero
        first = HEAD_SIZE + next(i for i, b in enumerate(extra) if b)
        raise UnsupportedVersionError(
            f"HEAD: byte {first} is 0x{body[first]:02x}, a field this reader does not know "
            f"(bytes from {HEAD_SIZE} on must be 0: a feature of a newer format version?)"
        )
    return header


def _check_header(h: Header) -> None:
    if h.width < 1 or h.height < 1:
        raise FormatError(f"HEAD: image size {h.width}×{h.height}; both must be at least 1")
    if h.channels not in CHANNEL_LAYOUTS:
        raise FormatError(f"HEAD: channels {h.channels}; expected 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)")
    if h.block_width < 1 or h.block_height < 1:
        raise FormatError(f"HEAD: block {h.block_width}×{h.block_height}; both must be at least 1")
    unsupported = []
    if h.sample_depth != 8:
        unsupported.append(f"sample_depth {h.sample_depth} (supported: 8)")
    if h.block_width > MAX_BLOCK or h.block_height > MAX_BLOCK:
        unsupported.append(f"block vectors {h.block_width}×{h.block_height} "
                           f"(supported: 1 to {MAX_BLOCK} each)")
    if h.stages != 1:
        unsupported.append(f"{h.stages} codebook stages (supported: 1)")
    if h.codebook_source not in CODEBOOK_SECTION:
        unsupported.append(f"codebook_source {h.codebook_source} (supported: 0 embedded, 1 shared)")
    if h.index_layout not in packing.LAYOUTS:
        unsupported.append(f"index_layout {h.index_layout} (supported: {sorted(packing.LAYOUTS)})")
    if h.index_coder not in coders.ids():
        unsupported.append(f"index_coder {h.index_coder} (supported: {coders.ids()})")
    if unsupported:
        raise UnsupportedVersionError("HEAD: this reader does not support " + "; ".join(unsupported))
    if not 1 <= h.k <= MAX_K:
        raise FormatError(f"HEAD: k = {h.k}; expected 1 to {MAX_K}")
    if h.index_bits != bits_for(h.k):
        raise FormatError(
            f"HEAD: index_bits = {h.index_bits} does not match k = {h.k} (expected {bits_for(h.k)})"
        )
    refusal = coders.by_id(h.index_coder).refusal(h.k, h.index_layout)
    if refusal is not None:
        raise FormatError(f"HEAD: {refusal}")


def _check_size(header: Header, max_pixels: int | None) -> None:
    """Spec §7 step 3: the pixel count (of the blocks, padding included) against the limit,
    before anything is allocated."""
    if max_pixels is not None and header.padded_pixel_count > max_pixels:
        padded = "" if header.padded_pixel_count == header.pixel_count else \
            f" ({header.padded_pixel_count:,} in {header.block_width}×{header.block_height} blocks)"
        raise LimitError(
            f"image is {header.width}×{header.height} = {header.pixel_count:,} pixels{padded}, "
            f"above the limit of {max_pixels:,} (max_pixels)"
        )


def version_for(header: Header) -> tuple[int, int]:
    """The lowest format version that holds a file with this header (spec §2.1)."""
    version = coders.by_id(header.index_coder).version
    if header.block != (1, 1):
        version = max(version, BLOCKS_VERSION)
    if header.codebook_source == 1:  # §11
        version = max(version, (1, 2))
    return version



# ---------------------------------------------------------------- §5 INDX


def index_payload_size(header: Header) -> int:
    """The exact size of the index payload (spec §5): one index per block."""
    return packing.payload_size(header.map_width * header.map_height, header.index_bits,
                                header.index_layout)


# ---------------------------------------------------------------- §6 iccp

MAX_ICC_BYTES = 16 * 1024 * 1024


# ---------------------------------------------------------------- writing


def write(
    header: Header,
    codebook: bytes,
    index_payload: bytes,
    /,
    *,
    icc_profile: bytes | None = None,
    level: int | None = None,
    threads: int = 0,
    coded_index: bytes | None = None,
    codebook_ref: bytes | None = None,
) -> bytes:
    """Serialise a file. The caller gives the raw (uncompressed) index payload.

    With ``header.codebook_source`` = 1 the file names its codebook by
    *codebook_ref* (the identity of its ``.vqb``, spec §11) in a ``BREF``
    section instead of holding it; *codebook* is still given (the context
    coder orders its literals by the entries).

    *coded_index*, when given, is the index coder's ``encode(index_payload,
    ...)`` already made by the caller (an encoder that tried several coders
    keeps the winner instead of coding it again); otherwise the coder
    ``header.index_coder`` codes it (zstd at *level*, on *threads*).
    """
    _check_header(header)
    expected_book = header.k * header.entry_size
    if len(codebook) != expected_book:
        raise FormatError(f"BOOK: expected {expected_book} bytes, found {len(codebook)}")
    size = index_payload_size(header)
    if len(index_payload) != size:
        raise FormatError(
            f"INDX: payload of {len(index_payload)} bytes does not fit layout "
            f"{header.index_layout} (size {size})"
        )
    parts = [MAGIC, bytes(version_for(header)), _section(b"HEAD", header.pack())]
    if icc_profile:
        if len(icc_profile) > MAX_ICC_BYTES:
            raise LimitError(f"ICC profile of {len(icc_profile)} bytes is above {MAX_ICC_BYTES}")
        parts.append(_section(b"iccp", zstd.compress(bytes(icc_profile), 19)))
    if header.codebook_source == 1:
        if codebook_ref is None or len(codebook_ref) != BREF_SIZE:
            raise FormatError(f"BREF: a shared codebook is named by its {BREF_SIZE}-byte SHA-256, "
                              f"found {codebook_ref!r}")
        parts.append(_section(b"BREF", bytes(codebook_ref)))
    else:
        parts.append(_section(b"BOOK", bytes(codebook)))
    if coded_index is None:
        coded_index = coders.by_id(header.index_coder).encode(
            index_payload, header.index_map(), bytes(codebook), level=level, threads=threads)
    parts.append(_section(b"INDX", coded_index))
    parts.append(_section(b"DONE", b""))
    return b"".join(parts)


# ---------------------------------------------------------------- reading (§7)


@dataclass(frozen=True)
class Container:
    """A parsed and fully checked .vqi file."""

    version: tuple[int, int]
    header: Header
    codebook: bytes
    index_payload: bytes
    icc_profile: bytes | None
    sections: tuple[SectionInfo, ...]
    # read(..., samples=True) with an index coder that looks the codebook up as
    # it decodes (coder 2): the image's samples (H x W x channels bytes), and
    # index_payload is empty
    samples: np.ndarray | None = None
    # codebook_source 1: the identity of the shared codebook (BREF, spec §11); codebook
    # holds its entries once resolved (None when read with inflate=False)
    codebook_ref: bytes | None = None


def _check_signature(data: bytes | memoryview) -> tuple[int, int]:
    if len(data) < len(MAGIC) or bytes(data[: len(MAGIC)]) != MAGIC:
        head = bytes(data[: len(MAGIC)])
        if MAGIC.startswith(head) and len(head) < len(MAGIC):
            raise FormatError(f"truncated file: {len(data)} bytes, shorter than the signature")
        raise FormatError(
            f"not a VQI file: bad magic (expected {MAGIC.hex(' ')}, found {head.hex(' ') or 'nothing'})"
        )
    if len(data) < SIGNATURE_SIZE:
        raise FormatError(f"truncated file: {len(data)} bytes, no version after the magic")
    major, minor = data[8], data[9]
    if major != SUPPORTED_MAJOR:
        raise UnsupportedVersionError(
            f"unsupported format version {major}.{minor}: this reader reads version "
            f"{SUPPORTED_MAJOR}.x files (up to {FORMAT_VERSION[0]}.{FORMAT_VERSION[1]})"
        )
    return major, minor


def read_header(data: bytes | bytearray | memoryview, /) -> tuple[tuple[int, int], Header]:
    """Check the signature and parse ``HEAD`` only (cheap: for ``info`` and lazy opens)."""
    view = memoryview(data).cast("B")
    version = _check_signature(view)
    for kind, pos, _length, _crc, body in _iter_sections(view):
        if kind != "HEAD":
            raise FormatError(f"section {kind} at offset {pos}: the first section must be HEAD")
        return version, _parse_head(body)
    raise FormatError("truncated file: no HEAD section after the signature")


class _Reader:
    """The state of one :func:`read`: what the sections seen so far gave.

    One method per known section, named as the spec names it; :func:`read`
    checks the order rules of :data:`ORDER` before calling it.
    """

    def __init__(self, *, max_pixels: int | None, inflate: bool, samples: bool,
                 codebooks: Callable[[bytes], vqb.Book] | None = None) -> None:
        self.max_pixels, self.inflate, self.want_samples = max_pixels, inflate, samples
        self.codebooks = codebooks
        self.codebook_ref: bytes | None = None
        self.header: Header | None = None
        self.codebook: bytes | None = None
        self.payload: bytes | None = None
        self.samples: np.ndarray | None = None
        self.icc: bytes | None = None

    def HEAD(self, body: memoryview, pos: int) -> None:
        self.header = _parse_head(body)
        _check_size(self.header, self.max_pixels)

    def iccp(self, body: memoryview, pos: int) -> None:
        self.icc = zstd.decompress_frame("iccp", body, exact=None, bound=MAX_ICC_BYTES)

    def BOOK(self, body: memoryview, pos: int) -> None:
        h = self.header
        expected = h.k * h.entry_size
        if len(body) != expected:
            what = "k × channels" if h.block == (1, 1) else "k × block_width × block_height × channels"
            raise FormatError(f"section BOOK: {len(body)} bytes, expected {what} = {expected}")
        self.codebook = bytes(body)

    def BREF(self, body: memoryview, pos: int) -> None:
        if len(body) != BREF_SIZE:
            raise FormatError(f"section BREF at offset {pos}: {len(body)} bytes, expected "
                              f"{BREF_SIZE} (the SHA-256 of a codebook file, §11)")
        self.codebook_ref = ref = bytes(body)
        if not self.inflate:
            return  # the codebook is needed only to decode the indices
        if self.codebooks is None:
            raise CodebookError(f"the file names the shared codebook {ref.hex()}, and no codebook "
                                f"resolver was given")
        book = self.codebooks(ref)
        if book.identity != ref:
            raise CodebookError(f"the resolver gave codebook {book.identity.hex()} for {ref.hex()}")
        h = self.header
        found = (book.channels, book.sample_depth, book.block_width, book.block_height, book.k)
        wanted = (h.channels, h.sample_depth, h.block_width, h.block_height, h.k)
        if found != wanted:
            raise FormatError(
                f"section BREF at offset {pos}: codebook {ref.hex()[:16]}... holds k = {book.k} entries "
                f"of {book.channels} channels in {book.block_width}x{book.block_height} blocks; HEAD "
                f"says k = {h.k}, {h.channels} channels, {h.block_width}x{h.block_height} (§11.2)")
        self.codebook = book.entries

    def INDX(self, body: memoryview, pos: int) -> None:
        if not self.inflate:
            self.payload = b""
            return
        # blocks: the codec looks the entries up and crops (§8); a coder gives indices
        samples = self.want_samples and self.header.block == (1, 1)
        decoded = coders.by_id(self.header.index_coder).decode(
            body, self.header.index_map(), self.codebook, samples=samples)
        if isinstance(decoded, bytes):
            self.payload = decoded
        else:  # the coder looked the codebook up as it decoded
            self.payload, self.samples = b"", decoded

    def DONE(self, body: memoryview, pos: int) -> None:
        if len(body) != 0:
            raise FormatError(f"section DONE at offset {pos}: length {len(body)}, expected 0")


_HANDLERS: dict[str, Callable[[_Reader, memoryview, int], None]] = {
    kind: getattr(_Reader, kind) for kind in ORDER}


def _check_order(kind: str, pos: int, seen: set[str], header: Header | None) -> None:
    """Spec §2.3 for a known section *kind* at *pos*, given the known sections *seen*."""
    if kind in seen:
        raise FormatError(f"section {kind} at offset {pos}: a second {kind}")
    book = CODEBOOK_SECTION[header.codebook_source] if header is not None else "BOOK"
    if kind in CODEBOOK_SECTION.values() and kind != book:
        raise FormatError(f"section {kind} at offset {pos}: a file whose codebook_source is "
                          f"{header.codebook_source} has a {book} section, not {kind} (§2.3)")
    rule = ORDER[kind]
    for later in rule.before:
        if later in seen:
            raise FormatError(f"section {kind} at offset {pos}: comes after {later}")
    for earlier in rule.after:
        earlier = book if earlier == "BOOK" else earlier
        if earlier not in seen:
            if kind == "DONE":
                raise FormatError(f"DONE before {earlier}: the file has no indices")
            raise FormatError(f"section {kind} at offset {pos}: comes before {earlier}")


def read(
    data: bytes | bytearray | memoryview,
    /,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    inflate: bool = True,
    samples: bool = False,
    codebooks: Callable[[bytes], vqb.Book] | None = None,
) -> Container:
    """Parse and check a whole file (spec §7). Raises a VqiError subclass on any defect.

    With ``inflate=False`` the INDX section is checked (framing, CRC) but not
    decompressed, and ``index_payload`` is empty: for describing a file of
    any size without the cost or risk of inflating it.  With ``samples=True``
    an index coder that can does the codebook lookup as it decodes (index
    coder 2, on its decoding threads): ``samples`` then holds the image and
    ``index_payload`` is empty; other coders give ``index_payload`` as usual.

    A file with a shared codebook (``codebook_source`` 1, spec §11) names it
    in ``BREF``; *codebooks* maps that 32-byte identity to the
    :class:`vqcodec.vqb.Book` (or raises :class:`CodebookError`).  It is
    called only when the indices are decoded (not with ``inflate=False``).
    """
    view = memoryview(data).cast("B")
    version = _check_signature(view)
    reader = _Reader(max_pixels=max_pixels, inflate=inflate, samples=samples, codebooks=codebooks)
    sections: list[SectionInfo] = []
    seen: set[str] = set()
    for kind, pos, length, crc, body in _iter_sections(view):
        if "DONE" in seen:
            raise FormatError(f"section {kind} at offset {pos}: data after the DONE section")
        sections.append(SectionInfo(kind, pos, length, crc))
        if not seen and kind != "HEAD":
            raise FormatError(f"section {kind} at offset {pos}: the first section must be HEAD")
        if kind in ORDER:
            _check_order(kind, pos, seen, reader.header)
            _HANDLERS[kind](reader, body, pos)
            seen.add(kind)
        elif kind[0].isupper():
            raise UnsupportedVersionError(
                f"section {kind} at offset {pos}: unknown critical section; this reader "
                f"knows format {FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"
            )
        # an unknown ancillary section: CRC checked, skipped
    if not seen:
        raise FormatError("truncated file: no HEAD section after the signature")
    if "DONE" not in seen:
        raise FormatError("truncated file: it ends before the DONE section")
    return Container(version, reader.header, reader.codebook, reader.payload, reader.icc,
                     tuple(sections), reader.samples, reader.codebook_ref)
