"""Tests of vqcodec.pixels: the mode rules, loading, and encoding back out.

The PngSuite tests compare every non-interlaced file with a small PNG decoder
written here (zlib + numpy, no Pillow) followed by the documented rules, and
with Pillow's own conversions where those are right; interlaced files must
equal their non-interlaced twins.
"""

from __future__ import annotations

import io
import struct
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageCms, ImageFile

from vqcodec import pixels as px
from vqcodec.errors import ImageInputError, LimitError, OptionError

from streams import OneWayStream

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
PNGSUITE = CORPUS / "pngsuite"
SUITE_FILES = sorted(p.name for p in PNGSUITE.glob("*.png")) if PNGSUITE.is_dir() else []
GOOD_FILES = [n for n in SUITE_FILES if not n.startswith("x")]
BAD_FILES = [n for n in SUITE_FILES if n.startswith("x")]
needs_suite = pytest.mark.skipif(not SUITE_FILES, reason=f"PngSuite corpus not found at {PNGSUITE}")

MODE_CHANNELS = [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)]


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


SRGB_ICC = _srgb_icc()


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _encode(a: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    mode = px.MODES[a.shape[2]] if a.ndim == 3 else "L"
    im = Image.frombytes(mode, (a.shape[1], a.shape[0]), a.tobytes())
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


# --------------------------------------------------------------------------
# A reference PNG decoder (non-interlaced only) and the documented rules
# --------------------------------------------------------------------------


def _png_chunks(data: bytes):
    pos = 8
    while pos + 8 <= len(data):
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        yield ctype, data[pos + 8 : pos + 8 + length]
        pos += 12 + length


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    rows = np.zeros((height, stride), np.uint8)
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows[y] = np.frombuffer(bytes(line), np.uint8)
        prev = line
    return rows


def _png_reference(path: Path) -> np.ndarray | None:
    """The pixels load() must give, by the documented rules; None if interlaced."""
    data = path.read_bytes()
    chunks = list(_png_chunks(data))
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if interlace:
        return None
    idat = b"".join(body for ctype, body in chunks if ctype == b"IDAT")
    plte = next((body for ctype, body in chunks if ctype == b"PLTE"), None)
    trns = next((body for ctype, body in chunks if ctype == b"tRNS"), None)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    bits = channels * depth
    stride = (width * bits + 7) // 8
    rows = _unfilter(zlib.decompress(idat), height, stride, max(1, bits // 8))
    if depth == 16:
        s = rows.view(">u2").astype(np.int64).reshape(height, width, channels)
    elif depth == 8:
        s = rows.astype(np.int64).reshape(height, width, channels)
    else:
        b = np.unpackbits(rows, axis=1)[:, : width * depth].reshape(height, width, depth)
        s = (b.astype(np.int64) << np.arange(depth - 1, -1, -1)).sum(axis=2)[:, :, None]

    def high(v):  # Pillow keeps only the high byte of 16-bit colour/alpha samples
        return v >> 8 if depth == 16 else v

    if colour == 0:
        if depth == 16:
            out = np.rint(s * 255 / 65535)
        else:
            out = s * 255 // (2**depth - 1)
        if trns is not None:
            key = struct.unpack(">H", trns[:2])[0]
            out = np.concatenate([out, np.where(s == key, 0, 255)], axis=2)
    elif colour == 2:
        out = high(s)
        if trns is not None:
            key = np.array(struct.unpack(">3H", trns[:6]))
            alpha = np.where(np.all(s == key, axis=2, keepdims=True), 0, 255)
            out = np.concatenate([out, alpha], axis=2)
    elif colour == 3:
        palette = np.frombuffer(plte, np.uint8).reshape(-1, 3).astype(np.int64)
        out = palette[s[:, :, 0]]
        if trns is not None and any(v < 255 for v in trns):
            alpha = np.full(len(palette), 255)
            alpha[: len(trns)] = np.frombuffer(trns, np.uint8)
            out = np.concatenate([out, alpha[s[:, :, 0]][:, :, None]], axis=2)
    else:
        out = high(s)
    return out.astype(np.uint8)


def _pillow_reference(path: Path) -> np.ndarray | None:
    """The same result through Pillow's own conversions, where they are right."""
    with Image.open(path) as im:
        return _pillow_convert(im)


def _pillow_convert(im: Image.Image) -> np.ndarray | None:
    transparency = im.info.get("transparency")
    if im.mode == "P":
        has_alpha = transparency is not None and (
            isinstance(transparency, int) or any(v < 255 for v in transparency)
        )
        a = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    elif im.mode == "I;16" and transparency is None:
        a = np.rint(np.asarray(im).astype(np.float64) * 255 / 65535).astype(np.uint8)
    elif im.mode == "1" and transparency is None:
        a = np.asarray(im.convert("L"))
    elif im.mode in ("L", "RGB") and transparency is not None:
        tile = im.tile[0][3]
        if tile not in ("L", "RGB"):  # Pillow matches tRNS wrongly below 8 or at 16 bits
            return None
        a = np.asarray(im.convert("LA" if im.mode == "L" else "RGBA"))
    elif im.mode in ("L", "LA", "RGB") or (im.mode == "RGBA" and im.tile[0][3] != "LA;16B"):
        a = np.asarray(im)
    else:
        return None
    return a[:, :, None] if a.ndim == 2 else a


def _expected_channels(name: str) -> int:
    """PngSuite names: chars 5-6 are the colour type; +1 for a tRNS with alpha < 255."""
    base = {"0g": 1, "2c": 3, "3p": 3, "4a": 2, "6a": 4}[name[4:6]]
    trns = next((b for c, b in _png_chunks((PNGSUITE / name).read_bytes()) if c == b"tRNS"), None)
    if trns is not None and name[4:6] in ("0g", "2c"):
        return base + 1
    if trns is not None and name[4:6] == "3p" and any(v < 255 for v in trns):
        return base + 1
    return base


# --------------------------------------------------------------------------
# PngSuite
# --------------------------------------------------------------------------


@needs_suite
@pytest.mark.parametrize("name", GOOD_FILES)
def test_pngsuite_loads_by_the_mode_rules(name: str) -> None:
    path = PNGSUITE / name
    p = px.load(path)
    assert p.array.dtype == np.uint8 and p.array.flags.c_contiguous
    assert p.channels == _expected_channels(name)
    assert p.mode == px.MODES[p.channels]
    reference = _png_reference(path)
    if reference is not None:
        np.testing.assert_array_equal(p.array, reference)
    else:
        twin = PNGSUITE / (name[:3] + "n" + name[4:])
        if twin.exists():
            np.testing.assert_array_equal(p.array, px.load(twin).array)
    pillow = _pillow_reference(path)
    if pillow is not None:
        np.testing.assert_array_equal(p.array, pillow)


@needs_suite
@pytest.mark.parametrize(
    "name, mode",
    [
        ("basn0g16.png", "L"),  # 16-bit grey: rounded, not truncated
        ("tbwn0g16.png", "LA"),  # 16-bit grey + tRNS
        ("tbbn0g04.png", "LA"),  # 4-bit grey + tRNS: the raw sample is matched
        ("basn2c16.png", "RGB"),  # 16-bit RGB: high byte
        ("tbbn2c16.png", "RGBA"),  # 16-bit RGB + tRNS
        ("tbrn2c08.png", "RGBA"),  # 8-bit RGB + tRNS
        ("basn3p08.png", "RGB"),
        ("tbbn3p08.png", "RGBA"),  # palette + tRNS
        ("tm3n3p02.png", "RGBA"),  # several alpha levels in tRNS
        ("basn4a08.png", "LA"),
        ("basn4a16.png", "LA"),  # Pillow gives RGBA; we give LA back
        ("basn0g01.png", "L"),
    ],
)
def test_pngsuite_key_cases(name: str, mode: str) -> None:
    p = px.load(PNGSUITE / name)
    assert p.mode == mode
    if mode in ("LA", "RGBA") and name.startswith("t"):
        alpha = p.array[:, :, -1]
        assert (alpha == 0).any() and (alpha == 255).any(), "transparency did not survive"


@needs_suite
def test_pngsuite_16_bit_grey_is_rounded() -> None:
    with Image.open(PNGSUITE / "basn0g16.png") as im:
        raw = np.asarray(im).astype(np.int64)
    p = px.load(PNGSUITE / "basn0g16.png")
    rounded = np.floor(raw * 255 / 65535 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(p.array[:, :, 0], rounded)
    assert not np.array_equal(p.array[:, :, 0], (raw >> 8).astype(np.uint8))


@needs_suite
@pytest.mark.parametrize("name", BAD_FILES)
def test_pngsuite_corrupt_files_raise_image_input_error(name: str) -> None:
    path = PNGSUITE / name
    with pytest.raises(ImageInputError, match=rf"^cannot read '.*{name}': \S"):
        px.load(path)
    with pytest.raises(ImageInputError, match=r"^cannot read the image: "):
        px.load(path.read_bytes())


@needs_suite
def test_idat_crc_is_checked() -> None:
    with pytest.raises(ImageInputError, match=r"IDAT chunk at byte \d+: CRC expected 0x"):
        px.load(PNGSUITE / "xcsn0g01.png")


# --------------------------------------------------------------------------
# from_array and the Pixels value
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode, channels", MODE_CHANNELS)
def test_from_array_3d(mode: str, channels: int) -> None:
    a = _noise((5, 7, channels))
    p = px.from_array(a)
    assert (p.mode, p.width, p.height, p.channels) == (mode, 7, 5, channels)
    assert p.array is a  # no copy
    assert p.icc_profile is None


def test_from_array_2d_is_l() -> None:
    a = _noise((4, 3))
    p = px.from_array(a)
    assert p.array.shape == (4, 3, 1) and p.mode == "L"
    assert np.shares_memory(p.array, a)


def test_from_array_non_contiguous_is_copied_contiguous() -> None:
    a = _noise((6, 8, 3))[:, ::2]
    p = px.from_array(a)
    assert p.array.flags.c_contiguous
    np.testing.assert_array_equal(p.array, a)


def test_from_array_bool() -> None:
    a = np.array([[True, False], [False, True]])
    p = px.from_array(a)
    np.testing.assert_array_equal(p.array[:, :, 0], [[255, 0], [0, 255]])
    assert p.array.dtype == np.uint8


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((2, 2), np.float64), r"must be uint8 or bool, got float64"),
        (np.zeros((2, 2, 3), np.float32), r"must be uint8 or bool, got float32"),
        (np.zeros((2, 2), np.int32), r"must be uint8 or bool, got int32"),
        (np.zeros((2, 2), np.uint16), r"must be uint8 or bool, got uint16"),
        (np.zeros((2, 2, 3, 1), np.uint8), r"got 4 dimensions"),
        (np.zeros(5, np.uint8), r"got 1 dimensions"),
        (np.zeros((2, 2, 5), np.uint8), r"1 to 4 channels .* got 5"),
        (np.zeros((2, 2, 0), np.uint8), r"1 to 4 channels .* got 0"),
        (np.zeros((0, 3), np.uint8), r"empty \(shape \(0, 3, 1\)\)"),
        (np.zeros((3, 0, 3), np.uint8), r"empty"),
    ],
)
def test_from_array_rejects(array: np.ndarray, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        px.from_array(array)


def test_from_array_rejects_non_arrays() -> None:
    with pytest.raises(OptionError, match="expected a numpy array, got list"):
        px.from_array([[1, 2]])  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="use from_pil"):
        px.from_array(Image.new("L", (1, 1)))  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="icc_profile must be bytes"):
        px.from_array(_noise((1, 1)), icc_profile="srgb")  # type: ignore[arg-type]


def test_from_array_icc() -> None:
    assert px.from_array(_noise((1, 1)), icc_profile=bytearray(b"abc")).icc_profile == b"abc"
    assert px.from_array(_noise((1, 1)), icc_profile=b"").icc_profile is None


def test_pixels_validates_and_compares() -> None:
    with pytest.raises(OptionError, match="C-contiguous"):
        px.Pixels(_noise((4, 4, 3))[:, ::2])
    with pytest.raises(OptionError, match=r"\(H, W, C\) uint8"):
        px.Pixels(_noise((4, 4)))
    with pytest.raises(OptionError, match="no pixels"):
        px.Pixels(np.zeros((0, 4, 3), np.uint8))
    a = _noise((2, 3, 4))
    assert px.from_array(a) == px.from_array(a.copy())
    assert px.from_array(a) != px.from_array(a, icc_profile=b"x")
    assert repr(px.from_array(a, icc_profile=b"xy")) == "Pixels(RGBA, 3×2, icc_profile=<2 bytes>)"
    with pytest.raises(TypeError):
        hash(px.from_array(a))


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4)),
    )
)
def test_png_round_trip_property(a: np.ndarray) -> None:
    p = px.load(px.to_bytes(px.from_array(a), "PNG"))
    np.testing.assert_array_equal(p.array, a)


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode, channels", MODE_CHANNELS)
def test_png_round_trip_with_icc(mode: str, channels: int) -> None:
    a = _noise((17, 13, channels), seed=channels)
    data = px.to_bytes(px.from_array(a, icc_profile=SRGB_ICC), "PNG")
    p = px.load(data)
    assert p.mode == mode
    np.testing.assert_array_equal(p.array, a)
    assert p.icc_profile == SRGB_ICC


@pytest.mark.parametrize(
    "fmt, options, mode",
    [
        ("TIFF", {}, "RGBA"),
        ("TIFF", {}, "LA"),
        ("WEBP", {"lossless": True, "exact": True}, "RGBA"),
        ("BMP", {}, "RGB"),
        ("PPM", {}, "L"),
        ("TGA", {}, "LA"),
    ],
)
def test_lossless_formats_round_trip(fmt: str, options: dict, mode: str) -> None:
    a = _noise((9, 11, len(mode)), seed=3)
    p = px.load(px.to_bytes(px.from_array(a), fmt, **options))
    np.testing.assert_array_equal(p.array, a)


@pytest.mark.parametrize("fmt, options", [("TIFF", {}), ("WEBP", {"lossless": True}), ("JPEG", {})])
def test_icc_carried_by_other_formats(fmt: str, options: dict) -> None:
    p = px.from_array(_noise((8, 8, 3)), icc_profile=SRGB_ICC)
    assert px.load(px.to_bytes(p, fmt, **options)).icc_profile == SRGB_ICC


def test_to_bytes_option_overrides_icc() -> None:
    p = px.from_array(_noise((4, 4, 3)), icc_profile=SRGB_ICC)
    assert px.load(px.to_bytes(p, "PNG", icc_profile=None)).icc_profile is None


@pytest.mark.parametrize(
    "fmt, mode, match",
    [
        ("JPEG", "RGBA", r"^JPEG cannot store RGBA \(colour \+ alpha\) images; use \.png"),
        ("JPEG", "LA", r"^JPEG cannot store LA \(grey \+ alpha\) images; use \.png"),
        ("BMP", "LA", r"^BMP cannot store LA"),
        ("BMP", "RGBA", r"^BMP cannot store RGBA"),  # Pillow would drop the alpha silently
        ("PPM", "RGBA", r"^PPM cannot store RGBA"),
        ("QOI", "L", r"^QOI cannot store L \(greyscale\) images; use \.png \(or \.tiff\) to store it"),
        ("XBM", "L", r"^cannot encode the L image as XBM: "),  # Pillow's own refusal, wrapped
    ],
)
def test_to_bytes_refuses_modes_a_format_cannot_hold(fmt: str, mode: str, match: str) -> None:
    p = px.from_array(_noise((4, 4, len(mode))))
    with pytest.raises(ImageInputError, match=match):
        px.to_bytes(p, fmt)


def test_to_bytes_format_names() -> None:
    p = px.from_array(_noise((8, 8, 3)))
    assert px.to_bytes(p, "jpg")[:2] == b"\xff\xd8"
    assert px.to_bytes(p, "png")[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(OptionError, match="Pillow cannot write 'NOPE' images"):
        px.to_bytes(p, "NOPE")
    with pytest.raises(OptionError, match="non-empty string"):
        px.to_bytes(p, "")


def test_to_bytes_bad_option_is_wrapped() -> None:
    p = px.from_array(_noise((8, 8, 3)))
    with pytest.raises(ImageInputError, match="cannot encode the RGB image as JPEG"):
        px.to_bytes(p, "JPEG", subsampling="bogus")


@pytest.mark.parametrize("mode, channels", MODE_CHANNELS)
def test_to_pil(mode: str, channels: int) -> None:
    a = _noise((3, 5, channels)).copy()
    im = px.to_pil(px.from_array(a, icc_profile=SRGB_ICC))
    assert (im.mode, im.size) == (mode, (5, 3))
    assert im.info["icc_profile"] == SRGB_ICC
    got = np.asarray(im)
    np.testing.assert_array_equal(got.reshape(a.shape), a)
    a[0, 0, 0] ^= 0xFF  # the image is a copy
    assert np.asarray(im).reshape(a.shape)[0, 0, 0] != a[0, 0, 0]


def test_from_pil_round_trip() -> None:
    p = px.from_array(_noise((6, 6, 4)), icc_profile=SRGB_ICC)
    assert px.from_pil(px.to_pil(p)) == p


# --------------------------------------------------------------------------
# The mode rules, one by one
# --------------------------------------------------------------------------


def _from_bytes(mode: str, values, width: int, dtype=np.uint8) -> Image.Image:
    data = np.asarray(values, dtype=dtype).tobytes()
    return Image.frombytes(mode, (width, 1), data)


def test_rule_bilevel() -> None:
    im = Image.new("1", (3, 1))
    im.putpixel((1, 0), 1)
    p = px.from_pil(im)
    assert p.mode == "L"
    np.testing.assert_array_equal(p.array[0, :, 0], [0, 255, 0])


def test_rule_bilevel_with_transparency() -> None:
    im = Image.new("1", (2, 1))
    im.putpixel((1, 0), 1)
    im.info["transparency"] = 0
    p = px.from_pil(im)
    np.testing.assert_array_equal(p.array[0], [[0, 0], [255, 255]])


def _palette_image(values) -> Image.Image:
    im = _from_bytes("P", values, len(values))
    im.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90])
    return im


def test_rule_palette_without_alpha_is_rgb() -> None:
    p = px.from_pil(_palette_image([0, 1, 2]))
    assert p.mode == "RGB"
    np.testing.assert_array_equal(p.array[0], [[10, 20, 30], [40, 50, 60], [70, 80, 90]])


def test_rule_palette_transparency_index_is_rgba() -> None:
    im = _palette_image([0, 1, 2])
    im.info["transparency"] = 1
    p = px.from_pil(im)
    assert p.mode == "RGBA"
    np.testing.assert_array_equal(p.array[0, :, 3], [255, 0, 255])


def test_rule_palette_alpha_bytes() -> None:
    im = _palette_image([0, 1, 2])
    im.info["transparency"] = b"\xff\x80"  # PNG-style alpha per palette entry
    np.testing.assert_array_equal(px.from_pil(im).array[0, :, 3], [255, 128, 255])
    im.info["transparency"] = b"\xff\xff\xff"  # all opaque: stays RGB
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert px.from_pil(im).mode == "RGB"


def test_rule_rgba_palette() -> None:
    im = _from_bytes("P", [0, 1], 2)
    im.putpalette([1, 2, 3, 255, 4, 5, 6, 7], rawmode="RGBA")
    p = px.from_pil(im)
    np.testing.assert_array_equal(p.array[0], [[1, 2, 3, 255], [4, 5, 6, 7]])
    im.putpalette([1, 2, 3, 255, 4, 5, 6, 255], rawmode="RGBA")
    assert px.from_pil(im).mode == "RGB"


def test_rule_pa() -> None:
    im = _palette_image([0, 2]).convert("PA")
    im.putpixel((1, 0), (2, 9))
    p = px.from_pil(im)
    np.testing.assert_array_equal(p.array[0], [[10, 20, 30, 255], [70, 80, 90, 9]])


def test_rule_l_and_rgb_transparency() -> None:
    im = _from_bytes("L", [5, 6, 5], 3)
    im.info["transparency"] = 5
    np.testing.assert_array_equal(px.from_pil(im).array[0], [[5, 0], [6, 255], [5, 0]])
    im = _from_bytes("RGB", [1, 2, 3, 1, 2, 4], 2)
    im.info["transparency"] = (1, 2, 3)
    np.testing.assert_array_equal(px.from_pil(im).array[0, :, 3], [0, 255])


SIXTEEN = [0, 128, 129, 257, 32767, 32768, 65406, 65407, 65535]


@pytest.mark.parametrize("mode, dtype", [("I;16", "<u2"), ("I;16L", "<u2"), ("I;16B", ">u2"), ("I;16N", "=u2")])
def test_rule_16_bit(mode: str, dtype: str) -> None:
    p = px.from_pil(_from_bytes(mode, SIXTEEN, len(SIXTEEN), dtype))
    assert p.mode == "L"
    expected = np.floor(np.array(SIXTEEN) * 255 / 65535 + 0.5)
    np.testing.assert_array_equal(p.array[0, :, 0], expected)
    np.testing.assert_array_equal(p.array[0, :, 0], [0, 0, 1, 1, 127, 128, 254, 255, 255])


def test_rule_16_bit_transparency_is_matched_exactly() -> None:
    im = _from_bytes("I;16", [65535, 65534], 2, "<u2")
    im.info["transparency"] = 65535
    np.testing.assert_array_equal(px.from_pil(im).array[0], [[255, 0], [255, 255]])


def test_rule_32_bit_int() -> None:
    p = px.from_pil(_from_bytes("I", [-5, 0, 257, 65535, 70000], 5, "<i4"))
    np.testing.assert_array_equal(p.array[0, :, 0], [0, 0, 1, 255, 255])


def test_rule_float() -> None:
    values = [np.nan, -3.0, 0.5, 1.5, 2.4, 254.6, 1000.0, np.inf]
    p = px.from_pil(_from_bytes("F", values, len(values), "<f4"))
    np.testing.assert_array_equal(p.array[0, :, 0], [0, 0, 0, 2, 2, 255, 255, 255])


@pytest.mark.parametrize(
    "mode, values, target",
    [
        ("La", [50, 128, 10, 0, 200, 255], "LA"),
        ("RGBa", [50, 100, 128, 128, 1, 2, 3, 255], "RGBA"),
        ("RGBX", [1, 2, 3, 99, 4, 5, 6, 0], "RGB"),
        ("YCbCr", [100, 120, 140, 30, 200, 60], "RGB"),
        ("HSV", [0, 255, 255, 85, 255, 128], "RGB"),
        ("LAB", [255, 0, 0, 100, 81, 70], "RGB"),
        ("CMYK", [0, 255, 0, 0, 10, 20, 30, 40], "RGB"),
    ],
)
def test_rule_converted_modes(mode: str, values: list[int], target: str) -> None:
    im = _from_bytes(mode, values, 2)
    p = px.from_pil(im)
    assert p.mode == target
    expected = np.asarray(im.convert(target))
    np.testing.assert_array_equal(p.array.reshape(expected.shape), expected)


def test_rule_premultiplied_is_unpremultiplied() -> None:
    p = px.from_pil(_from_bytes("RGBa", [50, 100, 128, 128], 1))
    assert tuple(p.array[0, 0]) == (99, 199, 255, 128)


def test_rule_lab_white_is_white() -> None:
    p = px.from_pil(_from_bytes("LAB", [255, 0, 0], 1))
    assert all(v >= 250 for v in p.array[0, 0])


def test_cmyk_icc_dropped_rgb_icc_kept() -> None:
    cmyk_icc = SRGB_ICC[:16] + b"CMYK" + SRGB_ICC[20:]
    im = _from_bytes("CMYK", [0, 0, 0, 0], 1)
    im.info["icc_profile"] = cmyk_icc
    assert px.from_pil(im).icc_profile is None
    im = _from_bytes("YCbCr", [0, 128, 128], 1)
    im.info["icc_profile"] = SRGB_ICC
    assert px.from_pil(im).icc_profile == SRGB_ICC


def test_unsupported_mode() -> None:
    im = Image.new("L", (1, 1))
    im._mode = "BGR;24"  # a mode Pillow no longer has
    with pytest.raises(ImageInputError, match=r"unsupported image mode 'BGR;24'"):
        px.from_pil(im)


def test_from_pil_rejects_other_types_and_empty_images() -> None:
    with pytest.raises(OptionError, match="expects a PIL.Image.Image, got ndarray"):
        px.from_pil(np.zeros((1, 1), np.uint8))  # type: ignore[arg-type]
    with pytest.raises(ImageInputError, match="the image has 0×0 pixels"):
        px.from_pil(Image.new("L", (0, 0)))


def test_from_pil_wraps_decoding_errors() -> None:
    data = _encode(_noise((64, 64, 3)))
    im = Image.open(io.BytesIO(data[: len(data) // 2]))
    with pytest.raises(ImageInputError, match="truncated or corrupt image data"):
        px.from_pil(im)


def test_loaded_arrays_are_read_only() -> None:
    p = px.load(_encode(_noise((3, 3, 3))))
    assert not p.array.flags.writeable


# --------------------------------------------------------------------------
# load: sources, formats and errors
# --------------------------------------------------------------------------


@pytest.fixture
def rgb_png(tmp_path: Path) -> tuple[Path, np.ndarray]:
    a = _noise((10, 12, 3), seed=7)
    path = tmp_path / "x.png"
    path.write_bytes(_encode(a))
    return path, a


def test_load_sources(rgb_png: tuple[Path, np.ndarray]) -> None:
    path, a = rgb_png
    data = path.read_bytes()
    for src in (path, str(path), data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(px.load(src).array, a)
    with path.open("rb") as f:
        np.testing.assert_array_equal(px.load(f).array, a)
        assert not f.closed


def test_load_unseekable_stream(rgb_png: tuple[Path, np.ndarray]) -> None:
    path, a = rgb_png
    np.testing.assert_array_equal(px.load(OneWayStream(path.read_bytes())).array, a)


def test_load_rejects_wrong_sources(rgb_png: tuple[Path, np.ndarray]) -> None:
    path, _ = rgb_png
    with pytest.raises(OptionError, match="expects a path, bytes or a binary file object, got int"):
        px.load(3)  # type: ignore[arg-type]
    with path.open("r", encoding="latin-1") as f, pytest.raises(OptionError, match="open the file with 'rb'"):
        px.load(f)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_load_rejects_bad_max_pixels(bad, rgb_png: tuple[Path, np.ndarray]) -> None:
    with pytest.raises(OptionError, match="max_pixels must be a positive integer or None"):
        px.load(rgb_png[0], max_pixels=bad)


def test_load_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageInputError, match=r"^cannot open '.*nope\.png': No such file or directory$"):
        px.load(missing)
    with pytest.raises(ImageInputError, match=r"^cannot open '.*': Is a directory$"):
        px.load(tmp_path)


def test_load_text_and_empty_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    with pytest.raises(ImageInputError, match=r"^cannot read '.*notes\.png': not an image Pillow recognises$"):
        px.load(text)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageInputError, match=r"^cannot read '.*empty\.png': not an image"):
        px.load(empty)
    with pytest.raises(ImageInputError, match=r"^cannot read the image: not an image"):
        px.load(b"")


def test_load_names_file_objects_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(b"\0" * 100)
    with path.open("rb") as f, pytest.raises(ImageInputError, match=r"garbage\.bin"):
        px.load(f)


def _png_cuts() -> list[int]:
    data = _encode(_noise((48, 48, 3), seed=2))
    idat_end = data.index(b"IEND") - 4  # start of the IEND chunk's length field
    return sorted({1, 8, 12, 16, 29, 33, 40, 60, len(data) // 2, idat_end - 5, idat_end - 1})


@pytest.mark.parametrize("cut", _png_cuts())
def test_load_truncated_png(cut: int, tmp_path: Path) -> None:
    data = _encode(_noise((48, 48, 3), seed=2))
    path = tmp_path / "cut.png"
    path.write_bytes(data[:cut])
    with pytest.raises(ImageInputError, match=r"^cannot read '.*cut\.png': "):
        px.load(path)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 0.9, 0.99])
def test_load_truncated_jpeg(fraction: float) -> None:
    data = _encode(_noise((64, 64, 3), seed=4), "JPEG")
    with pytest.raises(ImageInputError, match="^cannot read the image: "):
        px.load(data[: int(len(data) * fraction)])


def test_truncated_messages_say_truncated() -> None:
    data = _encode(_noise((64, 64, 3)))
    with pytest.raises(ImageInputError, match=r"truncated PNG data \(IDAT chunk at byte 33 is cut short\)$"):
        px.load(data[: len(data) // 2])
    data = _encode(_noise((64, 64, 3)), "JPEG")
    with pytest.raises(ImageInputError, match=r"truncated or corrupt image data \(image file is truncated"):
        px.load(data[: len(data) // 2])


def test_load_truncated_images_setting_is_respected(monkeypatch) -> None:
    a = _noise((48, 48, 3), seed=2)
    data = _encode(a)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    p = px.load(data[: data.index(b"IEND") - 5])  # only the IDAT's CRC and last byte lost
    np.testing.assert_array_equal(p.array, a)


def _header_only_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def test_limit_checked_before_decoding() -> None:
    before = Image.MAX_IMAGE_PIXELS
    start = time.perf_counter()
    with pytest.raises(
        LimitError,
        match=r"^the image is 100000×100000 = 10,000,000,000 pixels, above the limit of "
        r"178,956,970 \(max_pixels\)$",
    ):
        px.load(_header_only_png(100_000, 100_000))
    assert time.perf_counter() - start < 1.0
    assert Image.MAX_IMAGE_PIXELS == before


def test_limit_names_the_file(rgb_png: tuple[Path, np.ndarray]) -> None:
    path, _ = rgb_png
    with pytest.raises(LimitError, match=r"^'.*x\.png' is 12×10 = 120 pixels, above the limit of 119 \(max_pixels\)$"):
        px.load(path, max_pixels=119)
    assert px.load(path, max_pixels=120).width == 12


def test_max_pixels_above_pillows_limit(monkeypatch, rgb_png: tuple[Path, np.ndarray]) -> None:
    path, a = rgb_png
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # Pillow alone refuses 120 pixels
    np.testing.assert_array_equal(px.load(path, max_pixels=None).array, a)
    np.testing.assert_array_equal(px.load(path).array, a)
    assert Image.MAX_IMAGE_PIXELS == 20  # restored
    with pytest.raises(LimitError, match="above the limit of 100"):
        px.load(path, max_pixels=100)


def test_no_decompression_bomb_warning_escapes(monkeypatch, rgb_png: tuple[Path, np.ndarray]) -> None:
    path, _ = rgb_png
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 120 pixels: Pillow only warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert px.load(path).width == 12


def test_zero_size_image(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "z.png"
    path.write_bytes(b"anything")
    monkeypatch.setattr(Image, "open", lambda fp, *args, **kw: Image.new("L", (0, 0)))
    with pytest.raises(ImageInputError, match=r"^'.*z\.png' has 0×0 pixels$"):
        px.load(path)


def test_animated_gif_first_frame() -> None:
    frames = [Image.new("RGB", (4, 3), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(io.BytesIO(out.getvalue())).n_frames == 3
    p = px.load(out.getvalue())
    assert p.mode == "RGB" and (p.width, p.height) == (4, 3)
    assert (p.array == [255, 0, 0]).all()


def test_gif_transparency_is_rgba() -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([0, 0, 0, 255, 255, 255])
    im.putpixel((1, 0), 1)
    out = io.BytesIO()
    im.save(out, "GIF", transparency=0)
    p = px.load(out.getvalue())
    np.testing.assert_array_equal(p.array[0], [[0, 0, 0, 0], [255, 255, 255, 255]])


@pytest.mark.parametrize("mode, expected", [("RGB", "RGB"), ("L", "L"), ("CMYK", "RGB")])
def test_jpeg(mode: str, expected: str) -> None:
    out = io.BytesIO()
    Image.new(mode, (16, 8), (40,) * len(mode)).save(out, "JPEG", quality=95)
    p = px.load(out.getvalue())
    assert p.mode == expected and (p.width, p.height) == (16, 8)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PPM", "WEBP"])
def test_other_formats_load(fmt: str) -> None:
    a = _noise((6, 5, 3), seed=9)
    options = {"lossless": True} if fmt == "WEBP" else {}
    np.testing.assert_array_equal(px.load(_encode(a, fmt, **options)).array, a)


def test_16_bit_pgm() -> None:
    data = b"P5 3 1 65535\n" + np.array([0, 257, 65535], ">u2").tobytes()
    np.testing.assert_array_equal(px.load(data).array[0, :, 0], [0, 1, 255])


@pytest.mark.parametrize(
    "orientation, transform",
    [
        (1, lambda a: a),
        (2, lambda a: a[:, ::-1]),
        (3, lambda a: a[::-1, ::-1]),
        (6, lambda a: np.rot90(a, -1)),
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_exif_orientation_applied(orientation: int, transform) -> None:
    a = _noise((2, 3, 3), seed=5)
    exif = Image.Exif()
    exif[274] = orientation
    p = px.load(_encode(a, "PNG", exif=exif))
    np.testing.assert_array_equal(p.array, transform(a))


def test_broken_exif_is_ignored() -> None:
    a = _noise((2, 3, 3))
    p = px.load(_encode(a, "PNG", exif=b"Exif\0\0garbage garbage"))
    np.testing.assert_array_equal(p.array, a)


# --------------------------------------------------------------------------
# format_for_path
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, fmt",
    [("out.png", "PNG"), ("a/b/OUT.JPG", "JPEG"), ("x.jpeg", "JPEG"), ("x.tif", "TIFF"),
     ("x.webp", "WEBP"), ("x.bmp", "BMP"), (Path("x.ppm"), "PPM")],
)
def test_format_for_path(path, fmt: str) -> None:
    assert px.format_for_path(path) == fmt


@pytest.mark.parametrize(
    "path, match",
    [
        ("out", r"^'out' has no file extension; add one such as \.png$"),
        ("out.xyz", r"^unknown image extension '\.xyz' in 'out\.xyz'; use \.png"),
        ("out.psd", r"^Pillow cannot write PSD files"),
    ],
)
def test_format_for_path_rejects(path: str, match: str) -> None:
    with pytest.raises(OptionError, match=match):
        px.format_for_path(path)


def test_a_png_is_read_without_pillows_other_plugins():
    """Image.open imports five plugins first (~7 ms of every encode); a PNG goes
    straight to the PNG plugin."""
    import subprocess
    import sys

    code = (
        "import sys; from vqcodec import pixels; "
        f"pixels.load({str(Path(__file__).resolve().parent / 'data' / 'sample.png')!r}); "
        "print(sorted(m for m in sys.modules if m.startswith('PIL.') and m.endswith('Plugin')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['PIL.PngImagePlugin']"
