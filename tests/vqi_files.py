"""Test helpers over .vqi bytes: walk, build and replace sections, mutate blobs.

An independent reading of spec §2.2 (not the container's own code), shared by
the container, corruption and context-coder tests.
"""

from __future__ import annotations

import struct
import zlib


def sections(data: bytes) -> list[tuple[bytes, bytes, int]]:
    """Independent section walker (spec §2.2): (type, data, crc) after the signature."""
    pos, out = 10, []
    while pos < len(data):
        length, kind = struct.unpack_from("<I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from("<I", data, pos + 8 + length)
        out.append((kind, body, crc))
        pos += 12 + length
    return out


def section(kind: bytes, body: bytes) -> bytes:
    """One section with its length and CRC made right."""
    return struct.pack("<I4s", len(body), kind) + body + struct.pack("<I", zlib.crc32(kind + body))


def rebuild(data: bytes, replace: dict[bytes, bytes]) -> bytes:
    """*data* with the bodies of the named sections replaced (lengths and CRCs made right)."""
    out = data[:10]
    for kind, body, _ in sections(data):
        out += section(kind, replace.get(kind, body))
    return out


def mutate(draw_data, blob: bytearray, max_run: int) -> bytes:
    """1 to 4 random overwrites, insertions and deletions (runs of up to *max_run*
    bytes), drawn from a hypothesis ``st.data()`` object."""
    from hypothesis import strategies as st

    for _ in range(draw_data.draw(st.integers(1, 4))):
        op = draw_data.draw(st.sampled_from(["set", "insert", "delete"]))
        pos = draw_data.draw(st.integers(0, len(blob) - 1))
        if op == "set":
            blob[pos] = draw_data.draw(st.integers(0, 255))
        elif op == "insert":
            blob[pos:pos] = draw_data.draw(st.binary(min_size=1, max_size=max_run))
        elif len(blob) > 1:
            del blob[pos : pos + draw_data.draw(st.integers(1, max_run))]
    return bytes(blob)


def ctx_file(image, k: int, **options) -> bytes:
    """A coder-2 file (*options*: more encoder options, such as ``block``); without the
    C extension, made by the Python reference coder."""
    import dataclasses

    import vqcodec
    from vqcodec import codec, container, packing
    from vqcodec.coders import ctx as ctxcoder

    if ctxcoder.available():
        return vqcodec.encode(image, k=k, coder="ctx", **options)
    enc = codec.encode_pixels(image, k=k, coder="zstd", layout="bytes", **options)
    header = dataclasses.replace(enc.header, index_coder=2)
    payload = packing.pack(enc.indices, bits=header.index_bits, layout=packing.BYTES)
    ref = container.read(enc.data, inflate=False).codebook_ref  # a shared codebook's identity, or None
    return container.write(header, enc.codebook.tobytes(), payload,
                           coded_index=ctxcoder.encode_reference(enc.indices, enc.codebook),
                           codebook_ref=ref)
