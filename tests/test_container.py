"""The container: exact byte layout of spec/FORMAT.md §2-§7, and every check of §7."""

from __future__ import annotations

import struct
import zlib

import pytest
import zstandard

from vqcodec import container
from vqcodec.container import Header
from vqcodec.errors import FormatError, IntegrityError, LimitError, UnsupportedVersionError
from vqi_files import rebuild, section, sections


def small_file(**overrides) -> tuple[Header, bytes, bytes, bytes]:
    fields = dict(width=3, height=2, channels=3, k=3, index_layout=1)
    fields.update(overrides)
    header = Header(**fields)
    book = bytes(range(header.k * header.channels))
    payload = bytes([0, 1, 2, 2, 1, 0])
    return header, book, payload, container.write(header, book, payload)


def test_signature_and_version_bytes():
    _, _, _, data = small_file()
    assert data[:8] == bytes.fromhex("89 56 51 49 0D 0A 1A 0A")
    assert data[8:10] == bytes([1, 0])


def test_head_layout_exact():
    _, _, _, data = small_file()
    kind, body, crc = sections(data)[0]
    assert kind == b"HEAD"
    assert body == struct.pack("<IIBBBBIBBBBB3s", 3, 2, 3, 8, 1, 1, 3, 2, 1, 0, 1, 0, b"\0\0\0")
    assert len(body) == 24
    assert crc == zlib.crc32(b"HEAD" + body)


def test_section_order_and_crcs():
    header, book, payload, data = small_file()
    kinds = [k for k, _, _ in sections(data)]
    assert kinds == [b"HEAD", b"BOOK", b"INDX", b"DONE"]
    for kind, body, crc in sections(data):
        assert crc == zlib.crc32(kind + body)
    indx = sections(data)[2][1]
    params = zstandard.get_frame_parameters(indx)
    assert params.content_size == len(payload)
    assert zstandard.ZstdDecompressor().decompress(indx) == payload
    assert sections(data)[1][1] == book
    assert sections(data)[3][1] == b""


def test_round_trip_with_icc():
    header, book, payload, _ = small_file()
    icc = b"fake icc profile " * 10
    data = container.write(header, book, payload, icc_profile=icc)
    assert [k for k, _, _ in sections(data)] == [b"HEAD", b"iccp", b"BOOK", b"INDX", b"DONE"]
    parsed = container.read(data)
    assert parsed.header == header
    assert parsed.codebook == book and parsed.index_payload == payload
    assert parsed.icc_profile == icc
    assert parsed.version == (1, 0)
    assert [s.type for s in parsed.sections] == ["HEAD", "iccp", "BOOK", "INDX", "DONE"]


@pytest.mark.parametrize("k, bits", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (256, 8), (257, 9), (65536, 16)])
def test_bits_for(k, bits):
    assert container.bits_for(k) == bits


def test_read_header_only():
    header, _, _, data = small_file()
    version, parsed = container.read_header(data[:46])  # only signature + HEAD needed
    assert version == (1, 0) and parsed == header


def test_crc_formula_check_value():
    assert zlib.crc32(b"123456789") == 0xCBF43926  # spec §1


# ------------------------------------------------------------------ refusals


def test_bad_magic():
    _, _, _, data = small_file()
    with pytest.raises(FormatError, match="not a VQI file: bad magic"):
        container.read(b"\x89PNG\r\n\x1a\n" + data[8:])


def test_unsupported_major_version_names_supported():
    _, _, _, data = small_file()
    with pytest.raises(UnsupportedVersionError, match=r"unsupported format version 2\.0.*1\.x"):
        container.read(data[:8] + bytes([2, 0]) + data[10:])


def test_later_minor_version_is_read():
    header, _, _, data = small_file()
    parsed = container.read(data[:8] + bytes([1, 7]) + data[10:])
    assert parsed.version == (1, 7) and parsed.header == header


def test_crc_mismatch_names_section():
    _, _, _, data = small_file()
    bad = bytearray(data)
    bad[10 + 8 + 2] ^= 0x01  # a byte of HEAD's width
    with pytest.raises(IntegrityError, match=r"section HEAD at offset 10: CRC mismatch \(expected 0x"):
        container.read(bytes(bad))


def test_trailing_bytes_refused():
    _, _, _, data = small_file()
    with pytest.raises(FormatError, match="data after the DONE section|section head needs 8"):
        container.read(data + b"junk")
    with pytest.raises(FormatError, match="data after the DONE section"):
        container.read(data + section(b"zzzz", b""))


def test_longer_head_from_later_minor_version_is_accepted():
    header, _, _, data = small_file()
    head = sections(data)[0][1]
    parsed = container.read(rebuild(data, {b"HEAD": head + b"\0\0\0\0"}))
    assert parsed.header == header
    with pytest.raises(UnsupportedVersionError, match=r"HEAD: byte 26 is 0x07, a field this reader"):
        container.read(rebuild(data, {b"HEAD": head + b"\0\0\x07\0"}))
    with pytest.raises(UnsupportedVersionError, match="byte 26"):
        container.read_header(rebuild(data, {b"HEAD": head + b"\0\0\x07\0"}))


def test_unknown_ancillary_skipped_unknown_critical_refused():
    _, _, _, data = small_file()
    head_end = 10 + 12 + 24
    with_anc = data[:head_end] + section(b"tEXt", b"hello") + data[head_end:]
    assert container.read(with_anc).codebook == sections(data)[1][1]
    with_crit = data[:head_end] + section(b"ZZZZ", b"x" * 32) + data[head_end:]
    with pytest.raises(UnsupportedVersionError, match="ZZZZ.*unknown critical section"):
        container.read(with_crit)


@pytest.mark.parametrize(
    "field, value, error, message",
    [
        ("width", 0, FormatError, "image size 0×2"),
        ("channels", 5, FormatError, "channels 5"),
        ("sample_depth", 16, UnsupportedVersionError, "sample_depth 16"),
        ("block_width", 9, UnsupportedVersionError, r"block vectors 9×1 \(supported: 1 to 8"),
        ("block_height", 0, FormatError, r"block 1×0; both must be at least 1"),
        ("stages", 2, UnsupportedVersionError, "2 codebook stages"),
        ("codebook_source", 2, UnsupportedVersionError, "codebook_source 2"),
        ("index_layout", 9, UnsupportedVersionError, "index_layout 9"),
        ("index_coder", 4, UnsupportedVersionError, "index_coder 4"),
        ("reserved", b"\0\1\0", UnsupportedVersionError, "reserved bytes 21-23 are 00 01 00"),
        ("k", 0, FormatError, "k must be at least 1|k = 0"),
        ("k", 70000, FormatError, "k = 70000"),
        ("index_bits", 33, FormatError, "index_bits = 33 does not match k = 3"),
        ("index_bits", 0, FormatError, "index_bits = 0 does not match"),
    ],
)
def test_lying_head_fields(field, value, error, message):
    _, _, _, data = small_file()
    names = ["width", "height", "channels", "sample_depth", "block_width", "block_height",
             "k", "index_bits", "index_layout", "index_coder", "stages", "codebook_source",
             "reserved"]
    values = list(struct.unpack("<IIBBBBIBBBBB3s", sections(data)[0][1]))
    values[names.index(field)] = value
    head = struct.pack("<IIBBBBIBBBBB3s", *values)
    with pytest.raises(error, match=message):
        container.read(rebuild(data, {b"HEAD": head}))


def test_pixel_limit_checked_before_payload():
    _, _, _, data = small_file()
    with pytest.raises(LimitError, match=r"3×2 = 6 pixels, above the limit of 5"):
        container.read(data, max_pixels=5)


def test_zstd_frame_size_must_match_header():
    _, _, _, data = small_file()
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(b"\0" * 7)
    with pytest.raises(FormatError, match="zstd frame holds 7 bytes, the header implies 6"):
        container.read(rebuild(data, {b"INDX": frame}))


def test_zstd_frame_without_content_size_refused():
    _, _, _, data = small_file()
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * 6)
    with pytest.raises(FormatError, match="does not state its content size"):
        container.read(rebuild(data, {b"INDX": frame}))


def test_bytes_after_zstd_frame_refused():
    _, _, _, data = small_file()
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(b"\0" * 6)
    with pytest.raises(FormatError, match="unexpected bytes after the zstd frame"):
        container.read(rebuild(data, {b"INDX": frame + b"\0\0"}))


@pytest.mark.parametrize("cut", ["checksum", "last block"])
def test_zstd_frame_that_ends_early_refused(cut):
    """§1: the frame ends where its block structure ends (the checksum included, when
    the header announces one), even when all its content has come out."""
    _, _, _, data = small_file()
    compressor = zstandard.ZstdCompressor(write_content_size=True, write_checksum=cut == "checksum")
    frame = bytearray(compressor.compress(b"\0" * 6))
    if cut == "checksum":
        frame = frame[:-4]
    else:  # clear Last_Block (bit 0) of the one block's header, after RFC 8878's frame header
        descriptor = frame[4]
        single = descriptor >> 5 & 1
        size_field = {0: single, 1: 2, 2: 4, 3: 8}[descriptor >> 6]
        dictionary = {0: 0, 1: 1, 2: 2, 3: 4}[descriptor & 3]
        block = 4 + 1 + (1 - single) + dictionary + size_field
        assert frame[block] & 1, "the first block is the last"
        frame[block] &= 0xFE
    with pytest.raises(FormatError, match="zstd frame is truncated"):
        container.read(rebuild(data, {b"INDX": bytes(frame)}))


def test_not_a_zstd_frame():
    _, _, _, data = small_file()
    with pytest.raises(FormatError, match="not a zstd frame"):
        container.read(rebuild(data, {b"INDX": b"\0" * 12}))


def test_bomb_refused_without_decompressing():
    """A few hundred bytes claiming 10^10 pixels: refused by the limit, fast."""
    header = Header(width=100_000, height=100_000, channels=1, k=2, index_layout=1)
    book = b"\0\xff"
    head = section(b"HEAD", header.pack())
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=True)
    chunk = cctx.compress(b"\0" * 1000)  # a frame that lies about nothing but is tiny
    data = container.MAGIC + bytes([1, 0]) + head + section(b"BOOK", book) + section(b"INDX", chunk) + section(b"DONE", b"")
    assert len(data) < 300
    with pytest.raises(LimitError, match="above the limit"):
        container.read(data)
    # with the limit lifted, the frame's size is checked against the header before decompressing
    with pytest.raises(FormatError, match="zstd frame holds 1000 bytes"):
        container.read(data, max_pixels=None)


def test_wrong_book_length():
    _, _, _, data = small_file()
    with pytest.raises(FormatError, match=r"section BOOK: 8 bytes, expected k × channels = 9"):
        container.read(rebuild(data, {b"BOOK": bytes(8)}))


def test_order_rules():
    _, book, _, data = small_file()
    secs = sections(data)
    sig = data[:10]
    head, bk, idx, done = (section(k, b) for k, b, _ in secs)
    with pytest.raises(FormatError, match="the first section must be HEAD"):
        container.read(sig + bk + head + idx + done)
    with pytest.raises(FormatError, match="INDX at offset .*: comes before BOOK"):
        container.read(sig + head + idx + bk + done)
    with pytest.raises(FormatError, match="a second BOOK"):
        container.read(sig + head + bk + bk + idx + done)
    with pytest.raises(FormatError, match="DONE before INDX"):
        container.read(sig + head + bk + done)
    with pytest.raises(FormatError, match="ends before the DONE section"):
        container.read(sig + head + bk + idx)
    with pytest.raises(FormatError, match="a second HEAD"):
        container.read(sig + head + head + bk + idx + done)


def test_bad_section_type_and_length():
    _, _, _, data = small_file()
    bad = bytearray(data)
    bad[14:18] = b"HE1D"
    with pytest.raises(FormatError, match="is not four ASCII letters"):
        container.read(bytes(bad))
    bad = bytearray(data)
    bad[10:14] = struct.pack("<I", 0xFFFFFFF0)
    with pytest.raises(FormatError, match="above 2\\^31-1"):
        container.read(bytes(bad))
    bad[10:14] = struct.pack("<I", 5000)
    with pytest.raises(FormatError, match="truncated file: section HEAD"):
        container.read(bytes(bad))


@pytest.mark.parametrize("cut", range(len(small_file()[3])))
def test_every_truncation_is_refused(cut):
    _, _, _, data = small_file()
    with pytest.raises(FormatError):
        container.read(data[:cut])


def test_writer_refuses_inconsistent_inputs():
    header, book, payload, _ = small_file()
    with pytest.raises(FormatError, match="BOOK: expected 9 bytes, found 8"):
        container.write(header, book[:8], payload)
    with pytest.raises(FormatError, match="does not fit layout 1"):
        container.write(header, book, payload + b"\0")


@pytest.mark.parametrize("layout", [0, 1, 2])
def test_bzip2_coder_round_trip(layout):
    header = Header(width=5, height=3, channels=1, k=3, index_layout=layout, index_coder=1)
    size = container.index_payload_size(header)
    payload = bytes([1]) * size if layout else bytes([0x55]) * size
    data = container.write(header, b"\0\x80\xff", payload)
    assert sections(data)[2][1][:3] == b"BZh"
    assert container.read(data).index_payload == payload


def test_bzip2_multiple_streams_and_limits(monkeypatch):
    import bz2

    from vqcodec.coders import bzip2

    monkeypatch.setattr(bzip2, "CHUNK", 4)
    header = Header(width=10, height=1, channels=1, k=2, index_layout=1, index_coder=1)
    payload = bytes([0, 1] * 5)
    data = container.write(header, b"\0\xff", payload)
    body = sections(data)[2][1]
    assert body.count(b"BZh9") == 3  # 4 + 4 + 2 bytes
    assert container.read(data).index_payload == payload

    def with_indx(new):
        return rebuild(data, {b"INDX": new})

    with pytest.raises(FormatError, match="inflates past the 10 bytes"):
        container.read(with_indx(bz2.compress(bytes(64 << 10))))
    with pytest.raises(FormatError, match="inflates to 9 bytes, the header implies 10"):
        container.read(with_indx(bz2.compress(bytes(9))))
    with pytest.raises(FormatError, match="not a bzip2 stream at byte"):
        container.read(with_indx(bz2.compress(bytes(5)) + b"junk"))
    with pytest.raises(FormatError, match="truncated|corrupt bzip2"):
        container.read(with_indx(bz2.compress(bytes(10))[:-6]))
