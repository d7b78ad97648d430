"""Hostile and damaged .vqi files: every one ends in a VqiError, fast and bounded.

Covers issue 4's decoder list: every truncation, every single-byte change of
the signature and header, random bit flips over whole files, random bytes,
lying fields, and a property-based fuzz run (bounded in CI; longer with
VQCODEC_FUZZ_EXAMPLES=100000).
"""

from __future__ import annotations

import os
import struct
import time
from typing import Iterator

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vqcodec
from vqcodec import container
from vqcodec.errors import (
    FormatError,
    IntegrityError,
    LimitError,
    UnsupportedVersionError,
    VqiError,
)
from vqi_files import ctx_file, mutate, section

FUZZ_EXAMPLES = int(os.environ.get("VQCODEC_FUZZ_EXAMPLES", "300"))
KINDS = ["bytes", "packed", "bzip2", "ctx", "blocks", "blocks-ctx", "shared", "shared-ctx", "cand",
         "blocks-cand", "shared-cand"]
MINOR_VERSION_OFFSET = 9  # spec §2.1: informational, never changes the image


def sample_image(seed: int = 0, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (6, channels), dtype=np.uint8)
    return base[rng.integers(0, 6, (9, 7))]


@pytest.fixture(scope="module")
def files() -> Iterator[dict[str, bytes]]:
    out = {}
    for layout in ("bytes", "packed"):
        out[layout] = vqcodec.encode(sample_image(), k=8, layout=layout, coder="zstd")
    out["bzip2"] = vqcodec.encode(sample_image(), k=8, layout="stripes", coder="bzip2")
    out["ctx"] = ctx_file(sample_image(), k=8)  # format 1.1
    out["blocks"] = vqcodec.encode(sample_image(channels=4), k=8, block=(2, 2), coder="zstd")  # 1.2
    out["blocks-ctx"] = ctx_file(sample_image(), k=8, block=(4, 2))
    # shared codebooks (spec §11, 1.2): the BREF's codebook is registered, so a decode that
    # gets past the damage finds it; a changed identity is then a missing codebook
    shared = np.random.default_rng(5).integers(0, 256, (6, 3), dtype=np.uint8)
    identity = vqcodec.register_codebook(shared)
    out["shared"] = vqcodec.encode(sample_image(), codebook=shared, coder="zstd")
    out["shared-ctx"] = ctx_file(sample_image(), k=8, codebook=shared)
    # format 1.3: index coder 3 (by name; without the C loops its Python loop writes the same bytes)
    out["cand"] = vqcodec.encode(sample_image(), k=8, coder="cand")
    out["blocks-cand"] = vqcodec.encode(sample_image(channels=2), k=8, block=(2, 3), coder="cand")
    out["shared-cand"] = vqcodec.encode(sample_image(), codebook=shared, coder="cand")
    yield out
    vqcodec.unregister_codebook(identity)


def decode_or_error(data: bytes):
    """Decode; return the pixels, or the VqiError. Anything else fails the test."""
    try:
        return vqcodec.decode(data)
    except VqiError as e:
        return e


@pytest.mark.parametrize("layout", KINDS)
def test_every_truncation_is_refused(files, layout):
    data = files[layout]
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            vqcodec.decode(data[:cut])


@pytest.mark.parametrize("layout", KINDS)
def test_every_single_byte_change_of_signature_and_header(files, layout):
    data = files[layout]
    expected = vqcodec.decode(data)
    end_of_head = 10 + 12 + 24
    for offset in range(end_of_head):
        for value in (0x00, 0xFF, data[offset] ^ 0x01, data[offset] ^ 0x80):
            if value == data[offset]:
                continue
            bad = bytearray(data)
            bad[offset] = value
            result = decode_or_error(bytes(bad))
            if offset == MINOR_VERSION_OFFSET:
                np.testing.assert_array_equal(result, expected)
            else:
                assert isinstance(result, VqiError), (offset, value)


@pytest.mark.parametrize("layout", KINDS)
def test_every_bit_flip_is_detected(files, layout):
    """Exhaustive over small files: each flip is detected, or is in the free minor-version byte."""
    data = files[layout]
    expected = vqcodec.decode(data)
    for offset in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[offset] ^= 1 << bit
            result = decode_or_error(bytes(bad))
            if offset == MINOR_VERSION_OFFSET:
                np.testing.assert_array_equal(result, expected)
            else:
                assert isinstance(result, VqiError), (offset, bit)


def test_flips_are_named_as_damage(files):
    data = bytearray(files["bytes"])
    data[len(data) - 20] ^= 0x10  # inside INDX
    with pytest.raises(IntegrityError, match=r"section INDX at offset \d+: CRC mismatch"):
        vqcodec.decode(bytes(data))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=400))
def test_random_bytes(blob):
    result = decode_or_error(blob)
    assert isinstance(result, VqiError)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_mutations_of_a_valid_file(files, data):
    """Random splices, overwrites and insertions: an error or (rarely) a valid image, nothing else."""
    blob = bytearray(files[data.draw(st.sampled_from(KINDS))])
    blob = mutate(data, blob, max_run=8)
    result = decode_or_error(blob)
    assert isinstance(result, (VqiError, np.ndarray))


# ---------------------------------------------------------------- lying files


def forged(width, height, channels=1, k=2, bits=None, layout=1, book=None, indx=None) -> bytes:
    if bits is None:
        bits = container.bits_for(k) if k >= 1 else 1
    head = struct.pack("<IIBBBBIBBBBB3s", width, height, channels, 8, 1, 1, k, bits, layout, 0, 1, 0,
                       b"\0\0\0")
    if book is None:
        book = bytes(max(k, 0) * channels)
    if indx is None:
        indx = zstandard.ZstdCompressor(write_content_size=True).compress(b"\0" * 16)
    return (container.MAGIC + b"\x01\x00" + section(b"HEAD", head) + section(b"BOOK", book)
            + section(b"INDX", indx) + section(b"DONE", b""))


def test_decompression_bomb_is_refused_in_milliseconds():
    """A few hundred bytes whose zstd frame really inflates to 4 GiB of zeros."""
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=True)
    # a genuine frame of 4 GiB would take long to build; a frame that *claims* the size
    # is enough: the decoder must refuse on the header's pixel count before touching it.
    frame = cctx.compress(b"\0" * 1024)
    data = forged(65536, 65536, k=2, indx=frame)
    assert len(data) < 400
    start = time.perf_counter()
    with pytest.raises(LimitError, match="above the limit"):
        vqcodec.decode(data)
    assert time.perf_counter() - start < 0.5  # generous; it takes microseconds


def test_real_zstd_bomb_is_bounded_by_header_size():
    """A genuine 64 MiB-of-zeros frame (a few KiB) inside a file whose header implies 16 bytes."""
    bomb = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(bytes(64 << 20))
    assert len(bomb) < 10_000
    data = forged(4, 4, k=2, indx=bomb)
    with pytest.raises(FormatError, match="zstd frame holds 67108864 bytes, the header implies 16"):
        vqcodec.decode(data)


def test_frame_lying_about_its_size():
    """The frame header says 16 bytes, the data inflates to more: refused, not over-allocated."""
    real = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(1 << 20))
    # patch in a content size: rebuild the frame header with FCS = 16
    lying = zstandard.ZstdCompressor(write_content_size=True).compress(bytes(16))
    # both frames have a 6-byte header for these sizes (magic, descriptor, window, 1-byte FCS)
    assert lying[4] == 0x20 and real[4] == 0x00
    spliced = lying[:6] + real[6:]
    with pytest.raises(FormatError, match="corrupt zstd data|decompressed to"):
        vqcodec.decode(forged(4, 4, k=2, indx=spliced))


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(width=0, height=5), FormatError, "image size 0×5"),
        (dict(width=1 << 31, height=1 << 31), LimitError, "above the limit"),
        (dict(width=4, height=4, k=0, bits=1, book=b""), FormatError, "k = 0"),
        (dict(width=4, height=4, k=2, bits=0), FormatError, "index_bits = 0"),
        (dict(width=4, height=4, k=2, bits=33), FormatError, "index_bits = 33"),
        (dict(width=4, height=4, channels=0), FormatError, "channels 0"),
        (dict(width=4, height=4, layout=7), UnsupportedVersionError, "index_layout 7"),
    ],
)
def test_lying_fields(kwargs, error, message):
    with pytest.raises(error, match=message):
        vqcodec.decode(forged(**kwargs))


def test_index_not_below_k():
    payload = bytes([0, 1, 2, 1] * 4)  # k = 3 but an index 2 is fine; make one 3
    payload = payload[:-1] + b"\x03"
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(payload)
    with pytest.raises(FormatError, match="index 3 at pixel 15 is not below k = 3"):
        vqcodec.decode(forged(4, 4, k=3, indx=frame))


def test_length_past_the_end(files):
    data = bytearray(files["bytes"])
    struct.pack_into("<I", data, 10 + 12 + 24, 1 << 30)  # BOOK's length
    with pytest.raises(FormatError, match="truncated file: section BOOK"):
        vqcodec.decode(bytes(data))


def test_info_never_inflates():
    """read_info checks structure and CRCs of a file of any claimed size without inflating it."""
    import bz2

    bomb = bz2.compress(bytes(32 << 20))  # 32 MiB of zeros in a few hundred bytes
    head = struct.pack("<IIBBBBIBBBBB3s", 60000, 60000, 1, 8, 1, 1, 2, 1, 1, 1, 1, 0, b"\0\0\0")
    data = (container.MAGIC + b"\x01\x00" + section(b"HEAD", head) + section(b"BOOK", b"\0\xff")
            + section(b"INDX", bomb) + section(b"DONE", b""))
    start = time.perf_counter()
    info = vqcodec.read_info(data)
    assert time.perf_counter() - start < 0.5
    assert (info.header.width, info.header.height, info.header.index_coder) == (60000, 60000, 1)
    with pytest.raises(LimitError, match="above the limit"):
        vqcodec.decode(data)
    with pytest.raises(FormatError, match="inflates to 33554432 bytes, the header implies 3600000000"):
        vqcodec.decode(data, max_pixels=None)
