"""Index coder 1: one or more bzip2 streams of the payload, concatenated (spec §5.3).

The encoder cuts a large payload into streams of :data:`CHUNK` bytes so
that they compress on several cores (the bz2 module releases the GIL).  The
decoder bounds its output: never more than the payload size + 1 bytes,
whatever the streams claim.
"""

from __future__ import annotations

from .. import packing
from ..errors import FormatError
from . import Coder, HeaderLike

__all__ = ["CODER", "CHUNK", "compress", "decompress"]

CHUNK = 4 * 1024 * 1024


def compress(payload: bytes, threads: int = 0) -> bytes:
    """bzip2 streams of :data:`CHUNK` payload bytes each, concatenated."""
    import bz2

    chunks = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)] or [b""]
    if threads > 1 and len(chunks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            return b"".join(pool.map(lambda c: bz2.compress(c, 9), chunks))
    return b"".join(bz2.compress(c, 9) for c in chunks)


def decompress(kind: str, body: memoryview, size: int) -> bytes:
    """Concatenated bzip2 streams that must inflate to exactly *size* bytes."""
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


class _Bzip2(Coder):
    id = 1
    name = "bzip2"
    tie_rank = 2  # the slowest decoder: loses every tie
    searches_layout = True  # its block sorting finds 2-D structure in stripe order on photos

    def encode(self, payload: bytes, header: HeaderLike, codebook: bytes, /, *,
               level: int | None = None, threads: int = 0) -> bytes:
        return compress(payload, threads)

    def decode(self, data: memoryview, header: HeaderLike, codebook: bytes, /, *,
               samples: bool = False) -> bytes:
        size = packing.payload_size(header.width * header.height, header.index_bits, header.index_layout)
        return decompress("INDX", data, size)


CODER = _Bzip2()
