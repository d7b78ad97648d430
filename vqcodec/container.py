"""spec/FORMAT.md as code: signature, sections, CRCs, zstd, limits.

Bytes in, bytes out.  This module knows the byte layout of a .vqi file and
every check §7 of the specification asks of a decoder; it knows nothing of
pixels or k-means.  The index payload is handled here only as opaque bytes
whose size the header fixes (or bounds); ``packing`` turns it into indices.

Section names follow the spec: ``HEAD``, ``iccp``, ``BOOK``, ``INDX``,
``DONE``.  Field names of :class:`Header` are the spec's.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import FormatError, IntegrityError, LimitError, UnsupportedVersionError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "SUPPORTED_MAJOR",
    "DEFAULT_MAX_PIXELS",
    "MAX_ICC_BYTES",
    "Header",
    "SectionInfo",
    "Container",
    "bits_for",
    "index_payload_size",
    "compress_index",
    "version_for",
    "write",
    "read",
    "read_header",
]

MAGIC = b"\x89VQI\r\n\x1a\n"
FORMAT_VERSION = (1, 1)  # the newest version read and written; a file is stamped
# with the lowest version that holds it (spec §2.1): 1.1 only for index coder 2
SUPPORTED_MAJOR = 1
DEFAULT_MAX_PIXELS = 178_956_970
MAX_ICC_BYTES = 16 * 1024 * 1024
MAX_SECTION_LENGTH = 2**31 - 1
MAX_K = 65536

SIGNATURE_SIZE = len(MAGIC) + 2
HEAD_SIZE = 24
_HEAD = struct.Struct("<IIBBBBIBBBBB3s")
_SECTION_HEAD = struct.Struct("<I4s")
_U32 = struct.Struct("<I")

LAYOUT_PACKED = 0
LAYOUT_BYTES = 1
LAYOUT_STRIPES = 2
LAYOUTS = {LAYOUT_PACKED: "packed", LAYOUT_BYTES: "bytes", LAYOUT_STRIPES: "stripes"}
CODER_ZSTD = 0
CODER_BZIP2 = 1
CODER_CTX = 2  # format 1.1
CODERS = {CODER_ZSTD: "zstd", CODER_BZIP2: "bzip2", CODER_CTX: "ctx"}
CHANNEL_LAYOUTS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}

# zstd: frames must state their content size (RFC 8878 Frame_Content_Size).
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


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
    index_coder: int = CODER_ZSTD
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

    def pack(self) -> bytes:
        """The 24 bytes of ``HEAD.data`` (spec §4), little-endian."""
        return _HEAD.pack(
            self.width, self.height, self.channels, self.sample_depth,
            self.block_width, self.block_height, self.k, self.index_bits,
            self.index_layout, self.index_coder, self.stages, self.codebook_source, b"\0\0\0",
        )


@dataclass(frozen=True)
class SectionInfo:
    """Where a section sits in the file (for ``vqcodec info``)."""

    type: str
    offset: int
    length: int
    crc: int


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


# ---------------------------------------------------------------- sizes


def index_payload_size(header: Header) -> int:
    """The exact size of the index payload (spec §5)."""
    n = header.pixel_count
    if header.index_layout == LAYOUT_PACKED:
        return (n * header.index_bits + 7) // 8
    if header.index_layout in (LAYOUT_BYTES, LAYOUT_STRIPES):
        return n * ((header.index_bits + 7) // 8)
    raise UnsupportedVersionError(
        f"HEAD: index_layout {header.index_layout} is not supported "
        f"(this reader knows {sorted(LAYOUTS)})"
    )


# ---------------------------------------------------------------- writing


def _section(kind: bytes, data: bytes) -> bytes:
    if len(data) > MAX_SECTION_LENGTH:
        raise LimitError(f"section {kind.decode()}: {len(data)} bytes is above the 2^31-1 limit")
    crc = zlib.crc32(data, zlib.crc32(kind))
    return b"".join((_SECTION_HEAD.pack(len(data), kind), data, _U32.pack(crc)))


def _zstd_compress(payload: bytes, level: int, threads: int = 0) -> bytes:
    import zstandard

    params = zstandard.ZstdCompressionParameters.from_level(
        level, source_size=len(payload), write_content_size=True, threads=threads
    )
    cctx = zstandard.ZstdCompressor(compression_params=params)
    return cctx.compress(payload)


BZIP2_CHUNK = 4 * 1024 * 1024


def _bzip2_compress(payload: bytes, threads: int = 0) -> bytes:
    """bzip2 streams of BZIP2_CHUNK payload bytes each, concatenated (spec §5.4).

    Independent streams let large payloads be compressed on several cores
    (the bz2 module releases the GIL while it works).
    """
    import bz2

    chunks = [payload[i : i + BZIP2_CHUNK] for i in range(0, len(payload), BZIP2_CHUNK)] or [b""]
    if threads > 1 and len(chunks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            return b"".join(pool.map(lambda c: bz2.compress(c, 9), chunks))
    return b"".join(bz2.compress(c, 9) for c in chunks)


def compress_index(payload: bytes, coder: int, /, *, level: int = 19, threads: int = 0,
                   width: int = 0, codebook: bytes = b"", channels: int = 0) -> bytes:
    """The INDX data for *payload* under index_coder *coder* (zstd at *level*, or bzip2,
    or coder 2, which models the map: it needs the image *width* and the *codebook*
    bytes with their *channels*)."""
    if coder == CODER_CTX:
        return _ctx_compress(payload, width, codebook, channels)
    if coder == CODER_BZIP2:
        return _bzip2_compress(payload, threads)
    if coder == CODER_ZSTD:
        return _zstd_compress(payload, level, threads)
    raise FormatError(f"index_coder {coder} is not supported (this writer knows {sorted(CODERS)})")


def _codebook_array(codebook: bytes, channels: int):
    import numpy as np

    return np.frombuffer(codebook, dtype=np.uint8).reshape(-1, channels)


def _ctx_compress(payload: bytes, width: int, codebook: bytes, channels: int) -> bytes:
    import numpy as np

    from . import ctxcoder

    if width < 1 or channels < 1 or len(payload) % width:
        raise FormatError(f"index_coder 2: a payload of {len(payload)} bytes is not rows of {width}")
    grid = np.frombuffer(payload, dtype=np.uint8).reshape(-1, width)
    return ctxcoder.encode(grid, _codebook_array(codebook, channels))


def version_for(header: Header) -> tuple[int, int]:
    """The lowest format version that holds a file with this header (spec §2.1)."""
    return (1, 1) if header.index_coder == CODER_CTX else (1, 0)


def write(
    header: Header,
    codebook: bytes,
    index_payload: bytes,
    /,
    *,
    icc_profile: bytes | None = None,
    level: int = 19,
    threads: int = 0,
    coded_index: bytes | None = None,
) -> bytes:
    """Serialise a file. The caller gives the raw (uncompressed) index payload.

    *coded_index*, when given, is ``compress_index(index_payload,
    header.index_coder, ...)`` already made by the caller (an encoder that
    tried several coders keeps the winner instead of compressing it again).
    """
    _check_header(header)
    expected_book = header.k * header.channels
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
        parts.append(_section(b"iccp", _zstd_compress(bytes(icc_profile), 19)))
    parts.append(_section(b"BOOK", bytes(codebook)))
    if coded_index is None:
        coded_index = compress_index(index_payload, header.index_coder, level=level, threads=threads,
                                     width=header.width, codebook=bytes(codebook),
                                     channels=header.channels)
    parts.append(_section(b"INDX", coded_index))
    parts.append(_section(b"DONE", b""))
    return b"".join(parts)


# ---------------------------------------------------------------- reading


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


def _iter_sections(data: memoryview):
    """Yield (type, offset, data) for each section, checking framing and CRC."""
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
    return header


def _check_header(h: Header) -> None:
    if h.width < 1 or h.height < 1:
        raise FormatError(f"HEAD: image size {h.width}×{h.height}; both must be at least 1")
    if h.channels not in CHANNEL_LAYOUTS:
        raise FormatError(f"HEAD: channels {h.channels}; expected 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)")
    unsupported = []
    if h.sample_depth != 8:
        unsupported.append(f"sample_depth {h.sample_depth} (supported: 8)")
    if (h.block_width, h.block_height) != (1, 1):
        unsupported.append(f"block vectors {h.block_width}×{h.block_height} (supported: 1×1)")
    if h.stages != 1:
        unsupported.append(f"{h.stages} codebook stages (supported: 1)")
    if h.codebook_source != 0:
        unsupported.append(f"codebook_source {h.codebook_source} (supported: 0, embedded)")
    if h.index_layout not in LAYOUTS:
        unsupported.append(f"index_layout {h.index_layout} (supported: {sorted(LAYOUTS)})")
    if h.index_coder not in CODERS:
        unsupported.append(f"index_coder {h.index_coder} (supported: {sorted(CODERS)})")
    if unsupported:
        raise UnsupportedVersionError("HEAD: this reader does not support " + "; ".join(unsupported))
    if not 1 <= h.k <= MAX_K:
        raise FormatError(f"HEAD: k = {h.k}; expected 1 to {MAX_K}")
    if h.index_bits != bits_for(h.k):
        raise FormatError(
            f"HEAD: index_bits = {h.index_bits} does not match k = {h.k} (expected {bits_for(h.k)})"
        )
    if h.index_coder == CODER_CTX and (h.index_layout != LAYOUT_BYTES or h.k > 256):
        raise FormatError(
            f"HEAD: index_coder 2 needs index_layout 1 and k <= 256, found layout "
            f"{h.index_layout} and k = {h.k}"
        )


def _zstd_decompress(kind: str, body: memoryview, *, exact: int | None, bound: int) -> bytes:
    """Decompress one zstd frame after checking its declared size (spec §7.5)."""
    import zstandard

    if bytes(body[:4]) != _ZSTD_MAGIC:
        raise FormatError(f"section {kind}: not a zstd frame (magic {bytes(body[:4]).hex()})")
    try:
        params = zstandard.get_frame_parameters(bytes(body[:18]))
    except zstandard.ZstdError as e:
        raise FormatError(f"section {kind}: bad zstd frame header ({e})") from e
    size = params.content_size
    if size == zstandard.CONTENTSIZE_UNKNOWN or size == zstandard.CONTENTSIZE_ERROR:
        raise FormatError(f"section {kind}: zstd frame does not state its content size")
    if exact is not None and size != exact:
        raise FormatError(f"section {kind}: zstd frame holds {size} bytes, the header implies {exact}")
    if size > bound:
        raise LimitError(f"section {kind}: zstd frame claims {size} bytes, above the bound of {bound}")
    try:
        obj = zstandard.ZstdDecompressor().decompressobj()
        out = obj.decompress(bytes(body))
        rest = obj.unused_data
    except zstandard.ZstdError as e:
        raise FormatError(f"section {kind}: corrupt zstd data ({e})") from e
    if len(out) != size:
        raise FormatError(
            f"section {kind}: zstd frame decompressed to {len(out)} bytes, its header states {size}"
        )
    if rest:
        raise FormatError(f"section {kind}: {len(rest)} unexpected bytes after the zstd frame")
    return out


def _bzip2_decompress(kind: str, body: memoryview, size: int) -> bytes:
    """Concatenated bzip2 streams that must inflate to exactly *size* bytes.

    Output is bounded: never more than size + 1 bytes are produced, whatever
    the streams claim.
    """
    import bz2

    data = bytes(body)
    out = bytearray()
    while True:
        if not data.startswith(b"BZh"):
            raise FormatError(f"section {kind}: not a bzip2 stream at byte {len(body) - len(data)}")
        dec = bz2.BZ2Decompressor()
        try:
            out += dec.decompress(data, max_length=size + 1 - len(out))
            while not dec.eof and len(out) <= size and dec.needs_input is False:
                out += dec.decompress(b"", max_length=size + 1 - len(out))
        except (OSError, ValueError, EOFError) as e:
            raise FormatError(f"section {kind}: corrupt bzip2 data ({e})") from e
        if len(out) > size:
            raise FormatError(f"section {kind}: bzip2 data inflates past the {size} bytes the header implies")
        if not dec.eof:
            raise FormatError(f"section {kind}: bzip2 stream is truncated")
        data = dec.unused_data
        if not data:
            break
    if len(out) != size:
        raise FormatError(
            f"section {kind}: bzip2 data inflates to {len(out)} bytes, the header implies {size}"
        )
    return bytes(out)


def read_header(data: bytes | bytearray | memoryview, /) -> tuple[tuple[int, int], Header]:
    """Check the signature and parse ``HEAD`` only (cheap: for ``info`` and lazy opens)."""
    view = memoryview(data).cast("B")
    version = _check_signature(view)
    for kind, pos, _length, _crc, body in _iter_sections(view):
        if kind != "HEAD":
            raise FormatError(f"section {kind} at offset {pos}: the first section must be HEAD")
        return version, _parse_head(body)
    raise FormatError("truncated file: no HEAD section after the signature")


def read(
    data: bytes | bytearray | memoryview,
    /,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    inflate: bool = True,
    samples: bool = False,
) -> Container:
    """Parse and check a whole file (spec §7). Raises a VqiError subclass on any defect.

    With ``inflate=False`` the INDX section is checked (framing, CRC) but not
    decompressed, and ``index_payload`` is empty: for describing a file of
    any size without the cost or risk of inflating it.  With ``samples=True``
    an index coder that can does the codebook lookup as it decodes (index
    coder 2, on its decoding threads): ``samples`` then holds the image and
    ``index_payload`` is empty; other coders give ``index_payload`` as usual.
    """
    view = memoryview(data).cast("B")
    version = _check_signature(view)
    header: Header | None = None
    codebook: bytes | None = None
    payload: bytes | None = None
    image: np.ndarray | None = None
    icc: bytes | None = None
    sections: list[SectionInfo] = []
    done = False
    for kind, pos, length, crc, body in _iter_sections(view):
        if done:
            raise FormatError(f"section {kind} at offset {pos}: data after the DONE section")
        sections.append(SectionInfo(kind, pos, length, crc))
        if header is None:
            if kind != "HEAD":
                raise FormatError(f"section {kind} at offset {pos}: the first section must be HEAD")
            header = _parse_head(body)
            if max_pixels is not None and header.pixel_count > max_pixels:
                raise LimitError(
                    f"image is {header.width}×{header.height} = {header.pixel_count:,} pixels, "
                    f"above the limit of {max_pixels:,}; raise max_pixels if you trust this file"
                )
            continue
        if kind == "HEAD":
            raise FormatError(f"section HEAD at offset {pos}: a second HEAD")
        if kind == "DONE":
            if length != 0:
                raise FormatError(f"section DONE at offset {pos}: length {length}, expected 0")
            if payload is None:
                raise FormatError("DONE before INDX: the file has no indices")
            done = True
        elif kind == "BOOK":
            if codebook is not None:
                raise FormatError(f"section BOOK at offset {pos}: a second BOOK")
            expected = header.k * header.channels
            if length != expected:
                raise FormatError(
                    f"section BOOK: {length} bytes, expected k × channels = {expected}"
                )
            codebook = bytes(body)
        elif kind == "INDX":
            if codebook is None:
                raise FormatError(f"section INDX at offset {pos}: comes before BOOK")
            if payload is not None:
                raise FormatError(f"section INDX at offset {pos}: a second INDX")
            size = index_payload_size(header)
            if not inflate:
                payload = b""
            elif header.index_coder == CODER_BZIP2:
                payload = _bzip2_decompress("INDX", body, size)
            elif header.index_coder == CODER_CTX:
                from . import ctxcoder

                decoded = ctxcoder.decode(body, header.width, header.height,
                                          _codebook_array(codebook, header.channels), pixels=samples)
                payload, image = (b"", decoded) if samples else (decoded.tobytes(), None)
            else:
                payload = _zstd_decompress("INDX", body, exact=size, bound=size)
        elif kind == "iccp":
            if icc is not None:
                raise FormatError(f"section iccp at offset {pos}: a second iccp")
            if payload is not None:
                raise FormatError(f"section iccp at offset {pos}: comes after INDX")
            icc = _zstd_decompress("iccp", body, exact=None, bound=MAX_ICC_BYTES)
        elif kind[0].isupper():
            raise UnsupportedVersionError(
                f"section {kind} at offset {pos}: unknown critical section; this reader "
                f"knows format {FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"
            )
        # unknown ancillary section: CRC checked, skipped
    if header is None:
        raise FormatError("truncated file: no HEAD section after the signature")
    if not done:
        raise FormatError("truncated file: it ends before the DONE section")
    assert codebook is not None and payload is not None
    return Container(version, header, codebook, payload, icc, tuple(sections), image)
