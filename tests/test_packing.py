"""Index layouts 0 (packed) and 1 (bytes), checked against bitarray as an independent packer."""

from __future__ import annotations

import numpy as np
import pytest
from bitarray import bitarray

from vqcodec import packing
from vqcodec.errors import FormatError, OptionError


def reference_pack(values, bits: int) -> bytes:
    ba = bitarray(endian="big")
    for v in values:
        ba.extend(format(int(v), f"0{bits}b"))
    return ba.tobytes()  # bitarray pads the last byte with zeros


@pytest.mark.parametrize("bits", range(1, 17))
@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 61, 1000])
def test_packed_matches_bitarray(bits, count):
    rng = np.random.default_rng(bits * 1000 + count)
    values = rng.integers(0, 1 << bits, count)
    data = packing.pack(values, bits=bits)
    assert data == reference_pack(values, bits)
    assert len(data) == packing.packed_size(count, bits)
    back = packing.unpack(data, bits=bits, count=count, k=1 << bits)
    assert back.dtype == (np.uint8 if bits <= 8 else np.uint16)
    np.testing.assert_array_equal(back, values)


def test_spec_example_bits_3():
    # spec §5.0: indices 5, 1, 7 at 3 bits -> A7 80
    assert packing.pack(np.array([5, 1, 7]), bits=3) == bytes.fromhex("a780")


def test_rows_are_not_padded():
    # a 3×3 map at 3 bits: 27 bits -> 4 bytes, not 3 rows of 2 bytes
    grid = np.arange(9).reshape(3, 3) % 8
    assert len(packing.pack(grid, bits=3)) == 4


def test_chunk_boundaries(monkeypatch):
    monkeypatch.setattr(packing, "_CHUNK", 24)
    rng = np.random.default_rng(1)
    for bits in (3, 5, 7, 11, 13):
        values = rng.integers(0, 1 << bits, 1001)
        data = packing.pack(values, bits=bits)
        assert data == reference_pack(values, bits)
        np.testing.assert_array_equal(packing.unpack(data, bits=bits, count=1001, k=1 << bits), values)


@pytest.mark.parametrize("bits", [1, 8, 9, 16])
def test_bytes_layout(bits):
    values = np.arange(50) % (1 << bits)
    data = packing.pack(values, bits=bits, layout=packing.BYTES)
    width = 1 if bits <= 8 else 2
    assert len(data) == 50 * width
    if width == 2:
        assert data[:4] == bytes([0, 0, 1, 0])  # little-endian u16
    np.testing.assert_array_equal(
        packing.unpack(data, bits=bits, count=50, k=1 << bits, layout=packing.BYTES), values
    )


def test_index_not_below_k_is_refused():
    data = packing.pack(np.array([0, 1, 2, 4]), bits=3)
    with pytest.raises(FormatError, match=r"index 4 at pixel 3 is not below k = 4"):
        packing.unpack(data, bits=3, count=4, k=4)


@pytest.mark.parametrize("layout", [packing.PACKED, packing.BYTES])
def test_wrong_payload_size_is_refused(layout):
    data = packing.pack(np.arange(10), bits=4, layout=layout)
    with pytest.raises(FormatError, match="payload is"):
        packing.unpack(data[:-1], bits=4, count=10, k=16, layout=layout)
    with pytest.raises(FormatError, match="payload is"):
        packing.unpack(data + b"\0", bits=4, count=10, k=16, layout=layout)


def test_bad_options():
    with pytest.raises(OptionError, match="bits per index must be 1 to 16"):
        packing.pack(np.arange(3), bits=0)
    with pytest.raises(OptionError, match="does not fit in 2 bits"):
        packing.pack(np.arange(5), bits=2)
    with pytest.raises(FormatError, match="unknown index layout 9"):
        packing.unpack(b"", bits=2, count=0, k=4, layout=9)


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("count", [0, 1, 3, 7, 8, 9, 1001, (1 << 20) + 3])
def test_whole_indices_per_byte_match_the_bit_string(bits, count):
    """bits 1, 2 and 4 take a shift-based path; it must give the spec's bit string exactly."""
    flat = np.random.default_rng(count).integers(0, 1 << bits, count).astype(np.uint8)
    string = "".join(format(int(v), f"0{bits}b") for v in flat[:2000])
    data = packing.pack(flat, bits=bits, layout=packing.PACKED)
    assert len(data) == (count * bits + 7) // 8
    got = "".join(format(b, "08b") for b in data[: len(string) // 8 + 1])
    assert got[: len(string)] == string
    if count and count * bits % 8:  # the last byte's padding is 0 bits
        assert data[-1] & ((1 << (8 - count * bits % 8)) - 1) == 0
    np.testing.assert_array_equal(packing.unpack(data, bits=bits, count=count, k=1 << bits, layout=packing.PACKED), flat)
