"""vqcodec.vqb: the codebook file of spec/FORMAT.md §11.1-11.3, byte for byte, and its refusals."""

from __future__ import annotations

import hashlib
import struct
import zlib

import numpy as np
import pytest

from vqcodec import CodebookError, vqb
from vqcodec.quantize import Codebook

ENTRIES = bytes(range(12))  # k = 2 entries of 2x1 RGB blocks: D = 6


def book(**changes) -> vqb.Book:
    fields = dict(channels=3, block_width=2, block_height=1, k=2, entries=ENTRIES)
    fields.update(changes)
    return vqb.Book(**fields)


def test_layout_is_the_specs_table():
    data = vqb.write(book())
    assert len(data) == 24 + 2 * 6
    assert data[:8] == b"\x89VQB\r\n\x1a\n"
    assert data[8:10] == b"\x01\x00"  # version 1.0
    # channels, sample_depth, block_width, block_height, colour_space, reserved, k (u32 LE)
    assert data[10:20] == bytes([3, 8, 2, 1, 0, 0]) + struct.pack("<I", 2)
    assert data[20:32] == ENTRIES
    assert data[32:] == struct.pack("<I", zlib.crc32(data[:32]))


def test_identity_is_the_sha256_of_the_body():
    data = vqb.write(book())
    assert book().identity == hashlib.sha256(data[10:-4]).digest()
    # the quantizer's Codebook hashes the same bytes: one identity
    cb = Codebook(np.frombuffer(ENTRIES, np.uint8).reshape(2, 6), channels=3, block=(2, 1))
    assert cb.sha256 == book().identity.hex()
    assert book(entries=bytes(12)).identity != book().identity
    assert book(block_width=1, block_height=2).identity != book().identity  # the shape counts


def test_round_trip_and_version_minor_is_informational():
    data = vqb.write(book())
    assert vqb.read(data) == book()
    later = bytearray(data)
    later[9] = 7
    later[-4:] = struct.pack("<I", zlib.crc32(bytes(later[:-4])))
    assert vqb.read(bytes(later)).identity == book().identity


def _with(data: bytes, offset: int, value: bytes) -> bytes:
    """*data* with *value* at *offset* and the CRC made right again."""
    b = bytearray(data)
    b[offset : offset + len(value)] = value
    b[-4:] = struct.pack("<I", zlib.crc32(bytes(b[:-4])))
    return bytes(b)


@pytest.mark.parametrize("offset, value, message", [
    (0, b"\x89VQI", "not a codebook file: bad magic"),
    (8, b"\x02", "unsupported version 2.0"),
    (10, b"\x05", "channels 5"),
    (11, b"\x10", "sample_depth 16"),
    (12, b"\x11", "block 17x1"),
    (13, b"\x00", "block 2x0"),
    (14, b"\x01", "colour_space 1"),
    (15, b"\x01", "reserved byte 15"),
    (16, struct.pack("<I", 0), "k = 0"),
    (16, struct.pack("<I", 2**32 - 1), "k = 4294967295"),
    (16, struct.pack("<I", 65536), "truncated: 36 bytes, expected 393240"),
    (16, struct.pack("<I", 1), "6 bytes after the CRC"),
])
def test_refusals_one_line_before_allocating(offset, value, message):
    with pytest.raises(CodebookError, match=message) as info:
        vqb.read(_with(vqb.write(book()), offset, value))
    assert "\n" not in str(info.value)


def test_crc_mismatch():
    data = bytearray(vqb.write(book()))
    data[25] ^= 0x40
    with pytest.raises(CodebookError, match=r"CRC mismatch \(expected 0x[0-9a-f]{8}, found 0x[0-9a-f]{8}\)"):
        vqb.read(bytes(data))


@pytest.mark.parametrize("cut", [0, 1, 7, 8, 9, 19, 20, 21, 31, 35])
def test_truncated(cut):
    with pytest.raises(CodebookError, match="truncated|bad magic"):
        vqb.read(vqb.write(book())[:cut])


def test_book_checks_its_fields():
    with pytest.raises(CodebookError, match="11 bytes of entries, expected k × 6 = 12"):
        book(entries=ENTRIES[:11])
    with pytest.raises(CodebookError, match="k = 65537"):
        book(k=65537)
    assert book().dim == 6 and book().block == (2, 1) and "identity" in repr(book())
