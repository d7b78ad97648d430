"""spec/FORMAT.md §11 as code: the ``.vqb`` codebook file and its identity.

Bytes in, bytes out, like :mod:`vqcodec.container`.  A ``.vqb`` file holds
one codebook that many ``.vqi`` files share; a ``.vqi`` names it by its
*identity*, the SHA-256 of the file's body (every byte after the version and
before the CRC), in its ``BREF`` section.  :class:`Book` is the parsed file:
the header fields under the spec's names and the entries as bytes.

Every size is checked before anything is allocated: ``k`` and the block
shape against their ranges, then the file's length against the exact length
they imply.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .errors import CodebookError
from .limits import MAX_K

__all__ = ["MAGIC", "VERSION", "HEADER_SIZE", "MAX_BLOCK", "MAX_FILE_SIZE", "Book", "read", "write",
           "identity_body"]

MAGIC = b"\x89VQB\r\n\x1a\n"
VERSION = (1, 0)
HEADER_SIZE = 20  # magic, version, channels ... k; then the entries, then the CRC
MAX_BLOCK = 16
_BODY_HEAD = struct.Struct("<BBBBBBI")  # channels, sample_depth, bw, bh, colour_space, reserved, k
_CRC = struct.Struct("<I")
MAX_FILE_SIZE = HEADER_SIZE + MAX_K * 4 * MAX_BLOCK * MAX_BLOCK + _CRC.size
"""The largest valid .vqb file (k = 65536 RGBA 16×16 blocks: 64 MiB of entries)."""


def identity_body(channels: int, block_width: int, block_height: int, k: int, entries: bytes, *,
                  sample_depth: int = 8, colour_space: int = 0) -> bytes:
    """The bytes whose SHA-256 is a codebook's identity (spec §11.2): file bytes 10 to the CRC."""
    return _BODY_HEAD.pack(channels, sample_depth, block_width, block_height, colour_space, 0, k) \
        + bytes(entries)


@dataclass(frozen=True)
class Book:
    """A codebook file's content (spec §11.1); field names are the spec's.

    ``entries`` holds ``k × channels × block_width × block_height`` bytes:
    entry ``i`` is a block's pixels in raster order, channels interleaved.
    """

    channels: int
    block_width: int
    block_height: int
    k: int
    entries: bytes
    sample_depth: int = 8
    colour_space: int = 0

    def __post_init__(self) -> None:
        _check_fields(self.channels, self.sample_depth, self.block_width, self.block_height,
                      self.colour_space, 0, self.k)
        if len(self.entries) != self.k * self.dim:
            raise CodebookError(f"codebook: {len(self.entries)} bytes of entries, expected "
                                f"k × {self.dim} = {self.k * self.dim}")

    @property
    def dim(self) -> int:
        """Components per entry: channels × block_width × block_height."""
        return self.channels * self.block_width * self.block_height

    @property
    def block(self) -> tuple[int, int]:
        """(block_width, block_height)."""
        return self.block_width, self.block_height

    @property
    def identity(self) -> bytes:
        """The 32-byte SHA-256 a ``BREF`` section names this codebook by (spec §11.2)."""
        import hashlib  # here: OpenSSL's loading costs every process a few ms, most never hash

        return hashlib.sha256(identity_body(
            self.channels, self.block_width, self.block_height, self.k, self.entries,
            sample_depth=self.sample_depth, colour_space=self.colour_space)).digest()

    def __repr__(self) -> str:
        return (f"Book(k={self.k}, channels={self.channels}, block {self.block_width}x"
                f"{self.block_height}, identity {self.identity.hex()[:16]})")


def _check_fields(channels: int, depth: int, bw: int, bh: int, space: int, reserved: int, k: int) -> None:
    unsupported = []
    if depth != 8:
        unsupported.append(f"sample_depth {depth} (supported: 8)")
    if space != 0:
        unsupported.append(f"colour_space {space} (supported: 0)")
    if reserved != 0:
        unsupported.append(f"reserved byte 15 = {reserved} (expected 0)")
    if unsupported:
        raise CodebookError("codebook file: this reader does not support " + "; ".join(unsupported))
    if channels not in (1, 2, 3, 4):
        raise CodebookError(f"codebook file: channels {channels}; expected 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)")
    if not (1 <= bw <= MAX_BLOCK and 1 <= bh <= MAX_BLOCK):
        raise CodebookError(f"codebook file: block {bw}x{bh}; each side must be 1 to {MAX_BLOCK}")
    if not 1 <= k <= MAX_K:
        raise CodebookError(f"codebook file: k = {k}; expected 1 to {MAX_K}")


def write(book: Book, /) -> bytes:
    """The ``.vqb`` file of *book* (spec §11.1)."""
    body = identity_body(book.channels, book.block_width, book.block_height, book.k, book.entries,
                         sample_depth=book.sample_depth, colour_space=book.colour_space)
    head = MAGIC + bytes(VERSION)
    return head + body + _CRC.pack(zlib.crc32(body, zlib.crc32(head)))


def read(data: bytes | bytearray | memoryview, /) -> Book:
    """Parse and check a ``.vqb`` file (spec §11.3); :class:`CodebookError` on any defect."""
    view = memoryview(data).cast("B")
    size = len(view)
    if bytes(view[:8]) != MAGIC:
        if size < 8 and MAGIC.startswith(bytes(view)):
            raise CodebookError(f"codebook file: truncated: {size} bytes, shorter than the magic")
        raise CodebookError(f"not a codebook file: bad magic (expected {MAGIC.hex(' ')}, "
                            f"found {bytes(view[:8]).hex(' ') or 'nothing'})")
    if size < HEADER_SIZE:
        raise CodebookError(f"codebook file: truncated: {size} bytes, the header needs {HEADER_SIZE}")
    major, minor = view[8], view[9]
    if major != VERSION[0]:
        raise CodebookError(f"codebook file: unsupported version {major}.{minor}; this reader "
                            f"reads version {VERSION[0]}.x")
    channels, depth, bw, bh, space, reserved, k = _BODY_HEAD.unpack_from(view, 10)
    _check_fields(channels, depth, bw, bh, space, reserved, k)
    expected = HEADER_SIZE + k * channels * bw * bh + _CRC.size
    if size != expected:
        what = "truncated" if size < expected else f"{size - expected} bytes after the CRC"
        raise CodebookError(f"codebook file: {what}: {size} bytes, expected {expected} for k = {k} "
                            f"entries of {channels * bw * bh} bytes")
    (stored,) = _CRC.unpack_from(view, size - 4)
    actual = zlib.crc32(view[: size - 4])
    if stored != actual:
        raise CodebookError(f"codebook file: CRC mismatch (expected 0x{stored:08x}, found "
                            f"0x{actual:08x}); the file is damaged")
    return Book(channels=channels, sample_depth=depth, block_width=bw, block_height=bh,
                colour_space=space, k=k, entries=bytes(view[HEADER_SIZE: size - 4]))
