"""Index coder 0: one zstd frame of the payload (spec §5.3).

Also the reader of every zstd frame in a file (``iccp`` holds one too):
:func:`decompress_frame` checks the frame's stated content size against
what the caller expects *before* decompressing, because python-zstandard
allocates what a frame claims whatever ``max_output_size`` says.
"""

from __future__ import annotations

from .. import packing
from ..errors import FormatError
from . import Coder, HeaderLike

__all__ = ["CODER", "MAGIC", "compress", "decompress_frame"]

MAGIC = b"\x28\xb5\x2f\xfd"  # RFC 8878's frame magic
DEFAULT_LEVEL = 19


def compress(payload: bytes, level: int = DEFAULT_LEVEL, threads: int = 0) -> bytes:
    """One zstd frame of *payload* that states its content size (spec §1)."""
    import zstandard

    params = zstandard.ZstdCompressionParameters.from_level(
        level, source_size=len(payload), write_content_size=True, threads=threads
    )
    return zstandard.ZstdCompressor(compression_params=params).compress(payload)


def decompress_frame(kind: str, body: memoryview, *, exact: int | None, bound: int) -> bytes:
    """The content of the one zstd frame that is *body*, after checking its stated
    size: equal to *exact* when given, at most *bound* (spec §7, step 5)."""
    import zstandard

    if bytes(body[:4]) != MAGIC:
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
    if size > bound:  # a bound the format sets (iccp's 16 MiB): a malformed file
        raise FormatError(f"section {kind}: zstd frame claims {size} bytes, above the {bound:,} "
                          "the format allows")
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
    if not obj.eof:  # all the content came out, but the frame's blocks or checksum did not end
        raise FormatError(f"section {kind}: zstd frame is truncated (its last block or checksum is missing)")
    if rest:
        raise FormatError(f"section {kind}: {len(rest)} unexpected bytes after the zstd frame")
    return out


class _Zstd(Coder):
    id = 0
    name = "zstd"
    tie_rank = 1  # decodes fastest of all: wins a tie against bzip2

    def encode(self, payload: bytes, header: HeaderLike, codebook: bytes, /, *,
               level: int | None = None, threads: int = 0) -> bytes:
        return compress(payload, DEFAULT_LEVEL if level is None else level, threads)

    def decode(self, data: memoryview, header: HeaderLike, codebook: bytes, /, *,
               samples: bool = False) -> bytes:
        size = packing.payload_size(header.width * header.height, header.index_bits, header.index_layout)
        return decompress_frame("INDX", data, exact=size, bound=size)


CODER = _Zstd()
