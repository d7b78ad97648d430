"""Block vectors (spec §3.1, format 1.2): the header, the round trip through every coder and
channel layout, a file built by hand from the spec, hostile headers, options and the front ends."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import zstandard
from PIL import Image

import vqcodec
from vqcodec import codec, container
from vqcodec.coders import ctx
from vqcodec.errors import FormatError, LimitError, OptionError, UnsupportedVersionError
from vqcodec.options import EncodeOptions
from vqcodec.quantize import Codebook, rebuild
from image_files import png_pixels
from vqi_files import ctx_file, section, sections

MAGIC = b"\x89VQI\r\n\x1a\n"
needs_native = pytest.mark.skipif(not ctx.available(), reason="vqcodec._ctxcoder not built")


def tiled(height: int, width: int, channels: int, block: tuple[int, int], distinct: int,
          seed: int = 0) -> np.ndarray:
    """An image made of *distinct* random blocks, cropped to height × width."""
    bw, bh = block
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (distinct, bh, bw, channels), dtype=np.uint8)
    rows, cols = -(-height // bh), -(-width // bw)
    pick = rng.integers(0, distinct, (rows, cols))
    full = blocks[pick].transpose(0, 2, 1, 3, 4).reshape(rows * bh, cols * bw, channels)
    return np.ascontiguousarray(full[:height, :width])


def noisy(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    if channels in (2, 4):  # a transparent band and a half-transparent one
        image[: height // 3, :, -1] = 0
        image[height // 3 : height // 2, :, -1] = 128
    return image


def rebuilt(enc: codec.Encoded) -> np.ndarray:
    """The quantizer's own reconstruction of the encoded index map."""
    h = enc.header
    book = Codebook(enc.codebook, channels=h.channels, block=h.block)
    return rebuild(enc.indices, book, h.height, h.width)


# ---------------------------------------------------------------- the header


def test_header_bytes_of_a_block_file():
    image = tiled(3, 5, 3, (2, 2), 3)
    enc = codec.encode_pixels(image, k=3, block=(2, 2), coder="zstd", layout="bytes")
    data = enc.data
    assert data[:10] == MAGIC + b"\x01\x02"  # version 1.2: the file uses blocks (§2.1)
    kind, head, _ = sections(data)[0]
    assert kind == b"HEAD"
    assert head == bytes.fromhex("05000000 03000000 03 08 02 02 03000000 02 01 00 01 00 000000")
    book = sections(data)[1]
    assert book[0] == b"BOOK" and len(book[1]) == 3 * 2 * 2 * 3
    # the payload is the 3 × 2 map, one byte per index
    indx = zstandard.ZstdDecompressor().decompress(sections(data)[2][1])
    assert len(indx) == 6 and enc.indices.shape == (2, 3)
    assert indx == enc.indices.astype(np.uint8).tobytes()
    np.testing.assert_array_equal(vqcodec.decode(data), rebuilt(enc))


@pytest.mark.parametrize("coder", ["zstd", pytest.param("ctx", marks=needs_native)])
def test_files_without_blocks_do_not_change(coder):
    image = noisy(9, 11, 3)
    default = vqcodec.encode(image, k=8, coder=coder)
    assert vqcodec.encode(image, k=8, coder=coder, block=(1, 1)) == default
    assert vqcodec.encode(image, k=8, coder=coder, block="1x1") == default
    assert default[8:10] == (b"\x01\x01" if coder == "ctx" else b"\x01\x00")
    assert sections(default)[0][1][10:12] == b"\x01\x01"


def test_header_properties():
    h = container.Header(width=5, height=3, channels=4, k=7, index_layout=1,
                         block_width=4, block_height=2)
    assert (h.map_width, h.map_height, h.entry_size, h.padded_pixel_count) == (2, 2, 32, 32)
    assert h.index_map() == vqcodec.coders.IndexMap(2, 2, 32, 7, 3, 1, 0)
    assert container.version_for(h) == (1, 2)
    assert container.version_for(container.Header(5, 3, 4, 7, 1, index_coder=2)) == (1, 1)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("block", [(2, 2), (4, 4), (3, 1), (1, 2), (8, 8)])
@pytest.mark.parametrize("size", [(13, 7), (1, 1), (5, 16)])
def test_round_trip_equals_rebuild(channels, block, size):
    height, width = size
    enc = codec.encode_pixels(noisy(height, width, channels), k=16, block=block)
    assert enc.header.block == block and enc.data[9] == 2
    decoded = codec.decode_pixels(enc.data).array
    assert decoded.shape == (height, width, channels)
    np.testing.assert_array_equal(decoded, rebuilt(enc))
    np.testing.assert_array_equal(decoded, enc.reconstruct())


@pytest.mark.parametrize("coder, layout", [("zstd", "bytes"), ("zstd", "stripes"), ("zstd", "packed"),
                                           ("bzip2", "stripes"), pytest.param("ctx", "bytes", marks=needs_native),
                                           ("auto", None)])
def test_every_coder_and_layout_codes_the_map(coder, layout):
    image = noisy(37, 23, 4, seed=3)
    enc = codec.encode_pixels(image, k=40, block=(4, 4), coder=coder, layout=layout)
    assert enc.indices.shape == (10, 6)
    np.testing.assert_array_equal(codec.decode_pixels(enc.data).array, rebuilt(enc))


def test_k_above_the_distinct_blocks_is_lossless():
    # 6 distinct blocks; odd sizes make the edge blocks (padded by replication) new vectors
    for channels in (1, 2, 3, 4):
        image = tiled(15, 11, channels, (2, 2), 6, seed=channels)
        enc = codec.encode_pixels(image, k=256, block=(2, 2))
        assert enc.header.k <= 6 * 4
        np.testing.assert_array_equal(codec.decode_pixels(enc.data).array, image)


def test_transparent_blocks_take_the_zero_entry():
    image = noisy(16, 16, 4, seed=5)
    image[:8, :8, 3] = 0  # four whole transparent 4×4 blocks of random colours
    image[:8, 8:, 3] = 255
    enc = codec.encode_pixels(image, k=4, block=(4, 4))
    assert not enc.codebook[0].any()  # the all-zero entry sorts first
    assert (enc.indices[:2, :2] == 0).all()
    decoded = vqcodec.decode(enc.data)
    assert not decoded[:8, :8].any()
    assert (decoded[:8, 8:, 3] == 255).all()


def test_block_file_decodes_without_the_compiled_ctx_decoder(monkeypatch):
    image = noisy(21, 19, 3, seed=7)
    data = ctx_file(image, k=32, block=(4, 4))
    expected = codec.encode_pixels(image, k=32, block=(4, 4), coder="zstd").reconstruct()
    np.testing.assert_array_equal(vqcodec.decode(data), expected)
    monkeypatch.setattr(ctx, "_native", None)  # the Python reference decoder (spec §5.4)
    np.testing.assert_array_equal(vqcodec.decode(data), expected)


@pytest.mark.parametrize("entry", [5, 12, 64, 256])
def test_ctx_ranks_of_wide_entries(entry):
    """The C rank sort (three radix passes above 4 bytes) equals the spec's order (§5.4.2)."""
    rng = np.random.default_rng(entry)
    book = rng.integers(0, 256, (256, entry), dtype=np.uint8)
    book[7] = book[3]  # ties go by index
    book[9, :] = 255
    wide = book.astype(np.int64)
    expected = np.argsort(((wide[:, None] - wide[None]) ** 2).sum(-1), axis=1, kind="stable")
    np.testing.assert_array_equal(ctx.rank_order(book), expected)


# ---------------------------------------------------------------- a file built by hand from the spec


def test_hand_built_file_decodes_as_the_spec_says():
    """An LA 3×3 image in 2×2 blocks (§3.1): a 2×2 map in stripes (§5.2), bzip2 (§5.3)."""
    import bz2

    e0 = bytes([10, 255, 20, 255, 30, 255, 40, 255])  # (L, A) of the block's 4 pixels, raster order
    e1 = bytes([200, 0, 0, 0, 90, 128, 0, 0])
    grid = [[1, 0], [0, 1]]
    stripes = bytes([grid[0][0], grid[1][0], grid[0][1], grid[1][1]])  # rows 0-1 column by column
    head = struct.pack("<IIBBBBIBBBBB3s", 3, 3, 2, 8, 2, 2, 2, 1, 2, 1, 1, 0, b"\0\0\0")
    data = (MAGIC + b"\x01\x02" + section(b"HEAD", head) + section(b"BOOK", e0 + e1)
            + section(b"INDX", bz2.compress(stripes)) + section(b"DONE", b""))
    px = vqcodec.decode_pixels(data)
    assert (px.mode, px.width, px.height) == ("LA", 3, 3)
    expected = [[(200, 0), (0, 0), (10, 255)],
                [(90, 128), (0, 0), (30, 255)],
                [(10, 255), (20, 255), (200, 0)]]
    np.testing.assert_array_equal(px.array, np.array(expected, np.uint8))


# ---------------------------------------------------------------- hostile files


def forged_block_file(width, height, channels, k, block, book: bytes, payload: bytes) -> bytes:
    bits = max(1, (k - 1).bit_length())
    head = struct.pack("<IIBBBBIBBBBB3s", width, height, channels, 8, *block, k, bits,
                       1 if bits <= 8 else 1, 0, 1, 0, b"\0\0\0")
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(payload)
    return (MAGIC + b"\x01\x02" + section(b"HEAD", head) + section(b"BOOK", book)
            + section(b"INDX", frame) + section(b"DONE", b""))


def test_huge_blocks_times_k_is_refused_before_allocation():
    """8×8 RGBA blocks × 65536 entries claim a 16 MiB BOOK; the file holds 64 bytes of it."""
    data = forged_block_file(8, 8, 4, 65536, (8, 8), bytes(64), bytes(2))
    start = time.perf_counter()
    with pytest.raises(FormatError, match=r"BOOK: 64 bytes, expected k × block_width × block_height "
                                          r"× channels = 16777216"):
        vqcodec.decode(data)
    assert time.perf_counter() - start < 0.5


def test_pixel_limit_counts_the_padded_blocks():
    # 1 × 100 pixels in 8 × 1 blocks: 100 blocks of 8 pixels = 800 pixels decoded before the crop
    data = forged_block_file(1, 100, 1, 2, (8, 1), bytes(16), bytes(100))
    assert vqcodec.decode(data, max_pixels=800).shape == (100, 1)
    with pytest.raises(LimitError, match=r"1×100 = 100 pixels \(800 in 8×1 blocks\), above the limit of 799"):
        vqcodec.decode(data, max_pixels=799)


def test_map_size_is_the_blocks_not_the_pixels():
    data = forged_block_file(3, 3, 1, 2, (2, 2), bytes(8), bytes(9))  # 9 indices, the map has 4
    with pytest.raises(FormatError, match="zstd frame holds 9 bytes, the header implies 4"):
        vqcodec.decode(data)


@pytest.mark.parametrize("block, error, message", [
    ((0, 2), FormatError, r"block 0×2; both must be at least 1"),
    ((2, 0), FormatError, r"block 2×0"),
    ((9, 1), UnsupportedVersionError, r"block vectors 9×1 \(supported: 1 to 8 each\)"),
    ((255, 255), UnsupportedVersionError, r"block vectors 255×255"),
])
def test_block_size_outside_the_bound(block, error, message):
    with pytest.raises(error, match=message):
        vqcodec.decode(forged_block_file(4, 4, 1, 2, block, bytes(2), bytes(4)))


def test_every_bit_flip_of_a_block_file_is_detected():
    data = vqcodec.encode(noisy(7, 9, 2, seed=1), k=5, block=(2, 2), coder="zstd")
    for offset in range(len(data)):
        if offset == 9:  # the minor version is informational (§2.1)
            continue
        for bit in range(8):
            bad = bytearray(data)
            bad[offset] ^= 1 << bit
            with pytest.raises(vqcodec.VqiError):
                vqcodec.decode(bytes(bad))


# ---------------------------------------------------------------- options and front ends


@pytest.mark.parametrize("value, expected", [
    ((2, 2), (2, 2)), ([4, 4], (4, 4)), ("2x2", (2, 2)), ("3X1", (3, 1)), ("2×4", (2, 4)),
    ((np.int64(2), 2), (2, 2)),
])
def test_block_option_values(value, expected):
    assert EncodeOptions(block=value).block == expected


@pytest.mark.parametrize("value", ["0x2", "9x9", "2x", "2", "abc", "2x2x2", (2,), (True, 2), (2.0, 2),
                                   None, 4])
def test_block_option_errors(value):
    with pytest.raises(OptionError, match=r"^block must be WIDTHxHEIGHT \(such as 2x2\), each from 1 "
                                          r"to 8, got "):
        EncodeOptions(block=value)


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vqcodec", *map(str, args)], capture_output=True,
                          timeout=120)


def test_cli_encode_info_decode(tmp_path):
    src = tmp_path / "in.png"
    Image.fromarray(noisy(30, 41, 3)).save(src)
    out = tmp_path / "out.vqi"
    proc = run("encode", "--block", "2x2", "-k", "32", src, out)
    assert proc.returncode == 0, proc.stderr
    assert " -> " + str(out) + ": k=32 2x2 blocks (5 bits/index), " in proc.stdout.decode()
    report = json.loads(run("encode", "--json", "--block", "4x2", src, tmp_path / "b.vqi").stdout)
    assert report["block"] == "4x2" and report["width"] == 41
    assert codec.read_info(str(out)).header.block == (2, 2)
    info = run("info", out).stdout.decode()
    assert "VQI 1.2" in info and "block            2x2" in info
    png = tmp_path / "back.png"
    assert run("decode", out, png).returncode == 0
    np.testing.assert_array_equal(png_pixels(png), vqcodec.decode(str(out)))


@pytest.mark.parametrize("value", ["0x2", "9x9", "two"])
def test_cli_block_errors_are_one_line(tmp_path, value):
    src = tmp_path / "in.png"
    Image.fromarray(noisy(4, 4, 3)).save(src)
    proc = run("encode", "--block", value, src, tmp_path / "out.vqi")
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vqcodec: error: argument --block: block must be")
    assert not (tmp_path / "out.vqi").exists()


def test_cli_hostile_block_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.vqi"
    bad.write_bytes(forged_block_file(8, 8, 4, 65536, (8, 8), bytes(64), bytes(2)))
    proc = run("decode", bad, tmp_path / "out.png")
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "BOOK: 64 bytes, expected" in lines[0], lines


def test_pillow_plugin_saves_and_opens_blocks():
    image = Image.fromarray(noisy(10, 13, 4))
    buf = io.BytesIO()
    image.save(buf, "VQI", k=16, block="4x4")
    data = buf.getvalue()
    assert codec.read_info(data).header.block == (4, 4)
    with Image.open(io.BytesIO(data)) as im:
        assert (im.size, im.mode) == ((13, 10), "RGBA")
        np.testing.assert_array_equal(np.asarray(im), vqcodec.decode(data))


def test_batch_encode_file_takes_the_block(tmp_path):
    from vqcodec import batch

    src = tmp_path / "in.png"
    Image.fromarray(noisy(12, 12, 3)).save(src)
    result = batch.encode_file(str(src), str(tmp_path / "out.vqi"), block=(2, 2), k=8)
    assert result.psnr is not None
    assert codec.read_info(str(tmp_path / "out.vqi")).header.block == (2, 2)


def test_rd_sweeps_blocks(tmp_path):
    from vqcodec import rd

    src = tmp_path / "in.png"
    Image.fromarray(noisy(20, 24, 3)).save(src)
    result = rd.sweep([str(src)], ks=(4, 16), baselines=(), block="2x2")
    assert result.block == (2, 2)
    assert [r.settings for r in result.rows] == ["k=4 seed=0 block=2x2", "k=16 seed=0 block=2x2"]
    assert '"block": "2x2"' in rd.to_json(result)
    assert "vectors of 2x2 pixels" in rd.format_table(result)
    with pytest.raises(OptionError, match="block must be"):
        rd.sweep([str(src)], ks=(4,), baselines=(), block=(0, 1))


def test_rate_aware_choice_on_blocks():
    """rdo lets a block take its left or upper neighbour's entry; the map gets cheaper."""
    image = np.asarray(Image.open(vqcodec_sample()).convert("RGB"))[:96, :128]
    plain = codec.encode_pixels(image, k=64, block=(2, 2), rdo=0, coder="zstd")
    smooth = codec.encode_pixels(image, k=64, block=(2, 2), rdo=2, coder="zstd")
    np.testing.assert_array_equal(plain.codebook, smooth.codebook)
    assert (plain.indices != smooth.indices).any()

    def runs(m: np.ndarray) -> int:  # neighbours (left or above) with the same index
        return int((m[:, 1:] == m[:, :-1]).sum() + (m[1:] == m[:-1]).sum())

    assert runs(smooth.indices) > 1.2 * runs(plain.indices)
    assert len(smooth.data) < len(plain.data)
    assert metrics_psnr(image, smooth) < metrics_psnr(image, plain)
    np.testing.assert_array_equal(vqcodec.decode(smooth.data), rebuilt(smooth))


def test_rate_aware_choice_premultiplies_each_pixel_of_a_block():
    from vqcodec.quantize import rdo

    blocks = np.array([[[0, 0, 0, 0], [200, 200, 200, 0]]], np.uint8)  # two blocks side by side
    book = blocks[0].copy()
    indices = np.array([[0, 1]], np.uint8)
    # four L pixels per block: the 4th value is a grey level, not an alpha; nothing is close
    np.testing.assert_array_equal(rdo.smooth(blocks, book, indices, strength=1, channels=1), indices)
    # one RGBA pixel per block: alpha 0 makes both blocks the same invisible colour
    np.testing.assert_array_equal(rdo.smooth(blocks, book, indices, strength=1, channels=4), [[0, 0]])
    with pytest.raises(OptionError, match="not whole pixels of 3 channels"):
        rdo.smooth(blocks, book, indices, strength=1, channels=3)


def vqcodec_sample() -> str:
    from pathlib import Path

    return str(Path(__file__).parent / "data" / "sample.png")


def metrics_psnr(image: np.ndarray, enc: codec.Encoded) -> float:
    from vqcodec import metrics

    return metrics.psnr(image, enc.reconstruct())


def test_pillow_holds_whole_blocks_to_its_bomb_threshold(monkeypatch):
    """A 1-pixel-wide image in 8x1 blocks decodes 8x its pixels before the crop: the plugin
    holds that to Pillow's error threshold (2 x MAX_IMAGE_PIXELS), as Pillow does width x height."""
    data = forged_block_file(1, 100, 1, 2, (8, 1), bytes(16), bytes(100))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # error above 800 pixels
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (1, 100) and im.load() is not None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 399)
    with Image.open(io.BytesIO(data)) as im:  # 100 pixels pass Pillow's check at open
        with pytest.raises(LimitError, match=r"\(800 in 8×1 blocks\), above the limit of 798"):
            im.load()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's check off: no limit
    with Image.open(io.BytesIO(data)) as im:
        assert np.asarray(im).shape == (100, 1)
